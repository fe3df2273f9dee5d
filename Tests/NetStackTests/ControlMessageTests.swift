import CNetStackABI
import NetStackSockets
import NetStackWire
import Testing

/// The control protocol's records against the C layout the library uses.
@Suite struct ControlMessageTests {
    /// The Swift operations are the library's, number for number.
    @Test func operationsMatchTheC() {
        let pairs: [(ControlOperation, ns_op)] = [
            (.socket, NS_OP_SOCKET), (.bind, NS_OP_BIND), (.listen, NS_OP_LISTEN), (.connect, NS_OP_CONNECT),
            (.accept, NS_OP_ACCEPT), (.shutdown, NS_OP_SHUTDOWN), (.close, NS_OP_CLOSE), (.setOption, NS_OP_SETSOCKOPT),
            (.forkPrepare, NS_OP_FORK_PREPARE), (.forkClaim, NS_OP_FORK_CLAIM), (.region, NS_OP_REGION),
            (.spawnHold, NS_OP_SPAWN_HOLD),
        ]
        for (swift, c) in pairs { #expect(swift.rawValue == UInt32(c.rawValue), "\(swift)") }
    }

    @Test func aRequestEncodedByCDecodes() {
        var c = ns_request()
        c.op = 4  // connect
        c.socket = 77
        c.arg0 = -3
        c.arg1 = 9
        c.value = 1 << 40
        c.addr.family = 4
        c.addr.port = 8000
        withUnsafeMutableBytes(of: &c.addr.bytes) { $0.copyBytes(from: [10, 0, 0, 1]) }
        let bytes = withUnsafeBytes(of: c) { Array($0) }
        #expect(bytes.count == ControlMessage.size)
        let r = ControlRequest(bytes.span.bytes)
        #expect(r == ControlRequest(operation: .connect, socket: 77, arg0: -3, arg1: 9, value: 1 << 40,
                                    address: SocketAddress(address: .v4(IPv4Address(10, 0, 0, 1)), port: 8000)))
    }

    @Test func requestsRoundTripBothFamilies() {
        let v6 = IPv6Address(high: 0xfd00_0000_0000_0000, low: 2)
        for request in [ControlRequest(operation: .socket, arg0: 6),
                        ControlRequest(operation: .bind, socket: 1,
                                       address: SocketAddress(address: .v6(v6), port: 443)),
                        ControlRequest(operation: .setOption, socket: 2, arg0: 6, arg1: 1, value: 1)] {
            #expect(ControlRequest(request.encoded.span.bytes) == request)
        }
    }

    @Test func closesAndPostedShutdownsGetNoReply() {
        #expect(!ControlRequest(operation: .close, socket: 1).expectsReply)
        #expect(!ControlRequest(operation: .shutdown, socket: 1, arg0: 1, arg1: Int32(NS_NO_REPLY)).expectsReply)
        #expect(ControlRequest(operation: .shutdown, socket: 1, arg0: 1).expectsReply)
        #expect(ControlRequest(operation: .accept, socket: 1).expectsReply)
    }

    @Test func unknownOperationsAndShortRecordsAreRefused() {
        var bytes = ControlRequest(operation: .close, socket: 1).encoded
        #expect(ControlRequest(bytes.span.bytes.extracting(0..<63)) == nil)
        bytes[0] = 99
        #expect(ControlRequest(bytes.span.bytes) == nil)
    }

    @Test func aReplyReadsAsTheCStruct() {
        let reply = ControlReply(result: -111, socket: 5, ringSize: 1 << 19, regionSerial: 42,
                                 local: SocketAddress(address: .v4(IPv4Address(10, 0, 0, 2)), port: 40000),
                                 peer: SocketAddress(address: .v6(IPv6Address(high: 1, low: 2)), port: 80))
        var bytes = [UInt8](repeating: 0xee, count: ControlMessage.size)
        var span = bytes.mutableSpan
        var raw = span.mutableBytes
        reply.encode(into: &raw)
        _ = consume raw
        _ = consume span
        let c = bytes.withUnsafeBytes { $0.loadUnaligned(as: ns_reply.self) }
        #expect(c.result == -111 && c.socket == 5 && c.ring_size == 1 << 19 && c.region_serial == 42)
        #expect(c.local.family == 4 && c.local.port == 40000)
        #expect(withUnsafeBytes(of: c.local.bytes) { Array($0.prefix(4)) } == [10, 0, 0, 2])
        #expect(c.peer.family == 6 && c.peer.port == 80)
        #expect(ControlReply(bytes.span.bytes) == reply)
    }
}
