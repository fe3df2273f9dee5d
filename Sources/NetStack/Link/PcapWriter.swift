import SystemPackage

/// Middleware that records every frame a device receives or transmits to a
/// classic pcap file (nanosecond timestamps, LINKTYPE_ETHERNET), readable by
/// Wireshark and tshark, and otherwise passes everything through unchanged.
///
/// Records are appended to a buffer allocated once and written out when it
/// fills, on `flush()` (so the file is current after each event-loop turn that
/// sent or received something), and on `close()`. Nothing is allocated per frame.
/// Timestamps come from the injected clock, so captures of tests on a virtual
/// clock are deterministic.
///
/// A write error stops the capture (see `writeError`), never the traffic.
public final class PcapWriter<Inner: Device>: Device {
    /// The wrapped device.
    public let inner: Inner
    public var pool: PacketPool { inner.pool }
    /// The inner device's: the capture records whatever crosses it.
    public var capabilities: DeviceCapabilities { inner.capabilities.wholeFrames }

    /// Bytes of each frame kept; longer frames are cut (the record keeps the true length).
    public let snapLength: Int
    /// Frames recorded so far.
    public private(set) var framesRecorded = 0
    /// The error that stopped the capture, if any.
    public private(set) var writeError: Errno?

    private let clock: any NetClock
    private var file: FileDescriptor?
    private let buffer: UnsafeMutableRawBufferPointer
    private var used = 0

    /// pcap with nanosecond timestamps (the microsecond variant is 0xa1b2c3d4).
    public static var magicNanoseconds: UInt32 { 0xa1b2_3c4d }
    /// LINKTYPE_ETHERNET.
    public static var linkTypeEthernet: UInt32 { 1 }
    private static var globalHeaderSize: Int { 24 }
    private static var recordHeaderSize: Int { 16 }

    /// Creates (or truncates) the capture file at `path` and writes its header.
    ///
    /// - Parameters:
    ///   - inner: the device whose traffic is recorded.
    ///   - path: the capture file.
    ///   - clock: timestamps; its nanoseconds are written as seconds since the epoch,
    ///     so pass a wall clock if the capture should show real dates.
    ///   - snapLength: bytes kept per frame (at most 262144, tcpdump's default, so 64 KiB offload segments fit whole).
    ///   - bufferSize: bytes buffered before a write; raised to fit one whole record.
    public init(wrapping inner: Inner, path: FilePath, clock: any NetClock,
                snapLength: Int = 262_144, bufferSize: Int = 1 << 18) throws(Errno) {
        do {
            file = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                           permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw (error as? Errno) ?? .ioError
        }
        self.inner = inner
        self.clock = clock
        self.snapLength = min(max(snapLength, 1), 262_144)
        let capacity = max(bufferSize, Self.globalHeaderSize + Self.recordHeaderSize + self.snapLength)
        buffer = .allocate(byteCount: capacity, alignment: 8)
        put32(Self.magicNanoseconds)
        put16(2)  // version 2.4
        put16(4)
        put32(0)  // thiszone
        put32(0)  // sigfigs
        put32(UInt32(self.snapLength))
        put32(Self.linkTypeEthernet)
    }

    /// Creates (or truncates) the capture file at `path`; see `init(wrapping:path:clock:snapLength:bufferSize:)`.
    public convenience init(wrapping inner: Inner, path: String, clock: any NetClock,
                            snapLength: Int = 262_144, bufferSize: Int = 1 << 18) throws(Errno) {
        try self.init(wrapping: inner, path: FilePath(path), clock: clock, snapLength: snapLength,
                      bufferSize: bufferSize)
    }

    deinit {
        close()
        buffer.deallocate()
    }

    // MARK: Device

    public func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        inner.receive(limit: limit) { frame in
            record(frame)
            handler(frame)
        }
    }

    public func transmit(_ frame: consuming PacketBuffer) {
        record(frame)
        inner.transmit(frame)
    }

    public func flush() {
        inner.flush()
        writeBuffered()
    }

    public func wait(timeout: Duration) {
        inner.wait(timeout: timeout)
    }

    public func watch(wakeups descriptor: Int32) { inner.watch(wakeups: descriptor) }
    public func watch(doorbells: Doorbells) -> Bool { inner.watch(doorbells: doorbells) }

    /// Writes out what is buffered and closes the file. Later frames pass through
    /// unrecorded. Idempotent; deinit calls it.
    public func close() {
        writeBuffered()
        if let file {
            try? file.close()
            self.file = nil
        }
    }

    // MARK: Recording

    private func record(_ frame: borrowing PacketBuffer) {
        guard file != nil else { return }
        let kept = min(frame.length, snapLength)
        if used + Self.recordHeaderSize + kept > buffer.count {
            writeBuffered()
            guard file != nil else { return }
        }
        let ns = clock.now.nanoseconds
        put32(UInt32(truncatingIfNeeded: ns / 1_000_000_000))
        put32(UInt32(truncatingIfNeeded: ns % 1_000_000_000))
        put32(UInt32(kept))
        put32(UInt32(truncatingIfNeeded: frame.length))
        frame.withBytes { bytes in
            buffer.baseAddress!.advanced(by: used).copyMemory(from: bytes.baseAddress!, byteCount: kept)
        }
        used += kept
        framesRecorded += 1
    }

    private func writeBuffered() {
        guard used > 0, let file else { return }
        do {
            _ = try file.writeAll(UnsafeRawBufferPointer(rebasing: buffer[..<used]))
            used = 0
        } catch {
            writeError = (error as? Errno) ?? .ioError
            try? file.close()
            self.file = nil
            used = 0
        }
    }

    /// Appends in the host's byte order: readers tell it from the magic number.
    private func put32(_ v: UInt32) {
        buffer.storeBytes(of: v, toByteOffset: used, as: UInt32.self)
        used += 4
    }

    private func put16(_ v: UInt16) {
        buffer.storeBytes(of: v, toByteOffset: used, as: UInt16.self)
        used += 2
    }
}
