import NetStackWire

/// A connection's two ends, of either family; the key of the connection table
/// and the message of the ISN hash (RFC 6528).
public struct TCPFourTuple: Hashable, Sendable, CustomStringConvertible {
    public var localAddress: IPAddress
    public var localPort: UInt16
    public var remoteAddress: IPAddress
    public var remotePort: UInt16

    public init(localAddress: IPAddress, localPort: UInt16, remoteAddress: IPAddress, remotePort: UInt16) {
        self.localAddress = localAddress
        self.localPort = localPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
    }

    /// The tuple of an IPv4 connection.
    public init(localAddress: IPv4Address, localPort: UInt16, remoteAddress: IPv4Address, remotePort: UInt16) {
        self.init(localAddress: .v4(localAddress), localPort: localPort, remoteAddress: .v4(remoteAddress),
                  remotePort: remotePort)
    }

    public var description: String { "\(localAddress):\(localPort)<->\(remoteAddress):\(remotePort)" }
}
