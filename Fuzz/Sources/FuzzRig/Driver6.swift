/// IPv6's templates (ops 16-31): neighbour discovery, ICMPv6 echo and
/// errors quoting live connections, UDP, fragments, extension header chains,
/// TCP on the IPv6 connections, SYNs, any fixed header, raw bytes. Control
/// bits 0-1 and 7 mean what they mean for IPv4 (`mutate`); bit 3 mostly
/// picks an odd source, as it does there.
extension FuzzDriver {
    /// The frame of IPv6 op `op` (the opcode mod 16), its fields from the input.
    func ipv6Template(_ op: UInt8, _ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        switch op {
        case 0: return neighbourSolicitation(rig, &input, control)
        case 1: return neighbourAdvertisement(rig, &input, control)
        case 2: return routerMessage(rig, &input, control)
        case 3:
            let source = source6(rig, &input, control)
            let destination = control & 0x04 != 0 ? destination6(rig, input.byte()) : Rig.stack6
            return rig.ip6Frame(source: source, destination: destination, nextHeader: 58,
                                hopLimit: control & 0x20 != 0 ? input.byte() : 64,
                                linkDestination: control & 0x40 != 0 ? multicastMAC(Rig.allNodes) : nil,
                                icmp6(source: source, destination: destination, type: 128, code: 0,
                                      rest: input.u32(), input.bytes(input.length(1452))))
        case 4: return icmp6Error(rig, &input, control)
        case 5:
            let port: UInt16 = [7, 9, 53, input.u16()][Int(control >> 2) & 3]
            let source = source6(rig, &input, control)
            let destination = control & 0x10 != 0 ? destination6(rig, input.byte()) : Rig.stack6
            return rig.ip6Frame(source: source, destination: destination, nextHeader: 17,
                                linkDestination: control & 0x40 != 0 ? multicastMAC(Rig.allNodes) : nil,
                                udp(source, destination, sourcePort: input.u16(), destinationPort: port,
                                    input.bytes(input.length(1452))))
        case 6, 7: return fragment6(rig, &input, control)
        case 8: return extensionChain(rig, &input, control)
        case 9, 10, 11, 12: return tcpSegment(rig, &input, control, v6: true)
        case 13:
            let port: UInt16 = [7, 9, 80, input.u16()][Int(control >> 2) & 3]
            // From the peer, its link-local address, a neighbour to resolve first, or off the prefix.
            let pick = control & 0x08 != 0 ? input.byte() : 0
            let source = [Rig.peer6, Rig.peerLinkLocal, Self.neighbour6(pick >> 2), ip6(0x2001_0db8 << 32, 1)][Int(pick) % 4]
            let c = TrackedConnection(peerPort: 30000 &+ UInt16(input.byte()), stackPort: port, peerNext: input.u32(),
                                      stackNext: 0, peer6: source,
                                      stack6: source == Rig.peerLinkLocal ? rig.stackLinkLocal : Rig.stack6)
            let options = control & 0x10 != 0 ? input.bytes(Int(input.byte() % 41)) : Rig.synOptions
            return rig.tcpFrame(c, flags: control & 0x20 != 0 ? input.byte() : 0x02, options: options)
        case 14: return anyHeader6(rig, &input, control)
        default:
            return ethernet(destination: control & 0x40 != 0 ? multicastMAC(Rig.allNodes) : rig.stackMAC,
                            source: Rig.peerMAC, type: 0x86dd, input.bytes(input.length(1500)))
        }
    }

    /// fd00::3 to fd00::8: neighbours on the prefix the stack has not met,
    /// few enough that an advertisement meets a resolution in progress.
    static func neighbour6(_ n: UInt8) -> [UInt8] { ip6(0xfd00 << 48, 3 + UInt64(n % 6)) }

    /// A source address: mostly the peer; with control bit 3 its link-local
    /// address, a neighbour, the unspecified or loopback address, one of
    /// ours, a multicast group, an IPv4-mapped address or one off every prefix.
    func source6(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        guard control & 0x08 != 0 else { return Rig.peer6 }
        let pick = input.byte()
        switch pick % 9 {
        case 0: return Self.neighbour6(pick >> 4)
        case 1: return Rig.peerLinkLocal
        case 2: return ip6(0, 0)
        case 3: return ip6(0, 1)
        case 4: return Rig.stack6
        case 5: return rig.stackLinkLocal
        case 6: return Rig.allNodes
        case 7: return ip6(0, 0xffff_0a00_0001)
        default: return ip6(0x2001_0db8 << 32, UInt64(pick))
        }
    }

    /// A destination besides our global address: our link-local one, all
    /// nodes, our solicited-node groups, a group we are not in, another
    /// node, the unspecified address.
    func destination6(_ rig: Rig, _ pick: UInt8) -> [UInt8] {
        switch pick % 9 {
        case 0: return rig.stackLinkLocal
        case 1: return Rig.allNodes
        case 2: return solicitedNode(Rig.stack6)
        case 3: return solicitedNode(rig.stackLinkLocal)
        case 4: return ip6(0xff02 << 48, 2)
        case 5: return ip6(0xff05 << 48, 1)
        case 6: return Rig.peer6
        case 7: return ip6(0, 0)
        default: return Rig.stack6
        }
    }

    /// A MAC for a link-layer address option: the peer's, another node's,
    /// ours, a multicast or the broadcast one.
    private func mac(_ pick: UInt8) -> [UInt8] {
        switch pick % 5 {
        case 0: return Rig.peerMAC
        case 1: return [0x52, 0x54, 0x00, 0x00, 0x00, pick]
        case 2: return [0x02, 0x00, 0x0a, 0x00, 0x00, 0x02]
        case 3: return multicastMAC(Rig.allNodes)
        default: return [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        }
    }

    /// Up to four NDP options (RFC 4861 4.6): link-layer addresses, prefix
    /// information, MTU, unknown types, zero lengths, lengths that disagree
    /// with the content or run past the end, any bytes.
    private func ndpOptions(_ input: inout InputReader) -> [UInt8] {
        var o: [UInt8] = []
        for _ in 0..<Int(input.byte() % 5) {
            let kind = input.byte()
            switch kind % 8 {
            case 0, 1:
                o += [kind % 2 == 0 ? 1 : 2, 1] + mac(kind >> 3)
            case 2:
                o += [3, 4, input.byte(), input.byte()]
                o.append32(input.u32()); o.append32(input.u32()); o.append32(0)
                let prefixes = [ip6(0xfd00 << 48, 0), ip6(0x2001_0db8 << 32, 0), ip6(0xfe80 << 48, 0),
                                ip6(0xff02 << 48, 0), input.bytes(16).padded(16)]
                o += prefixes[Int(kind >> 3) % prefixes.count]
            case 3:
                o += [5, 1, 0, 0]
                o.append32([1280, 1279, 1500, 9000, 0, 0xffff_ffff, 1400, input.u32()][Int(kind >> 3) % 8])
            case 4:
                o += [(kind >> 3) % 6, 0] + input.bytes(6).padded(6)
            case 5:
                o += [1 + (kind >> 3) % 5, input.byte() % 5] + input.bytes(Int(input.byte() % 40))
            case 6:
                o += [input.byte(), 1] + input.bytes(6).padded(6)
            default:
                o += input.bytes(Int(input.byte() % 24))
            }
        }
        return o
    }

    /// A neighbour solicitation (RFC 4861 4.3): for our addresses, another's
    /// or a multicast one, to the target's solicited-node group or (control
    /// bit 2) anywhere, from the peer or (bit 3) anyone incl. DAD's
    /// unspecified address; hop limit 255 unless bit 5, code 0 unless bit 4,
    /// the peer's link-layer address unless bit 6 makes the options up.
    private func neighbourSolicitation(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let shape = input.byte()
        let targets = [Rig.stack6, rig.stackLinkLocal, Rig.peer6, Self.neighbour6(shape >> 4),
                       solicitedNode(Rig.stack6), Rig.peerLinkLocal]
        let target = targets[Int(shape) % targets.count]
        let source = source6(rig, &input, control)
        let destination = control & 0x04 != 0 ? destination6(rig, input.byte()) : solicitedNode(target)
        let hopLimit = control & 0x20 != 0 ? input.byte() : 255
        let code = control & 0x10 != 0 ? input.byte() : 0
        let options = control & 0x40 != 0 ? ndpOptions(&input) : source == ip6(0, 0) ? [] : [1, 1] + Rig.peerMAC
        return rig.ip6Frame(source: source, destination: destination, nextHeader: 58, hopLimit: hopLimit,
                            icmp6(source: source, destination: destination, type: 135, code: code, rest: 0,
                                  target + options))
    }

    /// A neighbour advertisement (RFC 4861 4.4) for the peer, a neighbour
    /// being resolved, one of our addresses or a group, with any R/S/O
    /// flags, from the target itself or (bit 3) anyone, to us or (bit 2)
    /// all nodes; hop limit, code and options as for solicitations.
    private func neighbourAdvertisement(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let shape = input.byte()
        let targets = [Rig.peer6, Rig.peerLinkLocal, Self.neighbour6(shape >> 4), Rig.stack6, rig.stackLinkLocal,
                       Rig.allNodes, ip6(0x2001_0db8 << 32, 1)]
        let target = targets[Int(shape) % targets.count]
        let ours = target == Rig.stack6 || target == rig.stackLinkLocal || target.first == 0xff
        let source = control & 0x08 != 0 ? source6(rig, &input, control) : ours ? Rig.peer6 : target
        let destination = control & 0x04 != 0 ? Rig.allNodes : source.first == 0xfe ? rig.stackLinkLocal : Rig.stack6
        let flags = UInt32(input.byte() & 0xe0) << 24
        let hopLimit = control & 0x20 != 0 ? input.byte() : 255
        let code = control & 0x10 != 0 ? input.byte() : 0
        let options = control & 0x40 != 0 ? ndpOptions(&input) : [2, 1] + mac(input.byte() % 2)
        return rig.ip6Frame(source: source, destination: destination, nextHeader: 58, hopLimit: hopLimit,
                            icmp6(source: source, destination: destination, type: 136, code: code, rest: flags,
                                  target + options))
    }

    /// A router advertisement (RFC 4861 4.2): any hop limit, flags, router
    /// lifetime, reachable time and retransmission timer, from the peer's
    /// link-local address (or, bit 3, anyone), with the peer's MAC, a prefix
    /// and an MTU, or options made up (bit 6). With control bit 2 a router
    /// solicitation, a redirect, or any ICMPv6 type instead.
    private func routerMessage(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let kind = control & 0x04 == 0 ? 0 : 1 + Int(input.byte() % 2)
        let source = control & 0x08 == 0 ? Rig.peerLinkLocal : source6(rig, &input, control)
        let destination = input.byte() & 1 != 0 ? Rig.allNodes : rig.stackLinkLocal
        let hopLimit = control & 0x20 != 0 ? input.byte() : 255
        let code = control & 0x10 != 0 ? input.byte() : 0
        var type: UInt8, rest: UInt32 = 0, body: [UInt8] = []
        switch kind {
        case 0:
            type = 134
            rest = input.u32()
            body.append32(input.u32()); body.append32(input.u32())
            if control & 0x40 != 0 {
                body += ndpOptions(&input)
            } else {
                body += [1, 1] + Rig.peerMAC
                body += [3, 4, 64, input.byte()]
                body.append32(input.u32()); body.append32(input.u32()); body.append32(0)
                body += [ip6(0xfd00 << 48, 0), ip6(0x2001_0db8 << 32, 0)][Int(input.byte()) % 2]
                body += [5, 1, 0, 0]
                body.append32([1280, 1279, 1500, input.u32()][Int(input.byte()) % 4])
            }
        case 1:
            type = 133
            body = ndpOptions(&input)
        default:
            // A redirect (RFC 4861 4.5) is a host's to ignore; any other type too.
            type = input.byte() & 1 != 0 ? 137 : input.byte()
            rest = input.u32()
            body = Rig.peer6 + ip6(0x2001_0db8 << 32, 1) + ndpOptions(&input)
        }
        return rig.ip6Frame(source: source, destination: destination, nextHeader: 58, hopLimit: hopLimit,
                            icmp6(source: source, destination: destination, type: type, code: code, rest: rest, body))
    }

    /// An ICMPv6 error (RFC 4443 3: unreachable incl. port, packet too big
    /// with any MTU, time exceeded, parameter problem) quoting what the
    /// stack sent on a live IPv6 connection near its sequence numbers, or a
    /// UDP datagram from echo; with control bit 5 the quote has a
    /// destination options header before the transport.
    private func icmp6Error(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let kinds: [(UInt8, UInt8)] = [(2, 0), (1, 4), (1, 1), (3, 0), (4, 0), (4, 1), (1, 0), (1, control & 7)]
        let (type, code) = kinds[Int(input.byte()) % kinds.count]
        let rest: UInt32
        switch type {
        case 2: rest = [1280, 1279, 576, 0, 1400, 1500, 9000, input.u32()][Int(input.byte()) % 8]
        case 4: rest = UInt32(input.byte())
        default: rest = input.u32()
        }
        var from = Rig.stack6, to = Rig.peer6
        var transport: [UInt8], proto: UInt8
        let connections = rig.connections6
        if control & 0x10 == 0, !connections.isEmpty {
            let c = connections[Int(input.byte()) % connections.count]
            (from, to) = (c.stack6, c.peer6)
            transport = tcp(from, to, sourcePort: c.stackPort, destinationPort: c.peerPort,
                            seq: c.stackNext &- UInt32(input.u16()), ack: c.peerNext, flags: 0x10, [])
            proto = 6
        } else {
            to = [Rig.peer6, Self.neighbour6(0), ip6(0x2001_0db8 << 32, 1), Rig.peerLinkLocal][Int(input.byte()) % 4]
            transport = udp(from, to, sourcePort: 7, destinationPort: input.u16(), [])
            proto = 17
        }
        if control & 0x20 != 0 {
            transport = optionsHeader(nextHeader: proto, []) + transport
            proto = 60
        }
        var quoted = ipv6(source: from, destination: to, nextHeader: proto, payloadLength: 1460, transport)
        quoted = Array(quoted.prefix(40 + Int(input.byte() % 49)))
        let source = source6(rig, &input, control)
        return rig.ip6Frame(source: source, destination: from, nextHeader: 58,
                            icmp6(source: source, destination: from, type: type, code: code, rest: rest, quoted))
    }

    /// One fragment (RFC 8200 4.5) of a UDP datagram to echo or (control bit
    /// 4) an echo request, with (bit 6) a destination options header in its
    /// fragmentable part: identification from a small set (so pieces meet
    /// the reassembly in progress and each other), any offset, length and M
    /// flag, overlaps and holes allowed; offset 0 and M clear is an atomic fragment.
    private func fragment6(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let ids: [UInt32] = [0x7777, 0x7778, 0x7779, input.u32()]
        let id = ids[Int(control >> 2) & 3]
        let length = input.length(1452)
        var whole = control & 0x10 == 0
            ? udp(Rig.peer6, Rig.stack6, sourcePort: 5353, destinationPort: 7, [UInt8](repeating: 0x42, count: 200 + length))
            : icmp6(source: Rig.peer6, destination: Rig.stack6, type: 128, code: 0, rest: 0x0001_0001,
                    [UInt8](repeating: 0x43, count: length))
        var first: UInt8 = control & 0x10 == 0 ? 17 : 58
        if control & 0x40 != 0 {
            whole = optionsHeader(nextHeader: first, []) + whole
            first = 60
        }
        let offsetUnits = Int(input.byte() % 200)
        let start = min(offsetUnits * 8, whole.count)
        let pieceLength = max(8, Int(input.u16()) % 1448) & ~7
        let piece = Array(whole[start..<min(whole.count, start + pieceLength)])
        let more = control & 0x20 != 0 || start + piece.count < whole.count
        return rig.ip6Frame(nextHeader: 44, fragmentHeader(nextHeader: first, offset: offsetUnits * 8, more: more,
                                                           identification: id) + piece)
    }

    /// A chain of up to 11 extension headers (RFC 8200 4; the stack takes 8)
    /// before UDP to echo, an echo request, a SYN, or (control bits 2-3)
    /// any next header: Hop-by-Hop and Destination Options with any options
    /// (Pad1, PadN, unknown types with each action in their two high bits,
    /// router alert, jumbo, lengths past the end), unpadded (bit 5) so the
    /// length claimed runs into what follows; Routing of type 0, 2, 3, 4 or
    /// any, segments left or not; Fragment headers, mostly atomic; others
    /// the stack does not know. Bit 6 repeats the first header's type
    /// throughout; bit 4 sends it to all nodes.
    private func extensionChain(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let destination = control & 0x10 != 0 ? Rig.allNodes : Rig.stack6
        var kinds: [UInt8] = (0..<Int(input.byte() % 12)).map { _ in input.byte() }
        if control & 0x40 != 0, let k = kinds.first { kinds = kinds.map { _ in k } }
        func type(_ kind: UInt8) -> UInt8 {
            switch kind % 6 {
            case 0: return 0
            case 1, 2: return 60
            case 3: return 43
            case 4: return 44
            default: return [135, 139, 140, 253, 51, 0][Int(kind >> 3) % 6]
            }
        }
        var upper: [UInt8], proto: UInt8
        switch Int(control >> 2) & 3 {
        case 0:
            upper = udp(Rig.peer6, destination, sourcePort: 1000, destinationPort: 7, input.bytes(input.length(256)))
            proto = 17
        case 1:
            upper = icmp6(source: Rig.peer6, destination: destination, type: 128, code: 0, rest: input.u32(),
                          input.bytes(input.length(256)))
            proto = 58
        case 2:
            upper = tcp(Rig.peer6, destination, sourcePort: 30000 &+ UInt16(input.byte()), destinationPort: 80,
                        seq: input.u32(), ack: 0, flags: 0x02, options: Rig.synOptions, [])
            proto = 6
        default:
            proto = input.byte()
            upper = input.bytes(input.length(256))
        }
        var packet = upper
        for (i, kind) in kinds.enumerated().reversed() {
            let next = i + 1 < kinds.count ? type(kinds[i + 1]) : proto
            switch type(kind) {
            case 43:
                let addresses = Int(input.byte() % 3)
                var h: [UInt8] = [next, UInt8(2 * addresses), [0, 2, 3, 4, input.byte()][Int(kind >> 3) % 5],
                                  kind & 0x80 != 0 ? input.byte() : 0, 0, 0, 0, 0]
                for _ in 0..<addresses { h += [Rig.peer6, ip6(0x2001_0db8 << 32, 1)][Int(input.byte()) % 2] }
                packet = h + packet
            case 44:
                let offset = kind & 0x80 != 0 ? Int(input.byte()) * 8 : 0
                packet = fragmentHeader(nextHeader: next, offset: offset, more: kind & 0x40 != 0,
                                        identification: 0x7777 + UInt32(kind >> 3 & 3)) + packet
            default:
                packet = optionsHeader(nextHeader: next, options6(&input), pad: control & 0x20 == 0) + packet
            }
        }
        return rig.ip6Frame(destination: destination, nextHeader: kinds.first.map(type) ?? proto, packet)
    }

    /// Up to five options for a Hop-by-Hop or Destination Options header (RFC 8200 4.2).
    private func options6(_ input: inout InputReader) -> [UInt8] {
        var o: [UInt8] = []
        for _ in 0..<Int(input.byte() % 6) {
            let kind = input.byte()
            switch kind % 8 {
            case 0: o.append(0)
            case 1: o += [1, (kind >> 3) % 8] + [UInt8](repeating: 0, count: Int((kind >> 3) % 8))
            case 2: o += [1, 2, input.byte() | 1, 0]
            case 3:
                // Unknown, its action in the two high bits: skip, discard, discard and report, report unless multicast.
                let n = Int(input.byte() % 8)
                o += [kind & 0xc0 | 0x1e, UInt8(n)] + input.bytes(n).padded(n)
            case 4: o += [5, 2, 0, 0]
            case 5: o += [0xc2, 4]; o.append32(input.u32())
            case 6:
                let n = Int(input.byte() % 16)
                o += [input.byte(), UInt8(n)] + input.bytes(n).padded(n)
            default: o += [input.byte(), 200]
            }
        }
        return o
    }

    /// An IPv6 packet whose fixed header comes from the input: version,
    /// traffic class, flow label, payload length (control bit 5), hop limit,
    /// next header (bit 4), both addresses from everything `source6` and
    /// `destination6` offer; carrying an echo request or (bit 2) UDP to echo.
    private func anyHeader6(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let source = source6(rig, &input, control | 0x08)
        let destination = destination6(rig, input.byte())
        let payload = control & 0x04 != 0
            ? udp(source, destination, sourcePort: 1000, destinationPort: 7, input.bytes(input.length(1024)))
            : icmp6(source: source, destination: destination, type: 128, code: 0, rest: input.u32(),
                    input.bytes(input.length(1024)))
        let first = input.u32()
        let version = control & 0x40 != 0 ? first >> 28 : 6
        var packet = ipv6(source: source, destination: destination,
                          nextHeader: control & 0x10 != 0 ? input.byte() : control & 0x04 != 0 ? 17 : 58,
                          hopLimit: input.byte(), payloadLength: control & 0x20 != 0 ? input.u16() : nil, payload)
        packet.put32(version << 28 | first & 0x0fff_ffff, at: 0)
        return ethernet(destination: destination.first == 0xff ? multicastMAC(destination) : rig.stackMAC,
                        source: Rig.peerMAC, type: 0x86dd, packet)
    }
}
