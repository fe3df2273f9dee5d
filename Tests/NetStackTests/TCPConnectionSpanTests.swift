import AllocationCounter
import Glibc
import Testing
@testable import NetStack
import NetStackWire

/// The span face of `TCPConnection` (TCPConnection+Spans.swift) with real
/// bytes between two stacks, and `FileLookup`/`FileSource` on real files.
@Suite struct TCPConnectionSpanTests {
    static let port: UInt16 = 5003

    /// A connected pair: the client on A, the accepted server connection on B.
    static func connected(_ pair: TCPStackPair, configuration: TCPConfiguration? = nil) throws
        -> (client: TCPConnection, server: TCPConnection) {
        let listener = try pair.b.tcp.listen(port: port, configuration: configuration)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: port, configuration: configuration,
                                           now: pair.now)
        var server: TCPConnection?
        pair.run(until: { server != nil && client.state == .established }, app: {
            if server == nil { server = listener.accept() }
            return false
        })
        return (client, try #require(server))
    }

    static func bytes(_ n: Int, seed: Int) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: ($0 &* 31) &+ seed) }
    }

    @Test func everyWriteFormArrivesInOrderThroughPeekedSpans() throws {
        let pair = TCPStackPair()
        // A small receive ring, so the bytes wrap it and peek hands out two pieces.
        var config = TCPConfiguration()
        config.receiveBufferSize = 4096
        let (client, server) = try Self.connected(pair, configuration: config)
        let payload = Self.bytes(50_000, seed: 3)
        var expected: [UInt8] = []
        var received: [UInt8] = []
        var sawTwoPieces = false
        var stage = 0
        pair.run(until: { received.count == 6 + 1 + payload.count && stage == 3 }, app: {
            var moved = false
            // One of each write form; the big one a span slice at a time as the send ring drains.
            if stage == 0 {
                #expect(client.write("hello ") == 6)
                expected += Array("hello ".utf8)
                stage = 1
                moved = true
            }
            if stage == 1 {
                #expect(client.write(byte: 0x7f) == 1)
                expected += [0x7f]
                stage = 2
                moved = true
            }
            if stage == 2 {
                let offset = expected.count - 7
                let n = client.write(payload.span.extracting(offset...))
                expected += payload[offset..<(offset + n)]
                if expected.count == 7 + payload.count { stage = 3 }
                moved = moved || n > 0
            }
            pair.a.tcp.flush(client, now: pair.now)
            // The reader looks at the bytes where they lie, then consumes them.
            let n = server.peek { (a: Span<UInt8>, b: Span<UInt8>) -> Int in
                if !b.isEmpty { sawTwoPieces = true }
                for i in a.indices { received.append(a[i]) }
                for i in b.indices { received.append(b[i]) }
                return a.count + b.count
            }
            server.skip(n)
            pair.b.tcp.flush(server, now: pair.now)
            return moved || n > 0
        })
        #expect(received == expected)
        #expect(received.count == 7 + payload.count)
        #expect(sawTwoPieces)
    }

    @Test func readsFillOutputSpansMutableSpansAndArrays() throws {
        let pair = TCPStackPair()
        let (client, server) = try Self.connected(pair)
        let payload = Self.bytes(3000, seed: 7)
        #expect(client.write(payload) == payload.count)
        pair.a.tcp.flush(client, now: pair.now)
        pair.run(until: { server.readableBytes == payload.count })

        // peek(into:) copies without consuming.
        let head = [UInt8](capacity: 10) { output in _ = server.peek(into: &output) }
        #expect(head == Array(payload[0..<10]))
        #expect(server.readableBytes == payload.count)

        // read(into: OutputSpan) fills the free capacity, after what is already there.
        let first = [UInt8](capacity: 100) { output in
            output.append(0xee)
            #expect(server.read(into: &output) == 99)
        }
        #expect(first == [0xee] + Array(payload[0..<99]))

        // read(into: MutableSpan) overwrites the front.
        var fixed = [UInt8](repeating: 0, count: 400)
        var span = fixed.mutableSpan
        #expect(server.read(into: &span) == 400)
        _ = consume span
        #expect(fixed == Array(payload[99..<499]))

        // read(appendingTo:) keeps what the array holds and honours maxLength.
        var collected: [UInt8] = [1, 2]
        #expect(server.read(appendingTo: &collected, maxLength: 1) == 1)
        #expect(server.read(appendingTo: &collected) == payload.count - 500)
        #expect(collected == [1, 2] + Array(payload[499...]))
        #expect(server.readableBytes == 0)
        #expect(server.read(appendingTo: &collected) == 0)
    }

    @Test func spanReadsAndWritesAllocateNothing() throws {
        let pair = TCPStackPair()
        let (client, server) = try Self.connected(pair)
        let payload = Self.bytes(60_000, seed: 11)
        var sent = 0
        pair.run(until: { server.readableBytes == payload.count }, app: {
            let n = client.write(payload.span.extracting(sent...))
            sent += n
            pair.a.tcp.flush(client, now: pair.now)
            return n > 0
        })
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1024)
        let chunk = Self.bytes(100, seed: 5)
        var total = 0
        var checksum = 0
        // Warm up as long as we count (first use may instantiate metadata,
        // and the send ring grows to what the rounds write), let the peer
        // acknowledge it all, then count.
        for round in -100..<100 {
            if round == 0 {
                pair.run(until: { server.sender.sendBuffer.isEmpty }, app: {
                    pair.b.tcp.flush(server, now: pair.now)
                    return false
                })
                allocation_counter_start()
            }
            buffer.removeAll(keepingCapacity: true)
            total += server.read(appendingTo: &buffer, maxLength: 300)
            buffer.append(addingCapacity: 200) { output in total += server.peek(into: &output) }
            checksum &+= server.peek { (a: Span<UInt8>, b: Span<UInt8>) in (a.isEmpty ? 0 : Int(a[0])) + b.count }
            total += server.write(chunk.span)
            total += server.write(chunk)
            total += server.write("HTTP/1.1 200 OK\r\n")
            total += server.write(byte: 10)
            total += server.skip(100)
        }
        let allocations = allocation_counter_stop()
        #expect(allocations == 0, "\(allocations) allocations")
        #expect(total > 0 && checksum > 0)
    }

    // MARK: Files

    /// A directory with `file.bin` (the given bytes) and `sub/`.
    static func makeTree(_ contents: [UInt8]) throws -> String {
        var template = Array("/tmp/netstack-filesource-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let dir = String(cString: try #require(made))
        let fd = open(dir + "/file.bin", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        let written = contents.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        #expect(written == contents.count)
        close(fd)
        #expect(mkdir(dir + "/sub", 0o755) == 0)
        return dir
    }

    static func removeTree(_ dir: String) {
        unlink(dir + "/file.bin")
        rmdir(dir + "/sub")
        rmdir(dir)
    }

    @Test func fileSourceReadsAFileInChunks() throws {
        let contents = Self.bytes(100_000, seed: 9)
        let dir = try Self.makeTree(contents)
        defer { Self.removeTree(dir) }
        let lookup = FileLookup()

        // realpath(3) resolves "." and ".." to the file itself.
        var resolved: [UInt8] = []
        let messy = Array((dir + "/sub/../././file.bin").utf8)
        try lookup.realPath(messy.span, into: &resolved)
        #expect(String(decoding: resolved, as: UTF8.self) == dir + "/file.bin")

        let file = try lookup.open(resolved.span)
        defer { file.close() }
        #expect(file.kind == .regular && file.size == UInt64(contents.count))
        var chunk: [UInt8] = []
        chunk.reserveCapacity(16 * 1024)
        var all: [UInt8] = []
        var reads = 0
        while true {
            chunk.removeAll(keepingCapacity: true)
            if reads == 1 { allocation_counter_start() }
            let n = try file.read(appendingTo: &chunk, maxLength: 16 * 1024)
            if reads == 1 {
                let allocations = allocation_counter_stop()
                #expect(allocations == 0, "\(allocations) allocations")
            }
            if n == 0 { break }
            #expect(n == chunk.count && n <= 16 * 1024)
            all += chunk
            reads += 1
        }
        #expect(all == contents)
        #expect(reads == 7)

        // An OutputSpan that is full reads nothing.
        let none = try [UInt8](capacity: 0) { (output) throws(FileError) in
            #expect(try file.read(into: &output) == 0)
        }
        #expect(none.isEmpty)
    }

    @Test func fileLookupReportsKindsAndErrors() throws {
        let dir = try Self.makeTree([1, 2, 3])
        defer { Self.removeTree(dir) }
        let lookup = FileLookup()
        let sub = Array((dir + "/sub").utf8)
        #expect(try lookup.kind(of: sub.span) == .directory)
        let directory = try lookup.open(sub.span)
        #expect(directory.kind == .directory)
        directory.close()

        let missing = Array((dir + "/nope").utf8)
        #expect(throws: FileError(errno: ENOENT)) { _ = try lookup.open(missing.span) }
        var resolved: [UInt8] = []
        #expect(throws: FileError(errno: ENOENT)) { try lookup.realPath(missing.span, into: &resolved) }
        let withNUL = Array((dir + "/file.bin").utf8) + [0, 0x41]
        #expect(throws: FileError.badPath) { _ = try lookup.open(withNUL.span) }
        let tooLong = [UInt8](repeating: 0x61, count: lookup.maxPathLength + 1)
        #expect(throws: FileError.badPath) { _ = try lookup.open(tooLong.span) }
        #expect(!FileError(errno: ENOENT).isPermissionDenied && FileError(errno: EACCES).isPermissionDenied)
    }
}
