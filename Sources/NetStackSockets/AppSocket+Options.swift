#if canImport(Glibc)
import Glibc
#endif
import NetStack

/// The socket options that act on the stack, as the preload library passes
/// them on (NS_OP_SETSOCKOPT): TCP_NODELAY, TCP_CORK, keepalive, SO_LINGER, SO_RCVBUF,
/// TCP_MAXSEG, TCP_USER_TIMEOUT, and the IP header's hop limit and DS field
/// (IP_TTL, IP_TOS, IPV6_UNICAST_HOPS, IPV6_TCLASS; a datagram socket's too).
/// The library validates them and answers getsockopt itself; the stack keeps them
/// so a connection made later (connect, accept from a listener that has them,
/// as Linux's accepted sockets inherit them) gets them too.
struct AppSocketOptions {
    var noDelay = false
    var corked = false
    var keepalive = false
    /// TCP_KEEPIDLE, TCP_KEEPINTVL (seconds) and TCP_KEEPCNT: Linux's defaults.
    var keepaliveIdle: Int64 = 7200
    var keepaliveInterval: Int64 = 75
    var keepaliveProbes: Int64 = 9
    /// SO_LINGER's seconds while it is on.
    var linger: Int64?
    /// SO_RCVBUF as asked (the library caps it at rmem_max first): the
    /// connection's receive buffer, which bounds the window it offers, and
    /// as much again unread in `rx`; in all the doubled value getsockopt
    /// reports, as Linux's sk_rcvbuf bounds what waits unread. nil: the
    /// stack's own sizes (a 256 KiB buffer and the whole ring).
    var receiveBuffer: Int?
    /// TCP_MAXSEG: a cap on the MSS of connections made from now on (as
    /// Linux, not of one already open).
    var maximumSegmentSize: Int?
    /// TCP_USER_TIMEOUT (RFC 5482).
    var userTimeout: Duration?
    var ipHeader = IPHeaderSettings.standard

    /// The least receive buffer a connection gets, whatever SO_RCVBUF says:
    /// a window of a few segments (Linux's floor, SOCK_MIN_RCVBUF, is 2304
    /// bytes, less than one full segment).
    static let smallestReceiveBuffer = 4096

    var keepaliveSettings: TCPConfiguration.Keepalive? {
        guard keepalive else { return nil }
        return TCPConfiguration.Keepalive(idle: .seconds(keepaliveIdle), interval: .seconds(keepaliveInterval),
                                          probes: Int(keepaliveProbes))
    }

    /// SO_LINGER on with 0 seconds: closing resets the connection (Linux's
    /// tcp_close: no FIN, the unsent data dropped).
    var resetsOnClose: Bool { linger == 0 }

    func configure(_ c: inout TCPConfiguration) {
        c.noDelay = noDelay
        c.keepalive = keepaliveSettings
        if let r = receiveBuffer { c.receiveBufferSize = r }
        c.maximumSegmentSize = maximumSegmentSize
        c.userTimeout = userTimeout
        c.ipHeader = ipHeader
    }

    /// Records option `name` at `level`; false for one the stack does not act on.
    mutating func set(level: Int32, name: Int32, value: Int64) -> Bool {
        switch (level, name) {
        case (Int32(IPPROTO_TCP), TCP_NODELAY): noDelay = value != 0
        case (Int32(IPPROTO_TCP), TCP_CORK): corked = value != 0
        case (SOL_SOCKET, SO_KEEPALIVE): keepalive = value != 0
        case (Int32(IPPROTO_TCP), TCP_KEEPIDLE) where value > 0: keepaliveIdle = value
        case (Int32(IPPROTO_TCP), TCP_KEEPINTVL) where value > 0: keepaliveInterval = value
        case (Int32(IPPROTO_TCP), TCP_KEEPCNT) where value > 0: keepaliveProbes = value
        case (SOL_SOCKET, SO_LINGER): linger = value < 0 ? nil : value
        case (SOL_SOCKET, SO_RCVBUF) where value > 0:
            receiveBuffer = max(Self.smallestReceiveBuffer, Int(clamping: value))
        // The values as the library stored them: 0 for none, -1 for the system's hop limit.
        case (Int32(IPPROTO_TCP), TCP_MAXSEG): maximumSegmentSize = value > 0 ? Int(clamping: value) : nil
        case (Int32(IPPROTO_TCP), TCP_USER_TIMEOUT): userTimeout = value > 0 ? .milliseconds(value) : nil
        case (Int32(IPPROTO_IP), IP_TTL): ipHeader.timeToLive = (1...255).contains(value) ? UInt8(value) : nil
        case (Int32(IPPROTO_IP), IP_TOS): ipHeader.typeOfService = UInt8(truncatingIfNeeded: value)
        case (Int32(IPPROTO_IPV6), IPV6_UNICAST_HOPS): ipHeader.hopLimit = (0...255).contains(value) ? UInt8(value) : nil
        case (Int32(IPPROTO_IPV6), IPV6_TCLASS): ipHeader.trafficClass = UInt8(truncatingIfNeeded: value)
        default: return false
        }
        return true
    }
}

extension AppSocket {
    /// Room for the stack in `rx`: the ring's, within what SO_RCVBUF leaves unread.
    var receiveRoom: Int {
        let room = region.rx.writable
        guard let limit = options.receiveBuffer else { return room }
        return max(0, min(room, limit - region.rx.readable))
    }

    /// setsockopt on the stack: recorded, and applied at once to the connection if there is one.
    func setOption(level: Int32, name: Int32, value: Int64) -> ControlReply {
        guard options.set(level: level, name: name, value: value) else { return .failure(ENOPROTOOPT) }
        applyOptions()
        return ControlReply(result: 0)
    }

    /// Gives the connection what the options say (after connect, or on
    /// accept the listener's); a listener's go to the connections it takes
    /// from now on, and a datagram socket's to its UDP socket.
    func applyOptions() {
        udp?.ipHeader = options.ipHeader
        listener?.configure { options.configure(&$0) }
        guard let c = connection, c.state != .closed else { return }
        c.ipHeader = options.ipHeader
        c.userTimeout = options.userTimeout
        c.noDelay = options.noDelay
        c.corked = options.corked
        // Only a change restarts the idle time (TCP_NODELAY must not).
        let k = options.keepaliveSettings
        if k != c.keepalive { c.setKeepalive(k, now: server.stack.clock.now) }
    }
}
