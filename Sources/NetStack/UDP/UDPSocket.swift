import DequeModule
import NetStackWire

/// An ICMP error about a datagram this socket sent (RFC 1122 4.1.3.3: UDP
/// passes them up to the application).
public struct UDPSocketError: Equatable, Sendable {
    public var kind: IPErrorKind
    /// Where the datagram that drew the error was going.
    public var destination: UDPEndpoint
}

/// How a datagram arrived: its sender, the address it came to (ours, or a
/// broadcast or multicast one), and its IP header's DS field (IPv4's TOS,
/// IPv6's traffic class) and TTL or hop limit, which IP_PKTINFO,
/// IP_RECVTOS and IP_RECVTTL report (RFC 3542 6 for IPv6's).
public struct UDPArrival: Equatable, Sendable {
    public var source: UDPEndpoint
    public var destination: IPAddress
    public var trafficClass: UInt8
    public var hopLimit: UInt8
    /// When the loop took it in (SO_TIMESTAMP's time, on the stack's clock).
    public var time: Instant

    public init(source: UDPEndpoint, destination: IPAddress, trafficClass: UInt8 = 0, hopLimit: UInt8 = 64,
                time: Instant = .zero) {
        self.source = source
        self.destination = destination
        self.trafficClass = trafficClass
        self.hopLimit = hopLimit
        self.time = time
    }
}

/// A bound UDP port (RFC 768): a bounded queue of received datagrams, the
/// errors ICMP reported about what it sent, and sending.
///
/// Datagrams are copied once into the socket's ring when they arrive; one that
/// does not fit is dropped (`udp-receive-queue-full`), as a kernel socket drops
/// past its receive buffer. Runs on the loop; callbacks are called there.
public final class UDPSocket: FamilyBound {
    public let port: UInt16
    /// The families it takes and sends; a datagram of the other finds the
    /// port closed, and sending to the other is refused.
    public let families: IPFamilies
    public let sharesPort: Bool
    public let sharesAddress: Bool
    /// connect(2): the one peer it takes datagrams from, before any socket
    /// on its port that is not connected (nil: any peer).
    public private(set) var connectedPeer: UDPEndpoint?
    /// Bytes of payload the queue holds at most.
    public var receiveCapacity: Int { ring.capacity }
    /// Called when a datagram or an error arrives.
    public var onReadable: ((UDPSocket) -> Void)?
    /// The hop limit and DS field of what it sends (IP_TTL, IP_TOS).
    public var ipHeader = IPHeaderSettings.standard
    public internal(set) var isClosed = false

    unowned let layer: UDPLayer
    private let ring: ByteRing
    private var datagrams: Deque<(arrival: UDPArrival, length: Int)>
    private var errorQueue: Deque<UDPSocketError>
    static let maximumQueuedErrors = 16
    /// Also bounds empty datagrams, which take no bytes.
    static let maximumQueuedDatagrams = 4096

    init(port: UInt16, families: IPFamilies = .both, sharesPort: Bool = false, sharesAddress: Bool = false,
         receiveCapacity: Int, layer: UDPLayer) {
        self.port = port
        self.families = families
        self.sharesPort = sharesPort
        self.sharesAddress = sharesAddress
        self.layer = layer
        ring = ByteRing(capacity: receiveCapacity)
        datagrams = Deque(minimumCapacity: 64)
        errorQueue = Deque(minimumCapacity: Self.maximumQueuedErrors)
    }

    /// Datagrams waiting to be received.
    public var pendingDatagrams: Int { datagrams.count }
    /// The size of the next datagram, if one is waiting.
    public var nextDatagramLength: Int? { datagrams.first?.length }

    /// Takes the next datagram: its payload replaces `buffer`'s contents (no
    /// allocation once `buffer` has the capacity). Nil when none is waiting.
    public func receive(into buffer: inout [UInt8]) -> UDPEndpoint? {
        receiveArrival(into: &buffer)?.source
    }

    /// Takes the next datagram, as `receive(into:)`, with how it arrived.
    public func receiveArrival(into buffer: inout [UInt8]) -> UDPArrival? {
        guard let (arrival, length) = datagrams.popFirst() else { return nil }
        let (a, b) = ring.peek(from: 0, count: length)
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: a)
        buffer.append(contentsOf: b)
        ring.consume(length)
        return arrival
    }

    /// Takes the next error ICMP reported, oldest first.
    public func nextError() -> UDPSocketError? { errorQueue.popFirst() }

    /// Sends one datagram to `destination`, fragmented by IP beyond the MTU,
    /// with the socket's header settings or, for this datagram alone,
    /// `settings` (sendmsg's IP_TTL and IP_TOS). False if it was dropped;
    /// the reason is counted.
    @discardableResult
    public func send(_ payload: Span<UInt8>, to destination: UDPEndpoint, settings: IPHeaderSettings? = nil) -> Bool {
        guard !isClosed, families.contains(destination.address) else { return false }
        return payload.withUnsafeBytes {
            layer.send(from: port, to: destination, payload: $0, settings: settings ?? ipHeader)
        }
    }

    /// Sends one datagram from an array.
    @discardableResult
    public func send(_ payload: [UInt8], to destination: UDPEndpoint) -> Bool {
        send(payload.span, to: destination)
    }

    /// Takes datagrams from `peer` only (nil: from any again). What is
    /// queued stays, as Linux keeps it. Returns the address it sends to
    /// `peer` from (nil without a route, or without a peer).
    @discardableResult
    public func connect(to peer: UDPEndpoint?) -> IPAddress? {
        connectedPeer = peer
        return peer.flatMap { layer.sourceAddress(towards: $0.address) }
    }

    /// Unbinds the port; what is queued is dropped.
    public func close() {
        guard !isClosed else { return }
        layer.unbind(self)
    }

    // MARK: From the layer

    /// Queues a received datagram; false if it does not fit.
    func enqueue(_ payload: UnsafeRawBufferPointer, arrival: UDPArrival) -> Bool {
        guard payload.count <= ring.freeSpace, datagrams.count < Self.maximumQueuedDatagrams else { return false }
        _ = ring.append(payload)
        datagrams.append((arrival, payload.count))
        onReadable?(self)
        return true
    }

    /// Queues an error; the oldest gives way when the queue is full.
    func enqueue(_ error: UDPSocketError) {
        if errorQueue.count == Self.maximumQueuedErrors { _ = errorQueue.popFirst() }
        errorQueue.append(error)
        onReadable?(self)
    }

    func closed() {
        isClosed = true
        datagrams.removeAll()
        ring.consume(ring.count)
    }
}
