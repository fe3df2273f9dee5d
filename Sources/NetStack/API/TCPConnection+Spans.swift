#if canImport(Glibc)
import Glibc
#endif

/// The safe face of `TCPConnection` for applications: bytes go in and out as
/// borrowed spans and arrays instead of raw pointers.
///
/// Nothing here allocates. Reads copy into memory the caller already owns (the
/// free capacity of an `OutputSpan`, the front of a `MutableSpan`, or an array's
/// reserved capacity), writes copy from a span into the send ring, and `peek`
/// lends the receive ring's bytes for the duration of a closure. The pointer
/// methods these wrap stay for the stack's own users.
extension TCPConnection {
    // MARK: Writing

    /// Queues bytes to send; returns how many fit in the send ring.
    @inlinable
    public func write(_ bytes: Span<UInt8>) -> Int {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Queues bytes to send; returns how many fit in the send ring.
    @inlinable
    public func write(_ bytes: RawSpan) -> Int {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Queues the bytes of an array; returns how many fit in the send ring.
    @inlinable
    public func write(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Queues the UTF-8 bytes of a literal; returns how many fit in the send ring.
    @inlinable
    public func write(_ text: StaticString) -> Int {
        text.withUTF8Buffer { write(UnsafeRawBufferPointer($0)) }
    }

    /// Queues one byte; returns 1 if it fit, else 0.
    @inlinable
    public func write(byte: UInt8) -> Int {
        withUnsafeBytes(of: byte) { write($0) }
    }

    // MARK: Reading

    /// Copies received bytes into the free capacity of `output` (appending to
    /// what it holds) and consumes them. Returns how many; 0 when nothing is
    /// waiting (see `isReadClosed`) or `output` is full.
    @inlinable
    public func read(into output: inout OutputSpan<UInt8>) -> Int {
        output.withUnsafeMutableBufferPointer { buffer, initialized in
            let n = read(into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[initialized...])))
            initialized += n
            return n
        }
    }

    /// Copies received bytes to the front of `destination` (as many as fit) and
    /// consumes them. Returns how many.
    @inlinable
    public func read(into destination: inout MutableSpan<UInt8>) -> Int {
        destination.withUnsafeMutableBytes { read(into: $0) }
    }

    /// Appends up to `maxLength` received bytes to `buffer` and consumes them.
    /// Allocates nothing when `buffer` has the capacity (`reserveCapacity`, or
    /// `removeAll(keepingCapacity: true)` between reads). Returns how many.
    @inlinable
    @discardableResult
    public func read(appendingTo buffer: inout [UInt8], maxLength: Int = .max) -> Int {
        let n = min(maxLength, readableBytes)
        guard n > 0 else { return 0 }
        var got = 0
        buffer.append(addingCapacity: n) { output in got = read(into: &output) }
        return got
    }

    /// Calls `body` with the received bytes as up to two pieces, in order (the
    /// second is empty unless the bytes wrap the receive ring), without
    /// consuming them. The spans cannot outlive the call.
    @inlinable
    public func peek<R>(_ body: (Span<UInt8>, Span<UInt8>) -> R) -> R {
        peek { (a: UnsafeRawBufferPointer, b: UnsafeRawBufferPointer) in
            body(Span(_unsafeBytes: a), Span(_unsafeBytes: b))
        }
    }

    /// Copies received bytes into the free capacity of `output` without
    /// consuming them (a parser looking at a message head that may not have
    /// all arrived). Returns how many.
    @inlinable
    public func peek(into output: inout OutputSpan<UInt8>) -> Int {
        peek { (a: UnsafeRawBufferPointer, b: UnsafeRawBufferPointer) in
            output.withUnsafeMutableBufferPointer { buffer, initialized in
                let room = buffer.count - initialized
                let n1 = min(a.count, room)
                let n2 = min(b.count, room - n1)
                let destination = UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[initialized...]))
                if n1 > 0 { destination.baseAddress!.copyMemory(from: a.baseAddress!, byteCount: n1) }
                if n2 > 0 { (destination.baseAddress! + n1).copyMemory(from: b.baseAddress!, byteCount: n2) }
                initialized += n1 + n2
                return n1 + n2
            }
        }
    }
}
