import Glibc
import NetStack
@testable import NetStackSockets
import Testing

/// The options the stack acts on, as the preload library passes them on.
@Suite struct AppSocketOptionsTests {
    @Test func keepaliveOptionsMakeTheConnectionsSetting() {
        var o = AppSocketOptions()
        var accepted: Bool
        #expect(o.keepaliveSettings == nil)
        accepted = o.set(level: Int32(IPPROTO_TCP), name: TCP_KEEPIDLE, value: 30)
        #expect(accepted)
        accepted = o.set(level: Int32(IPPROTO_TCP), name: TCP_KEEPINTVL, value: 5)
        #expect(accepted)
        accepted = o.set(level: Int32(IPPROTO_TCP), name: TCP_KEEPCNT, value: 4)
        #expect(accepted)
        #expect(o.keepaliveSettings == nil)  // not on yet
        accepted = o.set(level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1)
        #expect(accepted)
        let k = o.keepaliveSettings
        #expect(k?.idle == .seconds(30) && k?.interval == .seconds(5) && k?.probes == 4)
        var c = TCPConfiguration()
        o.configure(&c)
        #expect(c.keepalive?.idle == .seconds(30))
    }

    @Test func lingerOfZeroResetsOnClose() {
        var o = AppSocketOptions()
        var accepted: Bool
        #expect(!o.resetsOnClose)
        accepted = o.set(level: SOL_SOCKET, name: SO_LINGER, value: 5)
        #expect(accepted)
        #expect(!o.resetsOnClose)
        accepted = o.set(level: SOL_SOCKET, name: SO_LINGER, value: 0)
        #expect(accepted)
        #expect(o.resetsOnClose)
        accepted = o.set(level: SOL_SOCKET, name: SO_LINGER, value: -1)  // off
        #expect(accepted)
        #expect(!o.resetsOnClose)
    }

    /// SO_RCVBUF sizes the connection's receive buffer (so the window it
    /// offers), with a floor of a few segments; unset, the stack's default stays.
    @Test func receiveBufferSizesTheConnectionsBuffer() {
        var o = AppSocketOptions()
        var c = TCPConfiguration()
        let stacks = c.receiveBufferSize
        o.configure(&c)
        #expect(c.receiveBufferSize == stacks)
        var accepted = o.set(level: SOL_SOCKET, name: SO_RCVBUF, value: 1 << 16)
        #expect(accepted)
        o.configure(&c)
        #expect(c.receiveBufferSize == 1 << 16)
        accepted = o.set(level: SOL_SOCKET, name: SO_RCVBUF, value: 1152)  // Linux's least, halved
        #expect(accepted)
        o.configure(&c)
        #expect(c.receiveBufferSize == AppSocketOptions.smallestReceiveBuffer)
        accepted = o.set(level: SOL_SOCKET, name: SO_RCVBUF, value: 0)
        #expect(!accepted)
    }

    @Test func optionsTheStackDoesNotActOnAreRefused() {
        var o = AppSocketOptions()
        var accepted: Bool
        accepted = o.set(level: SOL_SOCKET, name: SO_SNDBUF, value: 1 << 16)  // the library bounds `tx` itself
        #expect(!accepted)
        accepted = o.set(level: Int32(IPPROTO_TCP), name: 9999, value: 1)
        #expect(!accepted)
    }
}
