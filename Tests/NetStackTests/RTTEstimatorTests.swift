import Testing
@testable import NetStack

@Suite struct RTTEstimatorTests {
    @Test func beforeAnySampleTheInitialRTOHolds() {
        let e = RTTEstimator()
        #expect(e.rto == .seconds(1))
        #expect(e.srtt == nil && e.rttvar == nil)
        #expect(e.backoffCount == 0)
        #expect(!e.hasSample)
    }

    /// RFC 6298 2.2 and 2.3 worked through with concrete numbers (G = 1 ms,
    /// minimum 200 ms).
    @Test func followsTheRFC6298Formulas() {
        var e = RTTEstimator()
        // First sample R = 100 ms: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR).
        e.sample(.milliseconds(100))
        #expect(e.srtt == .milliseconds(100))
        #expect(e.rttvar == .milliseconds(50))
        #expect(e.rto == .milliseconds(300))

        // R' = 200 ms: RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5 ms (with the old
        // SRTT), SRTT = 7/8 * 100 + 1/8 * 200 = 112.5 ms, RTO = 112.5 + 250 = 362.5 ms.
        e.sample(.milliseconds(200))
        #expect(e.rttvar == .microseconds(62_500))
        #expect(e.srtt == .microseconds(112_500))
        #expect(e.rto == .microseconds(362_500))

        // R' = 100 ms: RTTVAR = 3/4 * 62.5 + 1/4 * 12.5 = 50 ms,
        // SRTT = 7/8 * 112.5 + 1/8 * 100 = 110.9375 ms, RTO = 310.9375 ms.
        e.sample(.milliseconds(100))
        #expect(e.rttvar == .milliseconds(50))
        #expect(e.srtt == .nanoseconds(110_937_500))
        #expect(e.rto == .nanoseconds(310_937_500))
        #expect(e.rtoNanoseconds == 310_937_500)
    }

    @Test func clockGranularityFloorsTheVarianceTerm() {
        var e = RTTEstimator(minimumRTO: .microseconds(1), clockGranularity: .milliseconds(10))
        // RTTVAR = 2 ms, 4 * RTTVAR = 8 ms < G = 10 ms: RTO = 4 + 10.
        e.sample(.milliseconds(4))
        #expect(e.rto == .milliseconds(14))
    }

    @Test func steadySamplesConvergeTowardsTheRTT() {
        var e = RTTEstimator(minimumRTO: .milliseconds(1))
        for _ in 0..<200 { e.sample(.milliseconds(50)) }
        #expect(e.srtt == .milliseconds(50))
        // RTTVAR decays geometrically to 0, leaving SRTT + G.
        #expect(e.rto == .milliseconds(51))
    }

    @Test func rtoIsClampedToTheMinimum() {
        var e = RTTEstimator()
        // SRTT = 10 ms, RTTVAR = 5 ms: 30 ms, raised to the 200 ms minimum.
        e.sample(.milliseconds(10))
        #expect(e.srtt == .milliseconds(10))
        #expect(e.rto == .milliseconds(200))
        // A custom minimum (RFC 6298's own 1 s).
        var strict = RTTEstimator(minimumRTO: .seconds(1))
        strict.sample(.milliseconds(100))
        #expect(strict.rto == .seconds(1))
        // Negative samples (a clock stepped back) count as zero.
        var odd = RTTEstimator()
        odd.sample(.milliseconds(-5))
        #expect(odd.srtt == .zero)
        #expect(odd.rto == .milliseconds(200))
    }

    @Test func rtoIsClampedToTheMaximum() {
        var e = RTTEstimator()
        // SRTT = 30 s, RTTVAR = 15 s: 90 s, lowered to 60 s.
        e.sample(.seconds(30))
        #expect(e.rto == .seconds(60))
    }

    @Test func backOffDoublesUpToTheMaximum() {
        var e = RTTEstimator()
        e.sample(.milliseconds(100))                 // RTO 300 ms
        e.backOff()
        #expect(e.rto == .milliseconds(600))
        e.backOff()
        #expect(e.rto == .milliseconds(1200))
        #expect(e.backoffCount == 2)
        for _ in 0..<20 { e.backOff() }
        #expect(e.rto == .seconds(60))
        #expect(e.backoffCount == 22)
        // SRTT and RTTVAR are untouched by backoff.
        #expect(e.srtt == .milliseconds(100))

        e.resetBackoff()
        #expect(e.rto == .milliseconds(300))
        #expect(e.backoffCount == 0)
    }

    @Test func backOffBeforeAnySampleStartsFromTheInitialRTO() {
        var e = RTTEstimator()
        var expected: [Duration] = []
        for _ in 0..<8 { e.backOff(); expected.append(e.rto) }
        #expect(expected == [.seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(32),
                             .seconds(60), .seconds(60), .seconds(60)])
        e.resetBackoff()
        #expect(e.rto == .seconds(1))
    }

    /// A new sample (from a segment that was not retransmitted, per Karn) ends the
    /// backoff: RTO is recomputed from SRTT and RTTVAR (RFC 6298 5.7).
    @Test func aSampleEndsTheBackoff() {
        var e = RTTEstimator()
        e.sample(.milliseconds(100))
        e.backOff(); e.backOff()
        #expect(e.rto == .milliseconds(1200))
        e.sample(.milliseconds(100))
        // RTTVAR = 3/4 * 50 = 37.5 ms; SRTT 100 ms; RTO = 100 + 150.
        #expect(e.backoffCount == 0)
        #expect(e.rto == .milliseconds(250))
    }
}
