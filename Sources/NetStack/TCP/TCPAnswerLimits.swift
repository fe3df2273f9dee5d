import NetStackWire

/// The limits on ACKs sent in answer to segments a connection does not
/// accept: out of window (RFC 9293 3.10.7.4 first: "send an ACK"), failing
/// PAWS (RFC 7323 5.3), acknowledging data never sent (3.10.7.4 fifth), in
/// TIME-WAIT, and RFC 5961's challenge ACKs. RFC 5961 10 allows limiting
/// them; unlimited, an ACK flood with random sequence numbers against one
/// connection drew one ACK per segment (2.35 M for 2.35 M): a reflector.
///
/// Two rules, as Linux's `tcp_oow_rate_limited`:
/// - **Per connection**, a segment that occupies no sequence space (no data,
///   no FIN) or carries a SYN, and every challenge ACK, is answered at most
///   once per `TCPConfiguration.unacceptableAckInterval` (500 ms). What a real
///   peer sends so (a keepalive, a window probe, a stale ACK) comes far
///   less often, and loses nothing by waiting for the next.
/// - **Segments with data or a FIN** are not limited per connection: loss
///   recovery depends on their immediate duplicate ACK. A retransmission
///   below RCV.NXT draws the D-SACK that tells the peer its recovery was
///   spurious (RFC 2883, RFC 3708), a retransmitted FIN in TIME-WAIT must be
///   acknowledged for the peer to close, and a window probe with data needs
///   its answer. An ACK loop cannot be made of them (Linux's reasoning).
///
/// And a stack-wide bucket for each kind, so that many connections at once
/// (or data floods, which the per-connection rule lets through) are bounded:
/// - `bare`, shared by the per-connection-limited answers and the challenge
///   ACKs: 1,000/s with a burst of 100, the challenge-ACK limit this bucket
///   was before (Linux's former `tcp_challenge_ack_limit`). With one answer
///   per connection per 500 ms it binds only when more than 500 connections
///   are flooded at once.
/// - `withData`, for the answers to segments with data or a FIN: 20,000/s
///   with a burst of 2,000. Recovery needs far less. A peer sends us data we
///   already hold only after a spurious retransmission (an RTO or a loss
///   probe that fired before our ACK came, a fast retransmit on
///   reordering) or through a path that duplicates: after an RTO it resends
///   one segment (cwnd 1) and the first D-SACKed ACK moves its SND.UNA past
///   all we hold, so a loss event costs a few answers; a duplicating path,
///   at 1% (the soak's fault rate) and the 690,000 full segments per second
///   of 8 Gbit/s (the fastest this stack has moved, memory-bulk), about
///   6,900/s for all connections together. The rate is three times that;
///   the burst holds eleven full 256 KiB windows of 1,448-byte segments. It
///   binds only under a flood of data segments well beyond any of that, and
///   then caps the answers at 20,000/s, each about the size of the segment
///   that drew it: no amplification.
struct TCPAnswerLimits {
    var bare: TokenBucket
    var withData: TokenBucket

    static let bareRate = 1_000
    static let bareBurst = 100
    static let withDataRate = 20_000
    static let withDataBurst = 2_000

    init(now: Instant) {
        bare = TokenBucket(ratePerSecond: Self.bareRate, burst: Self.bareBurst, now: now)
        withData = TokenBucket(ratePerSecond: Self.withDataRate, burst: Self.withDataBurst, now: now)
    }

    /// Whether `c` may answer a segment it did not accept now. `bare`: the
    /// segment occupies no sequence space or carries a SYN, or the answer is
    /// a challenge ACK; these are limited per connection too.
    mutating func mayAnswer(_ c: TCPConnection, bare isBare: Bool, now: Instant) -> Bool {
        guard isBare else { return withData.take(now: now) }
        let interval = c.configuration.unacceptableAckInterval
        if let last = c.lastUnacceptableAck, interval > .zero, now - last < interval, last <= now {
            return false
        }
        guard bare.take(now: now) else { return false }
        c.lastUnacceptableAck = now
        return true
    }

    /// A segment the answer to which is limited per connection: it occupies
    /// no sequence space, or it carries a SYN (Linux: `seq == end_seq || syn`).
    static func isBare(_ seg: TCPRepr, payloadCount: Int) -> Bool {
        seg.flags.contains(.syn) || (payloadCount == 0 && !seg.flags.contains(.fin))
    }
}
