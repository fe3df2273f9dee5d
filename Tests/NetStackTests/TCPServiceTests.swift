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
}
