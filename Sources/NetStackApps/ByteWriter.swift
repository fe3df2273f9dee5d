/// Builds bytes into a buffer of fixed capacity, reserved once: status lines,
/// header fields, decimal numbers, paths. After `init` nothing allocates as
/// long as the writer is not copied while written. Overflow is recorded, not
/// trapped, and leaves the bytes as they were.
struct ByteWriter {
    /// What has been written.
    private(set) var bytes: [UInt8]
    let capacity: Int
    private(set) var overflowed = false

    init(capacity: Int) {
        self.capacity = capacity
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    /// Empties the writer (keeping its memory) and clears `overflowed`.
    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        overflowed = false
    }

    /// Drops everything after the first `n` bytes.
    mutating func truncate(to n: Int) {
        precondition(n >= 0 && n <= count)
        bytes.removeLast(count - n)
    }

    /// The UTF-8 bytes of `text` (string literals: no allocation).
    mutating func append(_ text: String) {
        let utf8 = text.utf8
        guard count + utf8.count <= capacity else { overflowed = true; return }
        bytes.append(contentsOf: utf8)
    }

    mutating func append(_ b: Span<UInt8>) {
        guard count + b.count <= capacity else { overflowed = true; return }
        for i in b.indices { bytes.append(b[i]) }
    }

    mutating func append(_ b: [UInt8]) {
        guard count + b.count <= capacity else { overflowed = true; return }
        bytes.append(contentsOf: b)
    }

    mutating func append(byte: UInt8) {
        guard count < capacity else { overflowed = true; return }
        bytes.append(byte)
    }

    mutating func append(decimal value: UInt64) {
        // The largest power of ten not above the value (10^19 for UInt64.max), then digit by digit.
        var divisor: UInt64 = 1
        var digits = 1
        while value / divisor >= 10 {
            divisor *= 10
            digits += 1
        }
        guard count + digits <= capacity else { overflowed = true; return }
        while divisor > 0 {
            bytes.append(UInt8(truncatingIfNeeded: value / divisor % 10) + ASCII.zero)
            divisor /= 10
        }
    }
}
