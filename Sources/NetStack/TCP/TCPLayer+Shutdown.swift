/// Taking TCP down with the stack: stop accepting, close every connection in
/// order, see when they are done, reset what is left. A process that exits
/// takes its stack with it, and a peer left without a FIN or a RST waits for
/// its own timeout; these are the steps `netstack up` runs on SIGTERM.
extension TCPLayer {
    /// Stops accepting: every listener closes (`close(_:)`), so a new SYN is
    /// answered with a RST (RFC 9293 3.10.7.1), and handshakes in progress
    /// and connections nobody accepted are reset.
    public func closeListeners() {
        for l in listeners.values.flatMap(\.all) { close(l) }
    }

    /// Closes every connection in order (RFC 9293 3.10.4 CLOSE): a FIN goes
    /// after the data already queued, which still goes; what arrives can
    /// still be read. A connection still in SYN-SENT is deleted. Unlike
    /// `TCPConnection.close()`, unread data does not turn the close into a
    /// reset: the application did not give up on the connection, the stack
    /// is going away and wants the peer to get everything sent so far.
    public func closeAll(now: Instant) {
        for c in Array(connections.values) {
            switch c.state {
            case .synSent, .synReceived, .established, .closeWait:
                c.shutdownWrite()
                service(c, now: now)
            default:
                break
            }
        }
    }

    /// Connections that still need their peer: all but those in TIME-WAIT,
    /// which only absorb old duplicates (RFC 9293 3.6) and need nothing
    /// from the peer. Zero means a shutdown is complete.
    public var openConnectionCount: Int {
        var n = 0
        for c in connections.values where c.state != .timeWait && c.state != .closed { n += 1 }
        return n
    }

    /// Resets every connection still open (RFC 9293 3.10.5 ABORT: a RST to a
    /// synchronized peer); the RSTs leave with the next flush. Connections
    /// in TIME-WAIT stay, untouched: they owe the peer nothing, and go with
    /// the stack (so the exit counters still show them). Returns how many
    /// connections were reset.
    @discardableResult
    public func abortAll(now: Instant) -> Int {
        var reset = 0
        for c in Array(connections.values) where c.state != .timeWait && c.state != .closed {
            c.abort()
            service(c, now: now)
            reset += 1
        }
        return reset
    }

    /// Lets go of the applications' callbacks on whatever is still listening
    /// or connected when the layer goes away. They often hold an object that
    /// holds the listener or connection back (a server and its listener, a
    /// session and its connection): without this, such pairs would outlive
    /// the stack as reference cycles.
    func releaseApplications() {
        for l in listeners.values.flatMap(\.all) { l.releaseApplication() }
        for c in connections.values { c.removeCallbacks() }
    }
}
