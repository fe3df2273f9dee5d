import Testing
@testable import NetStack
import NetStackWire

/// Records, in order, every frame a stack sends and every frame it is given,
/// on the stack's side of a fault injector: exactly what the stack knew and did.
final class WireLog<D: Device>: Device {
    enum Direction { case received, sent }
    let inner: D
    private(set) var frames: [(Direction, [UInt8])] = []

    init(_ inner: D) { self.inner = inner }

    var pool: PacketPool { inner.pool }
    var capabilities: DeviceCapabilities { inner.capabilities }

    func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        inner.receive(limit: limit) { frame in
            frames.append((.received, frame.withBytes { [UInt8]($0) }))
            handler(frame)
        }
    }

    func transmit(_ frame: consuming PacketBuffer) {
        frames.append((.sent, frame.withBytes { [UInt8]($0) }))
        inner.transmit(frame)
    }

    func flush() { inner.flush() }

    /// The TCP header of each logged frame that carries one.
    var segments: [(Direction, TCPRepr)] {
        frames.compactMap { direction, bytes in
            var copy = bytes
            return copy.withUnsafeMutableBytes { raw -> (Direction, TCPRepr)? in
                guard let eth = try? EthernetFrame(validating: raw), eth.etherType == .ipv4,
                      let ip = try? IPv4Packet(validating: eth.payload), ip.protocol == .tcp,
                      let seg = try? TCPSegment(validating: ip.payload),
                      let repr = try? TCPRepr(parsing: seg) else { return nil }
                return (direction, repr)
            }
        }
    }
}

/// Both ends are ours, over a memory link with seeded loss: the sender must
/// never send again what the receiver has SACKed (RFC 6675: retransmissions
/// follow the scoreboard), and the receiver's SACK blocks must say so.
@Suite struct TCPSACKStackToStackTests {
    typealias Pair = StackPair<WireLog<FaultInjector<MemoryLink>>>

    static func pair(loss: Double, seed: UInt64) -> Pair {
        let profile = FaultProfile(loss: loss)
        let p = Pair(wrap: { link, isA, clock in
            WireLog(FaultInjector(wrapping: link, receive: profile, transmit: profile,
                                  seed: isA ? seed : ~seed, clock: clock))
        })
        p.otherDeadline = { [unowned p] in
            [p.a.device.inner.nextReleaseDeadline, p.b.device.inner.nextReleaseDeadline].compactMap { $0 }.min()
        }
        return p
    }

    /// 3% loss, and 10%, where timeouts come too (SACK marks survive them).
    @Test(arguments: [(0.03, 1), (0.03, 2), (0.03, 3), (0.10, 4), (0.10, 5)] as [(Double, UInt64)])
    func noSACKedByteIsSentAgain(loss: Double, seed: UInt64) throws {
        let pair = Self.pair(loss: loss, seed: seed)
        let size = 2 << 20
        let listener = try pair.b.tcp.listen(port: 5001)
        let client = try pair.a.tcp.connect(to: Pair.ipB, port: 5001, now: pair.now)
        let transfer = BulkTransfer(length: size, seed: seed)
        let (finished, _) = pair.sendOneWay(transfer, from: client, to: listener, maxRounds: 2_000_000,
                                            also: { $0?.isReadClosed == true })
        #expect(finished)
        #expect(transfer.receivedHash.value == transfer.sentHash.value)

        // Walk A's log in order: what B had SACKed, as A had heard it, and what A sent.
        var sacked: [(SequenceNumber, SequenceNumber)] = []
        var highest: SequenceNumber?
        var retransmissions = 0, sackedResent = 0, ackSACKs = 0
        for (direction, seg) in pair.a.device.segments {
            switch direction {
            case .received:
                guard let ack = seg.ack else { continue }
                if !seg.options.sackBlocks.isEmpty { ackSACKs += 1 }
                sacked = (sacked + seg.options.sackBlocks.filter { $0.left >= ack }.map { ($0.left, $0.right) })
                    .filter { $0.1 > ack }
            case .sent:
                guard seg.payloadLength > 0 else { continue }
                let left = seg.seq, right = seg.seq + seg.payloadLength
                if let h = highest, left < h { retransmissions += 1 }
                if highest.map({ right > $0 }) ?? true { highest = right }
                if sacked.contains(where: { $0.0 <= left && right <= $0.1 }) { sackedResent += 1 }
            }
        }
        #expect(pair.a.device.inner.transmitCounters.dropped > 0, "the loss really happened")
        #expect(ackSACKs > 0, "B's ACKs carried SACK blocks")
        #expect(retransmissions > 0)
        if loss >= 0.1 { #expect(client.retransmissionTimeouts > 0, "a timeout happened") }
        #expect(sackedResent == 0, "\(sackedResent) of \(retransmissions) retransmissions resent SACKed data")
    }
}
