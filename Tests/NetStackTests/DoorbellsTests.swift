#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import NetStack
import CURing

/// Doorbells without a device that reads them (the loop looks at each armed
/// eventfd once per turn): a ring is delivered once per arming, a disarmed
/// doorbell is silent, and the count is taken so a ring is not heard twice.
@Suite struct DoorbellsTests {
    final class Bell {
        let fd = curing_eventfd()
        func ring() { var one: UInt64 = 1; _ = write(fd, &one, 8) }
        deinit { close(fd) }
    }

    @Test func aRingIsDeliveredOncePerArming() {
        let doorbells = Doorbells()
        var heard: [UInt32] = []
        doorbells.onRung = { heard.append($0) }
        let a = Bell(), b = Bell()
        doorbells.arm(a.fd, token: 1)
        doorbells.arm(b.fd, token: 2)
        #expect(doorbells.deliver() == 0)
        a.ring()
        a.ring()
        #expect(doorbells.deliver() == 1 && heard == [1])
        b.ring()
        #expect(doorbells.deliver() == 1 && heard == [1, 2])
        a.ring()
        #expect(doorbells.deliver() == 0, "not armed again")
        doorbells.arm(a.fd, token: 1)
        #expect(doorbells.deliver() == 1 && heard == [1, 2, 1], "the ring made while disarmed waits in the count")
        #expect(doorbells.delivered == 3)
    }

    @Test func aLookIsDeliveredOnTheNextTurnAndLeavesTheDoorbellArmed() {
        let doorbells = Doorbells()
        var heard: [UInt32] = []
        doorbells.onRung = { heard.append($0) }
        let a = Bell()
        doorbells.arm(a.fd, token: 4)
        doorbells.lookAgain(token: 4)
        #expect(doorbells.hasPending, "the loop must not sleep before it looks")
        #expect(doorbells.deliver() == 1 && heard == [4])
        #expect(!doorbells.hasPending)
        a.ring()
        #expect(doorbells.deliver() == 1 && heard == [4, 4], "still armed: a ring after the look is heard")
        #expect(doorbells.delivered == 1 && doorbells.lookedAgain == 1, "rings and looks are counted apart")
    }

    @Test func aDisarmedDoorbellIsSilent() {
        let doorbells = Doorbells()
        var heard = 0
        doorbells.onRung = { _ in heard += 1 }
        let a = Bell()
        doorbells.arm(a.fd, token: 7)
        doorbells.disarm(token: 7)
        a.ring()
        #expect(doorbells.deliver() == 0 && heard == 0)
        #expect(!doorbells.isArmed)
    }

    @Test func aDeviceThatReadsTakesArmsAndCancels() {
        let doorbells = Doorbells()
        doorbells.deviceReads = true
        doorbells.arm(10, token: 1)
        doorbells.arm(11, token: 2)
        doorbells.disarm(token: 2)  // never handed over: nothing to cancel
        var reads: [(UInt32, Int32)] = []
        doorbells.takeArmed { reads.append(($0, $1)); return true }
        #expect(reads.count == 1 && reads[0] == (1, 10))
        doorbells.disarm(token: 1)
        var cancels: [UInt32] = []
        doorbells.takeCancelled { cancels.append($0); return true }
        #expect(cancels == [1])
        doorbells.rang(token: 1)  // the cancelled read's completion
        var heard = 0
        doorbells.onRung = { _ in heard += 1 }
        #expect(doorbells.deliver() == 0 && heard == 0)
        doorbells.arm(12, token: 3)
        doorbells.takeArmed { _, _ in false }  // the device's queue was full
        reads.removeAll()
        doorbells.takeArmed { reads.append(($0, $1)); return true }
        #expect(reads.count == 1 && reads[0] == (3, 12), "kept for the next look")
        doorbells.rang(token: 3)
        #expect(doorbells.deliver() == 1 && heard == 1)
    }
}
