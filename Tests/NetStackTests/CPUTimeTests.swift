import Foundation
import Testing
@testable import NetStackApps

/// The machine's busy CPU time as `netstack bench` reads it from /proc/stat:
/// which columns count, and nil (never a trap) for anything malformed.
@Suite struct CPUTimeTests {
    @Test func busyIsUserNiceSystemIrqSoftirqSteal() throws {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  1000 20 300 9999 888 4 50 6 77 0\ncpu0 500 10 150 5000 400 2 25 3 0 0\nintr 1 2 3\n"
        let t = try #require(CPUTime.parse(stat))
        #expect(t.busyTicks == 1000 + 20 + 300 + 4 + 50 + 6)
    }

    @Test func oldKernelsWithoutGuestColumnsStillParse() {
        #expect(CPUTime.parse("cpu  1 2 3 4 5 6 7 8\n")?.busyTicks == 1 + 2 + 3 + 6 + 7 + 8)
    }

    @Test func malformedOrMissingGivesNil() {
        #expect(CPUTime.parse("") == nil)
        #expect(CPUTime.parse("cpu0 1 2 3 4 5 6 7 8\n") == nil, "the first line must be the all-CPU line")
        #expect(CPUTime.parse("cpu  1 2 3 4 5 6 7\n") == nil, "steal missing")
        #expect(CPUTime.parse("cpu  1 2 x 4 5 6 7 8\n") == nil)
        #expect(CPUTime.parse("cpu  1 2 -3 4 5 6 7 8\n") == nil)
        #expect(CPUTime.parse("cpu  \(UInt64.max) 1 0 0 0 0 0 0\n") == nil, "overflow")
        #expect(CPUTime.read(path: "/nonexistent/stat") == nil)
    }

    @Test func secondsBetweenReadings() {
        let a = CPUTime(busyTicks: 1_000)
        #expect(a.seconds(until: CPUTime(busyTicks: 1_250), ticksPerSecond: 100) == 2.5)
        #expect(a.seconds(until: CPUTime(busyTicks: 999), ticksPerSecond: 100) == nil, "went backwards")
        #expect(a.seconds(until: nil, ticksPerSecond: 100) == nil)
        #expect(a.seconds(until: a, ticksPerSecond: nil) == nil)
    }

    @Test func thisMachineHasAReadingThatMovesForward() throws {
        try #require(FileManager.default.fileExists(atPath: "/proc/stat"))
        let a = try #require(CPUTime.read())
        var x = 0.0
        for i in 0..<2_000_000 { x += Double(i).squareRoot() }
        #expect(x > 0)
        #expect(try #require(a.seconds(until: CPUTime.read())) >= 0)
        #expect(try #require(CPUTime.ticksPerSecond) > 0)
    }
}
