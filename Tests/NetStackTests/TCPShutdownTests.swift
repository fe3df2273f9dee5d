import Testing
@testable import NetStack
import NetStackWire

/// The stack's part of a graceful shutdown (`Stack.beginShutdown`,
/// `openConnectionCount`, `resetAll`; `TCPLayer.close(_:)` of a listener),
/// stack to stack over a `MemoryLink` on the virtual clock. B shuts down, A
/// is the peer that must see a FIN or a RST.
@Suite struct TCPShutdownTests {
    static let port: UInt16 = 8080

    /// A connection from A to B, established and accepted.
    static func connected(_ pair: TCPStackPair, configuration: TCPConfiguration? = nil) throws
        -> (listener: TCPListener, client: TCPConnection, server: TCPConnection) {
        let listener = try pair.b.tcp.listen(port: port, configuration: configuration)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: port, now: pair.now)
        var server: TCPConnection?
        pair.run(until: { server != nil && client.state == .established }, app: {
            if server == nil { server = listener.accept() }
            return false
        })
        return (listener, client, try #require(server))
    }

    /// Writes `count` bytes of a pattern into `c`; returns their hash.
    static func write(_ count: Int, to c: TCPConnection) -> UInt64 {
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let n = bytes.withUnsafeBytes { c.write($0) }
        precondition(n == count, "the send ring should take it all")
        var h = FNV1a()
        bytes.withUnsafeBytes { h.add($0) }
        return h.value
    }

    @Test func queuedDataGoesOutThenTheFINAndTheShutdownCompletesWhenThePeerCloses() throws {
        let pair = TCPStackPair()
        let (_, client, server) = try Self.connected(pair)
        // B has 200 KB queued and 1000 bytes it never read: the close is still a FIN, not a RST.
        let sent = Self.write(200_000, to: server)
        _ = [UInt8](repeating: 0x41, count: 1000).withUnsafeBytes { client.write($0) }
        pair.a.tcp.flush(client, now: pair.now)
        pair.run(until: { server.readableBytes == 1000 })
        let resetsBefore = pair.b.tcp.counters.resetsSent

        pair.stackB.beginShutdown()
        #expect(server.state == .finWait1)
        #expect(pair.stackB.openConnectionCount == 1)
        let received = BulkTransfer(length: 200_000, seed: 0)
        pair.run(until: { client.receivedFin }, app: { received.drain(from: client) })
        #expect(received.read == 200_000)
        #expect(received.receivedHash.value == sent)
        #expect(client.error == nil && client.state == .closeWait)
        // Our FIN is acknowledged, the peer has not closed: still open.
        pair.run(until: { server.state == .finWait2 })
        #expect(pair.stackB.openConnectionCount == 1)

        client.close()
        pair.run(until: { server.state == .timeWait })
        #expect(pair.stackB.openConnectionCount == 0)
        #expect(pair.b.tcp.allConnections.count == 1)
        // The end: nothing to reset; TIME-WAIT stays, without a word to the peer.
        #expect(pair.stackB.resetAll() == 0)
        #expect(server.state == .timeWait)
        #expect(pair.b.tcp.counters.resetsSent == resetsBefore)
        pair.run(until: { client.state == .closed })
        #expect(client.error == nil)
    }

    @Test func aPeerThatDoesNotReadKeepsTheShutdownOpenUntilTheResetReachesIt() throws {
        let pair = TCPStackPair()
        let (_, client, server) = try Self.connected(pair)
        // More than A's 256 KiB window: A never reads, so B's FIN cannot go.
        _ = Self.write(256 * 1024, to: server)
        pair.b.tcp.flush(server, now: pair.now)
        pair.run(until: { client.readableBytes == 256 * 1024 && server.sender.sndWnd == 0 })
        _ = Self.write(1000, to: server)

        pair.stackB.beginShutdown()
        let start = pair.now
        pair.run(until: { pair.now >= start + .seconds(3) })
        #expect(server.state == .finWait1)
        #expect(pair.stackB.openConnectionCount == 1)
        let resetsBefore = pair.b.tcp.counters.resetsSent

        #expect(pair.stackB.resetAll() == 1)
        #expect(pair.b.tcp.allConnections.isEmpty)
        #expect(pair.stackB.openConnectionCount == 0)
        pair.run(until: { client.state == .closed })
        #expect(client.error == .connectionReset)
        // Taken at once, at its sequence number (no challenge ACK); an ACK of A's
        // still in flight may draw one more RST from the closed port.
        #expect(pair.a.tcp.counters.challengeAcks == 0)
        #expect(pair.b.tcp.counters.resetsSent > resetsBefore)
    }

    @Test func aConnectionInCloseWaitClosesAtOnceAndLeavesNothing() throws {
        let pair = TCPStackPair()
        let (_, client, server) = try Self.connected(pair)
        client.close()
        pair.run(until: { server.state == .closeWait && client.state == .finWait2 })

        pair.stackB.beginShutdown()
        #expect(server.state == .lastAck)
        pair.run(until: { pair.b.tcp.allConnections.isEmpty })
        #expect(pair.stackB.openConnectionCount == 0)
        #expect(server.error == nil)
        #expect(client.state == .timeWait)
    }

    @Test func aShutdownStopsAcceptingNewConnectionsAreRefused() throws {
        let pair = TCPStackPair()
        var accepted = 0
        let listener = try pair.b.tcp.listen(port: Self.port)
        listener.onAccept = { _ in accepted += 1 }
        // Nothing open: the shutdown is complete as soon as it begins.
        pair.stackB.beginShutdown()
        #expect(pair.stackB.openConnectionCount == 0)
        #expect(listener.isClosed)

        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: Self.port, now: pair.now)
        pair.run(until: { client.state == .closed })
        #expect(client.error == .connectionRefused)
        #expect(accepted == 0)
        #expect(pair.b.tcp.allConnections.isEmpty)
    }

    @Test func closingAListenerResetsConnectionsNobodyAccepted() throws {
        let pair = TCPStackPair()
        let listener = try pair.b.tcp.listen(port: Self.port)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: Self.port, now: pair.now)
        pair.run(until: { client.state == .established && listener.pendingCount == 1 })

        listener.close()
        #expect(listener.isClosed && listener.pendingCount == 0)
        pair.run(until: { client.state == .closed })
        #expect(client.error == .connectionReset)
        #expect(pair.b.tcp.allConnections.isEmpty)
        // Closing again, through the listener or the layer, does nothing.
        listener.close()
        pair.b.tcp.close(listener)
    }

    @Test func closingAListenerResetsHandshakesInProgress() throws {
        let pair = TCPStackPair()
        // A first connection resolves ARP both ways, so the next SYN goes at once.
        let (listener, first, firstServer) = try Self.connected(pair)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: Self.port, now: pair.now)
        // B takes the SYN and answers; A has not seen the SYN-ACK yet.
        pair.a.poll(now: pair.now)
        pair.b.poll(now: pair.now)
        #expect(listener.halfOpen == 1)
        #expect(pair.b.tcp.allConnections.contains { $0.state == .synReceived })

        listener.close()
        pair.run(until: { client.state == .closed })
        #expect(client.error == .connectionReset)
        #expect(listener.halfOpen == 0)
        // The connection already accepted is not the listener's to close.
        #expect(firstServer.state == .established && first.state == .established)
        #expect(pair.b.tcp.allConnections.count == 1)
    }
}
