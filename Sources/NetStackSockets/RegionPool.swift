/// One application's regions whose sockets it closed, kept mapped for its
/// next sockets (`SocketRegion.keep(in:)`): a server that takes a short
/// connection after another then makes no memfd, mapping or page and
/// unmaps nothing per connection, on either side (the library keeps its
/// mapping too, found again by `SocketRegion.serial`). A region goes back
/// only to the process whose socket closed it, never to another: its rings
/// still hold that process's bytes. Owned by the `AppSession`; what it
/// keeps is unmapped when the application goes.
final class RegionPool {
    /// At most this many wait: a server's next connections, not a history.
    static let capacity = 8
    private var kept: [SocketRegion.Mapping] = []

    /// A kept region with rings of `ringSize` bytes, the latest first (its
    /// pages the warmest).
    func take(ringSize: Int) -> SocketRegion.Mapping? {
        guard let i = kept.lastIndex(where: { $0.ringSize == ringSize }) else { return nil }
        return kept.remove(at: i)
    }

    /// Keeps `mapping` if there is room; false when the caller must unmap it.
    func keep(_ mapping: SocketRegion.Mapping) -> Bool {
        guard kept.count < Self.capacity else { return false }
        kept.append(mapping)
        return true
    }

    deinit {
        for m in kept { m.unmap() }
    }
}
