/// Proportional Rate Reduction (RFC 6937): how much may be sent on each ACK
/// during loss recovery, so the window comes down to ssthresh smoothly, in
/// step with the ACKs, instead of RFC 6675's pause of half a window followed
/// by a burst. It also replaces NewReno's window inflation (RFC 6582 3.2):
/// without SACK each duplicate ACK counts as one segment delivered. Linux
/// recovers this way.
struct ProportionalRateReduction {
    /// RecoverFS: bytes outstanding when recovery began.
    let recoverFlightSize: Int
    /// prr_delivered and prr_out.
    private(set) var delivered = 0
    private(set) var sent = 0
    /// What may be sent now (sndcnt), in bytes; spent by `didSend`.
    private(set) var quota = 0

    init(flightSize: Int) {
        recoverFlightSize = max(flightSize, 1)
    }

    /// RFC 6937 3, on each ACK in recovery: `deliveredBytes` newly delivered
    /// (cumulatively or by SACK), `pipe` after it, and the target `ssthresh`.
    mutating func onAck(deliveredBytes: Int, pipe: Int, ssthresh: Int, mss: Int) {
        delivered += deliveredBytes
        var sendCount: Int
        if pipe > ssthresh {
            // Proportional part: sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            sendCount = (delivered * ssthresh + recoverFlightSize - 1) / recoverFlightSize - sent
        } else {
            // Slow-start reduction bound (PRR-SSRB): catch up towards ssthresh,
            // at most one MSS more than was delivered.
            let limit = max(delivered - sent, deliveredBytes) + mss
            sendCount = min(ssthresh - pipe, limit)
        }
        // The fast retransmit goes out whatever the arithmetic says (Linux does the same).
        if sent == 0 { sendCount = max(sendCount, mss) }
        quota = max(sendCount, 0)
    }

    /// Bytes were (re)transmitted during recovery.
    mutating func didSend(_ bytes: Int) {
        sent += bytes
        quota -= bytes
    }
}
