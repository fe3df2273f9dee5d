#if canImport(Glibc)
import Glibc
#endif

/// Why a file operation failed: the `errno` it left.
public struct FileError: Error, Equatable, Sendable, CustomStringConvertible {
    public var errno: Int32

    public init(errno: Int32) { self.errno = errno }

    /// EACCES or EPERM: the file exists but may not be read (or searched).
    public var isPermissionDenied: Bool { errno == EACCES || errno == EPERM }

    /// The path does not fit the lookup's buffer, or holds a NUL byte.
    public static let badPath = FileError(errno: ENAMETOOLONG)

    public var description: String { String(cString: strerror(errno)) }
}

/// A file opened read-only, read in chunks into memory the caller owns; what
/// applications (the HTTP server) use instead of open(2), fstat(2) and read(2).
///
/// A value type over the descriptor, like swift-system's `FileDescriptor`:
/// close it once with `close()`. Opened by `FileLookup.open(_:)`.
public struct FileSource: Sendable {
    public enum Kind: Equatable, Sendable {
        case regular
        case directory
        /// A FIFO, socket, device: nothing to serve.
        case other
    }

    @usableFromInline let descriptor: Int32
    /// The length fstat(2) reported when the file was opened.
    public let size: UInt64
    public let kind: Kind

    init(descriptor: Int32, size: UInt64, kind: Kind) {
        self.descriptor = descriptor
        self.size = size
        self.kind = kind
    }

    /// Reads the next bytes into the free capacity of `output` (one read(2),
    /// retried on EINTR). Returns how many; 0 at the end of the file or when
    /// `output` is full.
    public func read(into output: inout OutputSpan<UInt8>) throws(FileError) -> Int {
        let result: Int = output.withUnsafeMutableBufferPointer { buffer, initialized in
            let room = buffer.count - initialized
            guard room > 0 else { return 0 }
            while true {
                let got = Glibc.read(descriptor, buffer.baseAddress! + initialized, room)
                if got >= 0 {
                    initialized += got
                    return got
                }
                if Glibc.errno != EINTR { return -Int(Glibc.errno) }
            }
        }
        if result < 0 { throw FileError(errno: Int32(-result)) }
        return result
    }

    /// Appends up to `maxLength` bytes of the file to `buffer`; allocates
    /// nothing when `buffer` has the capacity. Returns how many (0 at the end).
    public func read(appendingTo buffer: inout [UInt8], maxLength: Int) throws(FileError) -> Int {
        guard maxLength > 0 else { return 0 }
        var got = 0
        try buffer.append(addingCapacity: maxLength) { (output) throws(FileError) in got = try read(into: &output) }
        return got
    }

    /// Closes the descriptor. The value must not be used afterwards.
    public func close() {
        _ = Glibc.close(descriptor)
    }
}

extension FileSource.Kind {
    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        default: self = .other
        }
    }
}

/// Looks files up by path bytes (not NUL-terminated, as they come out of a
/// request) with realpath(3) and open(2). It owns the buffers that turn bytes
/// into C strings, so after `init` a lookup allocates nothing. One per user
/// on one thread (the loop).
public final class FileLookup {
    /// The longest path accepted, in bytes.
    public let maxPathLength: Int
    private let cPath: UnsafeMutablePointer<CChar>
    private let cResolved: UnsafeMutablePointer<CChar>

    public init() {
        maxPathLength = Int(PATH_MAX) - 1
        cPath = .allocate(capacity: Int(PATH_MAX) + 1)
        cResolved = .allocate(capacity: Int(PATH_MAX) + 1)
    }

    deinit {
        cPath.deallocate()
        cResolved.deallocate()
    }

    /// Copies `path` into `cPath` with a terminating NUL.
    private func terminate(_ path: Span<UInt8>) throws(FileError) {
        guard path.count <= maxPathLength else { throw .badPath }
        let hasNUL: Bool = path.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return false }
            if memchr(base, 0, bytes.count) != nil { return true }
            UnsafeMutableRawPointer(cPath).copyMemory(from: base, byteCount: bytes.count)
            return false
        }
        if hasNUL { throw .badPath }
        cPath[path.count] = 0
    }

    /// realpath(3): `path` made absolute, without `.`, `..` or symbolic links,
    /// replacing the contents of `resolved`. Allocates nothing when `resolved`
    /// has `maxPathLength` bytes of capacity.
    public func realPath(_ path: Span<UInt8>, into resolved: inout [UInt8]) throws(FileError) {
        try terminate(path)
        guard realpath(cPath, cResolved) != nil else { throw FileError(errno: errno) }
        let n = strlen(cResolved)
        resolved.removeAll(keepingCapacity: true)
        resolved.append(addingCapacity: n) { output in
            output.withUnsafeMutableBufferPointer { buffer, initialized in
                UnsafeMutableRawPointer(buffer.baseAddress! + initialized).copyMemory(from: cResolved, byteCount: n)
                initialized += n
            }
        }
    }

    /// stat(2): what kind of file `path` names (symbolic links followed).
    public func kind(of path: Span<UInt8>) throws(FileError) -> FileSource.Kind {
        try terminate(path)
        var st = stat()
        guard stat(cPath, &st) == 0 else { throw FileError(errno: errno) }
        return FileSource.Kind(mode: st.st_mode)
    }

    /// Opens `path` read-only and fstat(2)s it. Non-blocking, so that a FIFO
    /// cannot block the loop in open(2) (its `kind` is then `.other`);
    /// close-on-exec; never becomes a controlling terminal.
    public func open(_ path: Span<UInt8>) throws(FileError) -> FileSource {
        try terminate(path)
        let fd = Glibc.open(cPath, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw FileError(errno: errno) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw FileError(errno: e)
        }
        return FileSource(descriptor: fd, size: UInt64(st.st_size), kind: FileSource.Kind(mode: st.st_mode))
    }
}
