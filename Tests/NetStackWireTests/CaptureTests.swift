import Foundation
import Testing
@testable import NetStackWire

// Frames captured from Linux tools (ping, the kernel's ARP and ICMP, Python
// UDP sockets) in two network namespaces; see Captures/capture.sh. Expected
// values come from what the tools were told to send and from tshark's
// dissection of the same files, not from the code under test.

/// What the views make of one frame, as plain values.
struct Dissection {
    var ethernet: EthernetRepr
    var arp: ARPRepr?
    var ip: IPv4Repr?
    var ipHeaderLength = 0
    var ipChecksumValid = false
    var isFragment = false
    var ipPayload: [UInt8] = []
    var icmp: ICMPv4Repr?
    var icmpChecksumValid = false
    var icmpData: [UInt8] = []
    var udp: UDPRepr?
    var udpChecksum: UInt16 = 0
    var udpChecksumValid = false
    var udpPayload: [UInt8] = []
}

/// Parses a frame through every layer the views know. Throws if any layer refuses it.
func dissect(_ frame: [UInt8]) throws -> Dissection {
    var bytes = frame
    return try bytes.withUnsafeMutableBytes { buf -> Dissection in
        let eth = try EthernetFrame(validating: buf)
        var d = Dissection(ethernet: EthernetRepr(parsing: eth))
        switch eth.etherType {
        case .arp:
            d.arp = ARPRepr(parsing: try ARPPacket(validating: eth.payload))
        case .ipv4:
            let ip = try IPv4Packet(validating: eth.payload)
            d.ip = IPv4Repr(parsing: ip)
            d.ipHeaderLength = ip.headerLength
            d.ipChecksumValid = ip.checksumIsValid
            d.isFragment = ip.isFragment
            d.ipPayload = ip.payload.array
            // Later fragments carry no transport header.
            guard ip.fragmentOffset == 0 else { break }
            switch ip.protocol {
            case .icmp:
                let icmp = try ICMPv4Packet(validating: ip.payload)
                d.icmp = ICMPv4Repr(parsing: icmp)
                d.icmpChecksumValid = icmp.checksumIsValid
                d.icmpData = icmp.data.array
            case .udp where !ip.isFragment:
                let udp = try UDPDatagram(validating: ip.payload)
                d.udp = UDPRepr(parsing: udp)
                d.udpChecksum = udp.checksum
                d.udpChecksumValid = udp.checksumIsValid(source: ip.source, destination: ip.destination)
                d.udpPayload = udp.payload.array
            default:
                break
            }
        default:
            break
        }
        return d
    }
}

private func dissectAll(_ name: String) throws -> [Dissection] {
    try loadCapture(name).map { try dissect($0.bytes) }
}

@Suite struct CaptureTests {
    // MARK: The pcap reader

    @Test func readsCaptureFiles() throws {
        // Counts, lengths and timestamps as capinfos and tshark report them.
        let expected: [String: (nano: Bool, lengths: [Int], first: (UInt32, UInt32))] = [
            "arp.pcap": (false, [42, 42], (1_795_606_407, 693_094_000)),
            "ping.pcap": (false, [98, 98, 98, 98], (1_795_606_409, 720_949_000)),
            "ping-fragmented.pcap": (true, [1514, 1514, 1082], (1_795_606_411, 956_099_104)),
            "udp.pcap": (false, [58, 45, 42, 58, 53, 56, 84], (1_795_606_414, 710_323_000)),
        ]
        var total = 0
        for name in captureNames {
            let data = try Array(Data(contentsOf: capturesDirectory.appendingPathComponent(name)))
            total += data.count
            let (nano, records) = try readPcap(data)
            let e = try #require(expected[name])
            #expect(nano == e.nano, "\(name)")
            #expect(records.map(\.bytes.count) == e.lengths, "\(name)")
            #expect(records.allSatisfy { $0.originalLength == $0.bytes.count }, "\(name) has truncated frames")
            #expect(records.first?.seconds == e.first.0 && records.first?.nanoseconds == e.first.1, "\(name)")
        }
        #expect(total < 8_192)  // the test data stays small
    }

    @Test func readsBigEndianAndRejectsGarbage() throws {
        // A big-endian microsecond file with one 3-byte record.
        let file: [UInt8] = hex("a1b2c3d4 0002 0004 00000000 00000000 0000ffff 00000001")
            + hex("00000010 00000020 00000003 00000005 abcdef")
        let (nano, records) = try readPcap(file)
        #expect(!nano)
        #expect(records.count == 1)
        #expect(records[0].seconds == 16 && records[0].nanoseconds == 32_000)
        #expect(records[0].originalLength == 5 && records[0].bytes == [0xab, 0xcd, 0xef])
        #expect(throws: PcapError.badMagic) { try readPcap([UInt8](repeating: 0, count: 24)) }
        #expect(throws: PcapError.truncated) { try readPcap(Array(file.dropLast())) }
    }

    // MARK: Every frame, every layer

    @Test(arguments: captureNames)
    func everyFrameParsesAndVerifies(name: String) throws {
        let frames = try loadCapture(name)
        #expect(!frames.isEmpty)
        for (i, record) in frames.enumerated() {
            let d = try dissect(record.bytes)
            #expect(d.arp != nil || d.ip != nil, "\(name) #\(i + 1): neither ARP nor IPv4")
            if let ip = d.ip {
                #expect(d.ipChecksumValid, "\(name) #\(i + 1): IPv4 header checksum")
                #expect(14 + d.ipHeaderLength + ip.payloadLength == record.bytes.count,
                        "\(name) #\(i + 1): no padding expected on veth")
                if !d.isFragment {
                    #expect(d.icmp != nil || d.udp != nil, "\(name) #\(i + 1): no transport parsed")
                    if d.icmp != nil { #expect(d.icmpChecksumValid, "\(name) #\(i + 1): ICMP checksum") }
                    if d.udp != nil { #expect(d.udpChecksumValid, "\(name) #\(i + 1): UDP checksum") }
                }
            }
        }
    }

    /// Plain values parsed from a view and emitted again give the original header bytes.
    @Test(arguments: captureNames)
    func reprsReproduceOriginalBytes(name: String) throws {
        for (i, record) in try loadCapture(name).enumerated() {
            let frame = record.bytes
            let d = try dissect(frame)
            let what = "\(name) #\(i + 1)"

            var eth = [UInt8](repeating: 0, count: 14)
            eth.withUnsafeMutableBytes { d.ethernet.emit(into: $0) }
            #expect(eth == Array(frame[0..<14]), "\(what): Ethernet")

            if let arp = d.arp {
                var out = [UInt8](repeating: 0, count: 28)
                out.withUnsafeMutableBytes { arp.emit(into: $0) }
                #expect(out == Array(frame[14..<42]), "\(what): ARP")
            }
            guard let ip = d.ip else { continue }
            #expect(d.ipHeaderLength == 20)
            var header = [UInt8](repeating: 0, count: 20)
            header.withUnsafeMutableBytes { ip.emit(into: $0) }
            #expect(header == Array(frame[14..<34]), "\(what): IPv4 (checksum included)")

            let transport = Array(frame[34...])
            if let udp = d.udp {
                var out = [UInt8](repeating: 0, count: 8) + Array(transport[8...])
                out.withUnsafeMutableBytes { udp.emit(into: $0, source: ip.source, destination: ip.destination) }
                if d.udpChecksum == 0 {
                    // Sent without a checksum (SO_NO_CHECK); emit always computes one.
                    #expect(Array(out[0..<6]) == Array(transport[0..<6]), "\(what): UDP")
                    #expect(readBE16(out, 6) != 0)
                    #expect(referenceSum(pseudoHeader(source: ip.source, destination: ip.destination,
                                                      protocol: 17, length: out.count) + out) == 0xffff)
                } else {
                    #expect(out == transport, "\(what): UDP")
                }
            }
            if let icmp = d.icmp, !d.isFragment {
                var out = [UInt8](repeating: 0, count: 8) + d.icmpData
                out.withUnsafeMutableBytes { icmp.emit(into: $0) }
                #expect(out == transport, "\(what): ICMP")
            }
        }
    }

    // MARK: What the tools sent

    @Test func arpRequestAndReply() throws {
        let frames = try dissectAll("arp.pcap")
        try #require(frames.count == 2)
        #expect(frames[0].ethernet == EthernetRepr(destination: .broadcast, source: Capture.macA, etherType: .arp))
        #expect(frames[0].arp == ARPRepr(operation: .request, senderHardwareAddress: Capture.macA,
                                         senderProtocolAddress: Capture.ipA, targetHardwareAddress: .zero,
                                         targetProtocolAddress: Capture.ipB))
        #expect(frames[1].ethernet == EthernetRepr(destination: Capture.macA, source: Capture.macB, etherType: .arp))
        #expect(frames[1].arp == ARPRepr(operation: .reply, senderHardwareAddress: Capture.macB,
                                         senderProtocolAddress: Capture.ipB, targetHardwareAddress: Capture.macA,
                                         targetProtocolAddress: Capture.ipA))
    }

    @Test func pingEchoRequestsAndReplies() throws {
        let frames = try dissectAll("ping.pcap")
        try #require(frames.count == 4)
        // `ping -c 2`: identifier 0x67b5 (26549, tshark), sequences 1 and 2,
        // 56 data bytes: a 16-byte timestamp, then byte k = k (iputils' fill).
        let ipIDs: [UInt16] = [0x4104, 0xbb76, 0x412f, 0xbb8c]
        let checksums: [UInt16] = [0x1044, 0x1844, 0x232e, 0x2b2e]
        for (i, d) in frames.enumerated() {
            let isRequest = i % 2 == 0
            let seq = UInt16(i / 2 + 1)
            let ip = try #require(d.ip)
            #expect(d.ethernet.source == (isRequest ? Capture.macA : Capture.macB))
            #expect(d.ethernet.destination == (isRequest ? Capture.macB : Capture.macA))
            #expect(d.ethernet.etherType == .ipv4)
            #expect(ip == IPv4Repr(source: isRequest ? Capture.ipA : Capture.ipB,
                                   destination: isRequest ? Capture.ipB : Capture.ipA,
                                   protocol: .icmp, payloadLength: 64, timeToLive: 64, identification: ipIDs[i],
                                   dontFragment: isRequest, moreFragments: false, fragmentOffset: 0, dscpECN: 0))
            #expect(d.icmp == ICMPv4Repr(message: isRequest ? .echoRequest(identifier: 0x67b5, sequence: seq)
                                                            : .echoReply(identifier: 0x67b5, sequence: seq),
                                         dataLength: 56))
            #expect(readBE16(d.ipPayload, 2) == checksums[i])
            #expect(Array(d.icmpData[16...]) == (16..<56).map { UInt8($0) })
        }
        // The reply echoes the request's data.
        #expect(frames[0].icmpData == frames[1].icmpData)
        #expect(frames[2].icmpData == frames[3].icmpData)
    }

    /// Turning the captured request into a reply in place, as the stack does
    /// (swap addresses, type 8 -> 0, RFC 1624 patch), gives exactly the ICMP
    /// message the Linux kernel replied with.
    @Test func inPlaceEchoReplyMatchesKernel() throws {
        let records = try loadCapture("ping.pcap")
        var request = records[0].bytes
        let kernelReply = records[1].bytes
        try request.withUnsafeMutableBytes { buf in
            let eth = try EthernetFrame(validating: buf)
            (eth.source, eth.destination) = (eth.destination, eth.source)
            let ip = try IPv4Packet(validating: eth.payload)
            (ip.source, ip.destination) = (ip.destination, ip.source)
            let icmp = try ICMPv4Packet(validating: ip.payload)
            icmp.checksum = InternetChecksum.update(icmp.checksum, old: UInt16(icmp.type) << 8 | UInt16(icmp.code),
                                                    new: 0)
            icmp.type = ICMPv4Message.echoReplyType
            #expect(icmp.checksumIsValid)
            #expect(ip.checksumIsValid)  // swapping addresses leaves the header sum unchanged
        }
        #expect(Array(request[0..<14]) == Array(kernelReply[0..<14]))
        #expect(Array(request[34...]) == Array(kernelReply[34...]))
    }

    @Test func fragmentedPingReassembles() throws {
        let frames = try dissectAll("ping-fragmented.pcap")
        try #require(frames.count == 3)
        // `ping -s 4000 -p 5a` over a 1500-byte MTU: 4008 ICMP bytes in
        // fragments of 1480, 1480 and 1048 at offsets 0, 1480, 2960 (IP id 0x41fe).
        let ips = try frames.map { try #require($0.ip) }
        #expect(ips.map(\.fragmentOffset) == [0, 1480, 2960])
        #expect(ips.map(\.moreFragments) == [true, true, false])
        #expect(ips.map(\.payloadLength) == [1480, 1480, 1048])
        #expect(ips.allSatisfy { $0.identification == 0x41fe && !$0.dontFragment && $0.protocol == .icmp })
        #expect(frames.allSatisfy { $0.isFragment })

        // Each fragment starts where the previous ended; reassemble in order.
        var reassembled = [UInt8]()
        for (ip, d) in zip(ips, frames).sorted(by: { $0.0.fragmentOffset < $1.0.fragmentOffset }) {
            #expect(ip.fragmentOffset == reassembled.count)
            reassembled += d.ipPayload
        }
        #expect(reassembled.count == 4008)
        #expect(reassembled.count == ips.map(\.payloadLength).reduce(0, +))

        // The first fragment's ICMP header parses; its checksum covers the whole message.
        #expect(frames[0].icmp?.message == .echoRequest(identifier: 0x6810, sequence: 1))
        #expect(!frames[0].icmpChecksumValid)

        let icmpHeader = try reassembled.withUnsafeMutableBytes { buf in
            let icmp = try ICMPv4Packet(validating: buf)
            #expect(icmp.checksumIsValid)
            #expect(icmp.checksum == 0x2f16)
            let repr = ICMPv4Repr(parsing: icmp)
            #expect(repr == ICMPv4Repr(message: .echoRequest(identifier: 0x6810, sequence: 1), dataLength: 4000))
            #expect(icmp.data[16...].allSatisfy { $0 == 0x5a })
            return repr
        }
        var emitted = [UInt8](repeating: 0, count: 8) + Array(reassembled[8...])
        emitted.withUnsafeMutableBytes { icmpHeader.emit(into: $0) }
        #expect(emitted == reassembled)
    }

    @Test func udpDatagrams() throws {
        let frames = try dissectAll("udp.pcap")
        try #require(frames.count == 7)
        let zeroSumPrefix = Array("zero-checksum\0".utf8)
        // (source port, destination port, payload or its prefix, checksum, IP id), per tshark.
        let expected: [(UInt16, UInt16, [UInt8], UInt16, UInt16)] = [
            (40000, 9999, Array("hello, netstack\n".utf8), 0x1ea9, 0xbf8b),
            (40000, 9999, Array("odd".utf8), 0x5521, 0xbf90),
            (40000, 9999, [], 0x288c, 0xbf9a),
            (40000, 9999, zeroSumPrefix, 0xffff, 0xbfa4),  // computed zero, sent as all ones
            (40001, 9999, Array("no checksum".utf8), 0x0000, 0xbfae),  // SO_NO_CHECK
            (40000, 9, Array("nobody listens".utf8), 0xad65, 0xbfb0),
        ]
        for (i, e) in expected.enumerated() {
            let d = frames[i]
            let ip = try #require(d.ip)
            #expect(ip.source == Capture.ipA && ip.destination == Capture.ipB && ip.protocol == .udp)
            #expect(ip.identification == e.4 && ip.dontFragment && ip.timeToLive == 64)
            let udp = try #require(d.udp)
            #expect(udp.sourcePort == e.0 && udp.destinationPort == e.1)
            #expect(d.udpChecksum == e.3, "datagram \(i + 1)")
            #expect(d.udpChecksumValid, "datagram \(i + 1)")
            if i == 3 {
                #expect(d.udpPayload.count == 16 && Array(d.udpPayload[0..<14]) == e.2)
            } else {
                #expect(d.udpPayload == e.2, "datagram \(i + 1)")
            }
            #expect(udp.length == 8 + d.udpPayload.count)
        }

        // The all-ones datagram: filling its checksum again gives ffff, as Linux did.
        var zeroSum = try loadCapture("udp.pcap")[3].bytes
        try zeroSum.withUnsafeMutableBytes { buf in
            let ip = try IPv4Packet(validating: try EthernetFrame(validating: buf).payload)
            let udp = try UDPDatagram(validating: ip.payload)
            udp.checksum = 0
            udp.fillChecksum(source: ip.source, destination: ip.destination)
            #expect(udp.checksum == 0xffff)
        }
    }

    /// The kernel's answer to the datagram sent to closed port 9: ICMP
    /// destination unreachable (port), quoting the whole original datagram.
    @Test func portUnreachableQuotesOriginal() throws {
        let records = try loadCapture("udp.pcap")
        let frames = try records.map { try dissect($0.bytes) }
        let d = frames[6]
        let ip = try #require(d.ip)
        #expect(ip.source == Capture.ipB && ip.destination == Capture.ipA)
        #expect(ip.protocol == .icmp && ip.dscpECN == 0xc0 && !ip.dontFragment && ip.identification == 0xbdb4)
        #expect(d.icmp == ICMPv4Repr(message: .destinationUnreachable(.port), dataLength: 42))
        #expect(d.icmpChecksumValid)
        #expect(readBE16(d.ipPayload, 2) == 0x1127)
        // The quoted bytes are the IPv4 packet of frame 6, exactly.
        #expect(d.icmpData == Array(records[5].bytes[14...]))
        var quoted = d.icmpData
        try quoted.withUnsafeMutableBytes { buf in
            let inner = try IPv4Packet(validating: buf)
            #expect(inner.source == Capture.ipA && inner.destination == Capture.ipB && inner.protocol == .udp)
            #expect(inner.checksumIsValid)
            let udp = try UDPDatagram(validating: inner.payload)
            #expect(udp.sourcePort == 40000 && udp.destinationPort == 9)
            #expect(udp.checksumIsValid(source: inner.source, destination: inner.destination))
            // The quoted-header view reads it the same way.
            let q = try IPv4Packet(validatingQuoted: buf)
            #expect(IPv4Repr(parsing: q) == IPv4Repr(parsing: inner))
            #expect(q.payload.array == inner.payload.array)
        }
    }
}
