import NetStack
import NetStackWire

/// The UDP half of the Echo Protocol (RFC 862): every datagram received on
/// the port is sent back to its sender unchanged.
public enum UDPEchoService {
    public static let defaultPort: UInt16 = 7

    public static func install<D: Device>(on interface: Interface<D>, port: UInt16 = defaultPort,
                                          clock: any NetClock) throws(UDPBindError) {
        try interface.bindUDP(port: port) { [unowned interface] from, payload in
            interface.sendUDP(from: port, to: from, payload: payload, now: clock.now)
        }
    }
}
