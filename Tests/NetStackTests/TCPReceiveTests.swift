import Testing
@testable import NetStack
import NetStackWire

/// Segment arrival in ESTABLISHED: the acceptability test (RFC 9293 3.10.7.4),
/// reassembly, the ACK policy (RFC 9293 3.8.6.3, RFC 5681 4.2), PAWS and the
/// options agreed in the handshake (RFC 9293 3.7.1, RFC 7323, RFC 6691).
@Suite struct TCPReceiveTests {
    let iss = TCPHarness.defaultISS
    let peerISS = TCPHarness.defaultPeerISS

    // MARK: Acceptability

    @Test func inOrderDataIsDelivered() {
        let h = TCPHarness.established()
        let r = h.receive(.ack, payload: testBytes(300))
        #expect(r == .accepted)
        #expect(h.connection.readableBytes == 300)
        #expect(h.read() == testBytes(300))
    }

    @Test func dataEntirelyBeforeRcvNxtIsAckedNotDelivered() {
        let h = TCPHarness.established()
        h.receive(.ack, payload: testBytes(100))
        #expect(h.read().count == 100)
        h.advance(by: .milliseconds(200))
        // The same 100 bytes again: every byte lies before RCV.NXT.
        let r = h.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        #expect(r == .unacceptable(.outOfWindow))
        #expect(h.connection.readableBytes == 0)
        // RFC 9293 3.10.7.4 first: an unacceptable segment is answered with an ACK at once.
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.seq == iss + 1)
        #expect(out.first?.ack == peerISS + 101)
    }

    @Test func dataBeyondTheWindowIsAckedAndDropped() {
        var config = TCPConfiguration()
        config.receiveBufferSize = 4096
        let h = TCPHarness.established(configuration: config)
        let window = h.connection.advertisedWindow
        #expect(window == 4096)
        let r = h.receive(.ack, seq: peerISS + 1 + window, payload: testBytes(100))
        #expect(r == .unacceptable(.outOfWindow))
        #expect(h.connection.readableBytes == 0)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 1)
        // Nothing was kept for later either: the gap-filler alone is delivered.
        h.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        #expect(h.connection.readableBytes == 100)
    }

    @Test func dataOverlappingTheRightEdgeIsTrimmedToTheWindow() {
        var config = TCPConfiguration()
        config.receiveBufferSize = 4096
        let h = TCPHarness.established(configuration: config)
        let data = testBytes(3 * 1448)
        // The third segment ends 248 bytes beyond the 4096-byte window.
        for k in 0..<3 { h.receive(.ack, payload: Array(data[(k * 1448)..<((k + 1) * 1448)])) }
        #expect(h.connection.readableBytes == 4096)
        #expect(h.connection.rcvNxt == peerISS + 1 + 4096)
        #expect(h.read() == Array(data[0..<4096]))
    }

    @Test func retransmittedDataIsAckedAgainButDeliveredOnce() {
        let h = TCPHarness.established()
        h.receive(.ack, payload: testBytes(100))
        h.advance(by: .milliseconds(100))
        _ = h.drain()
        // An old duplicate: the peer retransmits what we already have.
        h.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        let dup = h.drain()
        #expect(dup.count == 1)
        #expect(dup.first?.ack == peerISS + 101)
        #expect(h.connection.readableBytes == 100)
        #expect(h.read() == testBytes(100))
    }

    @Test func segmentStraddlingRcvNxtDeliversOnlyTheNewBytes() {
        let h = TCPHarness.established()
        let data = testBytes(150)
        h.receive(.ack, payload: Array(data[0..<100]))
        // Bytes 50..<150: the first half is old.
        h.receive(.ack, seq: peerISS + 51, payload: Array(data[50..<150]))
        #expect(h.read() == data)
        #expect(h.connection.rcvNxt == peerISS + 151)
    }

    @Test func dataAcrossTheSequenceNumberWrapIsDelivered() {
        // RFC 9293 3.4: sequence numbers are modulo 2^32.
        let h = TCPHarness.established(iss: SequenceNumber(0xffff_ff00), peerISS: SequenceNumber(0xffff_fff0))
        let data = testBytes(3000)
        h.receive(.ack, seq: SequenceNumber(0xffff_fff1) + 1000, payload: Array(data[1000..<2000]))
        h.receive(.ack, seq: SequenceNumber(0xffff_fff1) + 2000, payload: Array(data[2000..<3000]))
        h.receive(.ack, seq: SequenceNumber(0xffff_fff1), payload: Array(data[0..<1000]))
        #expect(h.read() == data)
        #expect(h.connection.rcvNxt == SequenceNumber(3000 - 0xf))
        #expect(h.drain().last?.ack == SequenceNumber(3000 - 0xf))
    }

    @Test func sendingAcrossTheSequenceNumberWrapIsAcknowledged() {
        let h = TCPHarness.established(iss: SequenceNumber(0xffff_fc00), synOptions: TCPOptions(mss: 1460))
        h.write(testBytes(2920))
        let out = h.drain()
        #expect(out.map(\.seq) == [SequenceNumber(0xffff_fc01), SequenceNumber(0xffff_fc01) + 1460])
        h.receive(.ack, ack: SequenceNumber(0xffff_fc01) + 2920)
        #expect(h.connection.sender.sndUna == SequenceNumber(2920 - 0x3ff))
        #expect(h.connection.writableBytes == TCPConfiguration().sendBufferSize)
    }

    // MARK: Reassembly and the ACK policy

    @Test func outOfOrderDataIsHeldUntilTheGapFills() {
        let h = TCPHarness.established()
        let data = testBytes(300)
        h.receive(.ack, seq: peerISS + 101, payload: Array(data[100..<200]))
        h.receive(.ack, seq: peerISS + 201, payload: Array(data[200..<300]))
        #expect(h.connection.readableBytes == 0)
        #expect(h.connection.rcvNxt == peerISS + 1)
        h.receive(.ack, seq: peerISS + 1, payload: Array(data[0..<100]))
        #expect(h.connection.rcvNxt == peerISS + 301)
        #expect(h.read() == data)
    }

    @Test func outOfOrderSegmentIsAckedImmediatelyWithADuplicateAck() {
        let h = TCPHarness.established()
        h.receive(.ack, seq: peerISS + 101, payload: testBytes(100))
        // RFC 5681 4.2: "an immediate duplicate ACK when an out-of-order segment arrives".
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 1)
    }

    @Test func segmentFillingTheGapIsAckedImmediately() {
        let h = TCPHarness.established()
        h.receive(.ack, seq: peerISS + 101, payload: testBytes(100))
        _ = h.drain()
        h.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        // RFC 5681 4.2: "an immediate ACK when the incoming segment fills in all or part of a gap".
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 201)
    }

    @Test func finAheadOfMissingDataWaitsForTheGap() {
        let h = TCPHarness.established()
        h.receive([.fin, .ack], seq: peerISS + 101, payload: testBytes(100, seed: 1))
        #expect(h.connection.state == .established)
        h.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        // The FIN is processed once the bytes before it are in (RFC 9293 3.10.7.4 eighth).
        #expect(h.connection.state == .closeWait)
        #expect(h.connection.rcvNxt == peerISS + 202)
        #expect(h.read() == testBytes(100) + testBytes(100, seed: 1))
    }

    @Test func singleSegmentIsAckedAfterTheDelayedAckTimeout() {
        var config = TCPConfiguration()
        config.delayedAckTimeout = .milliseconds(40)
        let h = TCPHarness.established(configuration: config)
        h.receive(.ack, payload: testBytes(100))
        // RFC 9293 3.8.6.3: the ACK may be delayed, by less than 0.5 s.
        #expect(h.drain().isEmpty)
        #expect(h.advance(by: .milliseconds(39)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 101)
        #expect(out.first?.time == h.now)
    }

    @Test func everySecondFullSizedSegmentIsAckedAtOnce() {
        // With timestamps agreed, a full-sized segment carries 1460 - 12 = 1448 bytes (RFC 6691).
        let h = TCPHarness.established()
        h.receive(.ack, payload: testBytes(1448))
        #expect(h.drain().isEmpty)
        h.receive(.ack, payload: testBytes(1448, seed: 1))
        // RFC 5681 4.2: an ACK SHOULD be generated for at least every second full-sized segment.
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 1 + 2896)
    }

    @Test func everySecondFullSizedSegmentIsAckedAtOnceWithoutTimestamps() {
        let h = TCPHarness.established(synOptions: TCPOptions(mss: 1460, windowScale: 7))
        h.receive(.ack, payload: testBytes(1460))
        #expect(h.drain().isEmpty)
        h.receive(.ack, payload: testBytes(1460, seed: 1))
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 1 + 2920)
    }

    @Test func dataSentPiggybacksTheAck() {
        let h = TCPHarness.established()
        h.receive(.ack, payload: testBytes(10))
        h.write(testBytes(20))
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.payload == testBytes(20))
        #expect(out.first?.ack == peerISS + 11)
        // The pending delayed ACK went with the data.
        #expect(h.advance(by: .milliseconds(100)).isEmpty)
    }

    // MARK: PAWS and timestamps (RFC 7323)

    @Test func segmentWithAnOldTimestampIsDroppedWithAnAck() {
        let h = TCPHarness.established()
        let recent = h.peerTSval
        h.receive(.ack, payload: testBytes(10))
        _ = h.advance(by: .milliseconds(50))
        // RFC 7323 5.3 R1: SEG.TSval < TS.Recent: send an ACK and drop the segment.
        let r = h.receive(.ack, rawOptions: TCPOptions(timestamps: (value: recent &- 1000, echoReply: 0)),
                          payload: testBytes(10, seed: 9))
        #expect(r == .unacceptable(.paws))
        #expect(h.connection.readableBytes == 10)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 11)
        // The ACK still echoes the latest valid timestamp (RFC 7323 4.3).
        #expect(out.first?.options.timestamps?.echoReply == recent)
    }

    @Test func timestampIsEchoedInTheAck() {
        let h = TCPHarness.established()
        h.advance(by: .milliseconds(5))
        let tsval = h.peerTSval
        h.receive(.ack, payload: testBytes(1448))
        h.receive(.ack, payload: testBytes(1448))
        let out = h.drain()
        #expect(out.count == 1)
        // RFC 7323 4.3: TSecr is the TSval of the segment that advanced the left edge earliest
        // among those being acknowledged; both carried the same one here.
        #expect(out.first?.options.timestamps?.echoReply == tsval)
    }

    @Test func synAckEchoesTheSynTimestamp() {
        let h = TCPHarness.passiveOpen()
        let out = h.drain()
        // RFC 7323 3.2: the SYN-ACK's TSecr is the SYN's TSval (the peer clock has not moved since).
        #expect(out.first?.options.timestamps?.echoReply == h.peerTSval)
    }

    @Test func everySegmentCarriesTimestampsOnceAgreed() {
        let h = TCPHarness.established()
        h.write(testBytes(5000))
        h.receive(.ack, payload: testBytes(10))
        let out = h.drain() + h.advance(by: .seconds(2))
        #expect(!out.isEmpty)
        // RFC 7323 3.2: once agreed, TSopt MUST be sent in every non-RST segment.
        #expect(out.allSatisfy { $0.options.timestamps != nil })
    }

    @Test func noTimestampsWhenThePeerDoesNotOfferThem() {
        let h = TCPHarness.passiveOpen(synOptions: TCPOptions(mss: 1460, windowScale: 7, sackPermitted: true))
        let synAck = h.drain()
        // RFC 7323 3.2: TSopt in a SYN-ACK only if the SYN had one.
        #expect(synAck.first?.options.timestamps == nil)
        h.receive(.ack, ack: iss + 1)
        h.write(testBytes(100))
        #expect(h.drain().allSatisfy { $0.options.timestamps == nil })
    }

    // MARK: Window scale (RFC 7323 2)

    @Test func windowScaleIsAgreedOnAnActiveOpen() {
        let h = TCPHarness.activeOpen()
        let syn = h.drain()
        // 256 KiB of receive ring needs a shift of 3 to fit the 16-bit field (RFC 7323 2.3).
        #expect(syn.first?.options.windowScale == 3)
        // The window in a SYN is never scaled (RFC 7323 2.2).
        #expect(syn.first?.window == 65535)
        h.receive([.syn, .ack], seq: peerISS, ack: iss + 1, window: 100,
                  options: TCPOptions(mss: 1460, windowScale: 7))
        #expect(h.connection.state == .established)
        // The SYN-ACK's window is not scaled; later ones are, by the peer's shift.
        #expect(h.connection.sender.sndWnd == 100)
        h.receive(.ack, window: 100)
        #expect(h.connection.sender.sndWnd == 100 << 7)
        h.receive(.ack, payload: testBytes(10))
        let out = h.drain() + h.advance(by: .milliseconds(100))
        // Our windows are shifted by our scale: (256 KiB - 10) >> 3.
        #expect(out.last?.window == UInt16((256 * 1024 - 10) >> 3))
    }

    @Test func windowScaleIsAgreedOnAPassiveOpen() {
        let h = TCPHarness.passiveOpen(synOptions: TCPOptions(mss: 1460, windowScale: 7), synWindow: 200)
        let synAck = h.drain()
        #expect(synAck.first?.options.windowScale == 3)
        #expect(synAck.first?.window == 65535)
        #expect(h.connection.sender.sndWnd == 200)
        h.receive(.ack, ack: iss + 1, window: 200)
        #expect(h.connection.sender.sndWnd == 200 << 7)
    }

    @Test func noWindowScaleWhenThePassivePeerDoesNotOfferIt() {
        let h = TCPHarness.passiveOpen(synOptions: TCPOptions(mss: 1460))
        let synAck = h.drain()
        // RFC 7323 1.3: the option goes in a SYN-ACK only if the SYN had it.
        #expect(synAck.first?.options.windowScale == nil)
        h.receive(.ack, ack: iss + 1, window: 1000)
        // Neither direction is scaled.
        #expect(h.connection.sender.sndWnd == 1000)
        h.receive(.ack, payload: testBytes(10))
        let out = h.advance(by: .milliseconds(100))
        #expect(out.last?.window == 65535)
    }

    @Test func noWindowScaleWhenTheSynAckLacksIt() {
        let h = TCPHarness.activeOpen()
        #expect(h.drain().first?.options.windowScale != nil)
        h.receive([.syn, .ack], seq: peerISS, ack: iss + 1, window: 1000, options: TCPOptions(mss: 1460))
        #expect(h.connection.state == .established)
        h.receive(.ack, window: 1000)
        // RFC 7323 2.2: without the option in both SYNs, both shifts are zero.
        #expect(h.connection.sender.sndWnd == 1000)
        h.receive(.ack, payload: testBytes(10))
        let out = h.advance(by: .milliseconds(100))
        #expect(out.last?.window == 65535)
    }

    // MARK: MSS (RFC 9293 3.7.1, RFC 6691)

    @Test func segmentsNeverExceedThePeerMSSLessTimestamps() {
        let h = TCPHarness.established(synOptions: TCPHarness.linuxSynOptions(mss: 1000))
        h.write(testBytes(5 * 988 + 100))
        let sizes = h.drain().map(\.payload.count)
        // MSS 1000 less the 12 bytes of the timestamps option; the last 100
        // bytes go too, no small segment being unacknowledged (Nagle in
        // Minshall's variant).
        #expect(sizes == [988, 988, 988, 988, 988, 100])
    }

    @Test func segmentsUseThePeerMSSWithoutTimestamps() {
        let h = TCPHarness.established(synOptions: TCPOptions(mss: 1000))
        h.write(testBytes(5000))
        let sizes = h.drain().map(\.payload.count)
        #expect(sizes == [1000, 1000, 1000, 1000, 1000])
    }

    @Test func withoutAnMSSOptionSegmentsAre536Bytes() {
        let h = TCPHarness.established(synOptions: TCPOptions())
        h.write(testBytes(4 * 536))
        let sizes = h.drain().map(\.payload.count)
        // RFC 9293 3.7.1: without the option, assume 536.
        #expect(sizes == [536, 536, 536, 536])
    }

    @Test func ourMSSIsAnnouncedOnTheSynAck() {
        let h = TCPHarness.passiveOpen(localMSS: 1400)
        #expect(h.drain().first?.options.mss == 1400)
    }
}

/// RFC 2018: the SACK receiver reports the out-of-order queue in its ACKs.
extension TCPReceiveTests {
    @Test func outOfOrderDataIsReportedInSackBlocksMostRecentFirst() {
        let h = TCPHarness.established()
        h.receive(.ack, seq: peerISS + 101, payload: testBytes(100))
        let first = h.drain()
        #expect(first.last.map { Array($0.options.sackBlocks.map { [$0.left, $0.right] }) }
                == [[peerISS + 101, peerISS + 201]])
        h.receive(.ack, seq: peerISS + 301, payload: testBytes(100))
        let second = h.drain()
        // RFC 2018 4: the first block holds the most recently received segment.
        #expect(second.last.map { Array($0.options.sackBlocks.map { [$0.left, $0.right] }) }
                == [[peerISS + 301, peerISS + 401], [peerISS + 101, peerISS + 201]])
        #expect(second.last?.ack == peerISS + 1)
    }

    @Test func sackBlocksGoAwayOnceTheGapsFill() {
        let h = TCPHarness.established()
        h.receive(.ack, seq: peerISS + 101, payload: testBytes(100))
        _ = h.drain()
        h.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        let out = h.drain()
        #expect(out.last?.ack == peerISS + 201)
        #expect(out.last?.options.sackBlocks.isEmpty == true)
    }

    @Test func noSackBlocksWhenThePeerDidNotPermitSack() {
        var syn = TCPHarness.linuxSynOptions()
        syn.sackPermitted = false
        let h = TCPHarness.established(synOptions: syn)
        h.receive(.ack, seq: peerISS + 101, payload: testBytes(100))
        #expect(h.drain().last?.options.sackBlocks.isEmpty == true)
    }
}
