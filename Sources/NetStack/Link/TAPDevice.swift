import CURing
import NetStackWire
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Why a `TAPDevice` could not be made.
public enum TAPError: Error, Equatable, CustomStringConvertible {
    /// The kernel would refuse the interface name (`InterfaceName.validate`).
    case invalidName(String)
    /// An interface of that name exists already: a veth, say, or a
    /// persistent TAP, which the device does not take over (it would leave
    /// it changed, with the host address on it, when it closes).
    case nameInUse(ExistingInterface)
    /// A parameter the device cannot work with (pool too small, slots too small...).
    case invalidConfiguration(String)
    /// A system call failed: which step, and the errno it returned.
    case systemCall(Operation, Errno)

    /// The step of setting up a TAP device that failed.
    public enum Operation: String, Sendable {
        case openTun = "open /dev/net/tun"
        case createInterface = "ioctl TUNSETIFF"
        case setOffload = "ioctl TUNSETVNETHDRSZ/TUNSETOFFLOAD"
        case controlSocket = "socket(AF_INET, SOCK_DGRAM)"
        case setAddress = "ioctl SIOCSIFADDR"
        case setAddress6 = "ioctl SIOCSIFADDR (AF_INET6)"
        case setNetmask = "ioctl SIOCSIFNETMASK"
        case bringUp = "ioctl SIOCSIFFLAGS (IFF_UP)"
        case ringSetup = "io_uring_queue_init"
        case bufferRing = "io_uring_register_buf_ring"
        case submit = "io_uring_submit"
    }

    public var description: String {
        switch self {
        case .invalidName(let name):
            var reason = ""
            do { try InterfaceName.validate(name) } catch { reason = ": \(error)" }
            return "invalid TAP interface name \"\(name)\"\(reason)"
        case .nameInUse(let existing):
            return "\(existing)"
        case .invalidConfiguration(let why):
            return "invalid TAP configuration: \(why)"
        case .systemCall(let op, let errno):
            return "TAP setup: \(op.rawValue) failed: \(errno)"
        }
    }
}

/// A Linux TAP interface driven through io_uring: Ethernet frames in and out of
/// `pool` slots without copies.
///
/// Receive lends pool slots to the kernel through a provided-buffer ring (buffer
/// id = slot index) and keeps one multishot read on the TAP, so each arriving
/// frame completes into a slot in order and costs no system call. Kernels without
/// `IORING_OP_READ_MULTISHOT` get several outstanding buffer-select reads instead.
/// Transmit writes the frame's own slot (a fixed-buffer write when the pool is
/// registered) and returns the slot to the pool on completion.
///
/// With offloads (`IFF_VNET_HDR`, `TUNSETOFFLOAD`), every frame read or
/// written starts with a `VirtioNetHeader`: the device reads it from the
/// front of each received slot into the buffer's `PacketOffload` (and hands
/// up the frame behind it), and writes it from the `PacketOffload` into the
/// headroom in front of each frame it transmits.
///
/// The interface exists while the device is open: `close()` (or deinit) cancels
/// all I/O, gives every lent slot back to the pool and closes the descriptor, and
/// the kernel removes the interface. Like every `Device`, it is owned by one
/// thread and not thread-safe; `receive` is not reentrant.
public final class TAPDevice: Device {
    /// How the device reads frames.
    public enum ReceiveMode: Sendable {
        /// One multishot read when the kernel supports it, else buffer-select reads.
        case automatic
        /// Always several outstanding single reads with buffer selection (the fallback).
        case bufferSelect
    }

    public let pool: PacketPool
    /// Without offloads, one Ethernet frame per buffer and no checksum
    /// offload: the kernel hands over and expects finished frames. With them
    /// (`offloads`), segments up to 64 KiB each way, TCP and UDP checksums
    /// left to the kernel and trusted from it, and a virtio-net header in
    /// front of every frame.
    public let capabilities: DeviceCapabilities
    /// Whether frames carry a virtio-net header and the kernel segments and
    /// coalesces TCP (TUNSETOFFLOAD with TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 took).
    public private(set) var offloads = false
    /// Whether every frame read and written starts with a virtio-net header (IFF_VNET_HDR).
    private let vnetHeader: Bool
    /// The smallest pool slot that holds a received 64 KiB segment behind its
    /// Ethernet and virtio-net headers (a multiple of 64, as pools want).
    public static let offloadSlotSize = 65600
    /// The interface name the kernel gave (as asked, or filled in from a `%d` pattern).
    public private(set) var name: String
    /// The TAP's transmit queue length as the kernel reports it (SIOCGIFTXQLEN), nil if unread.
    public private(set) var transmitQueueLength: Int?
    /// The host side's Ethernet address (SIOCGIFHWADDR), nil if it could not be read.
    public private(set) var hostMAC: MACAddress?

    /// Whether receive runs on one multishot read (else buffer-select reads).
    public private(set) var usingMultishot = false
    /// Whether writes use the pool's registered region (`IORING_OP_WRITE_FIXED`).
    public private(set) var usingFixedBuffers = false
    /// Frames handed to `receive`'s handler.
    public private(set) var rxFrames = 0
    /// Reads re-issued after the previous one ended (multishot termination or a
    /// completed single read).
    public private(set) var rxRearms = 0
    /// Times the kernel found no buffer to read into (the pool ran short).
    public private(set) var rxNoBuffers = 0
    /// Failed reads and completions that made no sense (unknown buffer id).
    public private(set) var rxErrors = 0
    /// Frames whose write completed in full.
    public private(set) var txFrames = 0
    /// Writes that failed or wrote fewer bytes than the frame.
    public private(set) var txErrors = 0
    /// Frames dropped before reaching the kernel (closed device, full ring).
    public private(set) var txDropped = 0

    // MARK: State (unsafe memory fenced inside this class)

    private var fd: CInt = -1
    private let ring: UnsafeMutablePointer<io_uring>
    private var ringReady = false
    private var bufferRing: UnsafeMutablePointer<io_uring_buf_ring>?
    private let bufferRingEntries: UInt32
    private let bufferGroup: UInt16 = 0
    /// Per pool slot: what this device has done with it (`SlotState`).
    private let slotStates: UnsafeMutablePointer<UInt8>
    /// Per pool slot, the three pieces of a gathered write from it (its
    /// headers and a `FrameTail`'s two), which must outlive the submission;
    /// allocated with offloads, the only case that gathers.
    private let writeVectors: UnsafeMutablePointer<iovec>?
    /// Scratch for `io_uring_peek_batch_cqe`, so draining allocates nothing.
    private let completions: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private static let completionBatch = 64

    /// How many slots to keep lent to the kernel for receive.
    private let receiveTarget: Int
    /// Slots currently in the buffer ring (lent, not yet completed).
    private var lentCount = 0
    private var multishotArmed = false
    private var outstandingReads = 0
    private var outstandingWrites = 0
    private var readsEverArmed = false
    private var consecutiveReadErrors = 0
    private var receiving = false
    private var closing = false
    /// close() was called from inside a receive handler; done when receive returns.
    private var closeRequested = false
    /// The eventfd another thread writes to end `wait` early (`watch(wakeups:)`), -1 without.
    private var wakeDescriptor: CInt = -1
    /// Where the reads of `wakeDescriptor` and of the doorbells put their
    /// counts (nobody looks at them: a completion is the news).
    private let eventCount = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    /// A read of `wakeDescriptor` is queued: its completion ends `wait`.
    private var wakeArmed = false
    /// The doorbells whose eventfds this ring reads (`watch(doorbells:)`).
    private var doorbells: Doorbells?

    /// Single reads kept outstanding in buffer-select mode.
    private static let selectReadDepth = 8
    /// Stop re-arming after this many failed reads in a row (a dead descriptor
    /// would otherwise spin the loop).
    private static let maxConsecutiveReadErrors = 64

    private enum SlotState: UInt8 {
        case notHeld = 0, inBufferRing = 1, writing = 2
    }

    /// What a completion belongs to, in the top byte of its user_data.
    private enum Tag: UInt64 {
        case multishotRead = 1, singleRead = 2, write = 3, cancel = 4, wake = 5, doorbell = 6
    }

    /// Slots lent for receive unless told otherwise. The kernel fills the
    /// provided-buffer ring's slots in turn, so every lent slot is written
    /// once per round and the lent memory is the receive path's working set.
    /// Wire frames: 128 slots of 2 KiB (256 KiB). Offload super-frames: 16
    /// slots of 64 KiB, 1 MiB, this machine's L2 per core; 128 of them (8 MiB)
    /// made the kernel's copy into them miss the cache, and bulk-rx measured
    /// 20-24 Gbit/s against 24-28 with 16 (`netstack bench --scenario bulk-rx
    /// --rounds 3 --duration 2`, two runs each). A burst larger than the lent
    /// slots waits in the TAP's queue until the next receive, not dropped.
    public static func defaultReceiveBuffers(offload: Bool) -> Int { offload ? 16 : 128 }

    /// The TAP's transmit queue length (`txqueuelen`): the frames the kernel
    /// may hold for the stack before it drops them. Linux gives a TAP 1000;
    /// 50,000 connections closed at once overflowed that (207 k frames
    /// dropped, FINs among them, connections left stranded), where a queue
    /// of 32768 takes a burst of 20,000 FINs and their ACKs while the loop
    /// drains it. Small frames cost the kernel little to hold, and bulk
    /// senders cannot fill it: TCP Small Queues bound each socket's share.
    public static let defaultTransmitQueueLength = 32768

    /// Creates the TAP interface `name` (non-persistent: it disappears when the
    /// device closes) and starts receiving. A name already in use, by a veth
    /// or by a persistent TAP, is refused (`TAPError.nameInUse`), not taken over.
    ///
    /// - Parameters:
    ///   - name: interface name, at most 15 bytes; `tap%d` lets the kernel
    ///     number it (`name` then holds the number it chose).
    ///   - hostAddress: if given, the host side gets this address and netmask and is
    ///     brought up (ioctls on an AF_INET socket, in the caller's network namespace).
    ///   - hostAddress6: if given, the host side gets this IPv6 address too,
    ///     usable at once (the kernel's DAD for it is turned off on the TAP:
    ///     the stack behind it is the only other node).
    ///   - pool: where frames live; it must outlive the device. Its region is
    ///     registered with io_uring for fixed-buffer writes.
    ///   - ringEntries: submission queue size (rounded up to a power of two).
    ///   - receiveBuffers: slots kept lent to the kernel for receive; nil for
    ///     `defaultReceiveBuffers(offload:)`.
    ///   - receiveMode: `.bufferSelect` forces the fallback reads.
    ///   - offload: ask the kernel for checksum offload and TCP segmentation
    ///     both ways through the virtio-net header; needs pool slots of at
    ///     least `offloadSlotSize`. A kernel that refuses makes this throw
    ///     `.systemCall(.setOffload, _)`, and the caller may open the device
    ///     again without.
    ///   - transmitQueueLength: the TAP's `txqueuelen`, the kernel's queue
    ///     towards the stack (`defaultTransmitQueueLength`); 0 keeps the kernel's.
    public init(name: String, hostAddress: IPv4CIDR? = nil, hostAddress6: IPv6CIDR? = nil, pool: PacketPool,
                ringEntries: Int = 256, receiveBuffers: Int? = nil,
                receiveMode: ReceiveMode = .automatic, offload: Bool = false,
                transmitQueueLength: Int = TAPDevice.defaultTransmitQueueLength) throws(TAPError) {
        do { try InterfaceName.validate(name) } catch { throw .invalidName(name) }
        vnetHeader = offload
        capabilities = offload
            ? .segmenting(headroom: VirtioNetHeader.length, readsTailInPlace: true)
            : .ethernet(mtu: 1500)
        let receiveBuffers = receiveBuffers ?? Self.defaultReceiveBuffers(offload: offload)
        let frameSize = capabilities.maxReceiveSegment + 14 + (offload ? VirtioNetHeader.length : 0)
        guard pool.slotSize >= frameSize else {
            throw .invalidConfiguration("pool slots of \(pool.slotSize) bytes cannot hold a \(frameSize)-byte frame")
        }
        guard (1...32768).contains(receiveBuffers), receiveBuffers <= pool.freeCount else {
            throw .invalidConfiguration("receiveBuffers \(receiveBuffers) must be 1...32768 and at most the pool's \(pool.freeCount) free slots")
        }
        guard (2...32768).contains(ringEntries) else {
            throw .invalidConfiguration("ringEntries \(ringEntries) must be 2...32768")
        }
        self.pool = pool
        self.name = name
        receiveTarget = receiveBuffers
        var entries: UInt32 = 1
        while entries < UInt32(receiveBuffers) { entries <<= 1 }
        bufferRingEntries = entries
        ring = .allocate(capacity: 1)
        ring.initialize(to: io_uring())
        slotStates = .allocate(capacity: pool.slotCount)
        slotStates.initialize(repeating: SlotState.notHeld.rawValue, count: pool.slotCount)
        completions = .allocate(capacity: Self.completionBatch)
        if offload {
            writeVectors = .allocate(capacity: pool.slotCount * 3)
        } else {
            writeVectors = nil
        }
        completions.initialize(repeating: nil, count: Self.completionBatch)

        // From here on a throw runs deinit, and close() undoes whatever was done.
        try openInterface(hostAddress: hostAddress, hostAddress6: hostAddress6,
                          transmitQueueLength: transmitQueueLength)
        try setUpRing(entries: UInt32(ringEntries), receiveMode: receiveMode)
        replenish()
        armReads()
        let ret = io_uring_submit(ring)
        if ret < 0 { throw .systemCall(.submit, Errno(rawValue: -ret)) }
    }

    deinit {
        close()
        slotStates.deallocate()
        completions.deallocate()
        writeVectors?.deallocate()
        ring.deallocate()
        eventCount.deallocate()
    }

    // MARK: Device

    public func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        guard ringReady, !closing, !receiving, limit > 0 else { return 0 }
        receiving = true
        defer {
            receiving = false
            if closeRequested { close() }
        }
        var delivered = 0
        batches: while delivered < limit {
            let count = Int(io_uring_peek_batch_cqe(ring, completions, UInt32(Self.completionBatch)))
            if count == 0 {
                // The reads stopped because every lent slot was filled (16
                // with offloads): lend the slots delivered so far again and
                // read on, so a backlog in the TAP's queue is taken a whole
                // batch per turn rather than one buffer ring's worth.
                guard !multishotArmed, usingMultishot, !closing else { break }
                replenish()
                guard armReads() else { break }
                _ = io_uring_submit(ring)
                if io_uring_cq_ready(ring) == 0 { break }
                continue
            }
            var used = 0
            while used < count {
                guard let cqe = completions[used] else { used += 1; continue }
                // Copy out first: the entry is the kernel's once the CQ head moves.
                let userData = cqe.pointee.user_data, res = cqe.pointee.res, flags = cqe.pointee.flags
                used += 1
                if let slot = complete(userData: userData, res: res, flags: flags) {
                    guard let offload = receivedOffload(slot: slot, length: Int(res)) else {
                        rxErrors += 1
                        pool.returnSlot(slot)
                        continue
                    }
                    rxFrames += 1
                    let header = vnetHeader ? VirtioNetHeader.length : 0
                    handler(pool.adopt(slot: slot, length: Int(res), headerLength: header, offload: offload))
                    delivered += 1
                    if delivered == limit || closing { break }
                }
            }
            io_uring_cq_advance(ring, UInt32(used))
            if used < count || closing { break batches }
        }
        if !closing {
            replenish()
            if armReads() { _ = io_uring_submit(ring) }
        }
        return delivered
    }

    /// What the kernel's virtio-net header in front of a received frame says,
    /// or `.none` without one; nil for a frame too short to hold it.
    private func receivedOffload(slot: UInt32, length: Int) -> PacketOffload? {
        guard vnetHeader else { return PacketOffload.none }
        guard length >= VirtioNetHeader.length + 14,
              let header = try? VirtioNetHeader(parsing: UnsafeRawBufferPointer(
                start: pool.address(ofSlot: slot), count: VirtioNetHeader.length)) else { return nil }
        // A partial checksum's place, so middleware that needs wire frames can complete it.
        let partial = header.flags & VirtioNetHeader.needsChecksum != 0
        return PacketOffload(checksumVerified: header.checksumTrusted,
                             checksumStart: partial ? header.checksumStart : 0,
                             checksumOffset: partial ? header.checksumOffset : 0,
                             segmentSize: header.gsoType == .none ? 0 : header.segmentSize)
    }

    /// The virtio-net header that asks the kernel to finish `frame` as its
    /// offload says: complete the transport checksum, and cut a TCP segment
    /// longer than one frame into `segmentSize` pieces. All zero for a
    /// finished frame.
    private static func transmitHeader(for frame: borrowing PacketBuffer, frameLength: Int,
                                       mtu: Int) -> VirtioNetHeader {
        let o = frame.offload
        var h = VirtioNetHeader()
        if o.checksumPartial {
            h.flags = VirtioNetHeader.needsChecksum
            h.checksumStart = o.checksumStart
            h.checksumOffset = o.checksumOffset
        }
        if o.segmentSize > 0 && frameLength > 14 + mtu {
            h.segmentSize = o.segmentSize
            // Ethernet, IP and TCP headers: the TCP data offset is the top nibble of byte 12.
            // TCP over IPv6 (EtherType 0x86dd) is TCPV6 to the kernel.
            (h.headerLength, h.gsoType) = frame.withBytes { bytes in
                let v6 = bytes.count > 13 && bytes[12] == 0x86 && bytes[13] == 0xdd
                let start = Int(o.checksumStart)
                guard start + 13 <= bytes.count else { return (UInt16(start), v6 ? .tcpv6 : .tcpv4) }
                return (UInt16(start + Int(bytes[start + 12] >> 4) * 4), v6 ? .tcpv6 : .tcpv4)
            }
        }
        return h
    }

    /// Queues a write of `frame`, which must come from `pool`; `flush()` submits it.
    public func transmit(_ frame: consuming PacketBuffer) {
        queueWrite(frame, tail: .none)
    }

    /// Queues one write of `frame` followed by `tail`, read where it lies
    /// (a gathered write, `IORING_OP_WRITEV`) when the device has offloads;
    /// else the tail is copied into the frame first.
    public func transmit(_ frame: consuming PacketBuffer, tail: FrameTail) {
        guard vnetHeader else {
            frame.append(tail)
            queueWrite(frame, tail: .none)
            return
        }
        queueWrite(frame, tail: tail)
    }

    private func queueWrite(_ frame: consuming PacketBuffer, tail: FrameTail) {
        if vnetHeader {
            guard frame.headroom >= VirtioNetHeader.length else {
                txDropped += 1
                return
            }
            let header = Self.transmitHeader(for: frame, frameLength: frame.length + tail.count,
                                             mtu: capabilities.mtu)
            frame.extendFront(VirtioNetHeader.length)
            frame.withBytes { header.emit(into: $0) }
        }
        let length = frame.length + tail.count
        let address = frame.baseAddress
        guard ringReady, !closing, frame.length > 0, length < 1 << 24, let sqe = nextSQE() else {
            txDropped += 1
            return  // `frame` goes out of scope: its slot returns to the pool.
        }
        let inSlot = frame.length
        let slot = frame.releaseSlot()
        if !tail.isEmpty, let vectors = writeVectors {
            // The slot's headers, then the tail's pieces: kept per slot until the write completes.
            let v = vectors + Int(slot) * 3
            v[0] = iovec(iov_base: address, iov_len: inSlot)
            var n = 1
            if let a = tail.first.baseAddress, tail.first.count > 0 {
                v[n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: a), iov_len: tail.first.count)
                n += 1
            }
            if let b = tail.second.baseAddress, tail.second.count > 0 {
                v[n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b), iov_len: tail.second.count)
                n += 1
            }
            io_uring_prep_writev(sqe, fd, v, UInt32(n), 0)
        } else if usingFixedBuffers {
            io_uring_prep_write_fixed(sqe, fd, address, UInt32(length), 0, 0)
        } else {
            io_uring_prep_write(sqe, fd, address, UInt32(length), 0)
        }
        io_uring_sqe_set_data64(sqe, Self.userData(.write, slot: slot, length: length))
        slotStates[Int(slot)] = SlotState.writing.rawValue
        outstandingWrites += 1
    }

    public func flush() {
        guard ringReady else { return }
        queueDoorbellReads()
        guard io_uring_sq_ready(ring) > 0 else { return }
        _ = io_uring_submit(ring)
    }

    public func watch(wakeups descriptor: Int32) {
        wakeDescriptor = descriptor
    }

    public func watch(doorbells: Doorbells) -> Bool {
        self.doorbells = doorbells
        return true
    }

    /// Queues a read of each doorbell armed since the last look, and a
    /// cancel of each read whose doorbell was disarmed; they go in with the
    /// next submission (`flush` each turn, `wait`).
    private func queueDoorbellReads() {
        guard let doorbells, !closing else { return }
        doorbells.takeArmed { token, descriptor in
            guard let sqe = nextSQE() else { return false }
            io_uring_prep_read(sqe, descriptor, eventCount, 8, 0)
            io_uring_sqe_set_data64(sqe, Self.userData(.doorbell, slot: token, length: 0))
            return true
        }
        doorbells.takeCancelled { token in
            guard let sqe = nextSQE() else { return false }
            io_uring_prep_cancel64(sqe, Self.userData(.doorbell, slot: token, length: 0), 0)
            io_uring_sqe_set_data64(sqe, Self.userData(.cancel, slot: 0, length: 0))
            return true
        }
    }

    public func wait(timeout: Duration) {
        guard ringReady, !closing else { return }
        if !receiving {
            replenish()  // slots freed since the last receive may let a stalled read go on
            armReads()
        }
        queueDoorbellReads()
        if wakeDescriptor >= 0 && !wakeArmed, let sqe = nextSQE() {
            // One read of the eventfd: it completes (ending this wait) when another thread writes it.
            io_uring_prep_read(sqe, wakeDescriptor, eventCount, 8, 0)
            io_uring_sqe_set_data64(sqe, Self.userData(.wake, slot: 0, length: 0))
            wakeArmed = true
        }
        let ns = max(0, timeout.nanoseconds)
        var ts = __kernel_timespec(tv_sec: ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000)
        var cqe: UnsafeMutablePointer<io_uring_cqe>?
        // Returns at once if completions are waiting; -ETIME on timeout.
        _ = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil)
    }

    /// Cancels all I/O, waits (bounded) for the kernel to let go of every lent
    /// slot, returns them to the pool, and closes the ring and the TAP (which the
    /// kernel then removes). Idempotent; deinit calls it.
    ///
    /// Slots whose I/O the kernel has not finished within two seconds are left
    /// out of the pool rather than reused under the kernel's feet. Called from a
    /// receive handler, it takes effect when `receive` returns.
    public func close() {
        if receiving {
            closeRequested = true
            closing = true
            return
        }
        closeRequested = false
        if ringReady {
            closing = true
            if let sqe = nextSQE() {
                io_uring_prep_cancel_fd(sqe, fd, CURING_ASYNC_CANCEL_ALL)
                io_uring_sqe_set_data64(sqe, Self.userData(.cancel, slot: 0, length: 0))
            }
            _ = io_uring_submit(ring)
            let deadline = Self.monotonicNanoseconds() + 2_000_000_000
            while multishotArmed || outstandingReads > 0 || outstandingWrites > 0 {
                drainWithoutDelivering()
                if !(multishotArmed || outstandingReads > 0 || outstandingWrites > 0) { break }
                if Self.monotonicNanoseconds() > deadline { break }
                var ts = __kernel_timespec(tv_sec: 0, tv_nsec: 50_000_000)
                var cqe: UnsafeMutablePointer<io_uring_cqe>?
                _ = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil)
            }
            let readsDone = !multishotArmed && outstandingReads == 0
            if let br = bufferRing {
                _ = curing_free_buf_ring(ring, br, bufferRingEntries, bufferGroup)
                bufferRing = nil
            }
            // With no read left, nothing can pick buffers: the ring's slots are ours again.
            if readsDone {
                for slot in 0..<pool.slotCount where slotStates[slot] == SlotState.inBufferRing.rawValue {
                    slotStates[slot] = SlotState.notHeld.rawValue
                    pool.returnSlot(UInt32(slot))
                }
                lentCount = 0
            }
            io_uring_queue_exit(ring)
            ringReady = false
        }
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    // MARK: Setup

    /// Opens /dev/net/tun, creates the interface, and configures the host side.
    private func openInterface(hostAddress: IPv4CIDR?, hostAddress6: IPv6CIDR?,
                               transmitQueueLength: Int) throws(TAPError) {
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        if fd < 0 { throw .systemCall(.openTun, Errno(rawValue: errno)) }
        var actual = [CChar](repeating: 0, count: Int(IFNAMSIZ))
        let flags = CURING_IFF_TAP | CURING_IFF_NO_PI | CURING_IFF_TUN_EXCL | (vnetHeader ? CURING_IFF_VNET_HDR : 0)
        let ret = curing_tun_set_iff(fd, name, flags, &actual)
        // With IFF_TUN_EXCL, EBUSY means the name is taken, whatever holds it.
        if ret == -EBUSY {
            throw .nameInUse(InterfaceName.existing(name) ?? ExistingInterface(name: name, index: 0, driver: nil))
        }
        if ret < 0 { throw .systemCall(.createInterface, Errno(rawValue: -ret)) }
        if vnetHeader {
            let r = curing_tun_set_offload(fd, CInt(VirtioNetHeader.length), CURING_TUN_F_CSUM | CURING_TUN_F_TSO4 | CURING_TUN_F_TSO6)
            if r < 0 { throw .systemCall(.setOffload, Errno(rawValue: -r)) }
            offloads = true
        }
        name = String(decoding: actual.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)

        let sock = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if sock < 0 { throw .systemCall(.controlSocket, Errno(rawValue: errno)) }
        defer { _ = Glibc.close(sock) }
        if let cidr = hostAddress {
            var r = curing_if_set_address(sock, name, cidr.address.value)
            if r < 0 { throw .systemCall(.setAddress, Errno(rawValue: -r)) }
            r = curing_if_set_netmask(sock, name, cidr.netmask)
            if r < 0 { throw .systemCall(.setNetmask, Errno(rawValue: -r)) }
            r = curing_if_up(sock, name)
            if r < 0 { throw .systemCall(.bringUp, Errno(rawValue: -r)) }
        }
        if let cidr6 = hostAddress6 {
            Self.writeSysctl("/proc/sys/net/ipv6/conf/\(name)/accept_dad", "0")
            let r = curing_if_up(sock, name)
            if r < 0 { throw .systemCall(.bringUp, Errno(rawValue: -r)) }
            var bytes = (cidr6.address.high.bigEndian, cidr6.address.low.bigEndian)
            let added = withUnsafeBytes(of: &bytes) { raw in
                curing_if_add_address6(name, raw.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                       CInt(cidr6.prefixLength))
            }
            if added < 0 { throw .systemCall(.setAddress6, Errno(rawValue: -added)) }
        }
        // Best effort: a kernel that refuses keeps its own length, read back here.
        if transmitQueueLength > 0 { _ = curing_if_set_txqlen(sock, name, CInt(clamping: transmitQueueLength)) }
        let qlen = curing_if_txqlen(sock, name)
        self.transmitQueueLength = qlen >= 0 ? Int(qlen) : nil
        var mac: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        let got = withUnsafeMutableBytes(of: &mac) { raw in
            curing_if_hwaddr(sock, name, raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        hostMAC = got == 0 ? MACAddress(mac.0, mac.1, mac.2, mac.3, mac.4, mac.5) : nil
    }

    /// Writes `value` to a sysctl file; best effort (a missing file changes nothing).
    private static func writeSysctl(_ path: String, _ value: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = value.withCString { write(fd, $0, strlen($0)) }
        _ = Glibc.close(fd)
    }

    /// Makes the ring, registers the pool and the provided-buffer ring, and picks
    /// the receive mode.
    private func setUpRing(entries: UInt32, receiveMode: ReceiveMode) throws(TAPError) {
        // A completion another CPU brings (the kernel's ACK put on the TAP's
        // queue, an application's doorbell) would interrupt the loop with an
        // IPI to run its task work; cooperatively, it waits for the loop's
        // next entry into the kernel, and TASKRUN_FLAG raises IORING_SQ_TASKRUN
        // meanwhile, on which liburing's peek enters. Kernels before 5.19 refuse both.
        let cooperative = UInt32(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG)
        var ret = io_uring_queue_init(entries, ring, cooperative)
        if ret == -EINVAL { ret = io_uring_queue_init(entries, ring, 0) }
        if ret < 0 { throw .systemCall(.ringSetup, Errno(rawValue: -ret)) }
        ringReady = true

        // One iovec over the whole pool: any slot address is a valid fixed buffer 0.
        // Registration can fail (memlock limits, regions over 1 GiB); plain writes then.
        var iov = iovec(iov_base: pool.region.baseAddress, iov_len: pool.region.count)
        usingFixedBuffers = io_uring_register_buffers(ring, &iov, 1) == 0

        var err: CInt = 0
        guard let br = curing_setup_buf_ring(ring, bufferRingEntries, bufferGroup, &err) else {
            throw .systemCall(.bufferRing, Errno(rawValue: -err))
        }
        bufferRing = br
        usingMultishot = receiveMode == .automatic
            && curing_opcode_supported(ring, CInt(CURING_OP_READ_MULTISHOT))
    }

    // MARK: Completions

    /// Settles one completion. Returns the slot of a received frame for the
    /// caller to deliver (its length is `res`); everything else is handled here.
    private func complete(userData: UInt64, res: Int32, flags: UInt32) -> UInt32? {
        switch Tag(rawValue: userData >> 56) {
        case .multishotRead?:
            if flags & CURING_CQE_F_MORE == 0 { multishotArmed = false }
            return completeRead(res: res, flags: flags, multishot: true)
        case .singleRead?:
            outstandingReads -= 1
            return completeRead(res: res, flags: flags, multishot: false)
        case .write?:
            let slot = UInt32(truncatingIfNeeded: userData)
            let expected = Int32(truncatingIfNeeded: (userData >> 32) & 0xff_ffff)
            guard Int(slot) < pool.slotCount, slotStates[Int(slot)] == SlotState.writing.rawValue else {
                txErrors += 1
                return nil
            }
            slotStates[Int(slot)] = SlotState.notHeld.rawValue
            outstandingWrites -= 1
            pool.returnSlot(slot)
            if res == expected { txFrames += 1 } else { txErrors += 1 }
            return nil
        case .wake?:
            wakeArmed = false  // re-armed by the next wait
            return nil
        case .doorbell?:
            // Written (or, after a disarm, cancelled: `rang` ignores it).
            doorbells?.rang(token: UInt32(truncatingIfNeeded: userData))
            return nil
        case .cancel?, nil:
            return nil
        }
    }

    private func completeRead(res: Int32, flags: UInt32, multishot: Bool) -> UInt32? {
        var slot: UInt32?
        if flags & CURING_CQE_F_BUFFER != 0 {
            let bid = Int(flags >> CURING_CQE_BUFFER_SHIFT)
            if bid < pool.slotCount, slotStates[bid] == SlotState.inBufferRing.rawValue {
                slotStates[bid] = SlotState.notHeld.rawValue
                lentCount -= 1
                slot = UInt32(bid)
            } else {
                rxErrors += 1
                return nil
            }
        }
        if res > 0, let s = slot {
            consecutiveReadErrors = 0
            return s
        }
        if let s = slot { pool.returnSlot(s) }  // an empty read: nothing to deliver
        switch -res {
        case 0, ECANCELED:
            break
        case ENOBUFS:
            rxNoBuffers += 1  // replenish() and armReads() follow in receive()
        case EINVAL where multishot && rxFrames == 0:
            usingMultishot = false  // the probe lied or the file refuses multishot reads
        default:
            rxErrors += 1
            consecutiveReadErrors += 1
        }
        return nil
    }

    /// Used by close(): settles completions, handing received slots straight back.
    private func drainWithoutDelivering() {
        while true {
            let count = Int(io_uring_peek_batch_cqe(ring, completions, UInt32(Self.completionBatch)))
            if count == 0 { return }
            for i in 0..<count {
                guard let cqe = completions[i] else { continue }
                if let slot = complete(userData: cqe.pointee.user_data, res: cqe.pointee.res,
                                       flags: cqe.pointee.flags) {
                    pool.returnSlot(slot)
                }
            }
            io_uring_cq_advance(ring, UInt32(count))
        }
    }

    // MARK: Receive buffers and reads

    /// Tops the provided-buffer ring up to `receiveTarget` slots from the pool,
    /// published to the kernel with one tail update.
    private func replenish() {
        guard let br = bufferRing else { return }
        let mask = io_uring_buf_ring_mask(bufferRingEntries)
        let length = UInt32(pool.slotSize)
        var added: Int32 = 0
        while lentCount < receiveTarget, let slot = pool.lendSlot() {
            io_uring_buf_ring_add(br, pool.address(ofSlot: slot), length, UInt16(slot), mask, added)
            slotStates[Int(slot)] = SlotState.inBufferRing.rawValue
            lentCount += 1
            added += 1
        }
        if added > 0 { io_uring_buf_ring_advance(br, added) }
    }

    /// Queues reads until the configured number is outstanding. Waits while the
    /// ring has no buffers (a read would only fail with ENOBUFS) or reads keep
    /// failing. Returns whether anything was queued.
    @discardableResult
    private func armReads() -> Bool {
        guard !closing, lentCount > 0, consecutiveReadErrors < Self.maxConsecutiveReadErrors else {
            return false
        }
        var queued = 0
        if usingMultishot {
            if !multishotArmed, let sqe = nextSQE() {
                curing_prep_read_multishot(sqe, fd, bufferGroup)
                io_uring_sqe_set_data64(sqe, Self.userData(.multishotRead, slot: 0, length: 0))
                multishotArmed = true
                queued = 1
            }
        } else {
            // No more reads than lent buffers: the extra ones could only fail with ENOBUFS.
            while outstandingReads < min(Self.selectReadDepth, lentCount), let sqe = nextSQE() {
                curing_prep_read_select(sqe, fd, UInt32(pool.slotSize), bufferGroup)
                io_uring_sqe_set_data64(sqe, Self.userData(.singleRead, slot: 0, length: 0))
                outstandingReads += 1
                queued += 1
            }
        }
        if readsEverArmed { rxRearms += queued }
        if queued > 0 { readsEverArmed = true }
        return queued > 0
    }

    // MARK: Helpers

    /// The next free SQE, submitting queued ones first if the queue is full.
    private func nextSQE() -> UnsafeMutablePointer<io_uring_sqe>? {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        _ = io_uring_submit(ring)
        return io_uring_get_sqe(ring)
    }

    /// Tag in bits 56..63, frame length in 32..55, slot in 0..31.
    private static func userData(_ tag: Tag, slot: UInt32, length: Int) -> UInt64 {
        tag.rawValue << 56 | UInt64(length & 0xff_ffff) << 32 | UInt64(slot)
    }

    private static func monotonicNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
