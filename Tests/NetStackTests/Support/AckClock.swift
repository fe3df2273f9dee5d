@testable import NetStack
import NetStackWire

/// A sender driven by its ACKs on a virtual timeline, for congestion
/// controllers alone: it keeps cwnd in flight, the receiver acknowledges every
/// segment, and one `round` delivers the ACKs of everything in flight at its
/// start, evenly over one RTT, each ACK letting out what the new cwnd allows.
struct AckClock<C: CongestionControl> {
    var cc: C
    let mss: Int
    var now: Instant
    var una: SequenceNumber
    var sndMax: SequenceNumber
    /// Smallest RTT sample so far, as the connection would report it.
    var minRTT: Duration?

    init(_ cc: C, mss: Int = 1460, now: Instant = Instant(nanoseconds: 1_000_000_000)) {
        self.cc = cc
        self.mss = mss
        self.now = now
        una = SequenceNumber(1000)
        sndMax = una
        fill()
    }

    var cwndSegments: Double { Double(cc.congestionWindow) / Double(mss) }
    var flight: Int { sndMax - una }

    /// Sends whole segments while cwnd has room.
    mutating func fill() {
        while flight + mss <= max(cc.congestionWindow, mss) { sndMax = sndMax + mss }
    }

    /// One round trip. `rtt` spaces the ACKs; each ACK reports `sample` as its
    /// RTT (default `rtt`), or none when `timed` is false (no timestamps);
    /// `windowLimited` false plays an application that sent less than cwnd allowed.
    mutating func round(rtt: Duration, sample: Duration? = nil, timed: Bool = true, windowLimited: Bool = true) {
        let rttSample: Duration? = timed ? sample ?? rtt : nil
        let start = now
        let segments = max(flight / mss, 1)
        for i in 1...segments {
            guard flight > 0 else { break }
            now = start + rtt * Double(i) / Double(segments)
            let prior = flight
            una = una + min(mss, flight)
            if let r = rttSample { minRTT = min(minRTT ?? r, r) }
            cc.onAck(AckSample(deliveredBytes: min(mss, prior), mss: mss, now: now, rtt: rttSample, minRTT: minRTT,
                               smoothedRTT: rttSample, ack: una, sndMax: sndMax, priorFlightSize: prior,
                               windowLimited: windowLimited))
            if windowLimited { fill() }
        }
        now = start + rtt
        if !windowLimited {
            // The application had only one segment to send a round.
            if flight == 0 { sndMax = sndMax + mss }
        }
    }

    /// Loss detected now: the controller reduces, and the window is refilled
    /// at the new size (recovery itself is the connection's business).
    mutating func congestionEvent() {
        cc.onCongestionEvent(flightSize: flight, mss: mss, now: now)
        cc.onRecoveryEnd(flightSize: flight, mss: mss, now: now)
    }
}
