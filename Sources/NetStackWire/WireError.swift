/// Why a view refused a buffer. Each case is a drop reason the stack counts.
public enum WireError: Error, Equatable, Sendable {
    /// The buffer is shorter than the fixed header, or than a length field claims.
    case truncated
    /// A length field is smaller than the header it describes, or inconsistent with another.
    case badLength
    /// A version, hardware type or similar discriminator is not the one this view reads.
    case unsupported
    /// The checksum does not verify.
    case badChecksum
    /// An option is malformed (length zero, or running past the header).
    case badOption
}
