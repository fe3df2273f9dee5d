import Testing
@testable import NetStack

/// What a connection in TIME-WAIT keeps of its receive side (`enterTimeWait`).
@Suite struct TimeWaitStorageTests {
    /// A connection that closed first (an HTTP server's) gives back its
    /// receive ring's page as it enters TIME-WAIT, not at the idle sweep:
    /// the next connection takes that page again, still resident.
    @Test func timeWaitGivesBackTheReceivePage() throws {
        let (pair, client, server) = try TCPServiceTests.established()
        let s = try #require(server)
        let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        #expect(client.write(request) == request.count)
        pair.run(until: { s.readableBytes == request.count })
        #expect(s.receiver.receiveBuffer.allocatedBytes == RingPages.pageSize)
        var got: [UInt8] = []
        s.read(appendingTo: &got)
        #expect(got == request)
        s.close()
        pair.run(until: { client.state == .closeWait })
        client.close()
        pair.run(until: { s.state == .timeWait && client.state == .closed })
        #expect(s.receiver.receiveBuffer.allocatedBytes == 0)
        #expect(pair.b.tcp.memory.pages.residentFreePages >= 1)
    }

    /// Unread bytes stay readable in TIME-WAIT: only an empty ring goes.
    @Test func timeWaitKeepsUnreadBytes() throws {
        let (pair, client, server) = try TCPServiceTests.established()
        let s = try #require(server)
        s.shutdownWrite()
        pair.run(until: { client.state == .closeWait })
        let last = Array("the last words".utf8)
        #expect(client.write(last) == last.count)
        client.close()
        pair.run(until: { s.state == .timeWait })
        var got: [UInt8] = []
        s.read(appendingTo: &got)
        #expect(got == last)
    }
}
