import Foundation
import Testing
@testable import NetStackApps

/// `netstack bench --pin`: Linux's CPU list format, the plan that puts the
/// peer and the system under test on CPUs of their own, and where it shows up.
@Suite struct CPUListTests {
    @Test func parsesTheKernelsListFormat() {
        #expect(CPUList.parse("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11])
        #expect(CPUList.parse("1") == [1])
        #expect(CPUList.parse(" 0-1\n") == [0, 1])
        #expect(CPUList.parse("3,1,1-2") == [1, 2, 3], "sorted, no repeats")
        #expect(CPUList.parse("5-5") == [5])
    }

    @Test func rejectsWhatIsNotAList() {
        for bad in ["", " ", "3-1", "a", "1,,2", "1-", "-1", "0-2-4", "1 2", "0x3", "１"] {
            #expect(CPUList.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func formatsRunsAsRanges() {
        #expect(CPUList.format([0, 1, 2, 3, 8, 10, 11]) == "0-3,8,10-11")
        #expect(CPUList.format([3, 1, 1]) == "1,3")
        #expect(CPUList.format([1]) == "1")
        #expect(CPUList.format([0, 1]) == "0-1")
        #expect(CPUList.format([]) == "")
        for text in ["0-3,8,10-11", "0-1", "7", "0,2,4-6"] {
            #expect(CPUList.parse(text).map(CPUList.format) == text)
        }
    }

    @Test func readsCpusAllowedListFromProcStatus() {
        let status = "Name:\tnetstack\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n"
        #expect(CPUList.allowed(fromStatus: status) == [0, 1])
        #expect(CPUList.allowed(fromStatus: "Name:\tx\n") == nil)
        // This process's own line is there and parses.
        let own = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)).flatMap(CPUList.allowed)
        #expect(own?.isEmpty == false)
    }
}

@Suite struct BenchPinningTests {
    @Test func oneCPUForEachSide() {
        #expect(BenchPinning.plan(allowed: [0, 1]) == BenchPinning(peerCPUs: [0], systemCPUs: [1]))
        #expect(BenchPinning.plan(allowed: [1, 0]) == BenchPinning(peerCPUs: [0], systemCPUs: [1]))
        #expect(BenchPinning.plan(allowed: [2, 5, 7]) == BenchPinning(peerCPUs: [2], systemCPUs: [5]))
        #expect(BenchPinning.plan(allowed: [1]) == nil)
        #expect(BenchPinning.plan(allowed: [3, 3]) == nil)
        #expect(BenchPinning.plan(allowed: []) == nil)
    }

    @Test func tasksetPrefixes() throws {
        let p = try #require(BenchPinning.plan(allowed: [0, 1]))
        #expect(p.on)
        #expect(p.taskset(peer: true) == ["taskset", "-c", "0"])
        #expect(p.taskset(peer: false) == ["taskset", "-c", "1"])
        #expect(BenchPinning.off.taskset(peer: true) == [])
        #expect(BenchPinning.off.taskset(peer: false) == [])
        #expect(!BenchPinning.off.on)
        #expect(BenchPinning(peerCPUs: [0], systemCPUs: []) == .off, "half a plan is no plan")
    }

    @Test func theMachineLineAndJSONSayIt() throws {
        var report = sampleReport()
        report.machine.pinning = BenchPinning(peerCPUs: [0], systemCPUs: [1])
        #expect(report.machine.summary.hasSuffix(", pinned: peer on CPU 0, system under test on CPU 1 "
                                                 + "(processes only; softirqs run on the sending CPU)"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any])
        let pinning = try #require((json["machine"] as? [String: Any])?["pinning"] as? [String: Any])
        #expect(pinning["on"] as? Bool == true)
        #expect(pinning["peerCPUs"] as? [Int] == [0])
        #expect(pinning["systemCPUs"] as? [Int] == [1])
        #expect(BenchHTML.render(report).contains("<li>CPUs: pinned: peer on CPU 0, system under test on CPU 1"))
        report.machine.pinning = .off
        #expect(report.machine.summary.hasSuffix(", not pinned"))
        #expect(BenchPinning(peerCPUs: [0, 1], systemCPUs: [2, 3]).summary
            .hasPrefix("pinned: peer on CPUs 0-1, system under test on CPUs 2-3"))
    }
}
