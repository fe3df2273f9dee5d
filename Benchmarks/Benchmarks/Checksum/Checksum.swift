// The Internet checksum (RFC 1071) over the sizes the stack meets: 64 bytes
// (headers, small datagrams), 1460 (a full TCP segment's payload at MTU 1500)
// and 9000 (a jumbo frame).
//
// One scaled iteration checksums one buffer; the buffers are taken in turn from
// a set of about 256 KiB (so they sit in L2, not all in L1), each starting 14
// bytes into a 64-byte-aligned slot, where an IP header starts after an
// Ethernet header. With scalingFactor .kilo, a wall-clock figure of t ns means
// t ns per checksum, and size / t is the rate in GB/s (decimal).

import Benchmark
import NetStackWire

#if canImport(Glibc)
import Glibc
#endif

/// `count` buffers of `size` bytes filled with pseudo-random bytes, in one allocation.
final class ChecksumBuffers {
    let size: Int
    let count: Int
    let stride: Int
    let base: UnsafeMutableRawPointer
    static let offset = 14

    init(size: Int, footprint: Int = 256 * 1024) {
        self.size = size
        stride = (size + Self.offset + 63) / 64 * 64
        count = max(8, footprint / stride)
        base = .allocate(byteCount: stride * count, alignment: 64)
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15
        for i in 0..<(stride * count) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            base.storeBytes(of: UInt8(truncatingIfNeeded: x), toByteOffset: i, as: UInt8.self)
        }
    }

    deinit { base.deallocate() }

    @inline(__always)
    func buffer(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + i * stride + Self.offset, count: size)
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    for size in [64, 1460, 9000] {
        Benchmark("InternetChecksum \(size) B") { benchmark, buffers in
            let n = buffers.count
            var i = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(InternetChecksum.compute(buffers.buffer(i)))
                i += 1
                if i == n { i = 0 }
            }
        } setup: {
            ChecksumBuffers(size: size)
        }
    }
}
