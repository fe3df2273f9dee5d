import CURing
import Foundation
import NetStack
import NetStackWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// TAPDevice against the real kernel. Each test makes its own network namespace,
/// creates the TAP inside it from a dedicated thread (setns moves one thread
/// only), drives traffic there, and deletes the namespace afterwards. Frames are
/// parsed by hand so these tests do not depend on the wire layer.
@Suite(.enabled(if: TAPHarness.available, "needs root, /dev/net/tun and ip(8)"))
struct TAPDeviceTests {
    static let host = IPv4Address(10, 0, 0, 1)
    static let peer = IPv4Address(10, 0, 0, 2)
    static let peerMAC = MACAddress(0x02, 0, 0, 0, 0, 0x02)
    static let hostCIDR = IPv4CIDR(address: host, prefixLength: 24)

    @Test("the kernel's ARP request for a neighbour arrives through receive",
          arguments: [TAPDevice.ReceiveMode.automatic, .bufferSelect])
    func kernelARPRequestIsReceived(mode: TAPDevice.ReceiveMode) async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let result = try await ns.onThread { () throws -> (seen: ARPFrame?, multishot: Bool, hostMAC: MACAddress?,
                                                           free: Int, slots: Int) in
            let pool = PacketPool(slotCount: 256)
            let device = try TAPDevice(name: "tap0", hostAddress: Self.hostCIDR, pool: pool, receiveMode: mode)
            let ping = TAPHarness.start(["ip", "netns", "exec", ns.name, "ping", "-c", "1", "-W", "1", "\(Self.peer)"])
            let seen = TAPHarness.receive(from: device, within: 3) { (frame: borrowing PacketBuffer) -> ARPFrame? in
                guard let arp = ARPFrame(frame), arp.operation == 1, arp.targetIP == Self.peer else { return nil }
                return arp
            }
            TAPHarness.finish(ping, within: 3)
            let multishot = device.usingMultishot, mac = device.hostMAC
            device.close()
            return (seen, multishot, mac, pool.freeCount, pool.slotCount)
        }
        #expect(result.multishot == (mode == .automatic))
        let arp = try #require(result.seen, "no ARP request for \(Self.peer) within 3 s")
        #expect(arp.senderIP == Self.host)
        #expect(result.hostMAC != nil)
        #expect(arp.senderMAC == result.hostMAC)
        #expect(arp.ethernetSource == result.hostMAC)
        #expect(arp.ethernetDestination == .broadcast)
        #expect(result.free == result.slots)
    }

    @Test("a transmitted ARP request reaches the kernel, which learns the sender and replies",
          arguments: [TAPDevice.ReceiveMode.automatic, .bufferSelect])
    func transmittedFrameReachesKernel(mode: TAPDevice.ReceiveMode) async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let result = try await ns.onThread { () throws -> (reply: ARPFrame?, neighbour: String, txFrames: Int,
                                                           txErrors: Int, free: Int, slots: Int) in
            let pool = PacketPool(slotCount: 256)
            let device = try TAPDevice(name: "tap0", hostAddress: Self.hostCIDR, pool: pool, receiveMode: mode)
            TAPHarness.transmitARPRequest(on: device, from: Self.peerMAC, ip: Self.peer, asking: Self.host)
            device.flush()
            let reply = TAPHarness.receive(from: device, within: 3) { (frame: borrowing PacketBuffer) -> ARPFrame? in
                guard let arp = ARPFrame(frame), arp.operation == 2, arp.targetIP == Self.peer else { return nil }
                return arp
            }
            let neighbour = TAPHarness.run(["ip", "netns", "exec", ns.name, "ip", "neigh", "show", "\(Self.peer)"]).output
            let counts = (device.txFrames, device.txErrors)
            device.close()
            return (reply, neighbour, counts.0, counts.1, pool.freeCount, pool.slotCount)
        }
        #expect(result.txFrames == 1)
        #expect(result.txErrors == 0)
        #expect(result.neighbour.contains("\(Self.peerMAC)"), "ip neigh: \(result.neighbour)")
        let reply = try #require(result.reply, "no ARP reply from the kernel within 3 s")
        #expect(reply.senderIP == Self.host)
        #expect(reply.targetMAC == Self.peerMAC)
        #expect(reply.ethernetDestination == Self.peerMAC)
        #expect(result.free == result.slots)
    }

    @Test("a burst larger than the lent buffers arrives whole and in order",
          arguments: [TAPDevice.ReceiveMode.automatic, .bufferSelect])
    func burstWithFewBuffersIsReceivedInFull(mode: TAPDevice.ReceiveMode) async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let burst = 40
        let result = try await ns.onThread { () throws -> (senders: [UInt32], noBuffers: Int, rearms: Int, errors: Int,
                                                           free: Int, slots: Int) in
            let pool = PacketPool(slotCount: 128)
            // Two buffers for 40 replies: the kernel runs out (ENOBUFS) and the device
            // must replenish and re-arm to get the rest out of the TAP's queue.
            let device = try TAPDevice(name: "tap0", hostAddress: Self.hostCIDR, pool: pool,
                                       receiveBuffers: 2, receiveMode: mode)
            for i in 0..<burst {
                let ip = IPv4Address(Self.peer.value + UInt32(10 + i))
                TAPHarness.transmitARPRequest(on: device, from: Self.peerMAC, ip: ip, asking: Self.host)
            }
            device.flush()
            var targets: [UInt32] = []
            let deadline = Date().addingTimeInterval(5)
            while targets.count < burst, Date() < deadline {
                _ = device.receive(limit: 16) { frame in
                    if let arp = ARPFrame(frame), arp.operation == 2 { targets.append(arp.targetIP.value) }
                }
                device.wait(timeout: .milliseconds(20))
            }
            let shortages = (device.rxNoBuffers, device.rxRearms, device.rxErrors)
            device.close()
            return (targets, shortages.0, shortages.1, shortages.2, pool.freeCount, pool.slotCount)
        }
        let expected = (0..<burst).map { Self.peer.value + UInt32(10 + $0) }
        if mode == .automatic {
            #expect(result.senders == expected)  // one multishot read keeps the kernel's order
        } else {
            #expect(result.senders.sorted() == expected)
        }
        if mode == .automatic {
            // The replies queue up in the TAP at once, so the multishot read drains
            // both buffers and ends with ENOBUFS: the device must refill and re-arm.
            // (Buffer-select mode keeps no more reads outstanding than buffers.)
            #expect(result.noBuffers > 0)
        }
        #expect(result.rearms > 0)
        #expect(result.errors == 0)
        #expect(result.free == result.slots)
    }

    @Test("closing returns every lent slot, cancels queued writes, and removes the interface")
    func closeReturnsSlotsAndRemovesInterface() async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let result = try await ns.onThread { () throws -> (lentWhileOpen: Int, linkWhileOpen: Int32, freeAfterClose: Int,
                                                           freeAfterDeinit: Int, slots: Int) in
            let pool = PacketPool(slotCount: 64)
            let device = try TAPDevice(name: "tap0", pool: pool, receiveBuffers: 32)
            let lent = pool.slotCount - pool.freeCount
            // Writes queued but never flushed: close must still settle them.
            for _ in 0..<3 {
                TAPHarness.transmitARPRequest(on: device, from: Self.peerMAC, ip: Self.peer, asking: Self.host)
            }
            let shown = TAPHarness.run(["ip", "netns", "exec", ns.name, "ip", "link", "show", "tap0"]).status
            device.close()
            let freeAfterClose = pool.freeCount
            do { _ = try TAPDevice(name: "tap1", pool: pool, receiveBuffers: 32) }  // closed by deinit
            return (lent, shown, freeAfterClose, pool.freeCount, pool.slotCount)
        }
        #expect(result.lentWhileOpen == 32)
        #expect(result.linkWhileOpen == 0)
        #expect(result.freeAfterClose == result.slots)
        #expect(result.freeAfterDeinit == result.slots)
        #expect(ns.run(["ip", "link", "show", "tap0"]).status != 0, "tap0 should vanish with its descriptor")
    }

    @Test("a failed setup step is reported, and the device gives everything back")
    func failedSetupReportsTheStep() async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let result = try await ns.onThread { () throws -> (error: TAPError?, free: Int, slots: Int) in
            let pool = PacketPool(slotCount: 64)
            var error: TAPError?
            do throws(TAPError) { _ = try TAPDevice(name: "lo", pool: pool, receiveBuffers: 16) } catch let e { error = e }
            return (error, pool.freeCount, pool.slotCount)
        }
        // "lo" exists and is no TAP: the name is in use.
        guard case .nameInUse(let existing)? = result.error else {
            Issue.record("expected nameInUse, got \(String(describing: result.error))")
            return
        }
        #expect(existing.name == "lo" && !existing.isTUNTAP)
        #expect(result.free == result.slots)
    }

    @Test("a name held by a veth or a persistent TAP is refused, and the TAP is left as it was")
    func namesInUseAreRefused() async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        #expect(ns.run(["ip", "link", "add", "vx0", "type", "veth", "peer", "name", "vx1"]).status == 0)
        #expect(ns.run(["ip", "tuntap", "add", "pt0", "mode", "tap"]).status == 0)
        let result = try await ns.onThread { () throws -> (veth: TAPError?, tap: TAPError?, seen: ExistingInterface?,
                                                           free: Int, slots: Int) in
            let pool = PacketPool(slotCount: 64)
            func attempt(_ name: String) -> TAPError? {
                do throws(TAPError) {
                    _ = try TAPDevice(name: name, hostAddress: Self.hostCIDR, pool: pool, receiveBuffers: 16)
                    return nil
                } catch { return error }
            }
            return (attempt("vx0"), attempt("pt0"), InterfaceName.existing("pt0"), pool.freeCount, pool.slotCount)
        }
        guard case .nameInUse(let veth)? = result.veth, case .nameInUse(let tap)? = result.tap else {
            Issue.record("expected nameInUse twice, got \(String(describing: result.veth)), \(String(describing: result.tap))")
            return
        }
        #expect(veth.driver == "veth" && !veth.isTUNTAP)
        #expect(tap.isTUNTAP)
        #expect("\(TAPError.nameInUse(tap))".contains("ip tuntap del pt0 mode tap"))
        #expect(result.seen?.isTUNTAP == true)
        #expect(result.free == result.slots)
        // Not taken over: no address, still down.
        let shown = ns.run(["ip", "addr", "show", "pt0"]).output
        #expect(!shown.contains("10.0.0.1") && !shown.contains(",UP"), "\(shown)")
    }

    @Test("a %d pattern is numbered by the kernel, and the device reports the name it got")
    func patternsAreNumbered() async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let name = try await ns.onThread { () throws -> String in
            let device = try TAPDevice(name: "ns%d", pool: PacketPool(slotCount: 64), receiveBuffers: 16)
            defer { device.close() }
            return device.name
        }
        #expect(name == "ns0")
    }

    @Test("closing from inside a receive handler takes effect when receive returns")
    func closeFromHandler() async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let result = try await ns.onThread { () throws -> (delivered: Int, afterClose: Int, free: Int, slots: Int) in
            let pool = PacketPool(slotCount: 128)
            let device = try TAPDevice(name: "tap0", hostAddress: Self.hostCIDR, pool: pool)
            for i in 0..<8 {
                TAPHarness.transmitARPRequest(on: device, from: Self.peerMAC, ip: IPv4Address(Self.peer.value + UInt32(10 + i)),
                                              asking: Self.host)
            }
            device.flush()
            var delivered = 0
            let deadline = Date().addingTimeInterval(3)
            while delivered == 0, Date() < deadline {
                delivered = device.receive(limit: 64) { _ in device.close() }
                if delivered == 0 { device.wait(timeout: .milliseconds(20)) }
            }
            let afterClose = device.receive(limit: 64) { _ in }
            return (delivered, afterClose, pool.freeCount, pool.slotCount)
        }
        #expect(result.delivered == 1)
        #expect(result.afterClose == 0)
        #expect(result.free == result.slots)
    }

    @Test("multishot reads are used on this kernel")
    func multishotIsUsed() async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let multishot = try await ns.onThread { () throws -> Bool in
            let pool = PacketPool(slotCount: 64)
            let device = try TAPDevice(name: "tap0", pool: pool, receiveBuffers: 16)
            return device.usingMultishot
        }
        #expect(multishot)
    }

    @Test("the TAP's transmit queue is raised for a close storm, or left as the kernel made it")
    func transmitQueueLength() async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let lengths = try await ns.onThread { () throws -> (Int?, Int?) in
            let pool = PacketPool(slotCount: 64)
            let raised = try TAPDevice(name: "tap0", pool: pool, receiveBuffers: 16).transmitQueueLength
            let kept = try TAPDevice(name: "tap1", pool: pool, receiveBuffers: 16,
                                     transmitQueueLength: 0).transmitQueueLength
            return (raised, kept)
        }
        #expect(lengths.0 == TAPDevice.defaultTransmitQueueLength && lengths.0 == 32768)
        // The kernel's own (1000 for a TAP here).
        #expect(lengths.1 != nil && lengths.1! < 32768)
    }
}

/// Argument checks that need no privileges.
struct TAPDeviceArgumentTests {
    @Test func rejectsBadNames() {
        let pool = PacketPool(slotCount: 16)
        #expect(throws: TAPError.invalidName("sixteen-chars-xx")) {
            try TAPDevice(name: "sixteen-chars-xx", pool: pool, receiveBuffers: 4)
        }
        #expect(throws: TAPError.invalidName("")) { try TAPDevice(name: "", pool: pool, receiveBuffers: 4) }
        #expect(throws: TAPError.invalidName("a/b")) { try TAPDevice(name: "a/b", pool: pool, receiveBuffers: 4) }
    }

    @Test(arguments: [
        ("", InterfaceNameError.empty), ("sixteen-chars-xx", .tooLong(bytes: 16)), (".", .dots), ("..", .dots),
        ("a b", .forbidden("whitespace")), ("a\tb", .forbidden("whitespace")), ("a/b", .forbidden("'/'")),
        ("a:b", .forbidden("':'")), ("ns%s", .badPattern), ("n%d%d", .badPattern), ("tap%", .badPattern),
        ("%%d", .badPattern), ("caf\u{E0}", .forbidden("byte 0xA0 (in some UTF-8 characters, such as \u{E0}), which the kernel takes for a space")),
    ])
    func namesTheKernelRefusesAreRefusedWithTheirReason(name: String, error: InterfaceNameError) {
        #expect(throws: error) { try InterfaceName.validate(name) }
        #expect(throws: TAPError.invalidName(name)) {
            try TAPDevice(name: name, pool: PacketPool(slotCount: 16), receiveBuffers: 4)
        }
        #expect("\(TAPError.invalidName(name))".contains("\(error)"))
    }

    @Test func namesTheKernelTakes() throws {
        #expect(try InterfaceName.validate("tap0") == false)
        #expect(try InterfaceName.validate("fifteen-chars-x") == false)
        #expect(try InterfaceName.validate("tap%d") == true)
        #expect(try InterfaceName.validate("%d") == true)
        #expect(try InterfaceName.validate("...") == false)
        #expect(try InterfaceName.validate("t\u{E9}") == false)
    }

    @Test func rejectsMoreReceiveBuffersThanThePoolHolds() {
        let pool = PacketPool(slotCount: 16)
        #expect {
            try TAPDevice(name: "tap0", pool: pool, receiveBuffers: 32)
        } throws: { error in
            if case .invalidConfiguration = error as? TAPError { return true }
            return false
        }
        #expect(pool.freeCount == pool.slotCount)
    }

    @Test func systemCallErrorsSayWhatFailed() {
        let error = TAPError.systemCall(.createInterface, .permissionDenied)
        #expect("\(error)".contains("TUNSETIFF"))
    }
}

// MARK: Harness

/// The fields of an Ethernet + ARP (IPv4 over Ethernet) frame, read by hand.
struct ARPFrame: Sendable {
    var ethernetDestination: MACAddress
    var ethernetSource: MACAddress
    var operation: UInt16
    var senderMAC: MACAddress
    var senderIP: IPv4Address
    var targetMAC: MACAddress
    var targetIP: IPv4Address

    init?(_ b: UnsafeMutableRawBufferPointer) {
        guard b.count >= 42, b[12] == 0x08, b[13] == 0x06,  // ethertype ARP
              b[14] == 0, b[15] == 1, b[16] == 0x08, b[17] == 0, b[18] == 6, b[19] == 4 else { return nil }
        func mac(_ o: Int) -> MACAddress { MACAddress(b[o], b[o + 1], b[o + 2], b[o + 3], b[o + 4], b[o + 5]) }
        func ip(_ o: Int) -> IPv4Address { IPv4Address(b[o], b[o + 1], b[o + 2], b[o + 3]) }
        ethernetDestination = mac(0)
        ethernetSource = mac(6)
        operation = UInt16(b[20]) << 8 | UInt16(b[21])
        senderMAC = mac(22)
        senderIP = ip(28)
        targetMAC = mac(32)
        targetIP = ip(38)
    }

    init?(_ frame: borrowing PacketBuffer) {
        guard let parsed = frame.withBytes({ ARPFrame($0) }) else { return nil }
        self = parsed
    }
}

enum TAPHarness {
    static let available: Bool = getuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0
        && (FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
            || FileManager.default.isExecutableFile(atPath: "/sbin/ip"))

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A named network namespace (`ip netns add`), deleted by `delete()`.
    struct Namespace: Sendable {
        let name: String

        init() throws {
            name = "nstap-\(getpid())-\(UInt32.random(in: 0 ... .max))"
            let r = TAPHarness.run(["ip", "netns", "add", name])
            guard r.status == 0 else { throw Failure(description: "ip netns add \(name): \(r.output)") }
        }

        func delete() { TAPHarness.run(["ip", "netns", "del", name]) }

        @discardableResult
        func run(_ args: [String]) -> (status: Int32, output: String) {
            TAPHarness.run(["ip", "netns", "exec", name] + args)
        }

        /// Runs `body` on a new thread that has entered this namespace.
        func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
            let path = "/var/run/netns/\(name)"
            return try await withCheckedThrowingContinuation { continuation in
                let thread = Thread {
                    let target = open(path, O_RDONLY | O_CLOEXEC)
                    guard target >= 0 else {
                        continuation.resume(throwing: Failure(description: "open \(path): errno \(errno)"))
                        return
                    }
                    let entered = curing_enter_net_namespace(target)
                    _ = close(target)
                    guard entered == 0 else {
                        continuation.resume(throwing: Failure(description: "setns \(path): errno \(-entered)"))
                        return
                    }
                    // The thread ends after `body`, taking its namespace reference with it.
                    continuation.resume(with: Result { try body() })
                }
                thread.start()
            }
        }
    }

    /// Pumps `device` until `match` accepts a frame or `seconds` pass.
    static func receive<T>(from device: TAPDevice, within seconds: Double,
                           _ match: (borrowing PacketBuffer) -> T?) -> T? {
        let deadline = Date().addingTimeInterval(seconds)
        var found: T?
        while found == nil, Date() < deadline {
            _ = device.receive(limit: 32) { frame in
                if found == nil { found = match(frame) }
            }
            if found == nil { device.wait(timeout: .milliseconds(20)) }
        }
        return found
    }

    /// Queues an ARP request "who has `target`? tell `ip` (`mac`)", padded to 60 bytes.
    static func transmitARPRequest(on device: TAPDevice, from mac: MACAddress, ip: IPv4Address,
                                   asking target: IPv4Address) {
        guard var frame = device.pool.allocate() else { return }
        frame.withCapacity { b in
            let m = [mac.bytes.0, mac.bytes.1, mac.bytes.2, mac.bytes.3, mac.bytes.4, mac.bytes.5]
            let bytes: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + m + [0x08, 0x06,
                0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01] + m + be32(ip.value) + [0, 0, 0, 0, 0, 0]
                + be32(target.value) + [UInt8](repeating: 0, count: 18)
            b.copyBytes(from: bytes)
        }
        frame.setLength(60)
        device.transmit(frame)
    }

    private static func be32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
    }

    // MARK: Subprocesses (bounded; only processes started here are stopped)

    static func start(_ args: [String]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try? p.run()
        return p
    }

    /// Waits up to `seconds` for `process` to exit, then terminates it.
    static func finish(_ process: Process, within seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// Runs a command to completion (at most 10 s) and returns its status and output.
    @discardableResult
    static func run(_ args: [String]) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { return (-1, "\(error)") }
        finish(p, within: 10)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
