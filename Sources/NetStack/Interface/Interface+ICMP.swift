import NetStackWire

extension Interface {
    /// RFC 792 / RFC 1122 3.2.2: answer echo requests, hand errors about what
    /// we sent to the transport that sent it; other messages are counted.
    func receiveICMP(_ d: IPDatagram, eth: EthernetFrame, now: Instant) -> Verdict {
        counters.icmpIn &+= 1
        let icmp: ICMPv4Packet
        do { icmp = try ICMPv4Packet(validating: d.payload) } catch { return .drop(.icmpTruncated) }
        guard icmp.checksumIsValid else { return .drop(.icmpBadChecksum) }
        switch (icmp.type, icmp.code) {
        case (ICMPv4Message.echoRequestType, 0):
            break
        case (ICMPv4Message.destinationUnreachableType, _), (ICMPv4Message.timeExceededType, _):
            return receiveICMPError(icmp, now: now)
        default:
            return .drop(.icmpUnhandledType)
        }
        counters.icmpEchoRequestsIn &+= 1
        // Linux's default (icmp_echo_ignore_broadcasts): broadcast pings are a smurf amplifier.
        guard !d.toBroadcast else { return .drop(.icmpIgnoredBroadcastEcho) }
        counters.icmpEchoRepliesOut &+= 1

        if d.inFrame && d.header.count == IPv4Repr.headerLength {
            return echoInPlace(eth: eth, icmp: icmp, ipHeader: d.header)
        }
        // Reassembled, or with IP options: build the reply afresh (fragmenting it as needed).
        var header = UInt64(0)
        let data = UnsafeRawBufferPointer(icmp.data)
        withUnsafeMutableBytes(of: &header) { h in
            ICMPv4Repr(message: .echoReply(identifier: icmp.echoIdentifier, sequence: icmp.echoSequence),
                       dataLength: data.count)
                .emitHeader(into: h, data: data)
        }
        guard case .v4(let peer) = d.source else { return .done }
        withUnsafeBytes(of: &header) { h in
            _ = sendIPv4(to: peer, protocol: .icmp, transportHeader: h, payload: data, now: now)
        }
        return .done
    }

    /// An error quoting a datagram we sent (RFC 1122 3.2.2.1, 4.1.3.3): to the
    /// transport that sent it, which knows the socket by the quoted ports
    /// and checks the quote against what it has in flight before anything
    /// changes (RFC 5927 4.1; TCP's `receiveError`).
    private func receiveICMPError(_ icmp: ICMPv4Packet, now: Instant) -> Verdict {
        guard let quoted = try? IPv4Packet(validatingQuoted: icmp.data),
              quoted.source == address, icmp.data.count >= quoted.headerLength + 8
        else { return .drop(.icmpBadQuote) }
        let kind: IPErrorKind
        switch ICMPv4Repr(parsing: icmp).message {
        case .destinationUnreachable(.fragmentationNeeded, let mtu): kind = .packetTooBig(mtu: Int(mtu))
        case .destinationUnreachable(.port, _): kind = .portUnreachable
        case .destinationUnreachable(let code, _): kind = .unreachable(code: code.rawValue)
        case .timeExceeded: kind = .timeExceeded
        default: kind = .unreachable(code: icmp.code)
        }
        counters.icmpErrorsIn &+= 1
        let report = IPErrorReport(kind: kind, source: .v4(quoted.source), destination: .v4(quoted.destination),
                                   proto: quoted.protocol,
                                   quotedTransport: UnsafeRawBufferPointer(icmp.data.slice(
                                       quoted.headerLength..<icmp.data.count)))
        deliverError(report, now: now)
        return .done
    }

    /// The echo fast path: the request becomes the reply in the buffer it came
    /// in. Swapping the IP addresses leaves the header sum unchanged; the TTL
    /// and the ICMP type change, and RFC 1624 patches both checksums.
    @inline(__always)
    func echoInPlace(eth: EthernetFrame, icmp: ICMPv4Packet, ipHeader: UnsafeMutableRawBufferPointer) -> Verdict {
        let ip = IPv4Packet(uncheckedHeader: eth.payload)
        let src = ip.source
        ip.source = ip.destination
        ip.destination = src
        let oldTTLWord = UInt16(ip.timeToLive) << 8 | UInt16(ip.protocol.rawValue)
        ip.timeToLive = configuration.timeToLive
        let newTTLWord = UInt16(ip.timeToLive) << 8 | UInt16(ip.protocol.rawValue)
        ip.headerChecksum = InternetChecksum.update(ip.headerChecksum, old: oldTTLWord, new: newTTLWord)

        let oldTypeWord = UInt16(icmp.type) << 8 | UInt16(icmp.code)
        icmp.type = ICMPv4Message.echoReplyType
        icmp.checksum = InternetChecksum.update(icmp.checksum, old: oldTypeWord, new: UInt16(icmp.code))

        eth.destination = eth.source
        eth.source = configuration.macAddress
        return .transmit(length: EthernetFrame.headerLength + ip.totalLength)
    }

    /// Sends an ICMP error about a received datagram, unless RFC 1122 3.2.2
    /// (RFC 1812 4.3.2.7) forbids it: never about ICMP errors, datagrams sent
    /// to a broadcast or multicast address or arriving in a link-layer
    /// broadcast or multicast frame, non-initial fragments, or from a
    /// non-unicast source. Rate limited (RFC 1812 4.3.2.8).
    func sendICMPError(_ message: ICMPv4Message, for d: IPDatagram, now: Instant) {
        guard d.isUnicast else { return }
        // The original header plus the first 8 bytes of its payload (RFC 792).
        let quoted = UnsafeMutableRawBufferPointer(start: d.header.baseAddress,
                                                   count: d.header.count + min(8, d.payload.count))
        if d.inFrame {
            sendICMPError(message, about: quoted, now: now)
        } else {
            // Reassembled: the header and payload are not contiguous.
            var scratch = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                           UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &scratch) { s in
                let n = d.header.count + min(8, d.payload.count)
                s.copyMemory(from: UnsafeRawBufferPointer(d.header))
                UnsafeMutableRawBufferPointer(rebasing: s[d.header.count..<n])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: d.payload[0..<(n - d.header.count)]))
                sendICMPError(message, about: UnsafeMutableRawBufferPointer(rebasing: s[0..<n]), now: now)
            }
        }
    }

    /// Sends an ICMP error quoting `original` (an IP header and up to 8 bytes),
    /// unless RFC 1122 3.2.2 forbids it for what the quote shows: a datagram
    /// to or from a broadcast or multicast address, a non-initial fragment,
    /// an ICMP error (anything but an echo, to be safe). The reassembly timer
    /// reaches here without `sendICMPError(_:for:)`.
    func sendICMPError(_ message: ICMPv4Message, about original: UnsafeMutableRawBufferPointer, now: Instant) {
        guard let ip = try? IPv4Packet(validatingQuoted: original) else { return }
        let src = ip.source, dst = ip.destination
        guard !src.isUnspecified, !src.isBroadcast, !src.isMulticast, ip.fragmentOffset == 0 else { return }
        if ip.protocol == .icmp {
            guard original.count > ip.headerLength else { return }
            let type = original[ip.headerLength]
            guard type == ICMPv4Message.echoRequestType || type == ICMPv4Message.echoReplyType else { return }
        }
        guard !dst.isBroadcast, !dst.isMulticast, !configuration.address.isDirectedBroadcast(dst) else { return }
        guard icmpErrorBucket.take(now: now) else {
            counters.drops.record(.icmpErrorRateLimited)
            return
        }
        var header = UInt64(0)
        let data = UnsafeRawBufferPointer(original)
        withUnsafeMutableBytes(of: &header) { h in
            ICMPv4Repr(message: message, dataLength: data.count).emitHeader(into: h, data: data)
        }
        counters.icmpErrorsOut &+= 1
        withUnsafeBytes(of: &header) { h in
            _ = sendIPv4(to: src, protocol: .icmp, transportHeader: h, payload: data, now: now)
        }
    }
}

extension IPv4Packet {
    /// For a packet that already validated.
    init(uncheckedHeader bytes: UnsafeMutableRawBufferPointer) {
        try! self.init(validating: bytes)
    }
}
