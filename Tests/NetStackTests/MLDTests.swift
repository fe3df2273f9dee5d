import Testing
@testable import NetStack
import NetStackWire

/// Multicast listener discovery as a host (RFC 3810): the solicited-node
/// groups are reported before DAD uses them, reports repeat once, queries
/// from a link-local router are answered within their delay, and invalid
/// ones are dropped.
@Suite struct MLDTests {
    typealias T = IPv6InterfaceTests
    static let router = IPv6Address(0xfe80, 0, 0, 0, 0, 0, 0, 0x99)
    static let allMLDv2Routers = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 0x16)

    /// An MLDv2 report the stack sent, decoded by hand.
    struct Report {
        let frame: Sent6
        init?(_ f: Sent6) {
            guard f.nextHeader == .hopByHopOptions, f.payload.count >= 16, f.payload[8] == 143 else { return nil }
            frame = f
        }
        var hopByHop: [UInt8] { Array(frame.payload[0..<8]) }
        var message: [UInt8] { Array(frame.payload[8...]) }
        var records: [(type: UInt8, group: IPv6Address)] {
            let m = message
            let count = Int(read16(m, 6))
            return (0..<count).map { i in (m[8 + 20 * i], Sent6.address(m, 8 + 20 * i + 4)) }
        }
        /// The checksum verifies over the pseudo-header naming ICMPv6 (58), not the hop-by-hop header.
        var checksumValid: Bool {
            let m = message
            let pseudo = Array(frame.bytes[22..<54]) + be32(UInt32(m.count)) + [0, 0, 0, 58]
            return ReferenceChecksum.verifies(pseudo + m)
        }
    }

    static func reports(_ frames: [CapturedFrame]) -> [Report] {
        frames.compactMap(Sent6.init).compactMap(Report.init)
    }

    static var groups: Set<IPv6Address> {
        [T.stack6.solicitedNodeMulticast, T.stackLinkLocal.solicitedNodeMulticast]
    }

    /// A query: general (unspecified group) or for `group`, version 2 unless `version1`.
    static func query(group: IPv6Address = .unspecified, maximumResponseCode: UInt16 = 1000,
                      from source: IPv6Address = router, hopLimit: UInt8 = 1, version1: Bool = false) -> [UInt8] {
        var m = [UInt8](repeating: 0, count: version1 ? 24 : 28)
        m[0] = MLDType.query
        m[4] = UInt8(maximumResponseCode >> 8)
        m[5] = UInt8(maximumResponseCode & 0xff)
        m.replaceSubrange(8..<24, with: be32(UInt32(group.high >> 32)) + be32(UInt32(truncatingIfNeeded: group.high))
            + be32(UInt32(group.low >> 32)) + be32(UInt32(truncatingIfNeeded: group.low)))
        let destination = group.isUnspecified ? IPv6Address.allNodes : group
        m.withUnsafeMutableBytes { b in
            try! ICMPv6Packet(validating: b).fillChecksum(source: source, destination: destination)
        }
        return T.frame(T.ipv6(source, destination, nextHeader: .icmpv6, payload: m, hopLimit: hopLimit),
                       to: destination.multicastMAC)
    }

    @Test func groupsAreReportedBeforeDADAndOnceMore() throws {
        let h = T.harness(settle: false)
        let first = h.advance(by: .zero)
        // The report precedes DAD's solicitations (RFC 4862 5.4.2).
        let report = try #require(Self.reports(first).first)
        #expect(Sent6(first[0])?.nextHeader == .hopByHopOptions)
        let f = report.frame
        #expect(f.source == .unspecified && f.destination == Self.allMLDv2Routers && f.hopLimit == 1)
        #expect(f.ethernetDestination == MACAddress(0x33, 0x33, 0, 0, 0, 0x16))
        #expect(report.hopByHop == [58, 0, 5, 2, 0, 0, 1, 0], "Router Alert, MLD (RFC 2711)")
        #expect(report.checksumValid)
        #expect(report.records.allSatisfy { $0.type == MLDRecordType.changeToExclude })
        // One record per group: both addresses end in 00:00:02, so they share one.
        #expect(Set(report.records.map(\.group)) == Self.groups && report.records.count == Self.groups.count)

        let second = Self.reports(h.advance(by: .seconds(1)))
        #expect(second.count == 1 && Set(second[0].records.map(\.group)) == Self.groups)
        #expect(Self.reports(h.advance(by: .seconds(1))).isEmpty)
        #expect(Self.reports(h.advance(by: .seconds(10))).isEmpty)
        #expect(h.counters.mldReportsOut == 2)
    }

    @Test func aGeneralQueryIsAnsweredWithinItsDelayFromTheLinkLocalAddress() throws {
        let h = T.harness()
        _ = h.advance(by: .seconds(2))
        #expect(h.exchange(Self.query(maximumResponseCode: 500)).isEmpty)
        var answers: [Report] = []
        for _ in 0..<6 {
            answers += Self.reports(h.advance(by: .milliseconds(100)))
        }
        let answer = try #require(answers.first)
        #expect(answers.count == 1)
        #expect(answer.frame.source == T.stackLinkLocal && answer.checksumValid)
        #expect(answer.records.allSatisfy { $0.type == MLDRecordType.modeIsExclude })
        #expect(Set(answer.records.map(\.group)) == Self.groups)
        #expect(h.counters.mldQueriesIn == 1)
    }

    @Test func aSpecificQueryIsAnsweredOnlyForAJoinedGroup() throws {
        let h = T.harness()
        _ = h.advance(by: .seconds(2))
        _ = h.exchange(Self.query(group: IPv6Address(0xff02, 0, 0, 0, 0, 1, 0xff12, 0x3456), maximumResponseCode: 100))
        #expect(Self.reports(h.advance(by: .seconds(1))).isEmpty)
        let ours = T.stack6.solicitedNodeMulticast
        // Version 1's query is answered too, in version 2.
        _ = h.exchange(Self.query(group: ours, maximumResponseCode: 100, version1: true))
        let answer = try #require(Self.reports(h.advance(by: .seconds(1))).first)
        #expect(answer.records.count == 1 && answer.records.first?.group == ours)
    }

    @Test func queriesFailingTheChecksAreDropped() {
        let h = T.harness()
        _ = h.advance(by: .seconds(2))
        _ = h.exchange(Self.query(hopLimit: 255))
        _ = h.exchange(Self.query(from: T.peer6))
        #expect(h.drops(.mldInvalid) == 2)
        #expect(Self.reports(h.advance(by: .seconds(2))).isEmpty)
    }

    @Test func aDuplicateAddressesGroupIsLeftUnlessAnotherAddressSharesIt() throws {
        // A global address whose solicited-node group is its own (not the link-local one's).
        let global = IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0xabcd, 0x1234)
        let h = PeerHarness { $0.address6 = IPv6CIDR(address: global, prefixLength: 64) }
        let joined = try #require(Self.reports(h.advance(by: .zero)).first)
        #expect(joined.records.count == 2)
        let theirs = T.ndp(.neighborSolicitation(target: global, sourceLinkLayer: nil), source: .unspecified,
                           destination: global.solicitedNodeMulticast)
        _ = h.exchange(T.frame(T.ipv6(.unspecified, global.solicitedNodeMulticast, nextHeader: .icmpv6,
                                      payload: theirs, hopLimit: 255),
                               to: global.solicitedNodeMulticast.multicastMAC))
        let next = try #require(Self.reports(h.advance(by: .seconds(1))).first)
        let left = try #require(next.records.first { $0.group == global.solicitedNodeMulticast })
        #expect(left.type == MLDRecordType.changeToInclude)
        // A query now names only the group still joined.
        _ = h.advance(by: .seconds(5))
        _ = h.exchange(Self.query(maximumResponseCode: 10))
        let answer = try #require(Self.reports(h.advance(by: .milliseconds(20))).first)
        #expect(answer.records.map(\.group) == [T.stackLinkLocal.solicitedNodeMulticast])
    }
}
