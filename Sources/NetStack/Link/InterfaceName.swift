import CURing
#if canImport(Glibc)
import Glibc
#endif

/// Network interface names as Linux takes them, checked before a TAP is
/// made so a bad one is refused with its reason rather than an errno from
/// TUNSETIFF, and the interface that already holds a name.
public enum InterfaceName {
    /// The longest name in bytes: IFNAMSIZ less its NUL.
    public static let maxLength = 15

    /// Checks `name` as the kernel does (net/core/dev.c: `dev_valid_name`,
    /// and `dev_alloc_name` for a pattern). Returns true if it is a pattern,
    /// with one `%d` that the kernel replaces by the first free number
    /// (`tap%d` becomes `tap0`).
    @discardableResult
    public static func validate(_ name: String) throws(InterfaceNameError) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count <= maxLength else { throw .tooLong(bytes: bytes.count) }
        guard name != "." && name != ".." else { throw .dots }
        var percent: Int?
        for (i, b) in bytes.enumerated() {
            switch b {
            case UInt8(ascii: "/"): throw .forbidden("'/'")
            case UInt8(ascii: ":"): throw .forbidden("':'")
            case 0: throw .forbidden("NUL")
            case 0x09...0x0d, 0x20: throw .forbidden("whitespace")
            // The kernel's isspace() counts 0xA0 too (Latin-1's no-break space).
            case 0xa0: throw .forbidden("byte 0xA0 (in some UTF-8 characters, such as \u{E0}), which the kernel takes for a space")
            case UInt8(ascii: "%"):
                guard percent == nil, i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "d") else {
                    throw .badPattern
                }
                percent = i
            default: break
            }
        }
        return percent != nil
    }

    /// The interface called `name` in the calling thread's network
    /// namespace, if there is one.
    public static func existing(_ name: String) -> ExistingInterface? {
        let index = if_nametoindex(name)
        guard index != 0 else { return nil }
        var driver: String?
        let sock = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if sock >= 0 {
            defer { _ = close(sock) }
            var buffer = [CChar](repeating: 0, count: 64)
            if curing_if_driver(sock, name, &buffer, UInt32(buffer.count)) == 0 {
                driver = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return ExistingInterface(name: name, index: index, driver: driver)
    }
}

/// An interface that already holds a name.
public struct ExistingInterface: Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var index: UInt32
    /// Its driver as ethtool reports it ("tun" for TUN/TAP, "veth", ...);
    /// nil for one that reports none (the loopback).
    public var driver: String?

    public init(name: String, index: UInt32, driver: String?) {
        self.name = name
        self.index = index
        self.driver = driver
    }

    /// A TUN or TAP device: persistent, or open in another process.
    public var isTUNTAP: Bool { driver == "tun" }

    /// Why the name cannot be used, and what to do about it.
    public var description: String {
        if isTUNTAP {
            return "a TUN/TAP device named \(name) already exists (persistent, or open in another process); "
                + "netstack makes its own TAP and removes it on exit, and does not take over one it did not make: "
                + "remove it (ip tuntap del \(name) mode tap) or choose another name"
        }
        let kind = driver.map { " (driver \($0))" } ?? ""
        return "an interface named \(name) already exists\(kind) and is not a TAP netstack made: choose another name"
    }
}

/// Why the kernel would refuse an interface name.
public enum InterfaceNameError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    /// More than `InterfaceName.maxLength` bytes.
    case tooLong(bytes: Int)
    /// "." or "..".
    case dots
    /// A character the kernel refuses anywhere in a name.
    case forbidden(String)
    /// A '%' other than one "%d".
    case badPattern

    public var description: String {
        switch self {
        case .empty: "an interface name cannot be empty"
        case .tooLong(let n): "interface names are at most \(InterfaceName.maxLength) bytes, this one has \(n)"
        case .dots: "'.' and '..' are not interface names"
        case .forbidden(let what): "interface names cannot contain \(what)"
        case .badPattern: "'%' may appear once, as %d, which the kernel replaces by a number"
        }
    }
}
