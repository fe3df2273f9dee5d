/// TCP option kinds (IANA "TCP Option Kind Numbers").
public struct TCPOptionKind: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// RFC 9293 3.2: ends the list; what follows is padding.
    @inlinable public static var endOfList: TCPOptionKind { TCPOptionKind(rawValue: 0) }
    /// RFC 9293 3.2: one byte, used to align the next option.
    @inlinable public static var noOperation: TCPOptionKind { TCPOptionKind(rawValue: 1) }
    /// RFC 9293 3.2 and 3.7.1, length 4.
    @inlinable public static var maximumSegmentSize: TCPOptionKind { TCPOptionKind(rawValue: 2) }
    /// RFC 7323 2.2, length 3.
    @inlinable public static var windowScale: TCPOptionKind { TCPOptionKind(rawValue: 3) }
    /// RFC 2018 2, length 2.
    @inlinable public static var sackPermitted: TCPOptionKind { TCPOptionKind(rawValue: 4) }
    /// RFC 2018 3, length 2 + 8n.
    @inlinable public static var sack: TCPOptionKind { TCPOptionKind(rawValue: 5) }
    /// RFC 7323 3.2, length 10.
    @inlinable public static var timestamps: TCPOptionKind { TCPOptionKind(rawValue: 8) }
}

/// Up to four SACK blocks (RFC 2018 section 3), held inline: a count and a
/// fixed tuple, so making, parsing and copying them never allocates.
public struct TCPSACKBlocks: RandomAccessCollection, MutableCollection, ExpressibleByArrayLiteral, Equatable,
    Sendable, CustomStringConvertible
{
    /// A block's left edge (its first sequence number) and right edge (the one after its last).
    public typealias Element = (left: SequenceNumber, right: SequenceNumber)

    /// A SACK option holds at most four blocks (40 option bytes).
    public static var capacity: Int { 4 }

    @usableFromInline var storage: (Element, Element, Element, Element)
    @usableFromInline var storedCount: Int

    @inlinable
    public init() {
        let zero = (left: SequenceNumber(0), right: SequenceNumber(0))
        storage = (zero, zero, zero, zero)
        storedCount = 0
    }

    /// At most `capacity` blocks.
    @inlinable
    public init(arrayLiteral elements: Element...) {
        self.init()
        for e in elements { append(e) }
    }

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { storedCount }
    @inlinable public var isFull: Bool { storedCount == Self.capacity }

    @inlinable
    public subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < storedCount, "SACK block index out of range")
            switch position {
            case 0: return storage.0
            case 1: return storage.1
            case 2: return storage.2
            default: return storage.3
            }
        }
        set {
            precondition(position >= 0 && position < storedCount, "SACK block index out of range")
            switch position {
            case 0: storage.0 = newValue
            case 1: storage.1 = newValue
            case 2: storage.2 = newValue
            default: storage.3 = newValue
            }
        }
    }

    /// A concrete iterator: `for block in blocks` then allocates nothing even
    /// unoptimised (the generic `IndexingIterator` boxes tuples in debug builds).
    public struct Iterator: IteratorProtocol {
        @usableFromInline let blocks: TCPSACKBlocks
        @usableFromInline var position = 0

        @inlinable init(_ blocks: TCPSACKBlocks) { self.blocks = blocks }

        @inlinable
        public mutating func next() -> Element? {
            guard position < blocks.storedCount else { return nil }
            defer { position += 1 }
            return blocks[position]
        }
    }

    @inlinable public func makeIterator() -> Iterator { Iterator(self) }

    /// Adds a block at the end; there must be room.
    @inlinable
    public mutating func append(_ block: Element) {
        precondition(storedCount < Self.capacity, "more than four SACK blocks")
        storedCount += 1
        self[storedCount - 1] = block
    }

    @inlinable
    public mutating func removeAll() { storedCount = 0 }

    @inlinable
    public static func == (a: TCPSACKBlocks, b: TCPSACKBlocks) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where a[i] != b[i] { return false }
        return true
    }

    public var description: String {
        "[" + map { "\($0.left)..<\($0.right)" }.joined(separator: ", ") + "]"
    }
}

/// The TCP options the stack understands, as a plain value (RFC 9293 3.2,
/// RFC 7323, RFC 2018). Which options belong on which segments (MSS and window
/// scale only on a SYN, RFC 9293 3.7.1 and RFC 7323 2.2) is the connection's
/// business; parsing records whatever is present, and emitting writes whatever
/// is set.
///
/// Parsing (`init(parsing:)`) stops at End of Option List, skips No-Operation,
/// steps over unknown kinds by their length, and lets a repeated option's last
/// instance win. It throws `.badOption` for a length below 2, an option running
/// past the options area, a known kind of the wrong length, or a SACK option
/// not of 1 to 4 blocks.
///
/// Emitting (`emit(into:)`) uses Linux's layouts, every option aligned to 4 bytes
/// by NOPs (`tcp_options_write`):
///
///     MSS                     02 04 mm mm
///     SACK-permitted + TS     04 02 08 0a vv vv vv vv ee ee ee ee
///     TS alone                01 01 08 0a vv vv vv vv ee ee ee ee
///     SACK-permitted alone    01 01 04 02
///     window scale            01 03 03 ws
///     SACK blocks             01 01 05 ll (left right)...
///
/// so Linux's SYN is `02 04 mm mm 04 02 08 0a ... 01 03 03 ws` and a data
/// segment `01 01 08 0a ...`. SACK blocks that would take the options past 40
/// bytes are left off, last first (RFC 2018 4: the first block is the most recent).
public struct TCPOptions: Equatable, Sendable {
    /// Maximum segment size (RFC 9293 3.7.1).
    public var mss: UInt16?
    /// The window scale shift count (RFC 7323 2.2); parsing caps it at 14 (RFC 7323 2.3).
    public var windowScale: UInt8?
    /// SACK-permitted (RFC 2018 2).
    public var sackPermitted: Bool
    /// TSval and TSecr (RFC 7323 3.2).
    public var timestamps: (value: UInt32, echoReply: UInt32)?
    /// SACK blocks (RFC 2018 3).
    public var sackBlocks: TCPSACKBlocks

    /// The options area holds at most 40 bytes (a data offset of 15 words).
    public static var maximumLength: Int { 40 }
    /// RFC 7323 2.3: larger shift counts are treated as 14.
    public static var maximumWindowScale: UInt8 { 14 }

    @inlinable
    public init(mss: UInt16? = nil, windowScale: UInt8? = nil, sackPermitted: Bool = false,
                timestamps: (value: UInt32, echoReply: UInt32)? = nil, sackBlocks: TCPSACKBlocks = TCPSACKBlocks()) {
        self.mss = mss
        self.windowScale = windowScale
        self.sackPermitted = sackPermitted
        self.timestamps = timestamps
        self.sackBlocks = sackBlocks
    }

    /// True when no option is set (the header is the bare 20 bytes).
    @inlinable public var isEmpty: Bool {
        mss == nil && windowScale == nil && !sackPermitted && timestamps == nil && sackBlocks.isEmpty
    }

    @inlinable
    public static func == (a: TCPOptions, b: TCPOptions) -> Bool {
        a.mss == b.mss && a.windowScale == b.windowScale && a.sackPermitted == b.sackPermitted
            && a.timestamps?.value == b.timestamps?.value && a.timestamps?.echoReply == b.timestamps?.echoReply
            && a.sackBlocks == b.sackBlocks
    }

    /// Parses an options area (`TCPSegment.options`). See the type's notes for the rules.
    @inlinable
    public init(parsing bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        self.init()
        let n = bytes.count
        // Nearly every data segment carries exactly `01 01 08 0a` + timestamps.
        if n == 12 && bytes.be32(0) == 0x0101_080a {
            timestamps = (value: bytes.be32(4), echoReply: bytes.be32(8))
            return
        }
        var i = 0
        while i < n {
            let kind = TCPOptionKind(rawValue: bytes.u8(i))
            if kind == .endOfList { break }
            if kind == .noOperation {
                i += 1
                continue
            }
            guard i + 1 < n else { throw .badOption }
            let length = Int(bytes.u8(i + 1))
            guard length >= 2, length <= n - i else { throw .badOption }
            switch kind {
            case .maximumSegmentSize:
                guard length == 4 else { throw .badOption }
                mss = bytes.be16(i + 2)
            case .windowScale:
                guard length == 3 else { throw .badOption }
                windowScale = Swift.min(bytes.u8(i + 2), Self.maximumWindowScale)
            case .sackPermitted:
                guard length == 2 else { throw .badOption }
                sackPermitted = true
            case .sack:
                let blocks = (length - 2) / 8
                guard (length - 2) % 8 == 0, blocks >= 1, blocks <= TCPSACKBlocks.capacity else { throw .badOption }
                sackBlocks.removeAll()
                for b in 0..<blocks {
                    let at = i + 2 + b * 8
                    sackBlocks.append((left: SequenceNumber(bytes.be32(at)), right: SequenceNumber(bytes.be32(at + 4))))
                }
            case .timestamps:
                guard length == 10 else { throw .badOption }
                timestamps = (value: bytes.be32(i + 2), echoReply: bytes.be32(i + 6))
            default:
                break
            }
            i += length
        }
    }

    /// The bytes `emit(into:)` writes: a multiple of 4, at most 40.
    @inlinable
    public var encodedLength: Int {
        let fixed = fixedLength
        let blocks = sackBlocksThatFit(after: fixed)
        return fixed + (blocks == 0 ? 0 : 4 + 8 * blocks)
    }

    /// Writes the options at the start of `bytes` in the layouts above and
    /// returns the length written (`encodedLength`).
    @inlinable @discardableResult
    public func emit(into bytes: UnsafeMutableRawBufferPointer) -> Int {
        let blocks = sackBlocksThatFit(after: fixedLength)
        precondition(bytes.count >= fixedLength + (blocks == 0 ? 0 : 4 + 8 * blocks))
        var i = 0
        if let mss {
            bytes.setBE32(i, 0x0204_0000 | UInt32(mss))
            i += 4
        }
        if let timestamps {
            bytes.setBE32(i, sackPermitted ? 0x0402_080a : 0x0101_080a)
            bytes.setBE32(i + 4, timestamps.value)
            bytes.setBE32(i + 8, timestamps.echoReply)
            i += 12
        } else if sackPermitted {
            bytes.setBE32(i, 0x0101_0402)
            i += 4
        }
        if let windowScale {
            precondition(windowScale <= Self.maximumWindowScale, "window scale above 14")
            bytes.setBE32(i, 0x0103_0300 | UInt32(windowScale))
            i += 4
        }
        if blocks > 0 {
            bytes.setBE32(i, 0x0101_0500 | UInt32(2 + 8 * blocks))
            i += 4
            for b in 0..<blocks {
                let block = sackBlocks[b]
                bytes.setBE32(i, block.left.rawValue)
                bytes.setBE32(i + 4, block.right.rawValue)
                i += 8
            }
        }
        return i
    }

    /// Length of everything but the SACK blocks (at most 20).
    @inlinable var fixedLength: Int {
        (mss == nil ? 0 : 4) + (timestamps != nil ? 12 : sackPermitted ? 4 : 0) + (windowScale == nil ? 0 : 4)
    }

    /// How many SACK blocks fit after `used` bytes within the 40-byte limit.
    @inlinable func sackBlocksThatFit(after used: Int) -> Int {
        Swift.max(0, Swift.min(sackBlocks.count, (Self.maximumLength - used - 4) / 8))
    }
}
