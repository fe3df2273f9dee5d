/// The settings an application may change on an open connection, as Linux's
/// setsockopt does (TCP_NODELAY, TCP_CORK, SO_KEEPALIVE and
/// TCP_KEEPIDLE/INTVL/CNT, TCP_USER_TIMEOUT, IP_TTL and IP_TOS):
/// the preload library's sockets are configured after connect or accept.
extension TCPConnection {
    /// Nagle's algorithm off (TCP_NODELAY). Turning it off sends what it held
    /// back in this loop turn, as Linux pushes pending frames.
    public var noDelay: Bool {
        get { sender.noDelay }
        set {
            guard newValue != sender.noDelay else { return }
            sender.noDelay = newValue
            if newValue { requestService() }
        }
    }

    /// TCP_CORK: partial segments wait until it comes out (at most 200 ms,
    /// `TCPSender.corkCeiling`); taking it out sends what waited in this
    /// loop turn, as Linux's tcp_push_pending_frames.
    public var corked: Bool {
        get { sender.corked }
        set {
            guard newValue != sender.corked else { return }
            sender.corked = newValue
            sender.corkDeadline = nil
            sender.corkExpired = false
            if !newValue { requestService() }
        }
    }

    /// The hop limit and DS field of the packets it sends from now on.
    public var ipHeader: IPHeaderSettings {
        get { configuration.ipHeader }
        set { configuration.ipHeader = newValue }
    }

    /// RFC 5482's user timeout (`TCPConfiguration.userTimeout`); a change
    /// counts from the next retransmission timeout or keepalive probe.
    public var userTimeout: Duration? {
        get { configuration.userTimeout }
        set { configuration.userTimeout = newValue }
    }

    /// The keepalive in force (nil: off).
    public var keepalive: TCPConfiguration.Keepalive? { configuration.keepalive }

    /// Keepalive on (`k`) or off (nil). As Linux's SO_KEEPALIVE and
    /// TCP_KEEPIDLE: the idle time counts from now, with no probe sent yet.
    public func setKeepalive(_ k: TCPConfiguration.Keepalive?, now: Instant) {
        configuration.keepalive = k
        keepaliveProbesSent = 0
        keepaliveDeadline = k.flatMap { state.isSynchronized ? now + $0.idle : nil }
        requestService()
    }
}
