@testable import NetStack
import NetStackWire

extension UDPLayer {
    /// Binds `port` with a handler called for each datagram, borrowing its payload,
    /// as the tests' older shape of UDP did.
    @discardableResult
    func bind(port: UInt16, _ handler: @escaping (UDPEndpoint, UnsafeRawBufferPointer) -> Void)
        throws(UDPBindError) -> UDPSocket {
        let socket = try bind(port: port)
        var buffer: [UInt8] = []
        socket.onReadable = { s in
            while let from = s.receive(into: &buffer) { buffer.withUnsafeBytes { handler(from, $0) } }
        }
        return socket
    }

    /// Unbinds whatever is bound to `port`.
    func unbind(port: UInt16) {
        for s in sockets[port]?.all ?? [] { unbind(s) }
    }
}
