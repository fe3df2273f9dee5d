import Testing
@testable import NetStackWire

@Suite struct SequenceNumberTests {
    @Test func ordersAcrossTheWrap() {
        let late = SequenceNumber(0xffff_fff0)
        let early = SequenceNumber(0x10)
        #expect(late < early)
        #expect(!(early < late))
        #expect(early > late)
        #expect(late <= early && late != early)
        #expect(SequenceNumber(5) < SequenceNumber(6))
        #expect(!(SequenceNumber(6) < SequenceNumber(6)))
        #expect(SequenceNumber(6) <= SequenceNumber(6))
        // Just under half the space ahead is still "after".
        #expect(SequenceNumber(0) < SequenceNumber(0x7fff_ffff))
        // Just over half the space ahead counts as behind.
        #expect(SequenceNumber(0x8000_0001) < SequenceNumber(0))
    }

    @Test func addsAndSubtractsWithWrap() {
        #expect(SequenceNumber(0xffff_fff0) + 0x20 == SequenceNumber(0x10))
        #expect(SequenceNumber(0x10) - 0x20 == SequenceNumber(0xffff_fff0))
        #expect(SequenceNumber(0x10) + -0x20 == SequenceNumber(0xffff_fff0))
        #expect(SequenceNumber(0xffff_fff0) - -0x20 == SequenceNumber(0x10))
        var s = SequenceNumber(0xffff_ffff)
        s += 1
        #expect(s == SequenceNumber(0))
        s -= 2
        #expect(s == SequenceNumber(0xffff_fffe))
    }

    @Test func distancesAreSigned() {
        #expect(SequenceNumber(0x10) - SequenceNumber(0xffff_fff0) == 0x20)
        #expect(SequenceNumber(0xffff_fff0) - SequenceNumber(0x10) == -0x20)
        #expect(SequenceNumber(100) - SequenceNumber(100) == 0)
        #expect(SequenceNumber(0x7fff_ffff) - SequenceNumber(0) == Int(Int32.max))
        #expect(SequenceNumber(0x8000_0000) - SequenceNumber(0) == Int(Int32.min))
        let a = SequenceNumber(0xffff_ff00)
        #expect(a + (SequenceNumber(0x100) - a) == SequenceNumber(0x100))
    }

    @Test func windowsAcrossTheWrap() {
        let start = SequenceNumber(0xffff_fff0)
        #expect(start.isInWindow(start: start, size: 0x20))
        #expect(SequenceNumber(0xffff_ffff).isInWindow(start: start, size: 0x20))
        #expect(SequenceNumber(0).isInWindow(start: start, size: 0x20))
        #expect(SequenceNumber(0xf).isInWindow(start: start, size: 0x20))
        #expect(!SequenceNumber(0x10).isInWindow(start: start, size: 0x20)) // one past the end
        #expect(!SequenceNumber(0xffff_ffef).isInWindow(start: start, size: 0x20)) // one before
        #expect(!start.isInWindow(start: start, size: 0)) // empty window holds nothing
        #expect(!start.isInWindow(start: start, size: -1))
        #expect(SequenceNumber(7).isInWindow(start: SequenceNumber(8), size: 1 << 32)) // whole space
        #expect(SequenceNumber(1 << 30).isInWindow(start: SequenceNumber(0), size: (1 << 30) + 1))
    }

    @Test func minAndMaxFollowModularOrder() {
        let late = SequenceNumber(0xffff_fff0)
        let early = SequenceNumber(0x10)
        #expect(min(late, early) == late)
        #expect(max(late, early) == early)
        #expect(min(SequenceNumber(3), SequenceNumber(4)) == SequenceNumber(3))
        #expect([early, late, SequenceNumber(0)].max() == early)
    }

    @Test func describesAsDecimal() {
        #expect(SequenceNumber(0xffff_ffff).description == "4294967295")
        #expect("\(SequenceNumber(42))" == "42")
    }
}
