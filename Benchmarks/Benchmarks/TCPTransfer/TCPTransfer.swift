// Bulk TCP between two stacks in one process over a MemoryLink: the sender
// refills its send ring whenever ACKs free space, the receiver discards. One
// iteration moves 1 MiB (about 720 full segments plus their ACKs), so wall
// clock reads as time per MiB: Gbit/s = 8.39 / (ms per iteration).
//
// mallocCountTotal has an absolute threshold of 0: steady-state transfer
// (segments built in pool slots, rings, timer re-arming, ACK processing)
// must not allocate.

import Benchmark
import NetStack
import NetStackWire

final class TransferRig {
    let pool = PacketPool(slotCount: 1024)
    let clock = VirtualClock()
    let a: Interface<MemoryLink>
    let b: Interface<MemoryLink>
    let sender: TCPConnection
    var received = 0
    let chunk = [UInt8](repeating: 0x5a, count: 64 * 1024)

    init() throws {
        let (linkA, linkB) = MemoryLink.pair(pool: pool, queueCapacity: 512)
        func iface(_ link: MemoryLink, _ last: UInt8, _ now: Instant) -> Interface<MemoryLink> {
            let ip = IPv4Address(10, 0, 0, last)
            return Interface(device: link,
                             configuration: InterfaceConfiguration(address: IPv4CIDR(address: ip, prefixLength: 24)),
                             now: now)
        }
        a = iface(linkA, 1, clock.now)
        b = iface(linkB, 2, clock.now)
        let listener = try b.listenTCP(port: 9)
        sender = try a.connectTCP(to: IPv4Address(10, 0, 0, 2), port: 9, now: clock.now)
        listener.onAccept = { [unowned self] c in
            c.onReadable = { [unowned self] c in received += c.skip(c.readableBytes) }
        }
        sender.onWritable = { [unowned self] c in fill(c) }
        for _ in 0..<50 { turn() }
        guard sender.state == .established else { throw RigError.handshakeFailed }
        fill(sender)
        a.flushTCP(sender, now: clock.now)
        move(bytes: 8 << 20)
    }

    enum RigError: Error { case handshakeFailed, stalled }

    func fill(_ c: TCPConnection) {
        chunk.withUnsafeBytes { p in while c.write(p) > 0 {} }
    }

    func turn() {
        a.poll(now: clock.now, limit: 256)
        b.poll(now: clock.now, limit: 256)
        a.tick(now: clock.now)
        b.tick(now: clock.now)
        clock.advance(by: .microseconds(20))
    }

    func move(bytes: Int) {
        let target = received + bytes
        var turns = 0
        while received < target && turns < 1_000_000 {
            turn()
            turns += 1
        }
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 3,
        maxDuration: .seconds(5),
        maxIterations: 2000
    )

    Benchmark("TCP_bulk_1MiB_memory_link",
              configuration: .init(thresholds: [.mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p90: 0])])) { benchmark in
        let rig = try TransferRig()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            rig.move(bytes: 1 << 20)
        }
        benchmark.stopMeasurement()
        blackHole(rig.received)
    }
}
