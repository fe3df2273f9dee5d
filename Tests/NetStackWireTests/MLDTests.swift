import Testing
@testable import NetStackWire

// Vectors: an MLDv2 report by Linux 6.18 (captured on a TAP, frame 4 of a
// `netstack up --pcap` run), and queries built by hand.

/// The kernel joining ff02::1:ff00:1 and ff02::1:ff7a:75f6, from :: to
/// ff02::16: its hop-by-hop header, then the report.
let kernelMLDHopByHop = hex("3a00050200000100")
let kernelMLDReport = hex("8f00f6fe00000002"
                          + "04000000" + "ff02000000000000" + "00000001ff000001"
                          + "04000000" + "ff02000000000000" + "00000001ff7a75f6")

@Suite struct MLDWireTests {
    static let allMLDv2Routers = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 0x16)

    @Test func reportIsByteForByteTheKernels() {
        let repr = MLDv2ReportRepr(records: [
            (MLDRecordType.changeToExclude, IPv6Address(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x0001)),
            (MLDRecordType.changeToExclude, IPv6Address(0xff02, 0, 0, 0, 0, 1, 0xff7a, 0x75f6)),
        ])
        #expect(repr.length == kernelMLDReport.count)
        var out = [UInt8](repeating: 0xee, count: repr.length)
        out.withUnsafeMutableBytes { repr.emit(into: $0, source: .unspecified, destination: Self.allMLDv2Routers) }
        #expect(out == kernelMLDReport)
        var hbh = [UInt8](repeating: 0xee, count: IPv6RouterAlertHeader.length)
        hbh.withUnsafeMutableBytes { IPv6RouterAlertHeader.emit(into: $0, nextHeader: .icmpv6) }
        #expect(hbh == kernelMLDHopByHop)
    }

    static func query(length: Int, code: UInt16, group: IPv6Address = .unspecified, sources: UInt16 = 0) -> [UInt8] {
        var m = [UInt8](repeating: 0, count: length)
        m[0] = MLDType.query
        m[4] = UInt8(code >> 8)
        m[5] = UInt8(code & 0xff)
        m.withUnsafeMutableBytes { $0.setIPv6(8, group) }
        if length >= 28 { m[26] = UInt8(sources >> 8); m[27] = UInt8(sources & 0xff) }
        return m
    }

    static func parse(_ bytes: [UInt8]) throws -> (v2: Bool, delay: Int, group: IPv6Address, sources: Int) {
        var copy = bytes
        return try copy.withUnsafeMutableBytes { b in
            let q = try MLDQuery(validating: b)
            return (q.isVersion2, q.maximumResponseDelayMilliseconds, q.multicastAddress, q.sourceCount)
        }
    }

    @Test func queriesOfBothVersionsAndTheirDelays() throws {
        let v1 = try Self.parse(Self.query(length: 24, code: 10_000))
        #expect(!v1.v2 && v1.delay == 10_000 && v1.group.isUnspecified)
        let v2 = try Self.parse(Self.query(length: 28, code: 10_000))
        #expect(v2.v2 && v2.delay == 10_000)
        // RFC 3810 5.1.3: 1 eee mmmm mmmm mmmm is (mant | 0x1000) << (exp + 3).
        #expect(try Self.parse(Self.query(length: 28, code: 0x8000)).delay == 0x1000 << 3)
        #expect(try Self.parse(Self.query(length: 28, code: 0xF0FF)).delay == 0x10FF << 10)
        let group = IPv6Address(0xff02, 0, 0, 0, 0, 1, 0xff00, 2)
        let specific = try Self.parse(Self.query(length: 28 + 32, code: 1, group: group, sources: 2))
        #expect(specific.group == group && specific.sources == 2)
    }

    @Test func badQueriesAreRefused() {
        #expect(throws: WireError.truncated) { try Self.parse(Array(Self.query(length: 24, code: 1).prefix(23))) }
        // Between the two versions' lengths: neither.
        #expect(throws: WireError.badLength) { try Self.parse(Self.query(length: 26, code: 1)) }
        // More sources claimed than present.
        #expect(throws: WireError.truncated) { try Self.parse(Self.query(length: 28 + 16, code: 1, sources: 2)) }
        var report = Self.query(length: 28, code: 1)
        report[0] = MLDType.reportV2
        #expect(throws: WireError.unsupported) { try Self.parse(report) }
        var coded = Self.query(length: 28, code: 1)
        coded[1] = 1
        #expect(throws: WireError.unsupported) { try Self.parse(coded) }
    }
}
