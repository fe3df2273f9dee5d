import Testing
@testable import NetStack
import NetStackWire

/// TCP_MAXSEG (`TCPConfiguration.maximumSegmentSize`): it caps the MSS a
/// connection announces and the one it sends with, as Linux's user_mss.
@Suite struct TCPMaximumSegmentSizeTests {
    let peer = IPAddress.v4(PeerHarness.peerIP)

    func capped(_ mss: Int?) -> TCPConfiguration {
        var config = TCPConfiguration()
        config.maximumSegmentSize = mss
        return config
    }

    @Test func anActiveOpenAnnouncesTheCapAndSendsSegmentsWithinIt() throws {
        let p = PeerHarness.resolved()
        let c = try p.tcp.connect(to: peer, port: 5000, configuration: capped(1000), now: p.now)
        let syn = try #require(p.tcpOnly(p.sent()).first)
        #expect(syn.mss == 1000)
        // The peer offers more, and timestamps: 1000 less their 12 bytes.
        _ = p.exchangeTCP(p.tcpFrame([.syn, .ack], sourcePort: 5000, destinationPort: syn.sourcePort,
                                     seq: SequenceNumber(7000), ack: syn.seq + 1,
                                     options: TCPOptions(mss: 1460, windowScale: 7)))
        #expect(c.state == .established && c.sendMSS == 1000)
        _ = testBytes(5000).withUnsafeBytes { c.write($0) }
        p.poll()
        let data = p.tcpOnly(p.sent()).filter { !$0.payload.isEmpty }
        #expect(data.map(\.payload.count) == [1000, 1000, 1000, 1000, 1000])
        // TCP_INFO: the cap as advmss, the path's MTU as pmtu, and the bytes acknowledged.
        _ = p.exchangeTCP(p.tcpFrame(.ack, sourcePort: 5000, destinationPort: syn.sourcePort, seq: SequenceNumber(7001),
                                     ack: syn.seq + 5001))
        let info = c.info
        #expect(info.advertisedMSS == 1000 && info.pathMTU == 1500 && info.sendMSS == 1000)
        #expect(info.bytesSent == 5000 && info.bytesAcknowledged == 5000)
        #expect(info.windowScaling && !info.timestamps && !info.selectiveAcknowledgments)
    }

    @Test func aSmallerPeerMSSStillWins() throws {
        let p = PeerHarness.resolved()
        let c = try p.tcp.connect(to: peer, port: 5000, configuration: capped(1200), now: p.now)
        let syn = try #require(p.tcpOnly(p.sent()).first)
        _ = p.exchangeTCP(p.tcpFrame([.syn, .ack], sourcePort: 5000, destinationPort: syn.sourcePort,
                                     seq: SequenceNumber(7000), ack: syn.seq + 1, options: TCPOptions(mss: 600)))
        #expect(c.sendMSS == 600)
    }

    @Test func aCapAboveThePathsLeavesThePathsMSS() throws {
        let p = PeerHarness.resolved()
        _ = try p.tcp.connect(to: peer, port: 5000, configuration: capped(9000), now: p.now)
        #expect(p.tcpOnly(p.sent()).first?.mss == 1460)
    }

    @Test func aListenersCapGoesIntoItsSYNACK() throws {
        let p = PeerHarness.resolved()
        _ = try p.tcp.listen(port: 80, configuration: capped(536))
        let synAck = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 80, seq: SequenceNumber(1000),
                                              options: TCPOptions(mss: 1460)))
        #expect(synAck.first?.mss == 536)
        #expect(p.tcpConnection(peerPort: 40000)?.sendMSS == 536)
    }

    /// A SYN cookie's SYN-ACK (RFC 4987 3.6) announces the capped MSS too,
    /// with the listener's IP header settings, and the connection its ACK
    /// makes sends within the cap.
    @Test func aCookieSYNACKAnnouncesTheCapWithTheListenersHeaderSettings() throws {
        let p = PeerHarness.resolved()
        var config = capped(700)
        config.synCookies = .always
        config.ipHeader.timeToLive = 9
        _ = try p.tcp.listen(port: 80, configuration: config)
        let frames = p.exchange(p.tcpFrame(.syn, destinationPort: 80, seq: SequenceNumber(1000),
                                           options: TCPOptions(mss: 1460)))
        #expect(frames.compactMap(\.ipv4).map(\.ttl) == [9])
        let synAck = try #require(p.tcpOnly(frames).first)
        #expect(synAck.flags == [.syn, .ack] && synAck.mss == 700)
        _ = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: SequenceNumber(1001), ack: synAck.seq + 1))
        #expect(p.tcpConnection(peerPort: 40000)?.sendMSS == 700)
    }
}
