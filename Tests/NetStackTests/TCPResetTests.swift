import Testing
@testable import NetStack
import NetStackWire

/// RST arrival in every state (RFC 9293 3.10.7.3-4, RFC 5961 3, RFC 1337) and
/// the answers to segments that must not be believed (RFC 5961 4-5).
@Suite struct TCPResetTests {
    let iss = TCPHarness.defaultISS
    let peerISS = TCPHarness.defaultPeerISS

    // MARK: SYN-SENT (RFC 9293 3.10.7.3)

    @Test func rstWithAcceptableAckInSynSentRefusesTheConnection() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        let r = h.receive([.rst, .ack], seq: SequenceNumber(0), ack: iss + 1)
        #expect(r == .accepted)
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == .connectionRefused)
        #expect(h.drain().isEmpty)
    }

    @Test func rstWithoutAckInSynSentIsIgnored() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        let r = h.receive(.rst, seq: peerISS)
        #expect(r == .dropped(.badReset))
        #expect(h.connection.state == .synSent)
        #expect(h.drain().isEmpty)
    }

    @Test func rstWithUnacceptableAckInSynSentIsIgnored() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        // "If the RST bit is set [and the ACK is unacceptable], discard the segment and return."
        let r = h.receive([.rst, .ack], seq: SequenceNumber(0), ack: iss + 5)
        #expect(r == .dropped(.badAck))
        #expect(h.connection.state == .synSent)
        #expect(h.drain().isEmpty)
    }

    @Test func badAckInSynSentIsAnsweredWithResetAtSegAck() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        // SEG.ACK > SND.NXT: <SEQ=SEG.ACK><CTL=RST>, and the SYN-ACK is discarded.
        let r = h.receive([.syn, .ack], seq: peerISS, ack: iss + 1000)
        #expect(r == .reset(seq: iss + 1000))
        #expect(h.connection.state == .synSent)
        // So is an ACK at or below ISS.
        let r2 = h.receive(.ack, seq: peerISS, ack: iss)
        #expect(r2 == .reset(seq: iss))
        #expect(h.connection.state == .synSent)
    }

    // MARK: SYN-RECEIVED

    @Test func rstInPassiveSynReceivedMakesTheConnectionVanish() {
        let h = TCPHarness.passiveOpen()
        _ = h.drain()
        let r = h.receive(.rst, seq: peerISS + 1)
        #expect(r == .accepted)
        // RFC 9293 3.10.7.4 second: back to LISTEN; "the user need not be informed".
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == nil)
        #expect(h.drain().isEmpty)
    }

    @Test func rstInSynReceivedAfterASimultaneousOpenRefusesTheConnection() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        h.receive(.syn, seq: peerISS, options: TCPOptions(mss: 1460))
        #expect(h.connection.state == .synReceived)
        _ = h.drain()
        h.receive(.rst, seq: peerISS + 1)
        // RFC 9293 3.10.7.4 second: an active OPEN "was refused".
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == .connectionRefused)
    }

    @Test func unacceptableAckInSynReceivedIsAnsweredWithReset() {
        let h = TCPHarness.passiveOpen()
        _ = h.drain()
        // RFC 9293 3.10.7.4 fifth, SYN-RECEIVED: <SEQ=SEG.ACK><CTL=RST>.
        let r = h.receive(.ack, ack: iss + 50)
        #expect(r == .reset(seq: iss + 50))
        #expect(h.connection.state == .synReceived)
    }

    // MARK: Synchronized states (RFC 5961 3.2)

    static let resettableStates: [TCPState] = [.established, .finWait1, .finWait2, .closeWait]

    @Test(arguments: resettableStates)
    func rstAtExactlyRcvNxtResetsTheConnection(_ state: TCPState) {
        let h = TCPHarness.inState(state)
        let r = h.receive(.rst, seq: h.connection.rcvNxt)
        #expect(r == .accepted)
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == .connectionReset)
        #expect(h.drain().isEmpty)
    }

    @Test(arguments: resettableStates)
    func rstInWindowButNotExactEarnsAChallengeAck(_ state: TCPState) {
        let h = TCPHarness.inState(state)
        let rcvNxt = h.connection.rcvNxt
        let sndNxt = h.connection.sender.sndNxt
        let r = h.receive(.rst, seq: rcvNxt + 1)
        #expect(r == .challengeAck)
        #expect(h.connection.state == state)
        let out = h.drain()
        // RFC 5961 3.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.seq == sndNxt)
        #expect(out.first?.ack == rcvNxt)
    }

    @Test(arguments: resettableStates)
    func rstOutsideTheWindowIsDroppedSilently(_ state: TCPState) {
        let h = TCPHarness.inState(state)
        let beyond = h.connection.rcvNxt + (h.connection.advertisedWindow + 10)
        let r = h.receive(.rst, seq: beyond)
        #expect(r == .dropped(.outOfWindow))
        let before = h.receive(.rst, seq: h.connection.rcvNxt - 1)
        #expect(before == .dropped(.outOfWindow))
        #expect(h.connection.state == state)
        #expect(h.drain().isEmpty)
    }

    @Test(arguments: [TCPState.closing, .lastAck])
    func rstInClosingOrLastAckCloses(_ state: TCPState) {
        let h = TCPHarness.inState(state)
        let r = h.receive(.rst, seq: h.connection.rcvNxt)
        #expect(r == .accepted)
        #expect(h.connection.state == .closed)
        // RFC 9293 3.10.7.4 second: enter CLOSED, delete the TCB; the close already succeeded.
        #expect(h.connection.error == nil)
    }

    @Test func rstInTimeWaitIsIgnored() {
        let h = TCPHarness.inState(.timeWait)
        let r = h.receive(.rst, seq: h.connection.rcvNxt)
        // RFC 1337: ignoring RST in TIME-WAIT prevents TIME-WAIT assassination.
        #expect(r == .dropped(.resetInTimeWait))
        #expect(h.connection.state == .timeWait)
    }

    // MARK: Blind attacks (RFC 5961 4 and 5)

    @Test func synInEstablishedEarnsAChallengeAck() {
        let h = TCPHarness.established()
        h.write(testBytes(10))
        h.receive(.ack, ack: iss + 11)
        _ = h.drain()
        let r = h.receive(.syn, seq: peerISS + 100, options: TCPOptions())
        // RFC 5961 4.2: whatever the sequence number, a challenge ACK, and the SYN is dropped.
        #expect(r == .challengeAck)
        #expect(h.connection.state == .established)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.seq == iss + 11)
        #expect(out.first?.ack == peerISS + 1)
    }

    @Test func ackOfUnsentDataIsAckedAndDropped() {
        let h = TCPHarness.established()
        h.write(testBytes(10))
        _ = h.drain()
        // RFC 9293 3.10.7.4 fifth: SEG.ACK > SND.NXT: send an ACK, drop the segment.
        let r = h.receive(.ack, ack: iss + 11 + 1000, payload: testBytes(20))
        #expect(r == .unacceptable(.ackUnsent))
        #expect(h.connection.readableBytes == 0)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 1)
        // The data was not acknowledged either: SND.UNA has not moved.
        #expect(h.connection.sender.sndUna == iss + 1)
    }

    @Test func ackBelowTheAcceptableRangeEarnsAChallengeAck() {
        // No window scaling, so MAX.SND.WND is the largest window field seen: 1000.
        let h = TCPHarness.established(synOptions: TCPOptions(mss: 1460), synWindow: 1000, window: 1000)
        // Move SND.UNA 3000 bytes on.
        for k in 0..<3 {
            h.write(testBytes(1000, seed: UInt8(k)))
            h.receive(.ack, ack: iss + 1 + 1000 * (k + 1))
        }
        _ = h.drain()
        #expect(h.connection.sender.sndUna == iss + 3001)
        // RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        let old = h.receive(.ack, ack: iss + 3001 - 1001)
        #expect(old == .challengeAck)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.seq == iss + 3001)
        // A duplicate within MAX.SND.WND of SND.UNA is merely old: ignored.
        let recent = h.receive(.ack, ack: iss + 3001 - 1000)
        #expect(recent == .accepted)
        #expect(h.drain().isEmpty)
    }

    @Test func abortSendsResetAndCloses() {
        let h = TCPHarness.established()
        h.abort()
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == .aborted)
        let out = h.drain()
        // RFC 9293 3.10.5, synchronized states: <SEQ=SND.NXT><CTL=RST>.
        #expect(out.count == 1)
        #expect(out.first?.flags.contains(.rst) == true)
        #expect(out.first?.seq == iss + 1)
    }

    @Test func closeWithUnreadDataResets() {
        let h = TCPHarness.established()
        h.receive(.ack, payload: testBytes(10))
        _ = h.drain()
        h.close()
        // RFC 2525 2.17: closing with unread data sends RST, not FIN.
        #expect(h.connection.state == .closed)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.flags.contains(.rst) == true)
        #expect(out.first?.flags.contains(.fin) == false)
    }
}
