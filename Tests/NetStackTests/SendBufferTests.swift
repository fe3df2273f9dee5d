import Testing
@testable import NetStack

/// TCP's send buffer as runs of copied and shared bytes: what `peek` hands
/// out (one run at a time), what `consume` releases, and the capacity both
/// kinds share.
@Suite struct SendBufferTests {
    func bytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> [UInt8] { [UInt8](a) + [UInt8](b) }
    func copy(_ b: [UInt8], into buffer: SendBuffer) -> Int { b.withUnsafeBytes { buffer.append($0) } }

    @Test func peekStopsAtTheEndOfARun() {
        let buffer = SendBuffer(capacity: 64)
        let shared = SharedBytes([UInt8](100..<120))
        #expect(copy([1, 2, 3], into: buffer) == 3)
        #expect(buffer.append(shared, range: 5..<15) == 10)
        #expect(copy([4, 5], into: buffer) == 2)
        #expect(buffer.count == 15 && buffer.freeSpace == 49)
        let (a, b) = buffer.peek(from: 1, count: 10)
        #expect(bytes(a, b) == [2, 3], "the copied run ends after 3 bytes")
        let (c, d) = buffer.peek(from: 3, count: 100)
        #expect(bytes(c, d) == [UInt8](105..<115))
        #expect(c.baseAddress == shared.bytes.baseAddress! + 5, "shared bytes are lent where they lie")
        let (e, f) = buffer.peek(from: 13, count: 100)
        #expect(bytes(e, f) == [4, 5], "the second copied run follows the first in the ring")
    }

    @Test func adjacentWritesOfOneKindJoinOneRun() {
        let buffer = SendBuffer(capacity: 64)
        let shared = SharedBytes([UInt8](0..<40))
        _ = buffer.append(shared, range: 0..<10)
        _ = buffer.append(shared, range: 10..<30)
        let (a, b) = buffer.peek(from: 0, count: 30)
        #expect(bytes(a, b) == [UInt8](0..<30))
        _ = buffer.append(shared, range: 0..<5)  // not adjacent: a new run
        #expect(bytes(buffer.peek(from: 25, count: 30).0, buffer.peek(from: 25, count: 30).1) == [UInt8](25..<30))
    }

    @Test func consumeReleasesSharedBytesOnceAcknowledged() {
        let buffer = SendBuffer(capacity: 64)
        weak var released: SharedBytes?
        do {
            let shared = SharedBytes([UInt8](0..<16))
            released = shared
            _ = buffer.append(shared, range: 0..<16)
        }
        _ = copy([9, 9], into: buffer)
        buffer.consume(10)
        #expect(released != nil, "6 bytes of it are still unacknowledged")
        #expect(bytes(buffer.peek(from: 0, count: 64).0, buffer.peek(from: 0, count: 64).1) == [UInt8](10..<16))
        buffer.consume(6)
        #expect(released == nil)
        #expect(bytes(buffer.peek(from: 0, count: 64).0, buffer.peek(from: 0, count: 64).1) == [9, 9])
        buffer.consume(2)
        #expect(buffer.isEmpty)
    }

    @Test func bothKindsShareTheCapacity() {
        let buffer = SendBuffer(capacity: 16)
        let shared = SharedBytes([UInt8](repeating: 1, count: 100))
        #expect(buffer.append(shared, range: 0..<100) == 16)
        #expect(copy([1], into: buffer) == 0)
        buffer.consume(8)
        #expect(copy([UInt8](repeating: 2, count: 20), into: buffer) == 8)
        // The ring wraps behind the shared run without ever having held it.
        buffer.consume(8)
        #expect(copy([UInt8](repeating: 3, count: 8), into: buffer) == 8)
        let (a, b) = buffer.peek(from: 0, count: 16)
        #expect(bytes(a, b) == [UInt8](repeating: 2, count: 8) + [UInt8](repeating: 3, count: 8))
    }
}
