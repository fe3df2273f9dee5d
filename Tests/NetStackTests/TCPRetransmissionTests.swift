import Testing
@testable import NetStack
import NetStackWire

/// Retransmission timing (RFC 6298), Karn's algorithm, the retry limits
/// (RFC 9293 3.8.3), and congestion control (RFC 5681, RFC 6582).
///
/// Most tests use a peer without timestamps and a handshake RTT of 100 ms, so
/// the first sample R = 100 ms gives SRTT = 100 ms, RTTVAR = 50 ms and
/// RTO = SRTT + max(G, 4 * RTTVAR) = 300 ms (RFC 6298 2.2).
@Suite struct TCPRetransmissionTests {
    let iss = TCPHarness.defaultISS
    let peerISS = TCPHarness.defaultPeerISS
    /// A peer that offers MSS and window scale but no timestamps.
    static let plainPeer = TCPOptions(mss: 1460, windowScale: 7)

    /// Established with a 100 ms handshake RTT and no timestamps.
    func plainConnection(_ configure: (inout TCPConfiguration) -> Void = { _ in }) -> TCPHarness {
        var config = TCPConfiguration()
        // The window arithmetic below is NewReno's (RFC 5681, RFC 6582).
        config.congestionControl = .newReno
        configure(&config)
        return TCPHarness.established(configuration: config, synOptions: Self.plainPeer, rtt: .milliseconds(100))
    }

    // MARK: What may leave in place

    /// New data may leave as a frame tail read from the send ring in place
    /// (`FrameTail`): the ring keeps it until the peer acknowledges it, which
    /// the peer cannot do before it arrives. A resend is copied: an ACK of the
    /// original may free its bytes before the resend's frame is written.
    @Test func newDataIsOfferedInPlaceAndResendsAreNot() {
        let h = plainConnection()
        _ = h.write([UInt8](repeating: 7, count: 3000))
        let first = h.drain().filter { !$0.payload.isEmpty }
        #expect(first.count == 3 && first.allSatisfy(\.inPlace))
        // RTO = 300 ms: the first segment is resent, copied.
        let resent = h.advance(by: .milliseconds(300)).filter { !$0.payload.isEmpty }
        #expect(resent.first?.seq == first.first?.seq)
        #expect(!resent.isEmpty && resent.allSatisfy { !$0.inPlace })
        // Bare ACKs carry no payload, and nothing to offer.
        h.receive(.ack, ack: first[0].seq + 3000)
        #expect(h.drain().allSatisfy { !$0.inPlace })
    }

    // MARK: RTO (RFC 6298)

    @Test func firstRetransmissionOfTheSynIsAfterOneSecond() {
        let h = TCPHarness.activeOpen()
        let t0 = h.now
        _ = h.drain()
        // RFC 6298 2.1: before any measurement, RTO = 1 second.
        #expect(h.advance(by: .milliseconds(999)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(out.count == 1)
        #expect(out.first?.flags == .syn)
        #expect(out.first?.seq == iss)
        #expect(out.first.map { $0.time - t0 } == .seconds(1))
    }

    @Test func synRetransmissionsBackOffExponentially() {
        let h = TCPHarness.activeOpen()
        let t0 = h.now
        _ = h.drain()
        let out = h.advance(by: .seconds(16))
        // RFC 6298 5.5: RTO doubles on each expiry: 1, 2, 4, 8 s.
        #expect(out.map { $0.time - t0 } == [.seconds(1), .seconds(3), .seconds(7), .seconds(15)])
        #expect(out.allSatisfy { $0.flags == .syn && $0.seq == iss })
    }

    @Test func synRetryLimitTimesTheOpenOut() {
        var config = TCPConfiguration()
        config.maxSynRetransmissions = 2
        let h = TCPHarness.activeOpen(configuration: config)
        let t0 = h.now
        _ = h.drain()
        let out = h.advance(by: .seconds(10))
        // Two retransmissions (1 s, 3 s); the third expiry (7 s) gives up.
        #expect(out.filter { $0.flags.contains(.syn) }.map { $0.time - t0 } == [.seconds(1), .seconds(3)])
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == .timedOut)
        // Nothing is synchronized, so there is nothing to reset.
        #expect(!out.contains { $0.flags.contains(.rst) })
    }

    @Test func synAckRetryLimitDropsThePassiveOpen() {
        var config = TCPConfiguration()
        config.maxSynRetransmissions = 1
        let h = TCPHarness.passiveOpen(configuration: config)
        let t0 = h.now
        _ = h.drain()
        let out = h.advance(by: .seconds(5))
        #expect(out.map { $0.time - t0 } == [.seconds(1)])
        #expect(out.first?.flags == [.syn, .ack])
        #expect(h.connection.state == .closed)
    }

    @Test func firstSampleSetsRTOToThreeTimesTheRTT() {
        let h = plainConnection()
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        // RTO = 100 + 4 * 50 = 300 ms.
        #expect(h.advance(by: .milliseconds(299)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(out.count == 1)
        #expect(out.first?.seq == iss + 1)
        #expect(out.first?.payload == testBytes(100))
        #expect(out.first.map { $0.time - t } == .milliseconds(300))
    }

    @Test func dataIsTimedFromItsSendTimeNotFromMillisecondTimestamps() {
        // Timestamps are on, and their clock ticks in milliseconds; the path's
        // round trip is 300 µs. The handshake's sample is exact (the SYN-ACK's
        // timing), and so is the data's: taken from when the segment was sent,
        // as Linux does, not from the echo, which would read 0 ms.
        let h = TCPHarness.established(synOptions: TCPHarness.linuxSynOptions(timestamps: true),
                                       rtt: .microseconds(300))
        #expect(h.connection.timestampsEnabled)
        #expect(h.connection.sender.rtt.srtt == .microseconds(300))
        for _ in 0..<3 {
            h.write(testBytes(100))
            _ = h.drain()
            h.advance(by: .microseconds(300))
            h.receive(.ack, ack: h.connection.sender.sndMax)
            #expect(h.connection.sender.rtt.srtt == .microseconds(300))
        }
    }

    @Test func laterSamplesAreSmoothed() {
        let h = plainConnection()
        h.write(testBytes(100))
        h.advance(by: .milliseconds(200))
        // R' = 200 ms: RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5 ms,
        // SRTT = 7/8 * 100 + 1/8 * 200 = 112.5 ms, RTO = 112.5 + 250 = 362.5 ms (RFC 6298 2.3).
        h.receive(.ack, ack: iss + 101)
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        let out = h.advance(by: .seconds(1))
        #expect(out.first.map { $0.time - t } == .microseconds(362_500))
    }

    @Test func rtoHasAFloorOf200Milliseconds() {
        let h = TCPHarness.established(synOptions: Self.plainPeer, rtt: .milliseconds(10))
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        // 10 + 4 * 5 = 30 ms, raised to the configured minimum of 200 ms (RFC 6298 2.4).
        let out = h.advance(by: .seconds(1))
        #expect(out.first.map { $0.time - t } == .milliseconds(200))
    }

    @Test func dataRetransmissionsBackOffExponentially() {
        let h = plainConnection()
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        let out = h.advance(by: .milliseconds(4600))
        // 300, then 600, 1200, 2400 ms apart (RFC 6298 5.5).
        #expect(out.map { $0.time - t } == [.milliseconds(300), .milliseconds(900), .milliseconds(2100),
                                            .milliseconds(4500)])
        #expect(out.allSatisfy { $0.seq == iss + 1 && $0.payload == testBytes(100) })
    }

    @Test func retryLimitTimesTheConnectionOutWithAReset() {
        let h = plainConnection { $0.maxRetransmissions = 3 }
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        let out = h.advance(by: .seconds(10))
        let data = out.filter { !$0.payload.isEmpty }
        #expect(data.map { $0.time - t } == [.milliseconds(300), .milliseconds(900), .milliseconds(2100)])
        // The fourth expiry (at 4.5 s) gives up (RFC 9293 3.8.3 R2) and resets the peer.
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == .timedOut)
        let rst = out.last
        #expect(rst?.flags.contains(.rst) == true)
        #expect(rst.map { $0.time - t } == .milliseconds(4500))
    }

    @Test func retransmittedSegmentGivesNoSampleWithoutTimestamps() {
        let h = plainConnection()
        h.write(testBytes(100))
        _ = h.drain()
        // Lost; retransmitted at 300 ms; RTO backs off to 600 ms.
        #expect(h.advance(by: .milliseconds(300)).count == 1)
        h.advance(by: .milliseconds(50))
        // This ACK cannot tell which transmission it answers (Karn, RFC 6298 3):
        // no sample, and the backed-off RTO stays for the next segment (RFC 6298 5.7 note).
        h.receive(.ack, ack: iss + 101)
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        let out = h.advance(by: .seconds(2))
        #expect(out.first.map { $0.time - t } == .milliseconds(600))
    }

    @Test func newDataAfterARetransmissionGivesAValidSample() {
        let h = plainConnection()
        h.write(testBytes(100))
        _ = h.drain()
        h.advance(by: .milliseconds(300))
        h.receive(.ack, ack: iss + 101)
        // New data, never retransmitted, acknowledged after 100 ms: a valid sample.
        h.write(testBytes(100))
        h.advance(by: .milliseconds(100))
        h.receive(.ack, ack: iss + 201)
        // RTTVAR = 3/4 * 50 + 0 = 37.5 ms, SRTT = 100 ms: RTO = 250 ms; the backoff is gone.
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        let out = h.advance(by: .seconds(1))
        #expect(out.first.map { $0.time - t } == .milliseconds(250))
    }

    @Test func retransmittedSegmentGivesASampleWithTimestamps() {
        // Timestamps agreed; the handshake's echo gives R = 100 ms, RTO = 300 ms.
        let h = TCPHarness.established(rtt: .milliseconds(100))
        h.write(testBytes(100))
        _ = h.drain()
        let rexmit = h.advance(by: .milliseconds(300))
        #expect(rexmit.count == 1)
        h.advance(by: .milliseconds(100))
        // The echo names the retransmission, so the RTT is unambiguous (RFC 7323 4):
        // R = 100 ms, RTTVAR = 37.5 ms, SRTT = 100 ms, RTO = 250 ms.
        #expect(h.lastStackTSval == rexmit.first?.options.timestamps?.value)
        h.receive(.ack, ack: iss + 101)
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        let out = h.advance(by: .seconds(1))
        #expect(out.first.map { $0.time - t } == .milliseconds(250))
    }

    @Test func handshakeTimestampEchoGivesTheFirstSample() {
        let h = TCPHarness.established(rtt: .milliseconds(80))
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        // R = 80 ms: RTO = 80 + 160 = 240 ms.
        let out = h.advance(by: .seconds(1))
        #expect(out.first.map { $0.time - t } == .milliseconds(240))
    }

    @Test func synTimeoutMakesTheFirstDataRTOThreeSeconds() {
        let h = TCPHarness.activeOpen()
        _ = h.drain()
        #expect(h.advance(by: .seconds(1)).count == 1)
        h.advance(by: .milliseconds(100))
        h.receive([.syn, .ack], seq: peerISS, ack: iss + 1, options: Self.plainPeer)
        #expect(h.connection.state == .established)
        _ = h.drain()
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        // RFC 6298 5.7: the SYN timed out and nothing was measured, so RTO is 3 s once data flows.
        let out = h.advance(by: .seconds(4))
        #expect(out.first.map { $0.time - t } == .seconds(3))
    }

    // MARK: Congestion control (RFC 5681)

    @Test func initialWindowIsTenSegments() {
        let h = plainConnection()
        h.write(testBytes(20 * 1460))
        let out = h.drain()
        // RFC 6928 (and Linux): IW = 10 segments.
        #expect(out.count == 10)
        #expect(h.connection.sender.congestion.congestionWindow == 10 * 1460)
    }

    @Test func slowStartGrowsOneSegmentPerAck() {
        let h = plainConnection()
        h.write(testBytes(30 * 1460))
        #expect(h.drain().count == 10)
        // RFC 5681 3.1 (2): cwnd += min(N, SMSS) per ACK of new data; each ACK of
        // one segment lets two more out.
        for k in 1...4 {
            h.receive(.ack, ack: iss + 1 + k * 1460)
            #expect(h.connection.sender.congestion.congestionWindow == (10 + k) * 1460)
            let out = h.drain()
            #expect(out.count == 2)
            #expect(out.first?.seq == iss + 1 + (10 + 2 * (k - 1)) * 1460)
        }
    }

    @Test func thirdDuplicateAckTriggersFastRetransmit() {
        let h = plainConnection()
        h.write(testBytes(10 * 1460))
        #expect(h.drain().count == 10)
        // The first segment is lost; each later arrival produces a duplicate ACK.
        h.receive(.ack, ack: iss + 1)
        h.receive(.ack, ack: iss + 1)
        #expect(h.drain().isEmpty)
        h.receive(.ack, ack: iss + 1)
        let out = h.drain()
        // RFC 5681 3.2 step 2: retransmit the lost segment;
        // ssthresh = max(FlightSize / 2, 2 * SMSS) = 7300, and cwnd = ssthresh.
        #expect(out.count == 1)
        #expect(out.first?.seq == iss + 1)
        #expect(out.first?.payload.count == 1460)
        #expect(h.connection.sender.congestion.slowStartThreshold == 7300)
        #expect(h.connection.sender.congestion.congestionWindow == 7300)
        #expect(h.connection.sender.recovery.lossState == .recovery)
        #expect(h.connection.segmentsRetransmitted == 1)
    }

    @Test func firstTwoDuplicateAcksEachReleaseANewSegment() {
        let h = plainConnection()
        h.write(testBytes(20 * 1460))
        #expect(h.drain().count == 10)
        // RFC 3042 limited transmit: each of the first two duplicate ACKs says a
        // segment left the network, so one new segment may take its place.
        h.receive(.ack, ack: iss + 1)
        #expect(h.drain().map(\.seq) == [iss + 1 + 10 * 1460])
        h.receive(.ack, ack: iss + 1)
        #expect(h.drain().map(\.seq) == [iss + 1 + 11 * 1460])
        #expect(h.connection.segmentsRetransmitted == 0)
    }

    @Test func furtherDuplicateAcksReleaseNewDataInProportion() {
        let h = plainConnection()
        h.write(testBytes(20 * 1460))
        #expect(h.drain().count == 10)
        for _ in 0..<3 { h.receive(.ack, ack: iss + 1) }
        // Two limited-transmit segments, then the fast retransmit.
        #expect(h.drain().map(\.seq) == [iss + 1 + 10 * 1460, iss + 1 + 11 * 1460, iss + 1])
        // RFC 6937 3: each further duplicate ACK stands for one segment
        // delivered, and PRR sends ssthresh / RecoverFS = 1/2 of what is
        // delivered: six duplicate ACKs let three new segments out, never two at once.
        var sent: [SequenceNumber] = []
        for k in 1...6 {
            h.receive(.ack, ack: iss + 1)
            let out = h.drain()
            #expect(out.count <= 1, "duplicate ACK \(3 + k)")
            sent += out.map(\.seq)
        }
        #expect(sent == [iss + 1 + 12 * 1460, iss + 1 + 13 * 1460, iss + 1 + 14 * 1460])
    }

    @Test func fullAckEndsRecoveryAndDeflatesTheWindow() {
        let h = plainConnection()
        h.write(testBytes(10 * 1460))
        _ = h.drain()
        for _ in 0..<3 { h.receive(.ack, ack: iss + 1) }
        _ = h.drain()
        h.receive(.ack, ack: iss + 1 + 10 * 1460)
        // RFC 6582 3.2 step 3 (1): cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS)
        // with nothing outstanding: min(7300, 1460 + 1460).
        #expect(h.connection.sender.congestion.congestionWindow == 2920)
        #expect(h.connection.sender.congestion.slowStartThreshold == 7300)
        #expect(h.connection.sender.recovery.lossState == .open)
    }

    @Test func partialAckRetransmitsTheNextHole() {
        let h = plainConnection()
        h.write(testBytes(10 * 1460))
        _ = h.drain()
        // Segments 1 and 3 are lost.
        for _ in 0..<3 { h.receive(.ack, ack: iss + 1) }
        #expect(h.drain().first?.seq == iss + 1)
        // The retransmission fills the first hole; the ACK stops at the second.
        h.receive(.ack, ack: iss + 1 + 2 * 1460)
        let out = h.drain()
        // RFC 6582 3.2 step 4: retransmit the first unacknowledged segment at
        // once, and stay in recovery with cwnd at ssthresh.
        #expect(out.first?.seq == iss + 1 + 2 * 1460)
        #expect(out.first?.payload.count == 1460)
        #expect(h.connection.sender.congestion.congestionWindow == 7300)
        #expect(h.connection.sender.recovery.recoveryPoint == iss + 1 + 10 * 1460)
        #expect(h.connection.sender.recovery.lossState == .recovery)
    }

    @Test func duplicateAcksThatDoNotCoverRecoverStartNoSecondRecovery() {
        let h = plainConnection()
        h.write(testBytes(10 * 1460))
        _ = h.drain()
        // A timeout sends everything again; recover = SND.MAX - 1 then.
        let resent = h.advance(by: .milliseconds(300))
        #expect(resent.first?.seq == iss + 1)
        // Duplicate ACKs for data sent before the timeout (the first copies
        // arriving) must not start fast recovery (RFC 6582 3.2 step 1).
        for _ in 0..<3 { h.receive(.ack, ack: iss + 1) }
        #expect(h.connection.sender.recovery.lossState == .timeout)
        #expect(h.connection.fastRecoveries == 0)
    }

    @Test func duplicateAcksWithDataOrAWindowChangeDoNotCount() {
        let h = plainConnection()
        h.write(testBytes(10 * 1460))
        _ = h.drain()
        // RFC 5681 2: a duplicate ACK carries no data and leaves the window alone.
        h.receive(.ack, ack: iss + 1, payload: testBytes(10))
        h.receive(.ack, ack: iss + 1, window: 60000)
        h.receive(.ack, ack: iss + 1, window: 60000)
        #expect(h.drain().allSatisfy { $0.payload.isEmpty })
        #expect(h.connection.segmentsRetransmitted == 0)
    }

    @Test func retransmissionTimeoutCollapsesTheWindowToOneSegment() {
        let h = plainConnection()
        h.write(testBytes(5 * 1460))
        #expect(h.drain().count == 5)
        let out = h.advance(by: .milliseconds(300))
        // RFC 5681 3.1: ssthresh = max(FlightSize / 2, 2 * SMSS) = 3650; cwnd = LW = 1 SMSS.
        #expect(h.connection.sender.congestion.congestionWindow == 1460)
        #expect(h.connection.sender.congestion.slowStartThreshold == 3650)
        #expect(out.count == 1)
        #expect(out.first?.seq == iss + 1)
        #expect(out.first?.payload.count == 1460)
        // Slow start again: the ACK lets two segments out.
        h.receive(.ack, ack: iss + 1461)
        let next = h.drain()
        #expect(next.map(\.seq) == [iss + 1461, iss + 2921])
    }
}
