/// What a `FaultInjector` does to the frames going one way.
///
/// Probabilities are per frame, in `0...1`. Each frame that enters a direction
/// is judged in this order: too large (`maxFrameSize`), over the rate
/// (`rateLimitBitsPerSecond`), lost (`loss`), corrupted (`corrupt`), duplicated
/// (`duplicate`), held back (`reorder`). A dropped frame goes no further.
public struct FaultProfile: Sendable, Equatable, MiddlewareProfile {
    /// Probability that a frame is dropped.
    public var loss: Double
    /// Probability that a frame is held back and overtaken by later ones.
    public var reorder: Double
    /// Probability that a frame is delivered twice.
    public var duplicate: Double
    /// Probability that 1 to 3 bits of a frame's IPv4 datagram are flipped.
    public var corrupt: Double
    /// A held frame is released right after this many later frames have entered
    /// the same direction (whatever became of them), so it arrives that many
    /// places late when none of them is dropped. At least 1.
    public var reorderDepth: Int
    /// The longest a held frame waits when traffic stops, so the tail of a burst
    /// is not stuck: it goes out on the next `receive`/`transmit`/`flush` after this.
    public var maxHold: Duration
    /// A policer: frames beyond this rate (token bucket, `rateLimitBurstBytes`
    /// deep) are dropped and counted as `rateLimited`. Nil: no limit.
    public var rateLimitBitsPerSecond: Int?
    /// The token bucket's depth for `rateLimitBitsPerSecond`.
    public var rateLimitBurstBytes: Int
    /// Frames longer than this (whole Ethernet frame, bytes) are dropped and
    /// counted as `tooLarge`. Nil: no limit.
    public var maxFrameSize: Int?

    public init(loss: Double = 0, reorder: Double = 0, duplicate: Double = 0, corrupt: Double = 0,
                reorderDepth: Int = 3, maxHold: Duration = .milliseconds(10),
                rateLimitBitsPerSecond: Int? = nil, rateLimitBurstBytes: Int = 64 * 1024,
                maxFrameSize: Int? = nil) {
        self.loss = loss
        self.reorder = reorder
        self.duplicate = duplicate
        self.corrupt = corrupt
        self.reorderDepth = reorderDepth
        self.maxHold = maxHold
        self.rateLimitBitsPerSecond = rateLimitBitsPerSecond
        self.rateLimitBurstBytes = rateLimitBurstBytes
        self.maxFrameSize = maxFrameSize
    }

    /// Passes everything through untouched.
    public static var none: FaultProfile { FaultProfile() }

    /// Whether the profile can change anything.
    public var isActive: Bool {
        loss > 0 || reorder > 0 || duplicate > 0 || corrupt > 0 || rateLimitBitsPerSecond != nil
            || maxFrameSize != nil
    }

    /// Checks the ranges; the initialiser of `FaultInjector` traps on a bad profile.
    public var isValid: Bool {
        func p(_ x: Double) -> Bool { x >= 0 && x <= 1 }
        return p(loss) && p(reorder) && p(duplicate) && p(corrupt) && reorderDepth >= 1 && maxHold >= .zero
            && (rateLimitBitsPerSecond ?? 1) > 0 && rateLimitBurstBytes > 0 && (maxFrameSize ?? 0) >= 0
    }
}

/// What a `FaultInjector` did to one direction.
public struct FaultCounters: Sendable, Equatable {
    /// Frames that entered this direction.
    public var frames: UInt64 = 0
    /// Dropped by `loss`.
    public var dropped: UInt64 = 0
    /// Held back by `reorder`.
    public var reordered: UInt64 = 0
    /// Extra copies delivered by `duplicate`.
    public var duplicated: UInt64 = 0
    /// Frames with bits flipped by `corrupt`.
    public var corrupted: UInt64 = 0
    /// Wire frames of coalesced segments dropped: no free slot to cut them
    /// into, or no room for the pieces among the frames waiting to go up.
    public var segmentationDrops: UInt64 = 0
    /// Dropped by the rate limit.
    public var rateLimited: UInt64 = 0
    /// Dropped for exceeding `maxFrameSize`.
    public var tooLarge: UInt64 = 0

    public init() {}
}

/// xoshiro256** (Blackman and Vigna, 2018), seeded through SplitMix64: small,
/// fast, and the same sequence on every platform, so a seed replays a fault run.
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    /// Expands `seed` into the state with SplitMix64, as the authors recommend.
    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    /// Starts from a raw state (not all zero), for reference vectors.
    public init(state: (UInt64, UInt64, UInt64, UInt64)) {
        precondition(state != (0, 0, 0, 0), "xoshiro's state must not be all zero")
        (s0, s1, s2, s3) = state
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    @inlinable
    public mutating func next() -> UInt64 { step() }

    @usableFromInline
    mutating func step() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// Uniform in `0 ..< 1`, 53 bits.
    @inline(__always)
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

/// Middleware that wraps any device (a TAP, a `MemoryLink`, a `PcapWriter`) and
/// damages traffic on purpose, separately for each direction: drops, reorders,
/// duplicates, corrupts, rate-limits and size-limits frames, as smoltcp's
/// `FaultInjector` does. For testing TCP's recovery and the stack's checks.
///
/// **Deterministic.** Each direction has its own xoshiro256** stream derived from
/// `seed`, and every frame entering a direction takes exactly five draws
/// (loss, reorder, duplicate, corrupt, where to corrupt) whatever its profile,
/// so the fate of the n-th frame each way depends only on the seed and the
/// profile, not on the other direction's traffic. Time (the rate limit, the
/// release of held frames) comes from the injected clock.
///
/// **Reordering.** A frame chosen to be reordered is parked in a fixed ring
/// (`holdCapacity` per direction) and released right after `reorderDepth` later
/// frames have entered the same direction (so with depth 3, `1 2 3 4` comes out
/// `2 3 4 1`). When traffic stops, a held frame is released anyway on the first
/// `receive`, `transmit` or `flush` once it has waited `maxHold` (and `wait`
/// sleeps no longer than that), so the tail of a burst is late, never lost.
/// `releaseHeld()` lets everything go at once. When the ring is full, frames
/// pass without being held (and are not counted as reordered).
///
/// **Duplication.** The copy goes into a fresh pool slot (skipped, uncounted,
/// if the pool is exhausted) and is delivered right after the original - or at
/// once, in its place, when the original is held back.
///
/// **Corruption** flips 1 to 3 distinct bits within one 16-bit word of the IPv4
/// datagram (never the 14-byte Ethernet header, never the Ethernet padding
/// after the datagram), so the frame still reaches the stack and the stack must
/// drop it: the Internet checksum detects every change confined to one 16-bit
/// word of fewer than 16 bits, whereas bits flipped in two different words can
/// cancel out (the same bit position flipped 0->1 in one and 1->0 in the other)
/// and would let damaged data through, which no real stack could catch either.
/// A flip lands in a header (caught by the IPv4 header checksum, or first by a
/// version or length check) or in the transport segment (caught by the TCP, UDP
/// or ICMP checksum). Frames that are not IPv4 (ARP has no checksum) are never
/// corrupted.
///
/// **Rate and size limits** drop: a policer, not a shaper.
///
/// Nothing is allocated per frame: held frames live in a preallocated ring, and
/// received frames wait in a preallocated queue until `receive`'s `limit`
/// allows them out.
public final class FaultInjector<Inner: Device>: Device {
    /// The wrapped device.
    public var inner: Inner { duplex.inner }
    public var pool: PacketPool { inner.pool }
    /// The inner device's, narrowed to wire frames (`DeviceCapabilities.wireFrames`):
    /// loss, reordering and the size limit act on frames as they cross the
    /// wire, and corruption is caught only if the stack computes and checks
    /// every checksum itself.
    public let capabilities: DeviceCapabilities

    private let duplex: DuplexMiddleware<Inner, FaultLane>
    private var rx: FaultLane { duplex.rx }
    private var tx: FaultLane { duplex.tx }
    /// Received frames that have passed the faults and wait for `receive`'s limit.
    private let ready: PacketQueue

    /// - Parameters:
    ///   - inner: the device to wrap.
    ///   - receive: faults for frames coming in from `inner`.
    ///   - transmit: faults for frames going out to `inner`.
    ///   - seed: the PRNG seed; the same seed and traffic give the same faults.
    ///   - clock: time for the rate limit and for releasing held frames.
    ///   - holdCapacity: frames each direction can hold back at once.
    public init(wrapping inner: Inner, receive: FaultProfile = .none, transmit: FaultProfile = .none,
                seed: UInt64, clock: any NetClock, holdCapacity: Int = 64) {
        precondition(holdCapacity > 0)
        capabilities = inner.capabilities.wireFrames
        duplex = DuplexMiddleware(
            inner: inner, clock: clock,
            rx: FaultLane(profile: receive, seed: seed &* 2, pool: inner.pool, clock: clock, capacity: holdCapacity),
            tx: FaultLane(profile: transmit, seed: seed &* 2 &+ 1, pool: inner.pool, clock: clock,
                          capacity: holdCapacity))
        piecesPerFrame = WireFrameCutter.maxPieces(receivingFrom: inner.capabilities)
        ready = PacketQueue(pool: inner.pool, capacity: holdCapacity + max(128, 4 * piecesPerFrame))
    }

    /// The most wire frames one frame from `inner` becomes (1 unless it coalesces).
    private let piecesPerFrame: Int

    /// The same faults both ways.
    public convenience init(wrapping inner: Inner, both profile: FaultProfile, seed: UInt64, clock: any NetClock,
                            holdCapacity: Int = 64) {
        self.init(wrapping: inner, receive: profile, transmit: profile, seed: seed, clock: clock,
                  holdCapacity: holdCapacity)
    }

    // MARK: Profiles and counters

    /// Faults applied to received frames. Changes apply to the next frame.
    public var receiveProfile: FaultProfile {
        get { duplex.receiveProfile }
        set { duplex.receiveProfile = newValue }
    }

    /// Faults applied to transmitted frames. Changes apply to the next frame.
    public var transmitProfile: FaultProfile {
        get { duplex.transmitProfile }
        set { duplex.transmitProfile = newValue }
    }

    /// What was done to received frames.
    public var receiveCounters: FaultCounters { rx.counters }
    /// What was done to transmitted frames.
    public var transmitCounters: FaultCounters { tx.counters }

    /// Frames inside the injector: held back either way, or received and not yet
    /// handed up. A test driver should count these as in transit.
    public var framesHeld: Int { duplex.framesInside + ready.count }

    /// When the oldest held frame is released by time, if any is held.
    public var nextReleaseDeadline: Instant? { duplex.nextDeadline }

    /// Name/value pairs for printing: `fault.rx.dropped` and so on.
    public var report: [(String, UInt64)] {
        duplex.report("fault") { c in
            [("frames", c.frames), ("dropped", c.dropped), ("reordered", c.reordered),
             ("duplicated", c.duplicated), ("corrupted", c.corrupted), ("rate-limited", c.rateLimited),
             ("too-large", c.tooLarge), ("segmentation-drops", c.segmentationDrops)]
        }
    }

    /// Releases every held frame now: transmitted ones to `inner` (then flushes),
    /// received ones to the next `receive`.
    public func releaseHeld() {
        while let f = rx.popHeld() { enqueueReady(f) }
        while let f = tx.popHeld() { inner.transmit(f) }
        inner.flush()
    }

    // MARK: Device

    public func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        guard limit > 0 else { return 0 }
        var delivered = 0
        while true {
            while delivered < limit, let f = ready.popFirst() {
                handler(f)
                delivered += 1
            }
            if delivered >= limit { break }
            // `ready` is empty here, so it has room for everything held.
            if rx.count > 0 {
                rx.releaseDue(now: duplex.clock.now) { enqueueReady($0) }
                if !ready.isEmpty { continue }
            }
            // Each frame taken from `inner` yields at most two per wire frame
            // (itself and a copy), plus whatever held frames it releases:
            // take no more than `ready` can hold in the worst case.
            let want = min(limit - delivered, (ready.capacity - rx.count) / (2 * piecesPerFrame))
            guard want > 0 else { break }
            let got = inner.receive(limit: want) { frame in
                rx.process(frame) { enqueueReady($0) }
            }
            if got == 0 && ready.isEmpty { break }
        }
        return delivered
    }

    public func transmit(_ frame: consuming PacketBuffer) {
        duplex.transmitDue()
        tx.process(frame) { inner.transmit($0) }
    }

    public func flush() { duplex.flush() }

    /// Sleeps in `inner`, but no longer than until the next held frame is due,
    /// and not at all while received frames wait to be handed up.
    public func wait(timeout: Duration) {
        guard ready.isEmpty else { return }
        duplex.wait(timeout: timeout)
    }

    public func watch(wakeups descriptor: Int32) { inner.watch(wakeups: descriptor) }
    public func watch(doorbells: Doorbells) -> Bool { inner.watch(doorbells: doorbells) }

    private func enqueueReady(_ frame: consuming PacketBuffer) {
        // `receive` takes from `inner` only what fits, unless a coalesced
        // segment was cut finer than 536-byte pieces: then what overflows is dropped.
        if let refused = ready.append(frame) {
            _ = consume refused
            rx.counters.segmentationDrops &+= 1
        }
    }
}

/// One direction of a `FaultInjector`: its profile, PRNG, counters, held frames
/// and token bucket.
final class FaultLane: MiddlewareLane {
    struct Held {
        var packet: ParkedPacket
        /// Released once `arrivals` reaches this.
        var releaseAfter: UInt64
        /// Released by time once the clock reaches this.
        var deadline: Instant
    }

    var profile: FaultProfile
    var counters = FaultCounters()
    private var rng: Xoshiro256StarStar
    private let pool: PacketPool
    private let cutter: WireFrameCutter
    private let clock: any NetClock
    private let held: UnsafeMutablePointer<Held>
    private let capacity: Int
    private var head = 0
    private(set) var count = 0
    /// Frames that have entered this direction.
    private var arrivals: UInt64 = 0
    /// The policer (tokens are bits), made when first needed and again if the profile's rate changes.
    private var policer: TokenBucket?

    init(profile: FaultProfile, seed: UInt64, pool: PacketPool, clock: any NetClock, capacity: Int) {
        self.profile = profile
        rng = Xoshiro256StarStar(seed: seed)
        self.pool = pool
        cutter = WireFrameCutter(pool: pool)
        self.clock = clock
        self.capacity = capacity
        held = .allocate(capacity: capacity)
    }

    deinit {
        discardHeld()
        held.deallocate()
    }

    /// Returns every held frame to the pool.
    func discardHeld() {
        while let f = popHeld() { _ = consume f }
    }

    var nextDeadline: Instant? { count > 0 ? held[head].deadline : nil }

    func popHeld() -> PacketBuffer? {
        guard count > 0 else { return nil }
        let h = held[head]
        head = (head + 1) % capacity
        count -= 1
        return pool.resume(h.packet)
    }

    /// Releases held frames whose time is up. Deadlines are in FIFO order (one
    /// `maxHold` and a clock that does not run backwards).
    func releaseDue(now: Instant, _ emit: (consuming PacketBuffer) -> Void) {
        while count > 0 && held[head].deadline <= now {
            emit(popHeld()!)
        }
    }

    /// Judges one frame entering this direction; `emit` receives what goes on,
    /// in order. Faults act on wire frames (`WireFrameCutter`), so that loss,
    /// reordering and corruption keep their meaning and the stack can catch
    /// the damage.
    func process(_ frame: consuming PacketBuffer, _ emit: (consuming PacketBuffer) -> Void) {
        let lost = cutter.cut(frame) { judgeWireFrame($0, emit) }
        counters.segmentationDrops &+= UInt64(lost)
    }

    private func judgeWireFrame(_ frame: consuming PacketBuffer, _ emit: (consuming PacketBuffer) -> Void) {
        arrivals &+= 1
        counters.frames &+= 1
        // Always five draws, so a frame's fate does not depend on the profile
        // of earlier frames.
        let rLoss = rng.unit(), rReorder = rng.unit(), rDuplicate = rng.unit(), rCorrupt = rng.unit()
        let detail = rng.next()
        judge(frame, rLoss: rLoss, rReorder: rReorder, rDuplicate: rDuplicate, rCorrupt: rCorrupt,
              detail: detail, emit)
        // Held frames whose `reorderDepth` later frames have now entered.
        while count > 0 && held[head].releaseAfter <= arrivals {
            emit(popHeld()!)
        }
    }

    private func judge(_ frame: consuming PacketBuffer, rLoss: Double, rReorder: Double, rDuplicate: Double,
                       rCorrupt: Double, detail: UInt64, _ emit: (consuming PacketBuffer) -> Void) {
        if let maxFrameSize = profile.maxFrameSize, frame.length > maxFrameSize {
            counters.tooLarge &+= 1
            return
        }
        if let rate = profile.rateLimitBitsPerSecond, !takeTokens(bits: frame.length * 8, rate: rate) {
            counters.rateLimited &+= 1
            return
        }
        if rLoss < profile.loss {
            counters.dropped &+= 1
            return
        }
        if rCorrupt < profile.corrupt, frame.withBytes({ Self.corrupt($0, detail: detail) }) {
            counters.corrupted &+= 1
            // What the device vouched for is damaged now: the stack must check it.
            frame.offload.checksumVerified = false
        }
        let hold = rReorder < profile.reorder && count < capacity
        if rDuplicate < profile.duplicate, var copy = pool.allocate() {
            copy.reserveHeadroom(frame.headroom)
            copy.setLength(frame.length)
            copy.baseAddress.copyMemory(from: frame.baseAddress, byteCount: frame.length)
            copy.offload = frame.offload
            counters.duplicated &+= 1
            if hold { park(frame) } else { emit(frame) }
            emit(copy)
        } else {
            if hold { park(frame) } else { emit(frame) }
        }
    }

    private func park(_ frame: consuming PacketBuffer) {
        counters.reordered &+= 1
        held[(head + count) % capacity] = Held(packet: frame.park(),
                                               releaseAfter: arrivals &+ UInt64(profile.reorderDepth),
                                               deadline: clock.now + profile.maxHold)
        count += 1
    }

    private func takeTokens(bits: Int, rate: Int) -> Bool {
        let now = clock.now
        let burst = profile.rateLimitBurstBytes * 8
        if policer?.ratePerSecond != rate || policer?.burst != burst {
            policer = TokenBucket(ratePerSecond: rate, burst: burst, now: now)
        }
        return policer!.take(bits, now: now)
    }

    /// Flips 1 to 3 distinct bits of one 16-bit word of the IPv4 datagram in
    /// `bytes` (a whole Ethernet frame), chosen by `detail`. Returns false, and
    /// changes nothing, if the frame does not carry IPv4.
    static func corrupt(_ bytes: UnsafeMutableRawBufferPointer, detail: UInt64) -> Bool {
        let ethernetHeader = 14
        guard bytes.count >= ethernetHeader + 20, bytes[12] == 0x08, bytes[13] == 0x00 else { return false }
        let totalLength = Int(bytes[ethernetHeader + 2]) << 8 | Int(bytes[ethernetHeader + 3])
        let datagram = min(max(totalLength, 20), bytes.count - ethernetHeader)
        let words = UInt64(datagram / 2)
        var d = detail
        let word = Int(d % words); d /= words
        let bitCount = 1 + Int(d % 3); d /= 3
        // Distinct positions in 0..<16: the k-th of those not yet taken.
        var mask: UInt16 = 0
        for i in 0..<bitCount {
            var k = Int(d % UInt64(16 - i)); d /= UInt64(16 - i)
            var position = 0
            while true {
                if mask & (1 << position) == 0 {
                    if k == 0 { break }
                    k -= 1
                }
                position += 1
            }
            mask |= 1 << position
        }
        let offset = ethernetHeader + 2 * word
        bytes[offset] ^= UInt8(truncatingIfNeeded: mask >> 8)
        bytes[offset + 1] ^= UInt8(truncatingIfNeeded: mask)
        return true
    }
}
