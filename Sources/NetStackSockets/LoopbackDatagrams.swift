#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI
import NetStack
import NetStackWire

/// The kernel's UDP sockets beside a stack datagram socket bound to the
/// wildcard address. On Linux such a socket takes what comes to 127.0.0.1
/// (or ::1) and sends there; the stack has no loopback (the library gives
/// 127/8 and ::1 to the kernel), so without these a UDP server run through
/// the library was out of reach at 127.0.0.1, and a socket that had taken
/// the stack's traffic could not answer a client there.
///
/// The loop makes them when the socket binds and owns them. What comes is
/// read into the socket's `rx` beside the stack's datagrams
/// (`AppSocket.pumpDatagramsIn`, after the API thread's one-shot watch says
/// one is readable), and a record in `tx` for a loopback address, or the
/// unspecified one (Linux's "this host"), is sent from the one of its
/// family (`pumpDatagramsOut`). The region says the socket has them
/// (`NS_STATE_LOOPBACK`), so the library sends there through the loop
/// instead of handing the socket to the kernel. Best effort, as the TCP
/// listeners' (`LoopbackListeners`): a port the kernel's loopback has
/// taken is left to it, and of 127/8 only 127.0.0.1 is bound.
final class LoopbackDatagrams {
    private var watches: LoopbackWatches
    /// Where each of `watches.descriptors` is bound.
    private let places: [ns_loopback]

    /// Binds `places` at `port` for `socket`, each watched in `epoll` (the
    /// API thread's); nil if the kernel gave none.
    init?(socket: UInt32, port: UInt16, places: [ns_loopback], sharingPort: Bool, epoll: Int32) {
        watches = LoopbackWatches(socket: socket, epoll: epoll)
        var bound: [ns_loopback] = []
        for place in places {
            let fd = ns_loopback_datagram(place, port, sharingPort ? 1 : 0)
            guard fd >= 0 else { continue }
            watches.add(fd)
            bound.append(place)
        }
        self.places = bound
        if watches.isEmpty { return nil }
    }

    /// Socket `index`'s watch fired.
    func becameReadable(_ index: Int) { watches.becameReadable(index) }

    /// Which socket has a datagram waiting and its length; nil if none
    /// (those found empty are watched again).
    func next() -> (index: Int, length: Int)? {
        for i in places.indices where watches.mayHaveWaiting(i) {
            let n = ns_datagram_waiting(watches.descriptors[i])
            if n >= 0 { return (i, n) }
            watches.watchAgain(i)
        }
        return nil
    }

    /// Receives the datagram `next()` found into `buffer`: where it came
    /// from and where to, taken in `now`; nil if it went meanwhile.
    func receive(from index: Int, length: Int, into buffer: inout [UInt8], now: Instant) -> UDPArrival? {
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: repeatElement(0, count: length))
        var from = ns_addr()
        let fd = watches.descriptors[index]
        let n = buffer.withUnsafeMutableBytes { ns_datagram_receive(fd, $0.baseAddress, $0.count, &from) }
        guard n >= 0, let source = withUnsafeBytes(of: from, { SocketAddress.decode($0.bytes, at: 0) }) else {
            return nil
        }
        let destination: IPAddress = places[index] == NS_LOOPBACK_V6 ? .v6(IPv6Address(high: 0, low: 1))
            : .v4(IPv4Address(0x7f00_0001))
        return UDPArrival(source: UDPEndpoint(address: source.address, port: source.port), destination: destination,
                          time: now)
    }

    /// Sends `payload` to `destination` from the socket of its family;
    /// false if there is none or the kernel took nothing (a full buffer: dropped, as UDP may).
    func send(_ payload: [UInt8], to destination: SocketAddress) -> Bool {
        let v4 = if case .v4 = destination.address { true } else { false }
        guard let i = places.firstIndex(where: { v4 ? $0 != NS_LOOPBACK_V6 : $0 == NS_LOOPBACK_V6 }) else {
            return false
        }
        var to = ns_addr()
        withUnsafeMutableBytes(of: &to) { raw in
            var span = raw.mutableBytes
            SocketAddress.encode(destination, into: &span, at: 0)
        }
        let fd = watches.descriptors[i]
        let family = places[i] == NS_LOOPBACK_V4 ? AF_INET : AF_INET6
        return payload.withUnsafeBytes { ns_datagram_send(fd, family, $0.baseAddress, $0.count, &to) } >= 0
    }

    func close() { watches.close() }

    /// Whether `address` is one only the kernel reaches from here: the
    /// loopback, or the unspecified address as a destination (this host).
    static func onlyTheKernelReaches(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let a): a.isLoopback || a.isUnspecified
        case .v6(let a): a.isLoopback || a.isUnspecified
        }
    }
}
