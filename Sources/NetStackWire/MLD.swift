/// Multicast Listener Discovery message types (RFC 2710 3, RFC 3810 4):
/// a node tells the link's routers which groups it listens to, so that a
/// switch snooping MLD forwards its solicited-node groups to it.
public enum MLDType {
    @inlinable public static var query: UInt8 { 130 }
    /// Version 1's report and done (RFC 2710); other listeners' only.
    @inlinable public static var reportV1: UInt8 { 131 }
    @inlinable public static var doneV1: UInt8 { 132 }
    @inlinable public static var reportV2: UInt8 { 143 }
}

/// Multicast address record types of an MLDv2 report (RFC 3810 5.2.12).
public enum MLDRecordType {
    /// Current state, answering a query: listening, no sources excluded.
    @inlinable public static var modeIsExclude: UInt8 { 2 }
    /// State changes: a group left (include nothing) or joined (exclude nothing).
    @inlinable public static var changeToInclude: UInt8 { 3 }
    @inlinable public static var changeToExclude: UInt8 { 4 }
}

/// A Multicast Listener Query in place, version 1 (24 bytes, RFC 2710 3.6)
/// or 2 (28 bytes and its sources, RFC 3810 5.1): a general query names the
/// unspecified address, a specific one the group asked about.
public struct MLDQuery {
    public let bytes: UnsafeMutableRawBufferPointer

    public static var version1Length: Int { 24 }
    public static var version2MinimumLength: Int { 28 }

    /// Checks the type and code and that the message is one of the two
    /// versions' whole lengths (RFC 3810 8.1: 24 bytes is version 1, 28 or
    /// more version 2, any other length is ignored), sources included.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.version1Length else { throw .truncated }
        guard bytes.u8(0) == MLDType.query, bytes.u8(1) == 0 else { throw .unsupported }
        if bytes.count != Self.version1Length {
            guard bytes.count >= Self.version2MinimumLength else { throw .badLength }
            guard bytes.count >= Self.version2MinimumLength + Int(bytes.be16(26)) * 16 else { throw .truncated }
        }
        self.bytes = bytes
    }

    @inlinable public var isVersion2: Bool { bytes.count >= Self.version2MinimumLength }
    /// The unspecified address in a general query.
    @inlinable public var multicastAddress: IPv6Address { bytes.ipv6(8) }
    @inlinable public var sourceCount: Int { isVersion2 ? Int(bytes.be16(26)) : 0 }

    /// The longest a listener may wait to answer, in milliseconds: version
    /// 1's field as it is, version 2's Maximum Response Code decoded from its
    /// floating-point form above 32767 (RFC 3810 5.1.3).
    @inlinable public var maximumResponseDelayMilliseconds: Int {
        let code = bytes.be16(4)
        guard isVersion2, code >= 0x8000 else { return Int(code) }
        let exponent = Int((code >> 12) & 0x7)
        let mantissa = Int(code & 0x0fff)
        return (mantissa | 0x1000) << (exponent + 3)
    }
}

/// An MLDv2 report (RFC 3810 5.2): one record per group, none with sources
/// (a host here only listens to whole groups: exclude nothing, or include
/// nothing to leave).
public struct MLDv2ReportRepr {
    public static var headerLength: Int { 8 }
    public static var recordLength: Int { 20 }
    /// The destination of every version 2 report: all MLDv2-capable routers.
    public static var destination: IPv6Address { IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 0x16) }

    public var records: [(type: UInt8, group: IPv6Address)]

    public init(records: [(type: UInt8, group: IPv6Address)]) { self.records = records }

    public var length: Int { Self.headerLength + records.count * Self.recordLength }

    /// Writes the report, checksum included, over `source` and `destination`.
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address) {
        let n = length
        precondition(bytes.count >= n, "buffer shorter than the report")
        let out = bytes.slice(0..<n)
        out.setBE32(0, UInt32(MLDType.reportV2) << 24)
        out.setBE16(4, 0)
        out.setBE16(6, UInt16(records.count))
        for (i, r) in records.enumerated() {
            let at = Self.headerLength + i * Self.recordLength
            out.setU8(at, r.type)
            out.setU8(at + 1, 0)  // no auxiliary data
            out.setBE16(at + 2, 0)  // no sources
            out.setIPv6(at + 4, r.group)
        }
        ICMPv6Packet(unchecked: out).fillChecksum(source: source, destination: destination)
    }
}

/// A hop-by-hop options header holding only the Router Alert option with
/// value 0, "the datagram contains an MLD message" (RFC 2711, RFC 3810 5):
/// routers look inside a report addressed to a group they do not join.
public enum IPv6RouterAlertHeader {
    public static var length: Int { 8 }

    /// Writes the 8 bytes: next header, length 0, the option (type 5, length
    /// 2, value 0), and a PadN of 0 bytes to fill the eight.
    public static func emit(into bytes: UnsafeMutableRawBufferPointer, nextHeader: IPProtocol) {
        precondition(bytes.count >= length, "buffer shorter than the header")
        bytes.setU8(0, nextHeader.rawValue)
        bytes.setU8(1, 0)
        bytes.setU8(2, 5)
        bytes.setU8(3, 2)
        bytes.setBE16(4, 0)
        bytes.setU8(6, 1)
        bytes.setU8(7, 0)
    }
}
