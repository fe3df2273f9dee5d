import Testing
import NetStackWire

/// The virtio-net header a TAP with IFF_VNET_HDR puts in front of frames
/// (virtio 1.2, 5.1.6): 10 little-endian bytes.
struct VirtioNetHeaderTests {
    @Test func parsesTheKernelsLayout() throws {
        // A 64 KiB TCP segment from the kernel: NEEDS_CSUM, TCPV4, 66 bytes of
        // headers, 1448-byte segments, checksum from byte 34 at offset 16.
        let bytes: [UInt8] = [0x01, 0x01, 66, 0, 0xa8, 0x05, 34, 0, 16, 0, 0xff]
        let h = try bytes.withUnsafeBytes { try VirtioNetHeader(parsing: $0) }
        #expect(h.flags == VirtioNetHeader.needsChecksum && h.gsoType == .tcpv4)
        #expect(h.headerLength == 66 && h.segmentSize == 1448)
        #expect(h.checksumStart == 34 && h.checksumOffset == 16)
        #expect(h.checksumTrusted)
    }

    @Test func emitWritesWhatParsingReads() throws {
        let h = VirtioNetHeader(flags: VirtioNetHeader.needsChecksum, gsoType: .tcpv4, headerLength: 54,
                                segmentSize: 1460, checksumStart: 34, checksumOffset: 16)
        var bytes = [UInt8](repeating: 0xee, count: 12)
        bytes.withUnsafeMutableBytes { h.emit(into: $0) }
        #expect(bytes == [0x01, 0x01, 54, 0, 0xb4, 0x05, 34, 0, 16, 0, 0xee, 0xee])
        #expect(try bytes.withUnsafeBytes { try VirtioNetHeader(parsing: $0) } == h)
    }

    @Test func onlyTheChecksumFlagsMakeAChecksumTrusted() throws {
        for (flags, trusted) in [(UInt8(0), false), (1, true), (2, true), (3, true), (4, false)] {
            #expect(VirtioNetHeader(flags: flags).checksumTrusted == trusted, "flags \(flags)")
        }
        // An all-zero header: a finished frame, nothing vouched for.
        let zero = try [UInt8](repeating: 0, count: 10).withUnsafeBytes { try VirtioNetHeader(parsing: $0) }
        #expect(zero == VirtioNetHeader() && zero.gsoType == .none && !zero.checksumTrusted)
    }

    @Test func aShortBufferIsTruncated() {
        #expect(throws: WireError.truncated) {
            try [UInt8](repeating: 0, count: 9).withUnsafeBytes { try VirtioNetHeader(parsing: $0) }
        }
    }
}
