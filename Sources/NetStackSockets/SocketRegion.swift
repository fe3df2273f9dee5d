#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI
import NetStack
import NetStackWire

/// One socket's shared memory: a memfd mapped here and, once its descriptor
/// went over the API socket, in the application. It holds the two rings
/// (`tx` app to stack, `rx` stack to app), the state bits the stack sets for
/// the application (connected, end of input, error and its errno), and the
/// wake-up flags each side raises before it waits, so that the other rings
/// its doorbell only then: in steady state data moves without a system call.
///
/// A flag's protocol (`wantsTransmitDoorbell` and the app's mirror image):
/// the waiting side sets the flag and then looks at the ring again; the
/// other side publishes its index and then takes the flag. Both sequentially
/// consistent, so either the waiter sees the new bytes or the other side
/// sees the flag and rings.
public final class SocketRegion {
    /// The memfd and its mapping: what a region is, and what its
    /// application's `RegionPool` keeps when its socket closes.
    struct Mapping {
        /// The memfd, open while the region lives: a process that exec'd
        /// maps the region again from it (NS_OP_REGION), its old mapping gone.
        let descriptor: Int32
        let base: UnsafeMutableRawPointer
        let length: Int
        let ringSize: Int
        /// The region's number, the same each time it is given again, by
        /// which the library finds its own mapping of it (`ns_reply.region_serial`).
        let serial: UInt32

        /// A zeroed region of rings of `ringSize` bytes.
        init(ringSize: Int, serial: UInt32) throws(SocketAPIError) {
            let fd = ns_memfd("netstack-socket")
            if fd < 0 { throw .systemCall("memfd_create", errno) }
            let length = ns_region_length(UInt32(ringSize))
            if ftruncate(fd, off_t(length)) != 0 {
                let e = errno
                Glibc.close(fd)
                throw .systemCall("ftruncate", e)
            }
            guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
                let e = errno
                Glibc.close(fd)
                throw .systemCall("mmap", e)
            }
            descriptor = fd
            base = p
            self.length = length
            self.ringSize = ringSize
            self.serial = serial
        }

        func unmap() {
            munmap(base, length)
            Glibc.close(descriptor)
        }
    }

    private let mapping: Mapping
    /// Where the mapping goes when the region does, instead of being
    /// unmapped (`keep(in:)`).
    private weak var pool: RegionPool?
    private let header: OpaquePointer
    /// App to stack.
    public let tx: SharedRing
    /// Stack to app.
    public let rx: SharedRing

    /// The memfd the application maps.
    public var descriptor: Int32 { mapping.descriptor }
    /// Each ring's size in bytes.
    public var ringSize: Int { mapping.ringSize }
    /// The region's number (`Mapping.serial`).
    public var serial: UInt32 { mapping.serial }

    /// Makes a region with rings of `ringSize` bytes (a power of two, at
    /// least 4 KiB), telling the application the stack's interface.
    public convenience init(ringSize: Int, serial: UInt32 = 0,
                            interface: InterfaceDescription = InterfaceDescription()) throws(SocketAPIError) {
        precondition(ringSize >= 4096 && ringSize & (ringSize - 1) == 0 && ringSize <= 1 << 30)
        self.init(try Mapping(ringSize: ringSize, serial: serial), fresh: true, interface: interface)
    }

    /// A region on `mapping`: a fresh (zeroed) one, or one given again,
    /// whose header is laid out anew and whose rings keep their old bytes.
    init(_ mapping: Mapping, fresh: Bool, interface: InterfaceDescription) {
        let p = mapping.base
        let ringSize = mapping.ringSize
        if fresh { ns_region_init(p, UInt32(ringSize)) } else { ns_region_reset(p, UInt32(ringSize)) }
        ns_region_set_interface(p, interface.abi)
        self.mapping = mapping
        header = ns_region_header(p)
        // The layout as made here, before the application sees the region: the
        // rings keep it and never read the header's copy (`SharedRing`).
        tx = SharedRing(ring: ns_region_tx(p), data: p + Int(ns_region_tx_offset()), size: ringSize)
        rx = SharedRing(ring: ns_region_rx(p), data: p + Int(ns_region_rx_offset(UInt32(ringSize))), size: ringSize)
    }

    /// When the region goes (its socket closed and TCP let go of the bytes it
    /// lent), its mapping goes to `pool`, for the same application's next
    /// socket, if its rings moved little (`ns_region_reusable`) and the
    /// application never broke them.
    func keep(in pool: RegionPool) { self.pool = pool }

    deinit {
        if let pool, !isBroken, ns_region_reusable(header), pool.keep(mapping) { return }
        mapping.unmap()
    }

    /// The application broke one of the rings (`SharedRing.isBroken`).
    public var isBroken: Bool { tx.isBroken || rx.isBroken }

    /// Plays a broken or hostile application, for tests: stores straight into
    /// `tx`'s header (or `rx`'s); a field left nil keeps its value.
    func overwriteHeader(rx: Bool = false, head: UInt32? = nil, tail: UInt32? = nil,
                         size: UInt32? = nil, offset: UInt32? = nil) {
        guard let r = rx ? ns_region_rx(mapping.base) : ns_region_tx(mapping.base) else { return }
        let laidOut = rx ? ns_region_rx_offset(UInt32(ringSize)) : ns_region_tx_offset()
        ns_ring_overwrite(r, head ?? ns_ring_head(r), tail ?? ns_ring_tail(r), size ?? UInt32(ringSize),
                          offset ?? laidOut)
    }

    // MARK: State for the application

    public struct State: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let connected = State(rawValue: UInt32(NS_STATE_CONNECTED))
        public static let endOfInput = State(rawValue: UInt32(NS_STATE_RX_EOF))
        public static let error = State(rawValue: UInt32(NS_STATE_ERROR))
        public static let writeClosed = State(rawValue: UInt32(NS_STATE_TX_CLOSED))
        public static let loopback = State(rawValue: UInt32(NS_STATE_LOOPBACK))
    }

    public var state: State { State(rawValue: ns_state(header)) }

    public func add(_ state: State) { ns_state_add(header, state.rawValue) }

    public func remove(_ state: State) { ns_state_remove(header, state.rawValue) }

    /// Records the errno that ended the connection, then `.error` (and no more writes).
    public func fail(errno e: Int32) {
        ns_set_error(header, e)
        add([.error, .writeClosed])
    }

    /// Records an errno for the application's next call (a connected UDP
    /// socket's ICMP error), without ending anything.
    public func setError(_ e: Int32) { ns_set_error(header, e) }

    /// A listener's connections waiting for accept, for the application's readiness.
    public func setPending(_ n: Int) { ns_set_pending(header, UInt32(clamping: n)) }
    /// A connection came to the listener (`arrivals`, news to an edge-triggered waiter).
    public func connectionArrived() { ns_add_arrival(header) }

    /// The peer's urgent mark (`urgent_mark`): its byte's index in `rx`
    /// and how many marks came, for the application's MSG_OOB, SIOCATMARK
    /// and POLLPRI.
    public func setUrgentMark(count: UInt32, index: UInt32) { ns_set_urgent_mark(header, ns_urgent_pack(count, index)) }
    /// A replaced mark's byte the reader is to pass over (`urgent_hole`).
    public func setUrgentHole(count: UInt32, index: UInt32) { ns_set_urgent_hole(header, ns_urgent_pack(count, index)) }
    /// The application set O_ASYNC on the socket (`app_async`): news signals its owner.
    public var wantsIOSignals: Bool { ns_app_async(header) }

    /// The application's last urgent send (`urgent_sent`): how many, and the `tx` index just past it.
    public var urgentSent: (count: UInt32, index: UInt32) {
        let mark = ns_urgent_sent(header)
        return (ns_urgent_count(mark), ns_urgent_index(mark))
    }

    /// Publishes the connection's state for the application's TCP_INFO,
    /// TCP_MAXSEG and TCP_CONGESTION (under the region's sequence lock).
    public func publish(_ info: TCPInfo, state: TCPState) {
        var f = ns_tcp_fields()
        f.state = Self.linuxState(state)
        f.mss = UInt32(clamping: info.sendMSS)
        f.cwnd_bytes = UInt32(clamping: info.congestionWindow)
        f.ssthresh_bytes = UInt32(clamping: info.slowStartThreshold)
        f.send_window = UInt32(clamping: info.sendWindow)
        func microseconds(_ d: Duration?) -> UInt32 {
            guard let c = d?.components else { return 0 }
            return UInt32(clamping: c.seconds * 1_000_000 + c.attoseconds / 1_000_000_000_000)
        }
        f.rtt_us = microseconds(info.smoothedRTT)
        f.rttvar_us = microseconds(info.rttVariation)
        f.total_retrans = UInt32(clamping: info.segmentsRetransmitted)
        Self.name(info.congestionAlgorithm, into: &f)
        f.rto_us = microseconds(info.retransmissionTimeout)
        f.min_rtt_us = microseconds(info.minimumRTT)
        f.advmss = UInt32(clamping: info.advertisedMSS)
        f.pmtu = UInt32(clamping: info.pathMTU)
        f.in_flight = UInt32(clamping: info.bytesInFlight)
        f.options = (info.timestamps ? 1 : 0) | (info.selectiveAcknowledgments ? 2 : 0) | (info.windowScaling ? 4 : 0)
        f.send_wscale = info.sendWindowScale
        f.receive_wscale = info.receiveWindowScale
        f.bytes_sent = info.bytesSent
        f.bytes_acked = info.bytesAcknowledged
        f.bytes_received = info.bytesReceived
        ns_tcp_publish(header, &f)
    }

    /// Publishes a connected datagram socket's path MTU, which IP_MTU and
    /// IPV6_MTU read (0: not connected, ENOTCONN), as of its connect.
    public func publish(pathMTU: Int) {
        var f = ns_tcp_fields()
        f.pmtu = UInt32(clamping: pathMTU)
        ns_tcp_publish(header, &f)
    }

    /// Publishes the algorithm the socket's connection will use, before it
    /// has one: TCP_CONGESTION reads it from the start, as on Linux.
    public func publish(congestion: CongestionAlgorithm) {
        var f = ns_tcp_fields()
        Self.name(congestion, into: &f)
        ns_tcp_publish(header, &f)
    }

    private static func name(_ algorithm: CongestionAlgorithm, into f: inout ns_tcp_fields) {
        withUnsafeMutableBytes(of: &f.congestion) { name in
            name.copyBytes(from: algorithm.rawValue.utf8.prefix(name.count - 1))
        }
    }

    /// Linux's TCP state numbers (include/net/tcp_states.h), as TCP_INFO's `tcpi_state`.
    static func linuxState(_ s: TCPState) -> UInt32 {
        switch s {
        case .established: 1
        case .synSent: 2
        case .synReceived: 3
        case .finWait1: 4
        case .finWait2: 5
        case .timeWait: 6
        case .closed: 7
        case .closeWait: 8
        case .lastAck: 9
        case .listen: 10
        case .closing: 11
        }
    }

    /// The pending error, if any (SO_ERROR reads and clears it in the app).
    public var pendingError: Int32 { ns_peek_error(header) }

    // MARK: Wake-up flags

    /// The stack drained `tx` and wants the doorbell when more comes.
    public func wantTransmitDoorbell() { ns_flag_set(ns_stack_wants_tx(header)) }
    /// The stack could not put everything into `rx` and wants the doorbell on room.
    public func wantReceiveRoom() { ns_flag_set(ns_stack_wants_rx_room(header)) }
    /// Takes the app's request to hear of room in `tx` (true if it had asked).
    public func takeAppWantsWrite() -> Bool { ns_flag_take(ns_app_wants_write(header)) != 0 }
    /// The free room in `tx` a stream socket's waiting writer asked for
    /// (`write_wake_room`), within the ring: at least one byte.
    public var writeWakeRoom: Int { min(max(Int(ns_write_wake_room(header)), 1), ringSize) }

    /// Takes the app's request to hear of new bytes in `rx` (true if it is waiting for them).
    public func takeAppWantsRead() -> Bool { ns_flag_take(ns_app_wants_read(header)) != 0 }

    /// The app side of the flags, for tests that play the application.
    public func appWantsRead() { ns_flag_set(ns_app_wants_read(header)) }
    public func takeStackWantsTransmit() -> Bool { ns_flag_take(ns_stack_wants_tx(header)) != 0 }
    public func takeStackWantsReceiveRoom() -> Bool { ns_flag_take(ns_stack_wants_rx_room(header)) != 0 }
    public func appWantsWrite() { ns_flag_set(ns_app_wants_write(header)) }
    /// As the library's writer before it waits: the room it asks for, then the flag.
    public func appWantsWrite(room: UInt32) {
        ns_set_write_wake_room(header, room)
        appWantsWrite()
    }
}
