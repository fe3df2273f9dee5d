/// One direction of a link as `LinkEmulator` emulates it: a bottleneck that
/// serializes frames at `bitsPerSecond` behind a drop-tail queue of
/// `queueLimitBytes`, then a wire that takes `delay` to cross. The netem
/// (`delay`, `rate`, `limit`) and ns-2 `DropTail` model.
public struct LinkProfile: Sendable, Equatable, MiddlewareProfile {
    /// One-way propagation delay, added after serialization.
    public var delay: Duration
    /// The bottleneck's rate. A wire frame of n bytes (the whole Ethernet
    /// frame, no preamble or FCS) occupies it for n * 8 / rate seconds,
    /// rounded up to the nanosecond; a coalesced segment is paced as the wire
    /// frames it is cut into. Nil: no bottleneck, no queue.
    public var bitsPerSecond: Int?
    /// The drop-tail limit: bytes that may wait for the bottleneck while it
    /// sends another frame (the frame being sent does not count, as a router's
    /// buffer does not hold the frame on the wire). A frame that would push the
    /// waiting bytes past this is dropped and counted. Nil: unbounded (up to the
    /// emulator's ring capacity).
    public var queueLimitBytes: Int?

    public init(delay: Duration = .zero, bitsPerSecond: Int? = nil, queueLimitBytes: Int? = nil) {
        self.delay = delay
        self.bitsPerSecond = bitsPerSecond
        self.queueLimitBytes = queueLimitBytes
    }

    /// Passes frames through at once.
    public static var none: LinkProfile { LinkProfile() }

    /// Whether the profile delays anything.
    public var isActive: Bool { delay > .zero || bitsPerSecond != nil }

    /// Checks the ranges; the initialiser of `LinkEmulator` traps on a bad profile.
    public var isValid: Bool {
        delay >= .zero && (bitsPerSecond ?? 1) > 0 && (queueLimitBytes ?? 0) >= 0
    }

    /// The bandwidth-delay product of `rtt` at `bitsPerSecond`, in bytes: the
    /// data a window must cover to keep the bottleneck busy, and the classic
    /// size for its buffer.
    public static func bandwidthDelayProduct(bitsPerSecond: Int, rtt: Duration) -> Int {
        Int((Int64(bitsPerSecond) / 8 * rtt.nanoseconds) / 1_000_000_000)
    }
}

/// What a `LinkEmulator` did to one direction.
public struct LinkCounters: Sendable, Equatable {
    /// Wire frames that entered this direction (a coalesced segment counts
    /// as the frames it was cut into).
    public var frames: UInt64 = 0
    /// Their bytes (whole Ethernet frames, each with its own headers).
    public var bytes: UInt64 = 0
    /// Frames that came out the far end of the wire.
    public var delivered: UInt64 = 0
    /// Dropped at the tail of a full queue (`queueLimitBytes`).
    public var queueDrops: UInt64 = 0
    /// Dropped because the emulator's ring (`capacity`) was full: the emulator
    /// was sized too small for the traffic, not a property of the link (or a
    /// coalesced segment was cut finer than into 536-byte frames).
    public var overflowDrops: UInt64 = 0
    /// Wire frames of coalesced segments lost for want of a free pool slot
    /// to cut them into (not counted in `frames`).
    public var segmentationDrops: UInt64 = 0
    /// The most bytes that ever waited for the bottleneck at once.
    public var peakQueueBytes: Int = 0

    public init() {}
}

/// Middleware that wraps any device and makes the path behind it look like a
/// real link, separately for each direction: a bottleneck with a bounded FIFO
/// queue and a propagation delay (`LinkProfile`). With two stacks on a
/// `MemoryLink` on a virtual clock it turns "infinitely fast, zero latency"
/// into, say, 100 Mbit/s with a 10 ms round trip, so congestion control and
/// loss recovery meet a queue that fills and an RTT that matters (the model
/// of smoltcp's netsim test).
///
/// **Timing.** A frame entering a direction at time t starts serialization at
/// max(t, when the bottleneck finishes the frame before it), finishes
/// `length * 8 / bitsPerSecond` later, and is delivered `delay` after that.
/// Frames never overtake one another. Times come from the injected clock:
/// the transmit side stamps a frame when the stack transmits it and hands it
/// to `inner` on the first `transmit` or `flush` at or after its delivery
/// time; the receive side stamps a frame when `receive` takes it from `inner`
/// and hands it up on the first `receive` at or after its time. A driver on
/// a virtual clock jumps to `nextReleaseDeadline` and polls there, so delays
/// are honoured to the nanosecond.
///
/// **Wire frames.** The bottleneck and its queue see frames as they cross
/// the wire: a segment the device coalesced (the kernel's GSO through a TAP)
/// is cut into its wire frames, with full checksums, when it enters
/// (`WireFrameCutter`, shared with `FaultInjector`), and the capabilities
/// reported up are narrowed so the stack sends wire frames (no TSO). So a
/// 64 KiB segment takes the bottleneck as its wire frames would, one after
/// another, and the queue drops the ones that do not fit, not all or none.
///
/// **Composition.** `LinkEmulator<FaultInjector<MemoryLink>>` sends a frame
/// through the queue and then loses it on the wire (the lost frame used the
/// bottleneck); `FaultInjector<LinkEmulator<MemoryLink>>` loses it before the
/// queue. Either order works.
///
/// Nothing is allocated per frame: frames wait in a preallocated ring of
/// `capacity` entries per direction (their pool slots stay theirs), released
/// in order when due.
public final class LinkEmulator<Inner: Device>: Device {
    /// The wrapped device.
    public var inner: Inner { duplex.inner }
    public var pool: PacketPool { inner.pool }
    /// The inner device's, narrowed to wire frames (`DeviceCapabilities.wireFrames`):
    /// the bottleneck serializes and queues frames as they cross the wire.
    public let capabilities: DeviceCapabilities

    private let duplex: DuplexMiddleware<Inner, LinkLane>
    private var rx: LinkLane { duplex.rx }
    private var tx: LinkLane { duplex.tx }

    /// - Parameters:
    ///   - inner: the device to wrap.
    ///   - receive: the link frames from `inner` cross before the stack sees them.
    ///   - transmit: the link the stack's frames cross before they reach `inner`.
    ///   - clock: where the time comes from.
    ///   - capacity: wire frames each direction can hold (queued plus on the
    ///     wire); beyond it frames are dropped and counted as `overflowDrops`.
    ///     The receive side holds at least what one coalesced buffer from
    ///     `inner` becomes.
    public init(wrapping inner: Inner, receive: LinkProfile = .none, transmit: LinkProfile = .none,
                clock: any NetClock, capacity: Int = 1024) {
        precondition(capacity > 0)
        capabilities = inner.capabilities.wireFrames
        piecesPerFrame = WireFrameCutter.maxPieces(receivingFrom: inner.capabilities)
        duplex = DuplexMiddleware(
            inner: inner, clock: clock,
            rx: LinkLane(profile: receive, pool: inner.pool, capacity: max(capacity, piecesPerFrame)),
            tx: LinkLane(profile: transmit, pool: inner.pool, capacity: capacity))
    }

    /// The most wire frames one buffer from `inner` becomes (1 unless it coalesces).
    private let piecesPerFrame: Int

    /// The same link both ways.
    public convenience init(wrapping inner: Inner, both profile: LinkProfile, clock: any NetClock,
                            capacity: Int = 1024) {
        self.init(wrapping: inner, receive: profile, transmit: profile, clock: clock, capacity: capacity)
    }

    // MARK: Profiles and counters

    /// The receive direction's link. Changes apply to frames entering from now on.
    public var receiveProfile: LinkProfile {
        get { duplex.receiveProfile }
        set { duplex.receiveProfile = newValue }
    }

    /// The transmit direction's link. Changes apply to frames entering from now on.
    public var transmitProfile: LinkProfile {
        get { duplex.transmitProfile }
        set { duplex.transmitProfile = newValue }
    }

    public var receiveCounters: LinkCounters { rx.counters }
    public var transmitCounters: LinkCounters { tx.counters }

    /// Frames inside the emulator either way (queued or on the wire). A test
    /// driver should count these as in transit.
    public var framesHeld: Int { duplex.framesInside }

    /// When the next frame comes out of either direction, if any is inside.
    public var nextReleaseDeadline: Instant? { duplex.nextDeadline }

    /// Name/value pairs for printing: `link.tx.queue-drops` and so on.
    public var report: [(String, UInt64)] {
        duplex.report("link") { c in
            [("frames", c.frames), ("bytes", c.bytes), ("delivered", c.delivered), ("queue-drops", c.queueDrops),
             ("overflow-drops", c.overflowDrops), ("segmentation-drops", c.segmentationDrops),
             ("peak-queue-bytes", UInt64(c.peakQueueBytes))]
        }
    }

    // MARK: Device

    public func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        guard limit > 0 else { return 0 }
        let now = duplex.clock.now
        // Stamp everything that has arrived (as far as the ring has room for
        // its wire frames), so frames are timed from when they came, not from
        // when they were asked for.
        let room = rx.free / piecesPerFrame
        if room > 0 {
            _ = inner.receive(limit: room) { rx.enter($0, now: now) }
        }
        return rx.release(now: now, limit: limit, handler)
    }

    public func transmit(_ frame: consuming PacketBuffer) {
        let now = duplex.clock.now
        tx.enter(frame, now: now)
        duplex.transmitDue(now: now)
    }

    public func flush() { duplex.flush() }

    /// Sleeps in `inner`, but no longer than until the next frame is due.
    public func wait(timeout: Duration) { duplex.wait(timeout: timeout) }

    public func watch(wakeups descriptor: Int32) { inner.watch(wakeups: descriptor) }
    public func watch(doorbells: Doorbells) -> Bool { inner.watch(doorbells: doorbells) }
}

/// One direction of a `LinkEmulator`: a ring of frames in entry order, each
/// stamped with when it starts serialization and when it is delivered.
final class LinkLane: MiddlewareLane {
    struct Entry {
        var packet: ParkedPacket
        /// When the bottleneck starts sending it; until then it waits in the queue.
        var start: Int64
        /// When it comes out of the far end.
        var delivery: Int64
    }

    var profile: LinkProfile
    var counters = LinkCounters()
    private let pool: PacketPool
    private let cutter: WireFrameCutter
    private let ring: UnsafeMutablePointer<Entry>
    let capacity: Int
    /// Absolute positions (entries ever appended), so `waitingFrom` can sit between them.
    private var head = 0
    private var tail = 0
    /// The first entry whose serialization has not started, as of the last `advance`.
    private var waitingFrom = 0
    /// Bytes of the entries from `waitingFrom` to `tail`.
    private var waitingBytes = 0
    /// When the bottleneck finishes the last frame accepted.
    private var busyUntil = Int64.min
    /// The last delivery time handed out, so a profile change cannot reorder frames.
    private var lastDelivery = Int64.min

    init(profile: LinkProfile, pool: PacketPool, capacity: Int) {
        self.profile = profile
        self.pool = pool
        cutter = WireFrameCutter(pool: pool)
        self.capacity = capacity
        ring = .allocate(capacity: capacity)
    }

    deinit {
        discardAll()
        ring.deallocate()
    }

    var count: Int { tail - head }
    var free: Int { capacity - count }
    var nextDeadline: Instant? { count > 0 ? Instant(nanoseconds: ring[head % capacity].delivery) : nil }

    /// Takes a buffer in at `now` as the wire frames it stands for, each
    /// queued behind the bottleneck in turn.
    func enter(_ frame: consuming PacketBuffer, now: Instant) {
        let lost = cutter.cut(frame) { enterWireFrame($0, now: now) }
        counters.segmentationDrops &+= UInt64(lost)
    }

    /// Queues one wire frame behind the bottleneck, or drops it at the tail
    /// when the queue (or the ring) is full.
    private func enterWireFrame(_ frame: consuming PacketBuffer, now: Instant) {
        let length = frame.length
        counters.frames &+= 1
        counters.bytes &+= UInt64(length)
        let t = now.nanoseconds
        advance(to: t)
        guard count < capacity else {
            counters.overflowDrops &+= 1
            return
        }
        var start = t
        var finish = t
        if let rate = profile.bitsPerSecond {
            start = max(t, busyUntil)
            if start > t, let limit = profile.queueLimitBytes, waitingBytes + length > limit {
                counters.queueDrops &+= 1
                return
            }
            // ceil(bits * 1e9 / rate): exact for rates that divide evenly, never early otherwise.
            let bits = Int64(length) * 8
            finish = start + (bits * 1_000_000_000 + Int64(rate) - 1) / Int64(rate)
            busyUntil = finish
        }
        let delivery = max(finish + profile.delay.nanoseconds, lastDelivery)
        lastDelivery = delivery
        ring[tail % capacity] = Entry(packet: frame.park(), start: start, delivery: delivery)
        tail += 1
        waitingBytes += length
        advance(to: t)
        counters.peakQueueBytes = max(counters.peakQueueBytes, waitingBytes)
    }

    /// Hands over, in order, up to `limit` frames whose delivery time has come.
    func release(now: Instant, limit: Int, _ deliver: (consuming PacketBuffer) -> Void) -> Int {
        let t = now.nanoseconds
        advance(to: t)
        var n = 0
        while n < limit && head < tail {
            let e = ring[head % capacity]
            guard e.delivery <= t else { break }
            head += 1
            counters.delivered &+= 1
            deliver(pool.resume(e.packet))
            n += 1
        }
        return n
    }

    /// Hands over, in order, every frame whose delivery time has come.
    func releaseDue(now: Instant, _ deliver: (consuming PacketBuffer) -> Void) {
        _ = release(now: now, limit: .max, deliver)
    }

    /// Moves frames whose serialization has started out of the waiting count.
    private func advance(to t: Int64) {
        // Released frames had started, so `waitingFrom` never lags `head`.
        assert(waitingFrom >= head)
        while waitingFrom < tail {
            let e = ring[waitingFrom % capacity]
            guard e.start <= t else { break }
            waitingBytes -= Int(e.packet.length)
            waitingFrom += 1
        }
    }

    /// Returns every frame inside to the pool.
    func discardAll() {
        while head < tail {
            _ = pool.resume(ring[head % capacity].packet)
            head += 1
        }
        waitingFrom = tail
        waitingBytes = 0
    }
}
