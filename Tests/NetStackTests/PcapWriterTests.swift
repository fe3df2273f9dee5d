import Foundation
import NetStack
import SystemPackage
import Testing

/// A device that hands out queued frames and keeps what it is given, for
/// exercising middleware without I/O.
final class ScriptedDevice: Device {
    let pool: PacketPool
    let capabilities: DeviceCapabilities
    var incoming: [[UInt8]] = []
    var transmitted: [[UInt8]] = []
    var flushes = 0

    init(pool: PacketPool, capabilities: DeviceCapabilities = .ethernet()) {
        self.pool = pool
        self.capabilities = capabilities
    }

    func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        var delivered = 0
        while delivered < limit, !incoming.isEmpty, var frame = pool.allocate() {
            let bytes = incoming.removeFirst()
            frame.withCapacity { $0.copyBytes(from: bytes) }
            frame.setLength(bytes.count)
            handler(frame)
            delivered += 1
        }
        return delivered
    }

    func transmit(_ frame: consuming PacketBuffer) {
        transmitted.append(frame.withBytes { Array($0) })
    }

    func flush() { flushes += 1 }

    /// Sleeps asked for (`EventLoop`'s idle turns), each with its timeout.
    var waits: [Duration] = []
    func wait(timeout: Duration) { waits.append(timeout) }
}

struct PcapWriterTests {
    static func temporaryPath() -> String {
        NSTemporaryDirectory() + "netstack-pcap-\(getpid())-\(UInt32.random(in: 0 ... .max)).pcap"
    }

    static func frame(_ length: Int, seed: UInt8) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: $0 &+ Int(seed)) }
    }

    /// A little-endian reader over the captured file.
    struct Reader {
        let data: [UInt8]
        var offset = 0
        mutating func u32() -> UInt32? {
            guard offset + 4 <= data.count else { return nil }
            defer { offset += 4 }
            return UInt32(data[offset]) | UInt32(data[offset + 1]) << 8
                | UInt32(data[offset + 2]) << 16 | UInt32(data[offset + 3]) << 24
        }
        mutating func u16() -> UInt16? {
            guard offset + 2 <= data.count else { return nil }
            defer { offset += 2 }
            return UInt16(data[offset]) | UInt16(data[offset + 1]) << 8
        }
        mutating func bytes(_ n: Int) -> [UInt8]? {
            guard offset + n <= data.count else { return nil }
            defer { offset += n }
            return Array(data[offset..<offset + n])
        }
    }

    @Test func recordsReceivedAndTransmittedFramesWithHeadersAndTimes() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        let pool = PacketPool(slotCount: 8)
        let inner = ScriptedDevice(pool: pool)
        let clock = VirtualClock(start: Instant(nanoseconds: 1_700_000_000_123_456_789))
        // A small buffer, so the run also writes out in the middle.
        let capture = try PcapWriter(wrapping: inner, path: FilePath(path), clock: clock, snapLength: 100,
                                     bufferSize: 256)
        let rx1 = Self.frame(60, seed: 1), rx2 = Self.frame(1514, seed: 2), tx = Self.frame(42, seed: 3)
        inner.incoming = [rx1, rx2]

        var seen: [Int] = []
        let n = capture.receive(limit: 8) { frame in seen.append(frame.length) }
        clock.advance(by: .milliseconds(1500))
        if var out = pool.allocate() {
            out.withCapacity { $0.copyBytes(from: tx) }
            out.setLength(tx.count)
            capture.transmit(out)
        }
        capture.flush()
        capture.close()

        #expect(n == 2)
        #expect(seen == [60, 1514])
        #expect(inner.transmitted == [tx])
        #expect(inner.flushes == 1)
        #expect(capture.framesRecorded == 3)
        #expect(capture.writeError == nil)
        #expect(pool.freeCount == pool.slotCount)

        var r = Reader(data: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        #expect(r.u32() == 0xa1b2_3c4d)
        #expect(r.u16() == 2)
        #expect(r.u16() == 4)
        #expect(r.u32() == 0)
        #expect(r.u32() == 0)
        #expect(r.u32() == 100)
        #expect(r.u32() == 1)
        let records: [(seconds: UInt32, nanos: UInt32, bytes: [UInt8])] = [
            (1_700_000_000, 123_456_789, rx1), (1_700_000_000, 123_456_789, rx2),
            (1_700_000_001, 623_456_789, tx),
        ]
        for record in records {
            #expect(r.u32() == record.seconds)
            #expect(r.u32() == record.nanos)
            let kept = min(record.bytes.count, 100)
            #expect(r.u32() == UInt32(kept))
            #expect(r.u32() == UInt32(record.bytes.count))
            #expect(r.bytes(kept) == Array(record.bytes.prefix(kept)))
        }
        #expect(r.offset == r.data.count)
    }

    @Test func unopenableFileThrowsErrno() {
        let pool = PacketPool(slotCount: 4)
        #expect(throws: Errno.noSuchFileOrDirectory) {
            try PcapWriter(wrapping: ScriptedDevice(pool: pool), path: "/nonexistent-dir/x.pcap",
                           clock: VirtualClock())
        }
    }

    static let tshark = ["/usr/bin/tshark", "/usr/local/bin/tshark"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: tshark != nil, "tshark is not installed"))
    func tsharkReadsTheCapture() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        let pool = PacketPool(slotCount: 8)
        let inner = ScriptedDevice(pool: pool)
        let clock = VirtualClock()
        let capture = try PcapWriter(wrapping: inner, path: FilePath(path), clock: clock)
        // An ARP request (who has 10.0.0.2? tell 10.0.0.1), padded to 60 bytes.
        let arp: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06,
                            0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1,
                            0, 0, 0, 0, 0, 0, 10, 0, 0, 2] + [UInt8](repeating: 0, count: 18)
        inner.incoming = [arp, arp, arp]
        _ = capture.receive(limit: 8) { _ in clock.advance(by: .milliseconds(1)) }
        capture.close()

        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(Self.tshark))
        p.arguments = ["-r", path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let watchdog = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 10, execute: watchdog)
        defer { watchdog.cancel() }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let lines = text.split(separator: "\n")
        #expect(p.terminationStatus == 0)
        #expect(lines.count == 3, "tshark said: \(text)")
        #expect(lines.allSatisfy { $0.contains("ARP") && $0.contains("Who has 10.0.0.2") }, "tshark said: \(text)")
    }
}
