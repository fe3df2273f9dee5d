import NetStackWire

/// The far end of a UDP exchange.
public struct UDPEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public init(address: IPv4Address, port: UInt16) {
        self.init(address: .v4(address), port: port)
    }

    public var description: String { "\(address):\(port)" }
}
