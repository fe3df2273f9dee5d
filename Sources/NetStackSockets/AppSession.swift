#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI

/// One application connected to the API, on the loop: its control socket
/// (which the loop closes, after the hang-up) and its sockets.
final class AppSession {
    let id: UInt32
    let descriptor: Int32
    /// Its user (SO_PEERCRED): root, or the API's owner.
    let uid: UInt32
    var sockets: Set<UInt32> = []
    /// Its closed sockets' regions, for its next sockets.
    let regions = RegionPool()
    /// The encoded reply, reused.
    private var scratch = [UInt8](repeating: 0, count: ControlMessage.size)

    init(id: UInt32, descriptor: Int32, uid: UInt32) {
        self.id = id
        self.descriptor = descriptor
        self.uid = uid
    }

    /// Sends `reply`, with `descriptors` attached. A reply that does not go
    /// (the application died meanwhile) is dropped: the hang-up follows.
    func send(_ reply: ControlReply, descriptors: [Int32] = []) {
        Self.encode(reply, into: &scratch)
        _ = scratch.withUnsafeBytes { raw in
            descriptors.withUnsafeBufferPointer { fds in
                ns_send_with_fds(descriptor, raw.baseAddress, raw.count, fds.baseAddress, Int32(fds.count))
            }
        }
    }

    /// A function of its own so that the span's lifetime is the argument's,
    /// which the compiler can see (a stored property's access, in a release
    /// build without exclusivity checks, it cannot).
    private static func encode(_ reply: ControlReply, into buffer: inout [UInt8]) {
        var span = buffer.mutableSpan
        var bytes = span.mutableBytes
        reply.encode(into: &bytes)
    }
}
