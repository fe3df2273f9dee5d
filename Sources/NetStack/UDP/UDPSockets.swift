import NetStackWire

/// The far end of a UDP exchange.
public struct UDPEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16
    public init(address: IPv4Address, port: UInt16) {
        self.address = address
        self.port = port
    }
    public var description: String { "\(address):\(port)" }
}

/// Called on the event loop for each datagram that arrives at a bound port.
/// The payload is borrowed: it is valid only during the call.
public typealias UDPHandler = (_ from: UDPEndpoint, _ payload: UnsafeRawBufferPointer) -> Void

/// A bound port. A class, because taking a closure out of a dictionary
/// directly allocates a reabstraction thunk per lookup; a reference does not.
final class UDPBinding {
    let handler: UDPHandler
    init(_ handler: @escaping UDPHandler) { self.handler = handler }
}

public enum UDPBindError: Error, Equatable {
    case portInUse(UInt16)
    case portZero
}

extension Interface {
    /// Binds `port`: datagrams to it go to `handler`. RFC 768 demultiplexes on the
    /// destination port only; one handler per port.
    public func bindUDP(port: UInt16, _ handler: @escaping UDPHandler) throws(UDPBindError) {
        guard port != 0 else { throw .portZero }
        guard udpSockets[port] == nil else { throw .portInUse(port) }
        udpSockets[port] = UDPBinding(handler)
    }

    public func unbindUDP(port: UInt16) { udpSockets[port] = nil }

    /// Sends one datagram, fragmenting it at the IP layer if it exceeds the MTU.
    /// Returns false if it was dropped (no route, pool exhausted, too large);
    /// the reason is counted.
    @discardableResult
    public func sendUDP(from sourcePort: UInt16, to destination: UDPEndpoint,
                        payload: UnsafeRawBufferPointer, now: Instant) -> Bool {
        let length = UDPDatagram.headerLength + payload.count
        guard length <= 0xffff - IPv4Repr.headerLength else {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        var header = UInt64(0)
        let src = address
        withUnsafeMutableBytes(of: &header) { h in
            h.storeBytes(of: sourcePort.bigEndian, toByteOffset: 0, as: UInt16.self)
            h.storeBytes(of: destination.port.bigEndian, toByteOffset: 2, as: UInt16.self)
            h.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 4, as: UInt16.self)
            var c = InternetChecksum()
            c.addPseudoHeader(source: src, destination: destination.address,
                              protocol: IPProtocol.udp.rawValue, length: length)
            c.add(UnsafeRawBufferPointer(h))
            c.add(payload)
            let v = c.value
            // RFC 768: a computed zero goes out as all ones.
            h.storeBytes(of: (v == 0 ? 0xffff : v).bigEndian, toByteOffset: 6, as: UInt16.self)
        }
        counters.udpOut &+= 1
        return withUnsafeBytes(of: &header) { h in
            sendIPv4(to: destination.address, protocol: .udp, transportHeader: h, payload: payload, now: now)
        }
    }

    /// RFC 768 / RFC 1122 4.1.3: check, demultiplex on the destination port,
    /// and answer a closed port with ICMP port unreachable.
    func receiveUDP(_ d: ReceivedDatagram, now: Instant) -> Verdict {
        let udp: UDPDatagram
        do { udp = try UDPDatagram(validating: d.payload) } catch { return .drop(DropReason(udp: error)) }
        // The UDP length must agree with what IP carried (RFC 1122 4.1.3.4 says
        // the IP length rules; a shorter UDP length means trailing junk).
        guard udp.length == d.payload.count else { return .drop(.udpBadLength) }
        guard udp.checksumIsValid(source: d.source, destination: d.destination) else { return .drop(.udpBadChecksum) }
        counters.udpIn &+= 1
        guard let binding = udpSockets[udp.destinationPort] else {
            sendICMPError(.destinationUnreachable(.port), for: d, now: now)
            return .drop(.udpNoSocket)
        }
        binding.handler(UDPEndpoint(address: d.source, port: udp.sourcePort), UnsafeRawBufferPointer(udp.payload))
        return .done
    }
}
