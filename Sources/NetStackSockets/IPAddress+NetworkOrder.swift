import NetStackWire

extension IPAddress {
    /// Stores the address in network order at the start of `b`, as the
    /// C side's address bytes hold it (`ns_addr`, `ns_datagram`,
    /// `ns_interface`): 4 bytes for IPv4, 16 for IPv6.
    func storeNetworkOrder(into b: UnsafeMutableRawBufferPointer) {
        switch self {
        case .v4(let a):
            b.storeBytes(of: a.value.bigEndian, toByteOffset: 0, as: UInt32.self)
        case .v6(let a):
            b.storeBytes(of: a.high.bigEndian, toByteOffset: 0, as: UInt64.self)
            b.storeBytes(of: a.low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
    }
}
