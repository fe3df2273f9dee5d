import NetStackWire

/// What both families do with their neighbour tables (`ARPCache`,
/// `NDPCache`) once an answer comes or never does.
extension Interface {
    /// Sends the frames that were waiting in `cache` for `ip`, now that it resolved to `mac`.
    func releaseWaiting<A: Hashable>(in cache: inout NeighbourCache<A>, for ip: A, mac: MACAddress) {
        guard cache.waitingCount > 0 else { return }
        cache.takeWaiting(for: ip, into: &scratchParked)
        for p in scratchParked {
            let frame = device.pool.resume(p)
            frame.withBytes { bytes in
                EthernetFrame(uncheckedHeader: bytes).destination = mac
            }
            transmit(frame)
        }
    }

    /// Drops the frames waiting in `cache` for next hops resolution gave up
    /// on (`failed`), counted. (The caller then tells TCP, outside this
    /// access to the table: what TCP does may send.)
    func abandonWaiting<A: Hashable>(in cache: inout NeighbourCache<A>, for failed: [A]) {
        for hop in failed {
            cache.takeWaiting(for: hop, into: &scratchParked)
            for p in scratchParked {
                _ = device.pool.resume(p)
                counters.drops.record(.arpResolutionFailed)
            }
            logger.debug("neighbour resolution failed", metadata: ["next-hop": "\(hop)"])
        }
    }
}
