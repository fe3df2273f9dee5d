/// A token bucket on the stack's clock, for rate limits (ICMP errors, and
/// RFC 5961 challenge ACKs later).
struct TokenBucket {
    let ratePerSecond: Int
    let burst: Int
    private var tokens: Int
    private var lastRefill: Instant

    init(ratePerSecond: Int, burst: Int, now: Instant) {
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        tokens = burst
        lastRefill = now
    }

    /// Takes a token if one is available.
    mutating func take(now: Instant) -> Bool {
        let elapsed = now.nanoseconds - lastRefill.nanoseconds
        let earned = Int(elapsed * Int64(ratePerSecond) / 1_000_000_000)
        if earned > 0 {
            tokens = min(burst, tokens + earned)
            // Advance by the time the earned tokens account for, keeping the remainder.
            lastRefill = tokens == burst
                ? now : Instant(nanoseconds: lastRefill.nanoseconds + Int64(earned) * 1_000_000_000 / Int64(ratePerSecond))
        }
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
