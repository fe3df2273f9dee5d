import Testing
@testable import NetStack
import NetStackWire

/// Ports that sockets bind (bind(2)): an active open from a bound port, the
/// ports active opens and `freePort` leave alone, and which connections keep
/// a port from a new bind (Linux's bind buckets and `tw_reuse`).
@Suite struct TCPBoundPortTests {
    let peer = IPAddress.v4(PeerHarness.peerIP)

    /// The port after `p` in the ephemeral range, as the layer's cursor moves.
    func after(_ p: UInt16) -> UInt16 { p == 65535 ? 49152 : p + 1 }

    @Test func connectFromABoundPortSendsItsSynFromThatPort() throws {
        let p = PeerHarness.resolved()
        p.tcp.hold(port: 40123)
        let c = try p.tcp.connect(to: peer, port: 5000, localPort: 40123, now: p.now)
        #expect(c.tuple.localPort == 40123)
        let syn = try #require(p.tcpOnly(p.sent()).first)
        #expect(syn.flags == .syn && syn.sourcePort == 40123 && syn.destinationPort == 5000)
    }

    @Test func aSecondConnectionOnTheSameFourTupleIsRefused() throws {
        let p = PeerHarness.resolved()
        _ = try p.tcp.connect(to: peer, port: 5000, localPort: 40123, now: p.now)
        #expect(throws: TCPConnectError.tupleInUse) {
            try p.tcp.connect(to: peer, port: 5000, localPort: 40123, now: p.now)
        }
        // Another peer port makes another four-tuple.
        #expect(try p.tcp.connect(to: peer, port: 5001, localPort: 40123, now: p.now).tuple.localPort == 40123)
    }

    @Test func freePortPassesOverHeldListeningAndConnectedPorts() throws {
        let p = PeerHarness.resolved()
        let first = try #require(p.tcp.freePort())
        let held = after(first), listening = after(held), connected = after(listening)
        p.tcp.hold(port: held)
        _ = try p.tcp.listen(port: listening)
        // From another peer port: any connection on a port keeps it from bind, not just one to the same peer.
        _ = try p.tcp.connect(to: peer, port: 6000, localPort: connected, now: p.now)
        // The cursor is past `first`: it goes on from `held`.
        #expect(p.tcp.freePort() == after(connected))
    }

    @Test func anActiveOpenPassesOverAHeldPortUntilEveryHolderLetsGo() throws {
        let p = PeerHarness.resolved()
        let first = try #require(p.tcp.freePort())
        let held = after(first)
        p.tcp.hold(port: held)
        p.tcp.hold(port: held)
        p.tcp.release(port: held)
        let c = try p.tcp.connect(to: peer, port: 5000, now: p.now)
        #expect(c.tuple.localPort == after(held))
        p.tcp.release(port: held)
        #expect(p.tcp.heldPorts[held] == nil)
    }

    @Test func aConnectionYieldsItsPortOnlyWhenBothSidesReuseTheAddress() throws {
        let p = PeerHarness.resolved()
        let c = try p.tcp.connect(to: peer, port: 5000, localPort: 40200, now: p.now)
        #expect(p.tcp.connectionHolds(port: 40200, reusing: false))
        #expect(p.tcp.connectionHolds(port: 40200, reusing: true))
        c.sharesLocalPort = true
        #expect(p.tcp.connectionHolds(port: 40200, reusing: false))
        #expect(!p.tcp.connectionHolds(port: 40200, reusing: true))
        #expect(!p.tcp.connectionHolds(port: 40201, reusing: false))
    }

    // MARK: One listener per family on a port

    @Test func anIPv4AndAnIPv6OnlyListenerShareAPortAndEachTakesItsOwn() throws {
        let p = PeerHarness.resolved()
        let v6 = try p.tcp.listen(port: 80, families: .ipv6Only)
        // An IPv4 SYN finds no IPv4 listener: a RST (RFC 9293 3.10.7.1).
        let refused = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 80, seq: SequenceNumber(1),
                                               options: TCPOptions(mss: 1460)))
        #expect(refused.first?.flags == [.rst, .ack])
        let v4 = try p.tcp.listen(port: 80, families: .ipv4Only)
        #expect(throws: TCPListenError.portInUse(80)) { try p.tcp.listen(port: 80) }
        #expect(throws: TCPListenError.portInUse(80)) { try p.tcp.listen(port: 80, families: .ipv4Only) }
        let answered = p.exchangeTCP(p.tcpFrame(.syn, sourcePort: 40001, destinationPort: 80, seq: SequenceNumber(1),
                                                options: TCPOptions(mss: 1460)))
        #expect(answered.first?.flags == [.syn, .ack])
        #expect(p.tcpConnection(peerPort: 40001)?.listener === v4)
        // Closing one leaves the other.
        p.tcp.close(v4)
        #expect(p.tcp.listeners[80]?.occupant(for: .v6(.unspecified), from: peer, port: 1) === v6)
        #expect(p.tcp.listeners[80]?.occupant(for: .v4(IPv4Address(0)), from: peer, port: 1) == nil)
        p.tcp.close(v6)
        #expect(p.tcp.listeners[80] == nil)
    }

    /// SO_REUSEPORT (Linux's reuseport group): listeners alike that all share
    /// the port split the new connections between them, each peer's port
    /// always to the same one; one that does not share is refused.
    @Test func listenersSharingAPortSplitTheConnections() throws {
        let p = PeerHarness.resolved()
        let a = try p.tcp.listen(port: 80, sharingPort: true)
        let b = try p.tcp.listen(port: 80, sharingPort: true)
        #expect(throws: TCPListenError.portInUse(80)) { try p.tcp.listen(port: 80) }
        // Alike means the same families too.
        #expect(throws: TCPListenError.portInUse(80)) { try p.tcp.listen(port: 80, families: .ipv4Only, sharingPort: true) }
        var taken: [ObjectIdentifier: Int] = [:]
        for i in 0..<32 {
            let port = UInt16(41000 + i)
            #expect(p.peerConnect(to: 80, sourcePort: port, peerISS: SequenceNumber(UInt32(i) * 1000)) != nil)
            let l = try #require(p.tcp.listeners[80]?.occupant(for: .v4(p.stackIP), from: peer, port: port))
            #expect(l === a || l === b)
            taken[ObjectIdentifier(l), default: 0] += 1
        }
        #expect(a.pendingCount + b.pendingCount == 32)
        #expect(a.pendingCount == taken[ObjectIdentifier(a)] && a.pendingCount > 0 && b.pendingCount > 0)
        // With one gone, the other takes every new connection.
        p.tcp.close(a)
        let resets = p.tcpOnly(p.exchange([]))  // the connections it held, which nobody accepted
        #expect(resets.count == taken[ObjectIdentifier(a)] && resets.allSatisfy { $0.flags.contains(.rst) })
        #expect(p.peerConnect(to: 80, sourcePort: 42000, peerISS: SequenceNumber(99)) != nil)
        #expect(b.pendingCount == taken[ObjectIdentifier(b), default: 0] + 1)
    }
}
