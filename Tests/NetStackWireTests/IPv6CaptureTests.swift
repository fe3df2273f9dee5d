import Foundation
import Testing
@testable import NetStackWire

// IPv6 frames captured from Linux in two network namespaces (fd00::1 and
// fd00::2 on a veth pair; Captures/capture.sh, `capture.sh v6`): neighbour
// discovery, ping -6, a TCP connection, and the kernel's answers to hand-built
// extension header chains. Expected values come from what the tools were told
// to send and from `tshark -r FILE -V` on the same files.

let ipv6CaptureNames = ["ndp.pcap", "ping6.pcap", "tcp6-handshake.pcap", "icmp6-errors.pcap"]

/// What the views make of one IPv6 frame, as plain values.
struct Dissection6 {
    var ethernet: EthernetRepr
    var ip: IPv6Repr
    /// The IPv6 packet (fixed header and payload).
    var packet: [UInt8]
    var chain: IPv6ChainEnd
    var icmp: ICMPv6Repr?
    var icmpType: UInt8?
    var icmpChecksum: UInt16 = 0
    var icmpChecksumValid = false
    var icmpData: [UInt8] = []
    var ndp: NDPRepr?
    var ndpOptions: [NDPOption] = []
    var tcp: TCPRepr?
    var tcpChecksum: UInt16 = 0
    var tcpChecksumValid = false
    var tcpPayload: [UInt8] = []
    var udp: UDPRepr?
    var udpChecksumValid = false
}

/// Parses an IPv6 frame through every layer the views know, stepping over
/// atomic fragments. Throws if a layer refuses it.
func dissect6(_ frame: [UInt8]) throws -> Dissection6 {
    var bytes = frame
    return try bytes.withUnsafeMutableBytes { buf -> Dissection6 in
        let eth = try EthernetFrame(validating: buf)
        try #require(eth.etherType == .ipv6)
        let ip = try IPv6Packet(validating: eth.payload)
        let chain = IPv6ExtensionChain.walk(ip, continueAfterAtomicFragments: true)
        var d = Dissection6(ethernet: EthernetRepr(parsing: eth), ip: IPv6Repr(parsing: ip), packet: ip.bytes.array,
                            chain: chain)
        guard case .upperLayer(let proto, let offset, _) = chain else { return d }
        let upper = ip.bytes.slice(offset..<ip.bytes.count)
        let (source, destination) = (ip.source, ip.destination)
        switch proto {
        case .icmpv6:
            let icmp = try ICMPv6Packet(validating: upper)
            d.icmp = ICMPv6Repr(parsing: icmp)
            d.icmpType = icmp.type
            d.icmpChecksum = icmp.checksum
            d.icmpChecksumValid = icmp.checksumIsValid(source: source, destination: destination)
            d.icmpData = icmp.data.array
            switch icmp.type {
            case ICMPv6Type.neighborSolicitation:
                let m = try NeighborSolicitation(validating: upper)
                (d.ndp, d.ndpOptions) = (NDPRepr(parsing: m), Array(m.options))
            case ICMPv6Type.neighborAdvertisement:
                let m = try NeighborAdvertisement(validating: upper)
                (d.ndp, d.ndpOptions) = (NDPRepr(parsing: m), Array(m.options))
            case ICMPv6Type.routerSolicitation:
                let m = try RouterSolicitation(validating: upper)
                (d.ndp, d.ndpOptions) = (NDPRepr(parsing: m), Array(m.options))
            default:
                break
            }
        case .tcp:
            let s = try TCPSegment(validating: upper)
            d.tcp = try TCPRepr(parsing: s)
            d.tcpChecksum = s.checksum
            d.tcpChecksumValid = s.checksumIsValid(source: .v6(source), destination: .v6(destination))
            d.tcpPayload = s.payload.array
        case .udp:
            let u = try UDPDatagram(validating: upper)
            d.udp = UDPRepr(parsing: u)
            d.udpChecksumValid = u.checksumIsValid(source: .v6(source), destination: .v6(destination))
        default:
            break
        }
        return d
    }
}

private func dissectAll6(_ name: String) throws -> [Dissection6] {
    try loadCapture(name).map { try dissect6($0.bytes) }
}

@Suite struct IPv6CaptureTests {
    let a = Capture.ip6A, b = Capture.ip6B

    @Test func readsCaptureFiles() throws {
        // Lengths and first timestamps as tshark reports them (dumpcap: microseconds).
        let expected: [String: (lengths: [Int], first: (UInt32, UInt32))] = [
            "ndp.pcap": ([86, 70, 86, 86], (1_796_341_703, 578_388_000)),
            "ping6.pcap": ([118, 118, 118, 118], (1_796_341_708, 582_482_000)),
            "tcp6-handshake.pcap": ([94, 94, 86, 103, 86, 86, 86, 86], (1_796_341_711, 388_619_000)),
            "icmp6-errors.pcap": ([67, 115, 75, 123, 75, 75, 123, 75, 123, 75, 91, 139, 91, 139, 83, 131, 67, 115,
                                   75, 123, 75, 75], (1_796_341_713, 697_366_000)),
        ]
        var total = 0
        for name in ipv6CaptureNames {
            let data = try Array(Data(contentsOf: capturesDirectory.appendingPathComponent(name)))
            total += data.count
            let (nano, records) = try readPcap(data)
            let e = try #require(expected[name])
            #expect(!nano, "\(name)")
            #expect(records.map(\.bytes.count) == e.lengths, "\(name)")
            #expect(records.allSatisfy { $0.originalLength == $0.bytes.count }, "\(name) has truncated frames")
            #expect(records.first?.seconds == e.first.0 && records.first?.nanoseconds == e.first.1, "\(name)")
        }
        #expect(total < 8_192)  // the test data stays small
    }

    // MARK: Every frame, every layer

    @Test(arguments: ipv6CaptureNames)
    func everyFrameParsesAndVerifies(name: String) throws {
        for (i, record) in try loadCapture(name).enumerated() {
            let what = "\(name) #\(i + 1)"
            let d = try dissect6(record.bytes)
            #expect(14 + 40 + d.ip.payloadLength == record.bytes.count, "\(what): no padding expected on veth")
            #expect(d.packet == Array(record.bytes[14...]))
            // Link addresses follow from the IPv6 ones (RFC 2464 7 for multicast).
            let fromA = d.ethernet.source == Capture.macA
            #expect(fromA || d.ethernet.source == Capture.macB, "\(what)")
            if d.ip.destination.isMulticast {
                #expect(d.ethernet.destination == d.ip.destination.multicastMAC, "\(what)")
            } else {
                #expect(d.ethernet.destination == (fromA ? Capture.macB : Capture.macA), "\(what)")
            }
            if d.icmpType != nil { #expect(d.icmpChecksumValid, "\(what): ICMPv6 checksum") }
            if d.tcp != nil { #expect(d.tcpChecksumValid, "\(what): TCP checksum") }
            if d.udp != nil { #expect(d.udpChecksumValid, "\(what): UDP checksum") }
            // The fixed header, parsed and emitted again, is the original.
            var header = [UInt8](repeating: 0, count: 40)
            header.withUnsafeMutableBytes { d.ip.emit(into: $0) }
            #expect(header == Array(d.packet[0..<40]), "\(what)")
            // Every frame but the hand-built ones holds an upper layer the views read.
            if name != "icmp6-errors.pcap" {
                #expect(d.icmpType != nil || d.tcp != nil, "\(what)")
            }
        }
    }

    // MARK: Neighbour discovery

    @Test func neighborDiscovery() throws {
        let frames = try dissectAll6("ndp.pcap")
        try #require(frames.count == 4)
        #expect(frames.allSatisfy { $0.ip.hopLimit == 255 && $0.ip.nextHeader == .icmpv6 })
        #expect(frames.map(\.icmpChecksum) == [0xfae7, 0x672c, 0x7397, 0x129a])
        let linkLocalA = IPv6Address.linkLocal(eui64: Capture.macA)
        #expect(linkLocalA == Capture.linkLocalA)

        // Duplicate address detection of A's link-local address: from ::, to
        // its solicited-node group, no link-layer address, Linux's nonce.
        let dad = frames[0]
        #expect(dad.ip.source == .unspecified && dad.ip.destination == linkLocalA.solicitedNodeMulticast)
        #expect(dad.ethernet.destination == MACAddress(0x33, 0x33, 0xff, 0, 0, 1))
        #expect(dad.ndp == .neighborSolicitation(target: linkLocalA, sourceLinkLayer: nil))
        #expect(dad.ndpOptions == [.other(type: 14)])

        let rs = frames[1]
        #expect(rs.ip.source == linkLocalA && rs.ip.destination == .allRouters)
        #expect(rs.ethernet.destination == MACAddress(0x33, 0x33, 0, 0, 0, 2))
        #expect(rs.ndp == .routerSolicitation(sourceLinkLayer: Capture.macA))

        let ns = frames[2]
        #expect(ns.ip.source == a && ns.ip.destination == b.solicitedNodeMulticast)
        #expect(ns.ip.destination.isSolicitedNodeMulticast && ns.ip.destination.description == "ff02::1:ff00:2")
        #expect(ns.ndp == .neighborSolicitation(target: b, sourceLinkLayer: Capture.macA))

        let na = frames[3]
        #expect(na.ip.source == b && na.ip.destination == a)
        #expect(na.ndp == .neighborAdvertisement(target: b, router: false, solicited: true, override: true,
                                                 targetLinkLayer: Capture.macB))
        // What the views read, emitted again, is what Linux sent.
        for d in frames[1...] {
            let ndp = try #require(d.ndp)
            var out = [UInt8](repeating: 0, count: ndp.length)
            out.withUnsafeMutableBytes { ndp.emit(into: $0, source: d.ip.source, destination: d.ip.destination) }
            #expect(out == Array(d.packet[40...]), "\(ndp)")
        }
    }

    // MARK: ping -6

    @Test func pingEchoRequestsAndReplies() throws {
        let frames = try dissectAll6("ping6.pcap")
        try #require(frames.count == 4)
        // `ping -6 -c 2`: identifier 0x359a, sequences 1 and 2, 56 data bytes;
        // per tshark, these flow labels and checksums.
        let flowLabels: [UInt32] = [0x08_ff07, 0x0e_a0e2, 0x08_ff07, 0x0e_a0e2]
        let checksums: [UInt16] = [0x63c4, 0x62c4, 0xfea6, 0xfda6]
        for (i, d) in frames.enumerated() {
            let isRequest = i % 2 == 0
            let seq = UInt16(i / 2 + 1)
            #expect(d.ip == IPv6Repr(source: isRequest ? a : b, destination: isRequest ? b : a, nextHeader: .icmpv6,
                                     payloadLength: 64, hopLimit: 64, trafficClass: 0, flowLabel: flowLabels[i]))
            #expect(d.chain == .upperLayer(.icmpv6, offset: 40, nextHeaderField: 6))
            #expect(d.icmp == ICMPv6Repr(message: isRequest ? .echoRequest(identifier: 0x359a, sequence: seq)
                                                            : .echoReply(identifier: 0x359a, sequence: seq),
                                         dataLength: 56))
            #expect(d.icmpChecksum == checksums[i])
            #expect(Array(d.icmpData[16...]) == (16..<56).map { UInt8($0) })
        }
        #expect(frames[0].icmpData == ping6Data)
        #expect(frames[0].icmpData == frames[1].icmpData && frames[2].icmpData == frames[3].icmpData)
    }

    /// The request turned into a reply in place (swap addresses, type 128 ->
    /// 129 with an RFC 1624 patch: the pseudo-header's sum does not change)
    /// is exactly the ICMPv6 message Linux replied with.
    @Test func inPlaceEchoReplyMatchesKernel() throws {
        let records = try loadCapture("ping6.pcap")
        var request = records[0].bytes
        let kernelReply = records[1].bytes
        try request.withUnsafeMutableBytes { buf in
            let eth = try EthernetFrame(validating: buf)
            (eth.source, eth.destination) = (eth.destination, eth.source)
            let ip = try IPv6Packet(validating: eth.payload)
            (ip.source, ip.destination) = (ip.destination, ip.source)
            ip.flowLabel = 0x0e_a0e2  // the kernel's own flow label for its reply
            let icmp = try ICMPv6Packet(validating: ip.payload)
            icmp.checksum = InternetChecksum.update(icmp.checksum, old: UInt16(icmp.type) << 8 | UInt16(icmp.code),
                                                    new: UInt16(ICMPv6Type.echoReply) << 8)
            icmp.type = ICMPv6Type.echoReply
            #expect(icmp.checksumIsValid(source: ip.source, destination: ip.destination))
        }
        #expect(request == kernelReply)
    }

    // MARK: TCP over IPv6

    @Test func tcpConnection() throws {
        let frames = try dissectAll6("tcp6-handshake.pcap")
        try #require(frames.count == 8)
        let tcps = try frames.map { try #require($0.tcp) }
        // Per tshark: raw sequence numbers, flags, windows, checksums.
        let clientISN = SequenceNumber(2_852_595_078), serverISN = SequenceNumber(288_187_202)
        #expect(tcps[0].seq == clientISN && tcps[1].seq == serverISN)
        #expect(tcps.map(\.flags) == [.syn, [.syn, .ack], .ack, [.psh, .ack], .ack, [.fin, .ack], [.fin, .ack], .ack])
        #expect(tcps.map(\.window) == [64800, 64260, 64, 64, 63, 64, 63, 64])
        #expect(frames.map(\.tcpChecksum) == [0xd2aa, 0x8822, 0xb1a2, 0x9d36, 0xb0ca, 0xb064, 0xb000, 0xafff])
        for (d, t) in zip(frames, tcps) {
            let fromClient = d.ip.source == a
            #expect(t.sourcePort == (fromClient ? 40000 : 8080) && t.destinationPort == (fromClient ? 8080 : 40000))
            #expect(d.ip.flowLabel == (fromClient ? 0x02_f5ea : 0x0b_7e36) && d.ip.hopLimit == 64)
        }
        #expect(tcps[0].options == TCPOptions(mss: 1440, windowScale: 10, sackPermitted: true,
                                              timestamps: (value: 413_850_168, echoReply: 0)))
        #expect(tcps[1].ack == clientISN + 1 && tcps[1].options.mss == 1440)  // 1500 - 40 - 20
        #expect(tcps[3].payloadLength == 17 && frames[3].tcpPayload == Array("hello, netstack6\n".utf8))
        #expect(tcps[4].ack == clientISN + 18)
        #expect(tcps[7].seq == clientISN + 19 && tcps[7].ack == serverISN + 2)

        // Each segment emitted again over the IPv6 pseudo-header is the original.
        for (i, (d, t)) in zip(frames, tcps).enumerated() {
            let original = Array(d.packet[40...])
            var out = [UInt8](repeating: 0, count: t.length)
            out.replaceSubrange(t.headerLength..., with: d.tcpPayload)
            out.withUnsafeMutableBytes { t.emit(into: $0, source: .v6(d.ip.source), destination: .v6(d.ip.destination)) }
            #expect(out == original, "segment \(i + 1)")
        }
    }

    // MARK: Extension headers: the walk agrees with Linux

    /// What Linux does with each hand-built packet of icmp6-errors.pcap (in
    /// capture.sh's order), and what the walk says. Linux answers what it
    /// takes to the closed port with a port unreachable.
    static let chains: [(what: String, walk: IPv6ChainEnd, kernel: ICMPv6Message?)] = [
        ("plain UDP", .upperLayer(.udp, offset: 40, nextHeaderField: 6), .destinationUnreachable(code: 4)),
        ("option 00", .upperLayer(.udp, offset: 48, nextHeaderField: 40), .destinationUnreachable(code: 4)),
        ("option 01", .discard(.unknownOption), nil),
        ("option 10", .parameterProblem(code: 2, pointer: 42), .parameterProblem(code: 2, pointer: 42)),
        ("option 11", .parameterProblem(code: 2, pointer: 42), .parameterProblem(code: 2, pointer: 42)),
        ("option 11 to ff02::1", .discard(.unknownOption), nil),
        ("routing type 0, 1 left", .parameterProblem(code: 0, pointer: 42), .parameterProblem(code: 0, pointer: 42)),
        ("routing type 0, 0 left", .upperLayer(.udp, offset: 64, nextHeaderField: 40), .destinationUnreachable(code: 4)),
        ("hop-by-hop second", .parameterProblem(code: 1, pointer: 40), .parameterProblem(code: 1, pointer: 40)),
        ("next header 253", .upperLayer(IPProtocol(rawValue: 253), offset: 40, nextHeaderField: 6),
         .parameterProblem(code: 1, pointer: 6)),
        ("atomic fragment", .upperLayer(.udp, offset: 48, nextHeaderField: 40), .destinationUnreachable(code: 4)),
        ("header past the end", .discard(.truncated), nil),
        ("PadN not zero", .discard(.badPadding), nil),
    ]

    @Test func extensionChainsAgreeWithLinux() throws {
        let records = try loadCapture("icmp6-errors.pcap")
        let frames = try records.map { try dissect6($0.bytes) }
        var i = 0
        for expected in Self.chains {
            try #require(i < frames.count, "\(expected.what): missing")
            let sent = frames[i]
            #expect(sent.ip.source == a && sent.ethernet.source == Capture.macA, "\(expected.what)")
            #expect(sent.chain == expected.walk, "\(expected.what)")
            // The next frame is B's answer, if any.
            let answer = i + 1 < frames.count && frames[i + 1].ip.source == b ? frames[i + 1] : nil
            i += answer == nil ? 1 : 2
            #expect(answer?.icmp?.message == expected.kernel, "\(expected.what)")
            guard let answer else { continue }
            // The error quotes the whole packet and verifies.
            #expect(answer.ip.destination == a && answer.ip.hopLimit == 64, "\(expected.what)")
            #expect(answer.icmpChecksumValid && answer.icmpData == sent.packet, "\(expected.what)")
            var quote = answer.icmpData
            try quote.withUnsafeMutableBytes { buf in
                let q = try IPv6Packet(validatingQuoted: buf)
                #expect(IPv6Repr(parsing: q) == sent.ip)
                #expect(IPv6ExtensionChain.walk(q, continueAfterAtomicFragments: true) == expected.walk)
            }
            // The error's header, emitted over the quote, is Linux's (checksum included).
            let repr = try #require(answer.icmp)
            var header = [UInt8](repeating: 0, count: 8)
            answer.icmpData.withUnsafeBytes { data in
                header.withUnsafeMutableBytes { repr.emitHeader(into: $0, data: data, source: b, destination: a) }
            }
            #expect(header == Array(answer.packet[40..<48]), "\(expected.what)")
            // The stack's answer from the walk: code 1 at the field for an upper layer it does not know.
            let ours: ICMPv6Message? = switch sent.chain {
            case .upperLayer(.udp, _, _): .destinationUnreachable(code: ICMPv6Unreachable.port)
            case .upperLayer(_, _, let field): .parameterProblem(code: 1, pointer: UInt32(field))
            case .parameterProblem(let code, let pointer): .parameterProblem(code: code, pointer: UInt32(pointer))
            default: nil
            }
            #expect(ours == expected.kernel, "\(expected.what)")
        }
        #expect(i == frames.count)
        // Without stepping over atomic fragments the walk stops at them.
        let atomic = records[18].bytes
        var copy = atomic
        let end = try copy.withUnsafeMutableBytes { buf in
            IPv6ExtensionChain.walk(try IPv6Packet(validating: try EthernetFrame(validating: buf).payload))
        }
        #expect(end == .fragment(headerOffset: 40, nextHeaderField: 6))
    }
}
