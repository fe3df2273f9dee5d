import Testing
@testable import NetStack
import NetStackWire

/// Every transition of RFC 9293 Figure 5, driven with crafted segments on a
/// virtual clock. Sequence numbers follow RFC 9293 3.4-3.6: the SYN takes ISS,
/// data starts at ISS+1, a FIN takes one number after the data.
@Suite struct TCPStateTransitionTests {
    let iss = TCPHarness.defaultISS
    let peerISS = TCPHarness.defaultPeerISS

    // MARK: Opening (RFC 9293 3.5, Figures 6-8)

    @Test func passiveOpenSendsSynAckAndEntersSynReceived() {
        let h = TCPHarness.passiveOpen()
        #expect(h.connection.state == .synReceived)
        let out = h.drain()
        #expect(out.count == 1)
        // Figure 6 line 3: <SEQ=ISS><ACK=SEG.SEQ+1><CTL=SYN,ACK>.
        #expect(out.first?.flags == [.syn, .ack])
        #expect(out.first?.seq == iss)
        #expect(out.first?.ack == peerISS + 1)
        #expect(out.first?.payload.isEmpty == true)
    }

    @Test func passiveOpenFinalAckEstablishes() {
        let h = TCPHarness.passiveOpen()
        _ = h.drain()
        let r = h.receive(.ack, ack: iss + 1)
        #expect(r == .accepted)
        #expect(h.connection.state == .established)
        #expect(h.connection.error == nil)
        // Figure 6 line 4-5: nothing answers the final ACK.
        #expect(h.drain().isEmpty)
    }

    @Test func finalAckCarryingDataEstablishesAndDelivers() {
        let h = TCPHarness.passiveOpen()
        _ = h.drain()
        h.receive(.ack, ack: iss + 1, payload: testBytes(100))
        #expect(h.connection.state == .established)
        #expect(h.read() == testBytes(100))
    }

    @Test func finalAckCarryingFinGoesToCloseWait() {
        let h = TCPHarness.passiveOpen()
        _ = h.drain()
        h.receive([.fin, .ack], ack: iss + 1)
        // SYN-RECEIVED -> ESTABLISHED on the ACK, then the FIN: CLOSE-WAIT (RFC 9293 3.10.7.4 eighth).
        #expect(h.connection.state == .closeWait)
        #expect(h.drain().last?.ack == peerISS + 2)
    }

    @Test func activeOpenSendsSynAndEntersSynSent() {
        let h = TCPHarness.activeOpen()
        #expect(h.connection.state == .synSent)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.flags == .syn)
        #expect(out.first?.seq == iss)
        #expect(out.first?.ack == nil)
        // RFC 9293 3.7.1: the MSS option goes on the SYN.
        #expect(out.first?.options.mss == 1460)
    }

    @Test func activeOpenSynAckEstablishesAndAcks() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        let r = h.receive([.syn, .ack], seq: peerISS, ack: iss + 1, options: TCPOptions(mss: 1460))
        #expect(r == .accepted)
        #expect(h.connection.state == .established)
        let out = h.drain()
        // Figure 6 line 4: <SEQ=ISS+1><ACK=IRS+1><CTL=ACK>.
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.seq == iss + 1)
        #expect(out.first?.ack == peerISS + 1)
    }

    @Test func simultaneousOpenGoesThroughSynReceived() {
        // RFC 9293 Figure 8.
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        // Line 3: the peer's SYN crosses ours.
        h.receive(.syn, seq: peerISS, options: TCPOptions(mss: 1460))
        #expect(h.connection.state == .synReceived)
        let synAck = h.drain()
        // Line 5: <SEQ=ISS><ACK=IRS+1><CTL=SYN,ACK>.
        #expect(synAck.count == 1)
        #expect(synAck.first?.flags == [.syn, .ack])
        #expect(synAck.first?.seq == iss)
        #expect(synAck.first?.ack == peerISS + 1)
        // Line 6: the peer's SYN-ACK acknowledges our SYN: ESTABLISHED.
        h.receive([.syn, .ack], seq: peerISS, ack: iss + 1, options: TCPOptions(mss: 1460))
        #expect(h.connection.state == .established)
        #expect(h.connection.error == nil)
        // No new SYN goes out; at most an ACK.
        #expect(h.drain().allSatisfy { !$0.flags.contains(.syn) })
    }

    @Test func simultaneousOpenPlainAckAlsoEstablishes() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        h.receive(.syn, seq: peerISS, options: TCPOptions(mss: 1460))
        _ = h.drain()
        h.receive(.ack, seq: peerISS + 1, ack: iss + 1)
        #expect(h.connection.state == .established)
    }

    @Test func retransmittedSynInSynReceivedIsAnsweredWithSynAck() {
        let h = TCPHarness.passiveOpen()
        _ = h.drain()
        h.receive(.syn, seq: peerISS, options: TCPHarness.linuxSynOptions())
        #expect(h.connection.state == .synReceived)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.flags == [.syn, .ack])
        #expect(out.first?.seq == iss)
    }

    // MARK: Closing (RFC 9293 3.6, Figures 12-13)

    @Test func closeInEstablishedSendsFinAndEntersFinWait1() {
        let h = TCPHarness.established()
        h.close()
        #expect(h.connection.state == .finWait1)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.flags == [.fin, .ack])
        #expect(out.first?.seq == iss + 1)
        #expect(out.first?.ack == peerISS + 1)
    }

    @Test func ackOfFinMovesFinWait1ToFinWait2() {
        let h = TCPHarness.established()
        h.close()
        _ = h.drain()
        h.receive(.ack, ack: iss + 2)
        #expect(h.connection.state == .finWait2)
        #expect(h.drain().isEmpty)
    }

    @Test func finInFinWait2IsAckedAndEntersTimeWait() {
        let h = TCPHarness.inState(.finWait2)
        h.receive([.fin, .ack], ack: iss + 2)
        #expect(h.connection.state == .timeWait)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.seq == iss + 2)
        #expect(out.first?.ack == peerISS + 2)
    }

    @Test func timeWaitLastsTwoMSLThenCloses() {
        var config = TCPConfiguration()
        config.msl = .seconds(30)
        let h = TCPHarness.inState(.timeWait, configuration: config)
        // RFC 9293 3.6.1: TIME-WAIT lasts 2 MSL.
        #expect(h.advance(by: .seconds(60) - .milliseconds(1)).isEmpty)
        #expect(h.connection.state == .timeWait)
        #expect(h.advance(by: .milliseconds(1)).isEmpty)
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == nil)
    }

    @Test func timeWaitLengthFollowsConfiguredMSL() {
        var config = TCPConfiguration()
        config.msl = .seconds(2)
        let h = TCPHarness.inState(.timeWait, configuration: config)
        h.advance(by: .milliseconds(3999))
        #expect(h.connection.state == .timeWait)
        h.advance(by: .milliseconds(1))
        #expect(h.connection.state == .closed)
    }

    @Test func retransmittedFinInTimeWaitIsAckedAndRestartsTwoMSL() {
        var config = TCPConfiguration()
        config.msl = .seconds(10)
        let h = TCPHarness.inState(.timeWait, configuration: config)
        h.advance(by: .seconds(15))
        // Our ACK was lost; the peer (LAST-ACK) sends its FIN again.
        h.receive([.fin, .ack], seq: peerISS + 1, ack: iss + 2)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 2)
        // RFC 9293 3.10.7.4 eighth, TIME-WAIT: "Restart the 2 MSL time-wait timeout."
        h.advance(by: .seconds(20) - .milliseconds(1))
        #expect(h.connection.state == .timeWait)
        h.advance(by: .milliseconds(1))
        #expect(h.connection.state == .closed)
    }

    @Test func simultaneousCloseGoesThroughClosing() {
        // RFC 9293 Figure 13.
        let h = TCPHarness.established()
        h.close()
        _ = h.drain()
        // The peer's FIN crosses ours: it does not acknowledge our FIN.
        h.receive([.fin, .ack], ack: iss + 1)
        #expect(h.connection.state == .closing)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 2)
        #expect(out.first?.flags.contains(.fin) == false)
        // The ACK of our FIN: TIME-WAIT.
        h.receive(.ack, ack: iss + 2)
        #expect(h.connection.state == .timeWait)
    }

    @Test func finWithAckOfOurFinGoesStraightFromFinWait1ToTimeWait() {
        let h = TCPHarness.established()
        h.close()
        _ = h.drain()
        h.receive([.fin, .ack], ack: iss + 2)
        #expect(h.connection.state == .timeWait)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 2)
    }

    @Test func finInEstablishedIsAckedAndEntersCloseWait() {
        let h = TCPHarness.established()
        h.receive([.fin, .ack], ack: iss + 1)
        #expect(h.connection.state == .closeWait)
        #expect(h.connection.isReadClosed)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 2)
    }

    /// An application that closes when it has read the last bytes must see
    /// the FIN that came in the same segment first: a passive close
    /// (CLOSE-WAIT -> LAST-ACK), not our FIN racing it into CLOSING.
    @Test func closingFromTheReadCallbackOnDataWithFinIsAPassiveClose() {
        let h = TCPHarness.established()
        // Like an HTTP client that knows the body length: it closes once it has 100 bytes.
        var read = 0
        var finSeenAtClose = false
        h.connection.onReadable = { c in
            read += c.skip(c.readableBytes)
            if read == 100 && c.state == .established || c.state == .closeWait {
                finSeenAtClose = c.receivedFin
                c.close()
            }
        }
        h.receive([.fin, .ack, .psh], ack: iss + 1, payload: testBytes(100))
        #expect(finSeenAtClose)
        #expect(h.connection.state == .lastAck)
        let out = h.drain()
        #expect(out.last?.flags.contains(.fin) == true)
        #expect(out.last?.ack == peerISS + 1 + 100 + 1)
    }

    @Test func closeInCloseWaitSendsFinAndEntersLastAck() {
        let h = TCPHarness.inState(.closeWait)
        h.close()
        #expect(h.connection.state == .lastAck)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.flags == [.fin, .ack])
        #expect(out.first?.seq == iss + 1)
        #expect(out.first?.ack == peerISS + 2)
    }

    @Test func ackOfFinInLastAckCloses() {
        let h = TCPHarness.inState(.lastAck)
        h.receive(.ack, ack: iss + 2)
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == nil)
        #expect(h.drain().isEmpty)
    }

    @Test func closeInSynReceivedSendsFinAndEntersFinWait1() {
        let h = TCPHarness.passiveOpen()
        _ = h.drain()
        h.close()
        #expect(h.connection.state == .finWait1)
        let out = h.drain()
        // RFC 9293 3.10.4, SYN-RECEIVED: with nothing to send, form a FIN and enter FIN-WAIT-1.
        #expect(out.count == 1)
        #expect(out.first?.flags == [.fin, .ack])
        #expect(out.first?.seq == iss + 1)
        // The ACK of SYN and FIN together: FIN-WAIT-2.
        h.receive(.ack, ack: iss + 2)
        #expect(h.connection.state == .finWait2)
    }

    @Test func closeInSynReceivedStillRetransmitsTheSynAck() {
        let h = TCPHarness.passiveOpen()
        _ = h.drain()
        h.close()
        _ = h.drain()
        // Neither the SYN-ACK nor the FIN arrives. The retransmission starts at
        // SND.UNA = ISS, which is the SYN (RFC 9293 3.8.1, RFC 6298 5.4).
        let out = h.advance(by: .seconds(1))
        #expect(out.first?.flags == [.syn, .ack])
        #expect(out.first?.seq == iss)
        #expect(out.contains { $0.flags.contains(.fin) })
    }

    @Test func closeInSynSentDeletesTheConnection() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        h.close()
        // RFC 9293 3.10.4, SYN-SENT: delete the TCB.
        #expect(h.connection.state == .closed)
        #expect(h.drain().isEmpty)
    }

    @Test func dataQueuedBeforeCloseIsSentBeforeTheFin() {
        let h = TCPHarness.established()
        h.write(testBytes(100))
        h.close()
        let out = h.drain()
        let data = out.flatMap(\.payload)
        #expect(data == testBytes(100))
        // The FIN takes the number after the data (RFC 9293 3.6).
        let fin = out.last { $0.flags.contains(.fin) }
        #expect(fin.map { $0.seq + $0.payload.count } == iss + 101)
        h.receive(.ack, ack: iss + 102)
        #expect(h.connection.state == .finWait2)
    }

    @Test func dataFromThePeerIsStillReadInFinWait2() {
        let h = TCPHarness.inState(.finWait2)
        h.receive(.ack, ack: iss + 2, payload: testBytes(10))
        #expect(h.read() == testBytes(10))
        #expect(h.connection.state == .finWait2)
    }
}
