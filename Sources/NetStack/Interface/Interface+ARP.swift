import NetStackWire

extension Interface {
    /// RFC 826 "Packet Reception": merge the sender into the table, then answer
    /// requests for our address in the same buffer.
    func receiveARP(_ eth: EthernetFrame, now: Instant) -> Verdict {
        let packet: ARPPacket
        do { packet = try ARPPacket(validating: eth.payload) } catch {
            return .drop(error == .truncated ? .arpTruncated : .arpUnsupported)
        }
        let senderIP = packet.senderProtocolAddress
        let senderMAC = packet.senderHardwareAddress
        let op = packet.operation
        switch op {
        case .request: counters.arpRequestsIn &+= 1
        case .reply: counters.arpRepliesIn &+= 1
        default: return .drop(.arpUnsupported)
        }
        // A sender claiming a group MAC, our MAC, a broadcast/multicast address,
        // or our own address (a conflict, RFC 5227 2.4) would poison the table.
        guard !senderMAC.isMulticast, senderMAC != configuration.macAddress,
              !senderIP.isBroadcast, !senderIP.isMulticast, senderIP != address else { return .drop(.arpBadSender) }

        let forUs = packet.targetProtocolAddress == address
        // A probe (sender 0.0.0.0, RFC 5227) must not enter the table.
        if !senderIP.isUnspecified {
            let learned = arp.update(senderIP, mac: senderMAC, now: now,
                                     create: forUs || arp.entries[senderIP] != nil)
            if learned { releaseWaiting(in: &arp, for: senderIP, mac: senderMAC) }
        }
        guard forUs else { return .drop(.arpNotForUs) }
        guard op == .request else { return .done }

        // Answer in place: swap sender and target, fill in our addresses.
        packet.operation = .reply
        packet.targetHardwareAddress = senderMAC
        packet.targetProtocolAddress = senderIP
        packet.senderHardwareAddress = configuration.macAddress
        packet.senderProtocolAddress = address
        eth.destination = senderMAC
        eth.source = configuration.macAddress
        counters.arpRepliesOut &+= 1
        return .transmit(length: EthernetFrame.headerLength + ARPPacket.length)
    }

    func sendARPRequest(for ip: IPv4Address) {
        sendARP(operation: .request, targetMAC: .zero, targetIP: ip, destination: .broadcast)
    }

    func sendARP(operation: ARPOperation, targetMAC: MACAddress, targetIP: IPv4Address, destination: MACAddress) {
        guard var frame = device.pool.allocate() else {
            counters.drops.record(.poolExhausted)
            return
        }
        frame.reserveHeadroom(link.headroom)
        let length = EthernetFrame.headerLength + ARPPacket.length
        frame.setLength(length)
        frame.withBytes { bytes in
            EthernetRepr(destination: destination, source: configuration.macAddress, etherType: .arp)
                .emit(into: bytes)
            ARPRepr(operation: operation, senderHardwareAddress: configuration.macAddress,
                    senderProtocolAddress: address, targetHardwareAddress: targetMAC, targetProtocolAddress: targetIP)
                .emit(into: bytes.slice(EthernetFrame.headerLength..<length))
        }
        if operation == .request { counters.arpRequestsOut &+= 1 } else { counters.arpRepliesOut &+= 1 }
        transmit(frame)
    }
}

extension EthernetFrame {
    /// For frames the stack built itself, whose length it knows.
    init(uncheckedHeader bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= EthernetFrame.headerLength)
        try! self.init(validating: bytes)
    }
}
