import NetStackWire

/// Everything TCP keeps per interface: connections by 4-tuple, listeners by
/// port, the ISN generator, the timer wheel and the RFC 5961 challenge-ACK
/// limit. Not generic, so the state lives apart from the device type.
final class TCPTable {
    var connections: [TCPFourTuple: TCPConnection] = [:]
    /// Connections by timer id, so a fired wheel timer finds its connection.
    var byTimerID: [UInt64: TCPConnection] = [:]
    var nextTimerID: UInt64 = 1
    var listeners: [UInt16: TCPListener] = [:]
    var isn: InitialSequenceNumbers
    let wheel: HierarchicalTimerWheel
    /// RFC 5961 7: challenge ACKs are rate limited system-wide (Linux: 1000/s).
    var challengeAcks: TokenBucket
    /// RFC 6056: ephemeral ports from the IANA dynamic range.
    var nextEphemeralPort: UInt16
    var defaultConfiguration = TCPConfiguration()

    init(now: Instant, isn: InitialSequenceNumbers) {
        self.isn = isn
        wheel = HierarchicalTimerWheel(start: now)
        challengeAcks = TokenBucket(ratePerSecond: 1000, burst: 100, now: now)
        nextEphemeralPort = 49152 + UInt16(truncatingIfNeeded: now.nanoseconds >> 12) % 16384
    }

    /// A free local port for an active open to `remote`.
    func ephemeralPort(local: IPv4Address, remote: IPv4Address, remotePort: UInt16) -> UInt16? {
        for _ in 0..<16384 {
            let p = nextEphemeralPort
            nextEphemeralPort = nextEphemeralPort == 65535 ? 49152 : nextEphemeralPort + 1
            let t = TCPFourTuple(localAddress: local, localPort: p, remoteAddress: remote, remotePort: remotePort)
            if connections[t] == nil && listeners[p] == nil { return p }
        }
        return nil
    }

    func register(_ c: TCPConnection) {
        c.timerID = nextTimerID
        nextTimerID += 1
        connections[c.tuple] = c
        byTimerID[c.timerID] = c
    }

    func remove(_ c: TCPConnection) {
        connections[c.tuple] = nil
        byTimerID[c.timerID] = nil
        if let h = c.timerHandle { _ = wheel.cancel(h) }
        c.timerHandle = nil
        c.armedDeadline = nil
    }

    /// Keeps one wheel timer per connection at its earliest deadline.
    func syncTimer(_ c: TCPConnection) {
        let deadline = c.nextDeadline
        guard deadline != c.armedDeadline else { return }
        if let h = c.timerHandle { _ = wheel.cancel(h) }
        c.timerHandle = deadline.map { wheel.arm(at: $0, payload: c.timerID) }
        c.armedDeadline = deadline
    }
}

public enum TCPListenError: Error, Equatable {
    case portInUse(UInt16)
    case portZero
}

public enum TCPConnectError: Error, Equatable {
    case noEphemeralPort
    case noRoute
}
