import Testing
@testable import NetStack
import NetStackWire

/// Two interfaces joined by a `MemoryLink` on one `VirtualClock`, for TCP
/// between two copies of the stack. ARP runs for real; ISNs come from fixed
/// secrets so a run replays exactly. Generic over the device each stack sees,
/// so middleware (a `FaultInjector`) can sit between a stack and the link.
typealias TCPStackPair = StackPair<MemoryLink>

final class StackPair<D: Device> {
    static var ipA: IPv4Address { IPv4Address(10, 0, 0, 1) }
    static var ipB: IPv4Address { IPv4Address(10, 0, 0, 2) }
    /// The IPv6 addresses each stack gets with `ipv6`.
    static var ip6A: IPv6Address { IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 1) }
    static var ip6B: IPv6Address { IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 2) }

    let pool: PacketPool
    let clock = VirtualClock()
    let linkA: MemoryLink
    let linkB: MemoryLink
    let a: Interface<D>
    let b: Interface<D>
    /// The applications' handles on each stack.
    let stackA: Stack
    let stackB: Stack
    /// A deadline besides the stacks' timers that idle time must not jump past
    /// (a fault injector releasing a held frame).
    var otherDeadline: () -> Instant? = { nil }
    var now: Instant { clock.now }

    /// `wrap` makes each stack's device from its end of the link (true for A).
    /// `capabilities`, when given, replace the plain Ethernet link of `mtu`
    /// (offloads: give slots that hold the largest segment, `slotSize`).
    /// `ipv6`: both stacks speak IPv6 too (`ip6A`, `ip6B` on fd00::/64);
    /// run `settleIPv6()` before using it, for DAD.
    init(slotCount: Int = 4096, slotSize: Int = PacketPool.defaultSlotSize, queueCapacity: Int = 2048,
         mtu: Int = 1500, capabilities: DeviceCapabilities? = nil, memoryLimitB: Int? = nil, ipv6: Bool = false,
         wrap: (MemoryLink, _ isA: Bool, VirtualClock) -> D) {
        pool = PacketPool(slotCount: slotCount, slotSize: slotSize)
        (linkA, linkB) = MemoryLink.pair(pool: pool, capabilities: capabilities ?? .ethernet(mtu: mtu),
                                         queueCapacity: queueCapacity)
        var configurationA = InterfaceConfiguration(address: IPv4CIDR(address: Self.ipA, prefixLength: 24))
        var configurationB = InterfaceConfiguration(address: IPv4CIDR(address: Self.ipB, prefixLength: 24))
        if ipv6 {
            configurationA.address6 = IPv6CIDR(address: Self.ip6A, prefixLength: 64)
            configurationB.address6 = IPv6CIDR(address: Self.ip6B, prefixLength: 64)
        }
        a = Interface(device: wrap(linkA, true, clock), configuration: configurationA, now: clock.now)
        configurationB.memoryLimit = memoryLimitB
        b = Interface(device: wrap(linkB, false, clock), configuration: configurationB, now: clock.now)
        stackA = Stack(interface: a, clock: clock)
        stackB = Stack(interface: b, clock: clock)
        a.tcp.isn = InitialSequenceNumbers(secret: (0x0123_4567_89ab_cdef, 0x0fed_cba9_8765_4321))
        b.tcp.isn = InitialSequenceNumbers(secret: (0x1111_2222_3333_4444, 0x5555_6666_7777_8888))
        var rng = Xoshiro256StarStar(seed: 0x5eed)
        a.tcp.synCookies = SYNCookies(using: &rng)
        b.tcp.synCookies = SYNCookies(using: &rng)
    }

    /// Runs both stacks until DAD has settled every IPv6 address on both.
    func settleIPv6(sourceLocation: SourceLocation = #_sourceLocation) {
        run(until: { a.ipv6Settled && b.ipv6Settled }, sourceLocation: sourceLocation)
    }

    /// Frames waiting on either side of the link.
    var framesInTransit: Int { linkA.pending + linkB.pending }

    /// Runs both stacks until `done` holds: each round polls both sides, lets
    /// `app` move data, and moves time `step` on; when the link is empty and
    /// the applications did nothing, time jumps to the next timer instead.
    /// Returns false (and records an issue) if `maxRounds` pass first.
    @discardableResult
    func run(step: Duration = .microseconds(20), maxRounds: Int = 5_000_000, until done: () -> Bool,
             app: () -> Bool = { false }, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        for _ in 0..<maxRounds {
            if done() { return true }
            let received = a.poll(now: now, limit: .max) + b.poll(now: now, limit: .max)
            let moved = app()
            if received == 0 && !moved && framesInTransit == 0 {
                // Idle: jump to the next timer.
                let next = [a.nextTimerDeadline, b.nextTimerDeadline, otherDeadline()].compactMap { $0 }.min()
                clock.set(max(next ?? now + step, now + step))
            } else {
                clock.advance(by: step)
            }
            a.tick(now: now)
            b.tick(now: now)
        }
        Issue.record("the stacks did not finish within \(maxRounds) rounds", sourceLocation: sourceLocation)
        return false
    }

    /// Runs until `transfer` was all read on B: A's `client` writes it, B
    /// accepts from `listener` and reads; `also` may ask for more before
    /// stopping. Returns whether it finished and B's connection.
    func sendOneWay(_ transfer: BulkTransfer, from client: TCPConnection, to listener: TCPListener,
                    maxRounds: Int = 5_000_000,
                    also: (TCPConnection?) -> Bool = { _ in true }) -> (finished: Bool, server: TCPConnection?) {
        var server: TCPConnection?
        let finished = run(maxRounds: maxRounds, until: { transfer.read == transfer.length && also(server) }, app: {
            if server == nil { server = listener.accept() }
            var moved = transfer.pump(into: client)
            a.tcp.flush(client, now: now)
            if let s = server { moved = transfer.drain(from: s) || moved }
            return moved
        })
        return (finished, server)
    }
}

extension StackPair where D == MemoryLink {
    convenience init(slotCount: Int = 4096, slotSize: Int = PacketPool.defaultSlotSize, queueCapacity: Int = 2048,
                     mtu: Int = 1500, capabilities: DeviceCapabilities? = nil, memoryLimitB: Int? = nil,
                     ipv6: Bool = false) {
        self.init(slotCount: slotCount, slotSize: slotSize, queueCapacity: queueCapacity, mtu: mtu,
                  capabilities: capabilities, memoryLimitB: memoryLimitB, ipv6: ipv6, wrap: { link, _, _ in link })
    }
}

/// FNV-1a, 64-bit (Fowler, Noll, Vo): a simple streaming hash to compare what
/// was sent with what arrived.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let p = base.assumingMemoryBound(to: UInt8.self)
        var h = value
        var i = 0
        let n = bytes.count
        while i < n {
            h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01b3
            i += 1
        }
        value = h
    }
}

/// One direction of a bulk transfer: the writing end produces `length` bytes
/// of a seeded pseudo-random block (prime length, so segment and ring
/// boundaries never line up with its repeats) and hashes what the connection
/// took; the reading end hashes what it reads.
final class BulkTransfer {
    static let blockLength = 65521
    let block: [UInt8]
    let length: Int
    private(set) var written = 0
    private(set) var read = 0
    var sentHash = FNV1a()
    var receivedHash = FNV1a()
    private var scratch = [UInt8](repeating: 0, count: 256 * 1024)
    private(set) var writeClosed = false

    init(length: Int, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        block = (0..<Self.blockLength).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        self.length = length
    }

    var allWritten: Bool { written == length }

    /// Writes what `sender` takes; shuts its sending side once everything is in
    /// and the connection is synchronized.
    /// Returns true if anything moved.
    func pump(into sender: TCPConnection) -> Bool {
        var moved = false
        while written < length {
            let offset = written % Self.blockLength
            let n = min(Self.blockLength - offset, length - written)
            let w = block.withUnsafeBytes { all in
                let piece = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + n)])
                let w = sender.write(piece)
                sentHash.add(UnsafeRawBufferPointer(rebasing: piece[0..<w]))
                return w
            }
            written += w
            moved = moved || w > 0
            if w < n { break }
        }
        // Not before the handshake: CLOSE in SYN-SENT deletes the connection (RFC 9293 3.10.4).
        if written == length && !writeClosed && sender.state.isSynchronized {
            sender.shutdownWrite()
            writeClosed = true
            moved = true
        }
        return moved
    }

    /// Takes bytes handed over in place (`TCPConnection.onReceive`): hashes
    /// them where they lie. Returns how many it took: all.
    func take(_ bytes: Span<UInt8>) -> Int {
        bytes.withUnsafeBytes { receivedHash.add($0) }
        read += bytes.count
        return bytes.count
    }

    /// Reads everything `receiver` has. Returns true if anything moved.
    func drain(from receiver: TCPConnection) -> Bool {
        var moved = false
        while receiver.readableBytes > 0 {
            let n = scratch.withUnsafeMutableBytes { receiver.read(into: $0) }
            scratch.withUnsafeBytes { receivedHash.add(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            read += n
            moved = true
        }
        return moved
    }
}
