/// A token bucket on the stack's clock: `ratePerSecond` tokens accrue up to
/// `burst`. One type for every rate limit: ICMP errors (RFC 1812 4.3.2.8),
/// TCP's answers to unacceptable segments and challenge ACKs (RFC 5961 7 and
/// 10, `TCPAnswerLimits`), and the fault injector's policer (tokens are bits there).
struct TokenBucket {
    let ratePerSecond: Int
    let burst: Int
    private(set) var tokens: Int
    private var lastRefill: Instant

    init(ratePerSecond: Int, burst: Int, now: Instant) {
        precondition(ratePerSecond > 0 && burst > 0 && burst < Int(Int64.max / 1_000_000_000))
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        tokens = burst
        lastRefill = now
    }

    /// Takes `count` tokens if that many are available.
    mutating func take(_ count: Int = 1, now: Instant) -> Bool {
        refill(now: now)
        guard tokens >= count else { return false }
        tokens -= count
        return true
    }

    private mutating func refill(now: Instant) {
        let elapsed = now.nanoseconds - lastRefill.nanoseconds
        guard elapsed > 0, tokens < burst else {
            if tokens >= burst { lastRefill = now }
            return
        }
        // Past the time that fills the bucket from empty, it is full; below it
        // elapsed * rate < burst * 1e9, which cannot overflow.
        guard elapsed < Int64(burst) * 1_000_000_000 / Int64(ratePerSecond) + 1 else {
            tokens = burst
            lastRefill = now
            return
        }
        let earned = Int(elapsed * Int64(ratePerSecond) / 1_000_000_000)
        guard earned > 0 else { return }
        tokens = min(burst, tokens + earned)
        // Advance by the time the earned tokens account for, keeping the remainder.
        lastRefill = tokens == burst
            ? now : Instant(nanoseconds: lastRefill.nanoseconds + Int64(earned) * 1_000_000_000 / Int64(ratePerSecond))
    }
}
