#if canImport(Glibc)
import Glibc
#endif

/// Writes to the standard streams without touching C's global `FILE*`s, which
/// Swift 6 treats as shared mutable state.
enum Console {
    static func error(_ text: String) {
        write(2, text + "\n")
    }

    /// Prints a line to stdout and flushes, so a parent reading a pipe sees it at once.
    static func line(_ text: String) {
        write(1, text + "\n")
    }

    private static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var off = 0
            while off < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
                if n <= 0 { return }
                off += n
            }
        }
    }
}
