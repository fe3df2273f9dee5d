import Testing
@testable import NetStack
import NetStackWire

/// A connection with queued output is serviced in the same loop turn, without
/// its writer calling into the interface or the layer.
@Suite struct TCPServiceTests {
    /// Two stacks with one connection established between them.
    static func established() throws -> (TCPStackPair, client: TCPConnection, server: TCPConnection?) {
        let pair = TCPStackPair()
        let listener = try pair.b.tcp.listen(port: 7)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 7, now: pair.now)
        var server: TCPConnection?
        pair.run(until: { client.state == .established && server != nil },
                 app: { if server == nil { server = listener.accept() }; return false })
        return (pair, client, server)
    }

    @Test func aWriteLeavesWithTheNextPollWithoutAFlush() throws {
        let (pair, client, server) = try Self.established()
        let message = Array("written, never flushed".utf8)
        #expect(client.write(message) == message.count)
        #expect(pair.a.tcp.pending.count == 1)
        // One turn of A's loop sends it; B reads it after its own poll.
        pair.a.poll(now: pair.now)
        #expect(pair.a.tcp.pending.isEmpty)
        pair.b.poll(now: pair.now)
        var got: [UInt8] = []
        server?.read(appendingTo: &got)
        #expect(got == message)
    }

    @Test func closingIsServicedToo() throws {
        let (pair, client, server) = try Self.established()
        client.shutdownWrite()
        pair.a.flushPending(now: pair.now)
        pair.b.poll(now: pair.now)
        #expect(server?.state == .closeWait)
    }

    @Test func aWriteAnsweredByAnArrivingSegmentIsNotServicedTwice() throws {
        let (pair, client, server) = try Self.established()
        // The server answers inside its readable callback, as an echo
        // service does: the arrival's own service sends the answer, and the
        // queued request is then moot.
        server?.onReadable = { c in
            var got: [UInt8] = []
            c.read(appendingTo: &got)
            _ = c.write(got)
        }
        #expect(client.write(Array("ping".utf8)) == 4)
        pair.a.poll(now: pair.now)
        let before = pair.b.tcp.counters.segmentsOut
        pair.b.poll(now: pair.now)
        #expect(pair.b.tcp.counters.segmentsOut == before + 1)
        #expect(pair.b.tcp.pending.isEmpty)
        pair.a.poll(now: pair.now)
        var echoed: [UInt8] = []
        client.read(appendingTo: &echoed)
        #expect(echoed == Array("ping".utf8))
    }

    @Test func aRetiredConnectionAsksForNothing() throws {
        let (pair, client, _) = try Self.established()
        client.abort()
        pair.a.flushPending(now: pair.now)
        #expect(client.state == .closed)
        let before = pair.a.tcp.counters.segmentsOut
        _ = client.write(Array("too late".utf8))
        #expect(pair.a.tcp.pending.isEmpty)
        pair.a.flushPending(now: pair.now)
        #expect(pair.a.tcp.counters.segmentsOut == before)
    }
}
