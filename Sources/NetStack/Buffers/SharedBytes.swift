/// Bytes an application hands to TCP by reference instead of by copy
/// (`TCPConnection.write(_:range:)`): a static page of a web server, a test
/// pattern, a file read once. Immutable after `init`; TCP keeps a reference
/// to them until the peer has acknowledged the bytes sent from them, and the
/// device reads them in place (`FrameTail`), so sending them copies nothing.
/// What MSG_ZEROCOPY and sendfile give kernel sockets.
/// Sendable: nothing changes after `init`.
public final class SharedBytes: @unchecked Sendable {
    /// The bytes: one allocation, made and filled at `init`, freed at `deinit`.
    let bytes: UnsafeRawBufferPointer

    /// A copy of `source`, made once.
    public init(_ source: some Collection<UInt8>) {
        let count = source.count
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 64)
        // One block copy from contiguous storage (an element-wise copy is slow unoptimised).
        let copied: Void? = source.withContiguousStorageIfAvailable { storage.copyMemory(from: UnsafeRawBufferPointer($0)) }
        if copied == nil { Array(source).withUnsafeBytes { storage.copyMemory(from: $0) } }
        bytes = UnsafeRawBufferPointer(rebasing: storage[0..<count])
    }

    deinit { UnsafeMutableRawBufferPointer(mutating: bytes).deallocate() }

    public var count: Int { bytes.count }
}
