import Logging
import NetStackWire

/// One Ethernet interface of the stack: the link and IP: Ethernet, ARP, IPv4
/// (with reassembly and fragmentation) and ICMP over a device, and beside
/// them IPv6 (extension headers, reassembly, fragmentation), ICMPv6 and
/// neighbour discovery when the configuration asks for IPv6. It hands
/// datagrams up to the transports, `tcp` and `udp`, through the IP boundary
/// (`IPDatagram` up, `IPOutput` down); their state is theirs.
///
/// Generic over the device so that the receive path is specialised and
/// inlined end to end. Owned by one event loop; not thread-safe. Time comes
/// in as an argument (`now`), never from a global clock.
public final class Interface<D: Device> {
    public let device: D
    public let configuration: InterfaceConfiguration
    public internal(set) var counters = InterfaceCounters()
    var logger: Logger

    var arp: ARPCache
    let reassembler: IPv4Reassembler
    /// Path MTUs learned per destination (RFC 1191, RFC 8201), lowered only
    /// by a transport that validated the report (`lowerPathMTU`).
    var pathMTUs: PathMTUCache
    /// The transports, which IP demultiplexes to by protocol number.
    public let tcp: TCPLayer
    public let udp: UDPLayer
    var icmpErrorBucket: TokenBucket
    var nextIdentification: UInt16
    /// The device's capabilities, read once (they do not change while it is open).
    let link: DeviceCapabilities
    /// Scratch for ARP bookkeeping, kept to avoid allocating per call.
    var scratchParked: [ParkedPacket] = []
    var scratchRetry: [IPv4Address] = []
    var scratchFailed: [IPv4Address] = []

    // IPv6 (see Interface+IPv6*.swift, +ICMPv6, +NDP).
    /// The neighbour table of IPv6, the same design as ARP's.
    var ndp: NDPCache
    let reassembler6: IPv6Reassembler
    var own6: IPv6OwnAddresses
    var routers6 = RouterDiscovery()
    /// The multicast groups listened to, and the MLD reports owed (RFC 3810).
    var mld = MulticastListener()
    var nextFragmentIdentification6: UInt32
    /// Keys the flow labels of what we send (RFC 6437 3: a hash of the flow's tuple and a secret).
    let flowLabelSecret: UInt64
    var scratchRetry6: [IPv6Address] = []
    var scratchFailed6: [IPv6Address] = []
    var scratchAssigned6: [IPv6Address] = []
    /// Frames to our own addresses, received again on the next poll
    /// (`Interface+Loopback.swift`).
    let loopedBack: PacketQueue

    public var macAddress: MACAddress { configuration.macAddress }
    public var address: IPv4Address { configuration.address.address }

    public init(device: D, configuration: InterfaceConfiguration, now: Instant,
                logger: Logger = Logger(label: "netstack.interface")) {
        self.device = device
        self.configuration = configuration
        self.logger = logger
        link = device.capabilities
        arp = ARPCache(capacity: configuration.arpCacheCapacity, lifetime: configuration.arpLifetime,
                       retryInterval: configuration.arpRetryInterval, maxRequests: configuration.arpMaxRequests,
                       maxWaiting: configuration.arpMaxWaiting)
        reassembler = IPv4Reassembler(maxDatagrams: configuration.reassemblyMaxDatagrams,
                                      timeout: configuration.reassemblyTimeout)
        ndp = NDPCache(capacity: configuration.arpCacheCapacity, lifetime: configuration.arpLifetime,
                       retryInterval: configuration.ndpRetransTimer, maxRequests: configuration.arpMaxRequests,
                       maxWaiting: configuration.arpMaxWaiting)
        reassembler6 = IPv6Reassembler(maxDatagrams: configuration.reassemblyMaxDatagrams,
                                       timeout: configuration.reassembly6Timeout)
        own6 = IPv6OwnAddresses(linkLocal: configuration.linkLocal6, global: configuration.address6,
                                dadTransmits: configuration.speaksIPv6 ? configuration.dadTransmits : 0,
                                retransTimer: configuration.ndpRetransTimer, now: now)
        var seed = SystemRandomNumberGenerator()
        nextFragmentIdentification6 = seed.next()
        flowLabelSecret = seed.next()
        pathMTUs = PathMTUCache(capacity: configuration.pathMTUCacheCapacity,
                                lifetime: configuration.pathMTULifetime)
        icmpErrorBucket = TokenBucket(ratePerSecond: configuration.icmpErrorsPerSecond,
                                      burst: configuration.icmpErrorBurst, now: now)
        // Start identifications from the clock so a restarted stack does not
        // reuse the identifiers of datagrams still in a peer's reassembly queue.
        nextIdentification = UInt16(truncatingIfNeeded: now.nanoseconds >> 10)
        scratchParked.reserveCapacity(configuration.arpMaxWaiting)
        loopedBack = PacketQueue(pool: device.pool, capacity: Self.loopbackCapacity)
        tcp = TCPLayer(now: now, memory: MemoryBudget(limit: configuration.memoryLimit), logger: logger)
        udp = UDPLayer(now: now)
        tcp.attach(to: self)
        udp.attach(to: self)
        if configuration.speaksIPv6 { joinSolicitedNodeGroups(now: now) }
    }

    deinit {
        // Frames still waiting for ARP go back to the pool.
        var parked: [ParkedPacket] = []
        for w in arp.waiting { parked.append(w.packet) }
        for w in ndp.waiting { parked.append(w.packet) }
        for p in parked { _ = device.pool.resume(p) }
    }

    // MARK: Driving

    /// Receives and processes up to `limit` frames, services connections whose
    /// applications queued output, then flushes what all that caused to be
    /// sent. Returns the number of frames received (those looped back to us
    /// included, `Interface+Loopback.swift`).
    @discardableResult
    public func poll(now: Instant, limit: Int = 64) -> Int {
        udp.advance(to: now)
        let n = device.receive(limit: limit) { frame in
            self.receive(frame, now: now)
        } + (loopedBack.isEmpty ? 0 : receiveLoopedBack(now: now))
        tcp.servicePending(now: now)
        flushDevice()
        return n
    }

    /// Sends what applications queued since the last poll (writes, closes),
    /// without receiving.
    public func flushPending(now: Instant) {
        udp.advance(to: now)
        tcp.servicePending(now: now)
        flushDevice()
    }

    /// Runs timers: TCP's, ARP retries and give-ups, reassembly timeouts,
    /// path MTU estimates ageing out.
    public func tick(now: Instant) {
        udp.advance(to: now)
        tcp.tick(now: now)
        if let due = pathMTUs.nextExpiry, now >= due {
            counters.pathMTUExpired &+= UInt64(pathMTUs.expire(now: now))
        }
        arp.due(now: now, retry: &scratchRetry, failed: &scratchFailed)
        for ip in scratchRetry { sendARPRequest(for: ip) }
        abandonWaiting(in: &arp, for: scratchFailed)
        // Half-open connections and active opens through them go (Linux's
        // neighbour failure reaching `tcp_req_err` and `tcp_v4_err`).
        for hop in scratchFailed {
            tcp.neighbourUnreachable(now: now) { if case .v4(let d) = $0 { route(d) == hop } else { false } }
        }
        reassembler.expire(now: now) { firstBytes in
            counters.drops.record(.reassemblyTimeout)
            // RFC 792: time exceeded, code 1, only if fragment zero arrived.
            if firstBytes.count > 0 {
                sendICMPError(.timeExceeded(code: 1), about: firstBytes, now: now)
            }
        }
        if configuration.speaksIPv6 { tick6(now: now) }
        flushDevice()
    }

    /// The next time `tick` has work, so the loop can sleep until then.
    public var nextTimerDeadline: Instant? {
        var d = reassembler.nextDeadline
        if let t = tcp.nextDeadline { d = min(d ?? t, t) }
        if let t = pathMTUs.nextExpiry { d = min(d ?? t, t) }
        for e in arp.entries.values where e.mac == nil {
            d = min(d ?? e.nextRequest, e.nextRequest)
        }
        if configuration.speaksIPv6, let t = nextTimerDeadline6 { d = min(d ?? t, t) }
        return d
    }

    /// Announces our address with a gratuitous ARP (RFC 5227 2.3 announcement),
    /// so neighbours with a stale entry update it.
    public func announce() {
        sendARP(operation: .request, targetMAC: .zero, targetIP: address, destination: .broadcast)
        flushDevice()
    }

    /// Pushes queued frames out. Their tails have been read then, or are
    /// being read by a write the kernel holds: connections retired before
    /// now, whose send rings the tails lie in, may go (`TCPLayer.retired`).
    @inline(__always)
    func flushDevice() {
        device.flush()
        tcp.deviceFlushed()
    }

    // MARK: Receive

    /// Processes one received Ethernet frame. The frame is consumed: it is
    /// either transmitted again (an answer built in place) or returned to the pool.
    public func receive(_ frame: consuming PacketBuffer, now: Instant) {
        receive(frame, fromSelf: false, now: now)
    }

    /// `fromSelf`: a frame this interface sent to its own address
    /// (`loopBack`), whose source is ours.
    @inline(__always)
    func receive(_ frame: consuming PacketBuffer, fromSelf: Bool, now: Instant) {
        counters.framesIn &+= 1
        counters.bytesIn &+= UInt64(frame.length)
        let trusted = frame.offload.checksumVerified
        let verdict = frame.withBytes { bytes in
            self.classify(bytes, checksumTrusted: trusted, fromSelf: fromSelf, now: now)
        }
        switch verdict {
        case .done:
            break
        case .drop(let reason):
            counters.drops.record(reason)
        case .transmit(let length):
            frame.setLength(length)
            frame.offload = .none
            if fromSelf {
                loopBack(frame)
            } else {
                transmit(frame)
            }
        }
    }

    @inline(__always)
    func classify(_ bytes: UnsafeMutableRawBufferPointer, checksumTrusted: Bool, fromSelf: Bool = false,
                  now: Instant) -> Verdict {
        let eth: EthernetFrame
        do { eth = try EthernetFrame(validating: bytes) } catch { return .drop(.ethernetTruncated) }
        let dst = eth.destination
        guard dst == configuration.macAddress || dst.isBroadcast || acceptsMulticast(dst) else {
            return .drop(.notOurMAC)
        }
        switch eth.etherType {
        case .ipv4:
            return receiveIPv4(eth, checksumTrusted: checksumTrusted, linkBroadcast: dst.isMulticast,
                               fromSelf: fromSelf, now: now)
        case .arp: return receiveARP(eth, now: now)
        case .ipv6:
            guard configuration.speaksIPv6 else { return .drop(.unsupportedEtherType) }
            return receiveIPv6(eth, checksumTrusted: checksumTrusted, linkMulticast: dst.isMulticast,
                               fromSelf: fromSelf, now: now)
        default: return .drop(.unsupportedEtherType)
        }
    }

    /// A multicast group address this interface listens on (IPv6's all
    /// nodes and solicited-node groups); never true without IPv6.
    @inline(__always)
    func acceptsMulticast(_ mac: MACAddress) -> Bool {
        configuration.speaksIPv6 && mac.isMulticast && own6.acceptsMulticast(mac)
    }

    // MARK: Transmit

    /// Sends an Ethernet frame, whole in its slot or ending with `tail` (`FrameTail`).
    @inline(__always)
    func transmit(_ frame: consuming PacketBuffer, tail: FrameTail = .none) {
        counters.framesOut &+= 1
        counters.bytesOut &+= UInt64(frame.length + tail.count)
        if tail.isEmpty {
            device.transmit(frame)
        } else {
            device.transmit(frame, tail: tail)
        }
    }
}

/// What became of a received frame. Outside `Interface`: nested in the
/// generic class it was a generic type, whose metadata the unspecialised
/// receive path looked up in the runtime's cache for every frame.
enum Verdict {
    case done
    case drop(DropReason)
    /// An answer was written in place; send the first `length` bytes.
    case transmit(length: Int)
}
