import NetStack
import NetStackWire

/// The UDP half of the Echo Protocol (RFC 862): every datagram received on
/// the port is sent back to its sender unchanged.
public enum UDPEchoService {
    public static let defaultPort: UInt16 = 7

    /// Binds `port` on `stack` and echoes what arrives; returns the socket.
    @discardableResult
    public static func install(on stack: Stack, port: UInt16 = defaultPort) throws(UDPBindError) -> UDPSocket {
        let socket = try stack.bind(udpPort: port)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(65536)
        socket.onReadable = { socket in
            while let from = socket.receive(into: &buffer) {
                socket.send(buffer, to: from)
            }
        }
        return socket
    }
}
