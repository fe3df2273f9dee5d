import Testing
@testable import NetStack
import NetStackWire

/// Flow control (RFC 9293 3.8.6): the peer's zero window and the persist timer,
/// our advertised window and receiver SWS avoidance, sender SWS avoidance and
/// Nagle's algorithm (RFC 9293 3.7.4).
@Suite struct TCPFlowControlTests {
    let iss = TCPHarness.defaultISS
    let peerISS = TCPHarness.defaultPeerISS

    /// No timestamps, window scale 7, handshake RTT 100 ms (so RTO = 300 ms).
    func plainConnection(_ configure: (inout TCPConfiguration) -> Void = { _ in }) -> TCPHarness {
        var config = TCPConfiguration()
        configure(&config)
        return TCPHarness.established(configuration: config, synOptions: TCPOptions(mss: 1460, windowScale: 7),
                                      rtt: .milliseconds(100))
    }

    // MARK: The peer's window

    @Test func zeroWindowStopsSending() {
        let h = plainConnection()
        h.peerWindow = 0
        h.receive(.ack)
        h.write(testBytes(1000))
        #expect(h.drain().isEmpty)
        #expect(h.connection.sender.sndNxt == iss + 1)
    }

    @Test func zeroWindowIsProbedWithBackoff() {
        let h = plainConnection()
        h.peerWindow = 0
        h.receive(.ack)
        h.write(testBytes(1000))
        let t = h.now
        let out = h.advance(by: .milliseconds(2200))
        // RFC 9293 3.8.6.1: probe the zero window, backing off exponentially
        // (from RTO = 300 ms). Each probe is one old sequence number, SND.UNA - 1,
        // which the receiver must answer with an ACK that shows its window.
        #expect(out.map { $0.time - t } == [.milliseconds(300), .milliseconds(900), .milliseconds(2100)])
        #expect(out.allSatisfy { $0.seq == iss && $0.payload.isEmpty && $0.flags == .ack })
    }

    @Test func probesContinueWhileTheWindowStaysClosed() {
        let h = plainConnection()
        h.peerWindow = 0
        h.receive(.ack)
        h.write(testBytes(1000))
        let first = h.advance(by: .milliseconds(300))
        #expect(first.count == 1)
        // The answer still shows a zero window.
        h.receive(.ack)
        #expect(h.drain().isEmpty)
        let next = h.advance(by: .seconds(1))
        #expect(next.count == 1)
        #expect(next.first?.seq == iss)
        #expect(h.connection.state == .established)
    }

    @Test func windowOpeningLetsTheDataFlow() {
        let h = plainConnection()
        h.peerWindow = 0
        h.receive(.ack)
        h.write(testBytes(1000))
        _ = h.advance(by: .milliseconds(300))
        h.peerWindow = 100  // 100 << 7 = 12800 bytes
        h.receive(.ack)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.seq == iss + 1)
        #expect(out.first?.payload == testBytes(1000))
        // And the probing stops.
        h.receive(.ack, ack: iss + 1001)
        #expect(h.advance(by: .seconds(5)).isEmpty)
    }

    @Test func dataIsLimitedToThePeerWindow() {
        let h = TCPHarness.established(synOptions: TCPOptions(mss: 1460), synWindow: 2920, window: 2920)
        h.write(testBytes(10_000))
        let out = h.drain()
        #expect(out.map(\.payload.count) == [1460, 1460])
        h.receive(.ack, ack: iss + 1461)
        #expect(h.drain().map(\.payload.count) == [1460])
    }

    @Test func windowTooSmallToUseIsHeldBack() {
        // The peer offered 4000 bytes; 1080 is less than half of that.
        let h = TCPHarness.established(synOptions: TCPOptions(mss: 1460), synWindow: 4000, window: 4000)
        h.write(testBytes(10_000))
        // RFC 9293 3.8.6.2.1 sender SWS avoidance (Fs = 1/2): send a full
        // segment, or all the data, or at least half the largest window.
        #expect(h.drain().map(\.payload.count) == [1460, 1460])
        h.receive(.ack, ack: iss + 2921)
        #expect(h.drain().map(\.payload.count) == [1460, 1460])
    }

    @Test func smallWindowWithNothingInFlightIsUsedAfterTheOverrideTimeout() {
        let h = TCPHarness.established(synOptions: TCPOptions(mss: 1460), synWindow: 4000, window: 4000,
                                       rtt: .milliseconds(100))
        h.write(testBytes(10_000))
        _ = h.drain()
        // Everything acknowledged, but the window is now only 1080 bytes.
        h.receive(.ack, ack: iss + 2921, window: 1080)
        #expect(h.drain().isEmpty)
        // RFC 9293 3.8.6.2.1 (4): the override timeout (0.1-1 s) sends what fits,
        // lest the connection stall when the window update is lost.
        let out = h.advance(by: .seconds(1))
        #expect(out.first?.seq == iss + 2921)
        #expect(out.first?.payload.count == 1080)
    }

    @Test func olderSegmentDoesNotUpdateTheWindow() {
        let h = plainConnection()
        h.write(testBytes(300))
        _ = h.drain()
        h.receive(.ack, ack: iss + 201, window: 10)
        #expect(h.connection.sender.sndWnd == 10 << 7)
        // Reordered: an older ACK with the same SEG.SEQ. RFC 9293 3.10.7.4 fifth:
        // update only if SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK).
        h.receive(.ack, ack: iss + 101, window: 60000)
        #expect(h.connection.sender.sndWnd == 10 << 7)
    }

    // MARK: Our window

    @Test func probeOfOurZeroWindowIsAnsweredWithTheWindow() {
        let h = fillSmallBuffer()
        // A Linux-style probe: SEG.SEQ = RCV.NXT - 1, no data.
        h.receive(.ack, seq: peerISS + 4096, ack: iss + 1)
        var out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 1 + 4096)
        #expect(out.first?.window == 0)
        // A BSD-style probe: one byte at RCV.NXT. RFC 9293 3.10.7.4: with RCV.WND = 0
        // no data is acceptable; the answer is an ACK showing the window.
        let r = h.receive(.ack, seq: peerISS + 1 + 4096, ack: iss + 1, payload: [0x42])
        #expect(r == .unacceptable(.outOfWindow))
        out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 1 + 4096)
        #expect(out.first?.window == 0)
        #expect(h.connection.readableBytes == 4096)
    }

    @Test func advertisedWindowShrinksAsUnreadDataAccumulates() {
        let h = TCPHarness.established(configuration: smallReceiveBuffer(), synOptions: TCPOptions(mss: 1460))
        h.receive(.ack, payload: testBytes(1000))
        var out = h.advance(by: .milliseconds(40))
        #expect(out.first?.window == 3096)
        h.receive(.ack, payload: testBytes(1000))
        out = h.advance(by: .milliseconds(40))
        #expect(out.first?.window == 2096)
    }

    @Test func fullBufferAdvertisesZeroWindow() {
        let h = fillSmallBuffer()
        #expect(h.connection.advertisedWindow == 0)
        #expect(h.connection.readableBytes == 4096)
    }

    @Test func readingLessThanAnMSSSendsNoWindowUpdate() {
        let h = fillSmallBuffer()
        // RFC 9293 3.8.6.2.2 receiver SWS avoidance: the right edge moves only by
        // min(RCV.BUFF / 2, Eff.snd.MSS) = min(2048, 1460) = 1460 or more.
        #expect(h.read(max: 1000).count == 1000)
        #expect(h.drain().isEmpty)
        #expect(h.advance(by: .seconds(1)).isEmpty)
    }

    @Test func readingAnMSSSendsAWindowUpdate() {
        let h = fillSmallBuffer()
        _ = h.read(max: 1000)
        _ = h.read(max: 460)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.isPureAck == true)
        #expect(out.first?.ack == peerISS + 1 + 4096)
        #expect(out.first?.window == 1460)
    }

    @Test func readingOneFullSegmentWithTimestampsSendsAWindowUpdate() {
        // With timestamps Eff.snd.MSS is 1460 - 12 = 1448 (RFC 6691), the threshold min(2048, 1448).
        let h = TCPHarness.established(configuration: smallReceiveBuffer())
        let data = testBytes(4096)
        for r in [0..<1448, 1448..<2896, 2896..<4096] { h.receive(.ack, payload: Array(data[r])) }
        #expect(h.advance(by: .milliseconds(40)).last?.window == 0)
        #expect(h.read(max: 1447).count == 1447)
        #expect(h.drain().isEmpty)
        _ = h.read(max: 1)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.window == 1448)
    }

    @Test func ackOnADataSegmentIsTakenEvenWhenOurWindowIsZero() {
        let h = TCPHarness.established(configuration: smallReceiveBuffer(), synOptions: TCPOptions(mss: 1460))
        h.write(testBytes(100))
        _ = h.drain()
        // The peer fills our window without acknowledging our 100 bytes yet.
        let data = testBytes(4096)
        for r in [0..<1460, 1460..<2920, 2920..<4096] { h.receive(.ack, ack: iss + 1, payload: Array(data[r])) }
        _ = h.advance(by: .milliseconds(40))
        #expect(h.connection.advertisedWindow == 0)
        // Its next segment carries a byte (a probe) and the ACK of our data.
        let r = h.receive(.ack, ack: iss + 101, payload: [0x42])
        #expect(r == .unacceptable(.outOfWindow))
        // RFC 9293 3.10.7.4: the text is not acceptable, but the ACK is processed.
        #expect(h.connection.sender.sndUna == iss + 101)
        #expect(h.connection.readableBytes == 4096)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 1 + 4096)
        #expect(out.first?.window == 0)
    }

    @Test func windowRightEdgeNeverMovesLeft() {
        let h = TCPHarness.established(configuration: smallReceiveBuffer(), synOptions: TCPOptions(mss: 1460))
        // A segment that arrives while only part of the window is free still fits
        // what was advertised (RFC 9293 3.8.6.2.2: never shrink the window).
        var edges: [SequenceNumber] = []
        for k in 0..<4 {
            h.receive(.ack, payload: testBytes(1000, seed: UInt8(k)))
            for s in h.advance(by: .milliseconds(40)) {
                edges.append((s.ack ?? SequenceNumber(0)) + Int(s.window))
            }
        }
        #expect(edges.count == 4)
        #expect(zip(edges, edges.dropFirst()).allSatisfy { $0.0 <= $0.1 })
    }

    // MARK: Nagle (RFC 9293 3.7.4, RFC 896)

    @Test func smallWritesCoalesceWhileDataIsInFlight() {
        let h = plainConnection()
        h.write(testBytes(100))
        #expect(h.drain().map(\.payload.count) == [100])
        h.write(testBytes(100, seed: 1))
        h.write(testBytes(100, seed: 2))
        #expect(h.drain().isEmpty)
        h.receive(.ack, ack: iss + 101)
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.payload == testBytes(100, seed: 1) + testBytes(100, seed: 2))
    }

    @Test func fullSegmentGoesOutEvenWithDataInFlight() {
        let h = plainConnection()
        h.write(testBytes(100))
        _ = h.drain()
        h.write(testBytes(1460 + 50))
        // A full segment goes; the 50-byte tail waits.
        #expect(h.drain().map(\.payload.count) == [1460])
    }

    @Test func theTailOfABulkWriteGoesWithoutWaitingForAnACK() {
        // Minshall's variant (Linux's tcp_nagle_check): only an unacknowledged
        // small segment holds the next one back, so a write's last partial
        // segment follows its full ones at once...
        let h = plainConnection()
        h.write(testBytes(3 * 1460 + 700))
        #expect(h.drain().map(\.payload.count) == [1460, 1460, 1460, 700])
        // ...and the next small write waits for that partial one's ACK.
        h.write(testBytes(100, seed: 1))
        #expect(h.drain().isEmpty)
        h.receive(.ack, ack: iss + 1 + 3 * 1460 + 700)
        #expect(h.drain().map(\.payload.count) == [100])
    }

    @Test func noDelaySendsEverySmallWriteAtOnce() {
        let h = plainConnection { $0.noDelay = true }
        h.write(testBytes(100))
        h.write(testBytes(100))
        h.write(testBytes(100))
        #expect(h.drain().map(\.payload.count) == [100, 100, 100])
    }

    @Test func closingFlushesTheSmallTail() {
        let h = plainConnection()
        h.write(testBytes(100))
        _ = h.drain()
        h.write(testBytes(50))
        h.close()
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.payload.count == 50)
        #expect(out.first?.flags.contains(.fin) == true)
    }

    // MARK: Helpers

    func smallReceiveBuffer() -> TCPConfiguration {
        var config = TCPConfiguration()
        config.receiveBufferSize = 4096
        return config
    }

    /// A 4096-byte receive ring filled by three segments (1460, 1460, 1176) and
    /// the zero-window ACK drained.
    func fillSmallBuffer(sourceLocation: SourceLocation = #_sourceLocation) -> TCPHarness {
        let h = TCPHarness.established(configuration: smallReceiveBuffer(), synOptions: TCPOptions(mss: 1460))
        let data = testBytes(4096)
        h.receive(.ack, payload: Array(data[0..<1460]))
        h.receive(.ack, payload: Array(data[1460..<2920]))
        h.receive(.ack, payload: Array(data[2920..<4096]))
        let out = h.drain() + h.advance(by: .milliseconds(40))
        #expect(out.last?.window == 0, sourceLocation: sourceLocation)
        #expect(out.last?.ack == peerISS + 1 + 4096, sourceLocation: sourceLocation)
        return h
    }
}
