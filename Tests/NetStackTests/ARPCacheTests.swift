import Testing
@testable import NetStack
import NetStackWire

/// The neighbour table on its own.
@Suite struct ARPCacheTests {
    static let t0 = Instant(nanoseconds: 1_000_000_000)
    static let a = IPv4Address(10, 0, 0, 10)
    static let b = IPv4Address(10, 0, 0, 11)
    static let c = IPv4Address(10, 0, 0, 12)
    static let macA = MACAddress(2, 0, 0, 0, 0, 0x10)
    static let macB = MACAddress(2, 0, 0, 0, 0, 0x11)
    static let macC = MACAddress(2, 0, 0, 0, 0, 0x12)

    static func cache(capacity: Int = 8, maxWaiting: Int = 8) -> ARPCache {
        ARPCache(capacity: capacity, lifetime: .seconds(60), retryInterval: .seconds(1), maxRequests: 3,
                 maxWaiting: maxWaiting)
    }

    @Test func mergeCreatesOnlyWhenAllowedAndAlwaysRefreshes() {
        var cache = Self.cache()
        // RFC 826: a packet not for us does not create an entry...
        do { let r = cache.update(Self.a, mac: Self.macA, now: Self.t0, create: false); #expect(!r) }
        #expect(cache.lookup(Self.a, now: Self.t0) == nil)
        // ...but one for us does.
        do { let r = cache.update(Self.a, mac: Self.macA, now: Self.t0, create: true); #expect(r) }
        #expect(cache.lookup(Self.a, now: Self.t0) == Self.macA)
        // An existing entry is refreshed by any ARP: new MAC, new lifetime.
        let later = Self.t0 + .seconds(50)
        do { let r = cache.update(Self.a, mac: Self.macB, now: later, create: false); #expect(r) }
        #expect(cache.lookup(Self.a, now: Self.t0 + .seconds(100)) == Self.macB)
        #expect(cache.lookup(Self.a, now: later + .seconds(60)) == nil)
    }

    @Test func entriesExpireAfterTheirLifetime() {
        var cache = Self.cache()
        cache.update(Self.a, mac: Self.macA, now: Self.t0, create: true)
        #expect(cache.lookup(Self.a, now: Self.t0 + .seconds(59)) == Self.macA)
        #expect(cache.lookup(Self.a, now: Self.t0 + .seconds(60)) == nil)
        // An expired entry is asked for again at once, with a fresh request budget.
        do { let r = cache.shouldRequest(Self.a, now: Self.t0 + .seconds(60)); #expect(r) }
        #expect(cache.entries[Self.a]?.mac == nil)
        #expect(cache.entries[Self.a]?.requestsSent == 1)
    }

    @Test func requestsAreRateLimitedAndGiveUp() {
        var cache = Self.cache()
        var retry: [IPv4Address] = [], failed: [IPv4Address] = []
        do { let r = cache.shouldRequest(Self.a, now: Self.t0); #expect(r) }
        // Not again before the retry interval (RFC 1122 2.3.2.1: at most one a second).
        do { let r = cache.shouldRequest(Self.a, now: Self.t0 + .milliseconds(999)); #expect(!r) }
        cache.due(now: Self.t0 + .milliseconds(999), retry: &retry, failed: &failed)
        #expect(retry.isEmpty && failed.isEmpty)
        cache.due(now: Self.t0 + .seconds(1), retry: &retry, failed: &failed)
        #expect(retry == [Self.a] && failed.isEmpty)
        cache.due(now: Self.t0 + .seconds(2), retry: &retry, failed: &failed)
        #expect(retry == [Self.a] && failed.isEmpty)
        // Three requests sent: the next due time gives up and forgets the entry.
        cache.due(now: Self.t0 + .seconds(3), retry: &retry, failed: &failed)
        #expect(retry.isEmpty && failed == [Self.a])
        #expect(cache.entries[Self.a] == nil)
    }

    @Test func waitingFramesComeBackInOrderPerNextHop() {
        let pool = PacketPool(slotCount: 16, slotSize: 64)
        var cache = Self.cache(maxWaiting: 4)
        var expectedA: [UInt32] = [], expectedB: [UInt32] = []
        for i in 0..<4 {
            guard let p = pool.allocate() else { Issue.record("allocate"); return }
            let hop = i % 2 == 0 ? Self.a : Self.b
            if hop == Self.a { expectedA.append(p.slot) } else { expectedB.append(p.slot) }
            let accepted = cache.enqueue(p, nextHop: hop) == nil
            #expect(accepted)
        }
        guard let extra = pool.allocate() else { Issue.record("allocate"); return }
        let extraSlot = extra.slot
        guard let refused = cache.enqueue(extra, nextHop: Self.a) else {
            Issue.record("a full waiting queue took a frame")
            return
        }
        #expect(refused.slot == extraSlot)
        _ = consume refused
        #expect(cache.waitingCount == 4)
        var out: [ParkedPacket] = []
        cache.takeWaiting(for: Self.a, into: &out)
        #expect(out.map(\.slot) == expectedA)
        #expect(cache.waitingCount == 2)
        for p in out { _ = pool.resume(p) }
        cache.takeWaiting(for: Self.b, into: &out)
        #expect(out.map(\.slot) == expectedB)
        for p in out { _ = pool.resume(p) }
        #expect(cache.waitingCount == 0)
        #expect(pool.freeCount == pool.slotCount)
    }

    @Test func fullTableEvictsTheStalestResolvedEntry() {
        var cache = Self.cache(capacity: 2)
        cache.update(Self.a, mac: Self.macA, now: Self.t0, create: true)
        cache.update(Self.b, mac: Self.macB, now: Self.t0 + .seconds(1), create: true)
        cache.update(Self.c, mac: Self.macC, now: Self.t0 + .seconds(2), create: true)
        #expect(cache.entries.count == 2)
        #expect(cache.lookup(Self.a, now: Self.t0 + .seconds(2)) == nil)
        #expect(cache.lookup(Self.b, now: Self.t0 + .seconds(2)) == Self.macB)
        #expect(cache.lookup(Self.c, now: Self.t0 + .seconds(2)) == Self.macC)
        // A pending entry needs room too; a resolved one goes before any pending one.
        do { let r = cache.shouldRequest(Self.a, now: Self.t0 + .seconds(3)); #expect(r) }
        #expect(cache.entries.count == 2)
        #expect(cache.entries[Self.b] == nil)
        #expect(cache.lookup(Self.c, now: Self.t0 + .seconds(3)) == Self.macC)
    }

    /// A next hop whose pending entry was evicted to make room must not leave
    /// its frames parked forever: the next timer run gives them up.
    @Test func evictedPendingEntryDoesNotStrandItsFrames() {
        let pool = PacketPool(slotCount: 8, slotSize: 64)
        var cache = Self.cache(capacity: 1)
        var retry: [IPv4Address] = [], failed: [IPv4Address] = []
        do { let r = cache.shouldRequest(Self.a, now: Self.t0); #expect(r) }
        guard let p = pool.allocate() else { Issue.record("allocate"); return }
        _ = cache.enqueue(p, nextHop: Self.a)
        // B's request pushes A's pending entry out of the one-entry table.
        do { let r = cache.shouldRequest(Self.b, now: Self.t0); #expect(r) }
        #expect(cache.entries[Self.a] == nil)
        cache.due(now: Self.t0 + .milliseconds(1), retry: &retry, failed: &failed)
        #expect(failed == [Self.a])
        var out: [ParkedPacket] = []
        cache.takeWaiting(for: Self.a, into: &out)
        #expect(out.count == 1)
        for p in out { _ = pool.resume(p) }
        #expect(pool.freeCount == pool.slotCount)
    }
}

/// ARP through the interface, checked on the wire.
@Suite struct ARPInterfaceTests {
    typealias H = PeerHarness

    /// Checks an ARP request from the stack for `target` (RFC 826 packet generation).
    static func expectRequest(_ f: CapturedFrame?, for target: IPv4Address,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        guard let f, let arp = f.arp else {
            Issue.record("expected an ARP request, got \(String(describing: f))", sourceLocation: sourceLocation)
            return
        }
        #expect(f.ethernetDestination == .broadcast, sourceLocation: sourceLocation)
        #expect(f.ethernetSource == H.stackMAC, sourceLocation: sourceLocation)
        #expect(arp.operation == .request, sourceLocation: sourceLocation)
        #expect(arp.senderHardwareAddress == H.stackMAC, sourceLocation: sourceLocation)
        #expect(arp.senderProtocolAddress == H.stackIP, sourceLocation: sourceLocation)
        #expect(arp.targetHardwareAddress == .zero, sourceLocation: sourceLocation)
        #expect(arp.targetProtocolAddress == target, sourceLocation: sourceLocation)
    }

    @Test func requestForOurAddressIsAnsweredInPlace() {
        let h = PeerHarness()
        // Ethernet pads the 42-byte ARP frame to 60; the padding must not leak into the reply.
        let request = h.arpFrame(.request, targetMAC: MACAddress(0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff),
                                 ethernetSource: MACAddress(0x02, 0, 0, 0, 0, 0x77)) + [UInt8](repeating: 0x5a, count: 18)
        let slot = h.inject(request)
        h.poll()
        let out = h.sent()
        #expect(out.count == 1)
        guard let reply = out.first, let arp = reply.arp else { Issue.record("no ARP reply"); return }
        #expect(reply.slot == slot, "the reply is built in the request's slot")
        #expect(reply.bytes.count == 42)
        // The reply goes to the requester's hardware address from the ARP packet (RFC 826).
        #expect(reply.ethernetDestination == H.peerMAC)
        #expect(reply.ethernetSource == H.stackMAC)
        #expect(reply.etherType == .arp)
        #expect(Array(reply.bytes[14..<20]) == [0, 1, 0x08, 0x00, 6, 4])  // htype, ptype, hlen, plen
        #expect(arp.operation == .reply)
        #expect(arp.senderHardwareAddress == H.stackMAC)
        #expect(arp.senderProtocolAddress == H.stackIP)
        #expect(arp.targetHardwareAddress == H.peerMAC)
        #expect(arp.targetProtocolAddress == H.peerIP)
        #expect(h.counters.arpRequestsIn == 1 && h.counters.arpRepliesOut == 1)
        #expect(h.counters.framesOut == 1)
        // We were the target, so the sender was learned.
        #expect(h.interface.arp.lookup(H.peerIP, now: h.now) == H.peerMAC)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func requestForAnotherAddressIsNotAnsweredOrLearned() {
        let h = PeerHarness()
        let out = h.exchange(h.arpFrame(.request, targetIP: H.otherIP))
        #expect(out.isEmpty)
        #expect(h.drops(.arpNotForUs) == 1)
        #expect(h.counters.arpRepliesOut == 0)
        // RFC 826: not for us and no entry -> no entry made.
        #expect(h.interface.arp.entries[H.peerIP] == nil)
        // So sending to the peer now has to ask.
        _ = h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.peerIP, port: 2), payload: UnsafeRawBufferPointer(start: nil, count: 0), now: h.now)
        let sent = h.sent()
        #expect(sent.count == 1)
        Self.expectRequest(sent.first, for: H.peerIP)
    }

    @Test func existingEntryIsRefreshedByAnyARP() throws {
        let h = PeerHarness()
        h.resolvePeer()
        // 50 s later the peer, now at a new MAC, asks for someone else.
        let newMAC = MACAddress(0x02, 0, 0, 0, 0, 0x99)
        _ = h.advance(by: .seconds(50))
        #expect(h.exchange(h.arpFrame(.request, senderMAC: newMAC, targetIP: H.otherIP)).isEmpty)
        #expect(h.drops(.arpNotForUs) == 1)
        // 100 s after the first learning (past its 60 s life) the refreshed entry still holds.
        _ = h.advance(by: .seconds(50))
        let payload: [UInt8] = [1, 2, 3]
        payload.withUnsafeBytes { p in
            _ = h.interface.udp.send(from: 5000, to: UDPEndpoint(address: H.peerIP, port: 6000), payload: p, now: h.now)
        }
        let out = h.sent()
        #expect(out.count == 1)
        #expect(out.first?.etherType == .ipv4)
        #expect(out.first?.ethernetDestination == newMAC)
        // An ARP reply also refreshes (and a reply addressed to us creates).
        let third = MACAddress(0x02, 0, 0, 0, 0, 0x98)
        #expect(h.exchange(h.arpFrame(.reply, senderMAC: third, targetMAC: H.stackMAC, ethernetDestination: H.stackMAC)).isEmpty)
        #expect(h.interface.arp.lookup(H.peerIP, now: h.now) == third)
        #expect(h.counters.arpRepliesIn == 1)
    }

    @Test func gratuitousARPFromAStrangerCreatesNothing() {
        let h = PeerHarness()
        // RFC 5227 announcement by 10.0.0.3: sender = target = its own address.
        let out = h.exchange(h.arpFrame(.request, senderMAC: H.otherMAC, senderIP: H.otherIP, targetIP: H.otherIP))
        #expect(out.isEmpty)
        #expect(h.interface.arp.entries[H.otherIP] == nil)
        #expect(h.drops(.arpNotForUs) == 1)
    }

    @Test func badSendersArePoisonRefused() {
        let h = PeerHarness()
        let frames = [
            h.arpFrame(.request, senderMAC: .broadcast),                          // group MAC
            h.arpFrame(.request, senderMAC: MACAddress(0x01, 0, 0x5e, 0, 0, 1)),  // multicast MAC
            h.arpFrame(.request, senderMAC: H.stackMAC),                          // our own MAC
            h.arpFrame(.request, senderIP: .broadcast),
            h.arpFrame(.request, senderIP: IPv4Address(224, 0, 0, 1)),
        ]
        #expect(h.exchange(frames).isEmpty)
        #expect(h.drops(.arpBadSender) == 5)
        #expect(h.interface.arp.entries.isEmpty)
        // A probe (sender 0.0.0.0, RFC 5227 2.1.1) is answered but not learned.
        let out = h.exchange(h.arpFrame(.request, senderIP: .any))
        #expect(out.count == 1)
        #expect(out.first?.arp?.operation == .reply)
        #expect(out.first?.arp?.targetProtocolAddress == .any)
        #expect(h.interface.arp.entries.isEmpty)
    }

    /// Someone else announcing our own address (an address conflict, RFC 5227
    /// 2.4) must not put our address in our own table, where it would
    /// redirect what we send to ourselves.
    @Test func aClaimOnOurOwnAddressIsNotLearned() {
        let h = PeerHarness()
        let intruder = MACAddress(0x02, 0, 0, 0, 0, 0x66)
        let out = h.exchange(h.arpFrame(.request, senderMAC: intruder, senderIP: H.stackIP, targetIP: H.stackIP),
                             h.arpFrame(.reply, senderMAC: intruder, senderIP: H.stackIP, targetMAC: H.stackMAC,
                                        targetIP: H.stackIP, ethernetDestination: H.stackMAC))
        #expect(out.isEmpty)
        #expect(h.interface.arp.entries[H.stackIP] == nil)
        #expect(h.drops(.arpBadSender) == 2)
    }

    @Test func nextTimerDeadlineFollowsPendingRequests() {
        let h = PeerHarness()
        #expect(h.interface.nextTimerDeadline == nil)
        let start = h.now
        _ = [UInt8(1)].withUnsafeBytes { p in
            h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.otherIP, port: 2), payload: p, now: h.now)
        }
        #expect(h.interface.nextTimerDeadline == start + .seconds(1))
        _ = h.advance(by: .seconds(1))
        #expect(h.interface.nextTimerDeadline == start + .seconds(2))
        // Resolution ends the need to wake.
        _ = h.exchange(h.arpFrame(.reply, senderMAC: H.otherMAC, senderIP: H.otherIP, targetMAC: H.stackMAC,
                                  ethernetDestination: H.stackMAC))
        #expect(h.interface.nextTimerDeadline == nil)
    }

    @Test func unsupportedAndTruncatedARP() {
        let h = PeerHarness()
        var ieee802 = FrameBuilder.arp(.request, senderMAC: H.peerMAC, senderIP: H.peerIP, targetMAC: .zero,
                                       targetIP: H.stackIP)
        ieee802[1] = 6  // hardware type 6 (IEEE 802), not Ethernet
        var rarp = FrameBuilder.arp(.request, senderMAC: H.peerMAC, senderIP: H.peerIP, targetMAC: .zero,
                                    targetIP: H.stackIP)
        rarp[7] = 3  // RARP request opcode
        let short = Array(FrameBuilder.arp(.request, senderMAC: H.peerMAC, senderIP: H.peerIP, targetMAC: .zero,
                                           targetIP: H.stackIP)[0..<27])
        let out = h.exchange(h.ethernetFrame(.arp, payload: ieee802, to: .broadcast),
                             h.ethernetFrame(.arp, payload: rarp, to: .broadcast),
                             h.ethernetFrame(.arp, payload: short, to: .broadcast))
        #expect(out.isEmpty)
        #expect(h.drops(.arpUnsupported) == 2)
        #expect(h.drops(.arpTruncated) == 1)
        #expect(h.interface.arp.entries.isEmpty)
    }

    @Test func entryExpiresAndTheNextSendAsksAgain() {
        let h = PeerHarness { $0.arpLifetime = .seconds(30) }
        h.resolvePeer()
        let payload: [UInt8] = [0xab]
        func send() {
            payload.withUnsafeBytes { p in
                _ = h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.peerIP, port: 9), payload: p, now: h.now)
            }
        }
        _ = h.advance(by: .milliseconds(29_999))
        send()
        var out = h.sent()
        // In use within the refresh margin: a unicast request to the known
        // address goes first, and the datagram does not wait for it.
        #expect(out.count == 2 && out.last?.etherType == .ipv4)
        #expect(out.first?.etherType == .arp && out.first?.ethernetDestination == H.peerMAC)
        // Unanswered, the entry still expires.
        _ = h.advance(by: .milliseconds(1))
        send()
        out = h.sent()
        #expect(out.count == 1)
        Self.expectRequest(out.first, for: H.peerIP)
        #expect(h.interface.arp.waitingCount == 1)
        // The peer answers: the parked datagram goes out to it.
        out = h.exchange(h.arpFrame(.reply, targetMAC: H.stackMAC, ethernetDestination: H.stackMAC))
        #expect(out.count == 1)
        #expect(out.first?.ethernetDestination == H.peerMAC)
        #expect(out.first?.ipv4?.udp?.payload == payload)
    }

    @Test func unresolvedNeighbourQueuesThenReleasesInOrder() {
        let h = PeerHarness()
        for i in 0..<3 {
            let payload = [UInt8(i), UInt8(i), UInt8(i)]
            let ok = payload.withUnsafeBytes { p in
                h.interface.udp.send(from: 1000, to: UDPEndpoint(address: H.peerIP, port: 2000), payload: p, now: h.now)
            }
            #expect(ok)
        }
        var out = h.sent()
        // One request however many frames wait.
        #expect(out.count == 1)
        Self.expectRequest(out.first, for: H.peerIP)
        #expect(h.counters.arpRequestsOut == 1)
        #expect(h.interface.arp.waitingCount == 3)
        #expect(h.pool.freeCount == h.pool.slotCount - 3)
        out = h.exchange(h.arpFrame(.reply, targetMAC: H.stackMAC, ethernetDestination: H.stackMAC))
        #expect(out.count == 3)
        for (i, f) in out.enumerated() {
            #expect(f.ethernetDestination == H.peerMAC)
            #expect(f.ethernetSource == H.stackMAC)
            #expect(f.ipv4?.udp?.payload == [UInt8(i), UInt8(i), UInt8(i)])
            #expect(f.ipv4?.udp?.checksumVerifies == true)
        }
        #expect(h.interface.arp.waitingCount == 0)
        #expect(h.pool.freeCount == h.pool.slotCount)
        // Resolved now: the next datagram goes straight out.
        _ = h.interface.udp.send(from: 1000, to: UDPEndpoint(address: H.peerIP, port: 2000),
                                payload: UnsafeRawBufferPointer(start: nil, count: 0), now: h.now)
        #expect(h.sent().count == 1)
        #expect(h.counters.arpRequestsOut == 1)
    }

    @Test func retriesThenGivesUpAndFreesTheFrames() {
        let h = PeerHarness {
            $0.arpRetryInterval = .seconds(1)
            $0.arpMaxRequests = 3
        }
        for _ in 0..<4 {
            _ = [UInt8](repeating: 7, count: 100).withUnsafeBytes { p in
                h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.otherIP, port: 2), payload: p, now: h.now)
            }
        }
        var requests = h.sent()
        #expect(requests.count == 1)
        #expect(h.pool.freeCount == h.pool.slotCount - 4)
        // Nothing before the retry interval.
        #expect(h.advance(by: .milliseconds(500)).isEmpty)
        requests = h.advance(by: .milliseconds(500))
        #expect(requests.count == 1)
        Self.expectRequest(requests.first, for: H.otherIP)
        requests = h.advance(by: .seconds(1))
        #expect(requests.count == 1)
        Self.expectRequest(requests.first, for: H.otherIP)
        #expect(h.counters.arpRequestsOut == 3)
        // The budget is spent: the next due time drops the waiting frames, sending nothing.
        #expect(h.advance(by: .seconds(1)).isEmpty)
        #expect(h.drops(.arpResolutionFailed) == 4)
        #expect(h.interface.arp.waitingCount == 0)
        #expect(h.pool.freeCount == h.pool.slotCount)
        #expect(h.interface.arp.entries[H.otherIP] == nil)
        #expect(h.advance(by: .seconds(10)).isEmpty)
        #expect(h.counters.arpRequestsOut == 3)
    }

    @Test func waitingQueueIsBounded() {
        let h = PeerHarness { $0.arpMaxWaiting = 4 }
        for i in 0..<6 {
            _ = [UInt8(i)].withUnsafeBytes { p in
                h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.peerIP, port: 2), payload: p, now: h.now)
            }
        }
        #expect(h.sent().count == 1)
        #expect(h.drops(.arpQueueFull) == 2)
        #expect(h.interface.arp.waitingCount == 4)
        #expect(h.pool.freeCount == h.pool.slotCount - 4)
        // The first four are the ones that went out.
        let out = h.exchange(h.arpFrame(.reply, targetMAC: H.stackMAC, ethernetDestination: H.stackMAC))
        #expect(out.compactMap { $0.ipv4?.udp?.payload.first } == [0, 1, 2, 3])
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func frameOfAnEvictedPendingNeighbourIsDroppedNotStranded() {
        let h = PeerHarness { $0.arpCacheCapacity = 1 }
        _ = [UInt8(1)].withUnsafeBytes { p in
            h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.peerIP, port: 2), payload: p, now: h.now)
        }
        _ = [UInt8(2)].withUnsafeBytes { p in
            h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.otherIP, port: 2), payload: p, now: h.now)
        }
        #expect(h.sent().count == 2)
        for _ in 0..<5 { _ = h.advance(by: .seconds(1)) }
        #expect(h.drops(.arpResolutionFailed) == 2)
        #expect(h.interface.arp.waitingCount == 0)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func gatewayIsResolvedForOffSubnetDestinations() {
        let gateway = IPv4Address(10, 0, 0, 254)
        let h = PeerHarness { $0.gateway = gateway }
        _ = [UInt8(1)].withUnsafeBytes { p in
            h.interface.udp.send(from: 1, to: UDPEndpoint(address: IPv4Address(192, 0, 2, 1), port: 2), payload: p,
                                now: h.now)
        }
        let out = h.sent()
        Self.expectRequest(out.first, for: gateway)
        let released = h.exchange(h.arpFrame(.reply, senderMAC: H.otherMAC, senderIP: gateway, targetMAC: H.stackMAC,
                                             ethernetDestination: H.stackMAC))
        #expect(released.count == 1)
        #expect(released.first?.ethernetDestination == H.otherMAC)
        #expect(released.first?.ipv4?.destination == IPv4Address(192, 0, 2, 1))

        // Without a gateway an off-subnet destination is refused and counted.
        let lone = PeerHarness()
        let ok = [UInt8(1)].withUnsafeBytes { p in
            lone.interface.udp.send(from: 1, to: UDPEndpoint(address: IPv4Address(192, 0, 2, 1), port: 2), payload: p,
                                   now: lone.now)
        }
        #expect(!ok)
        #expect(lone.drops(.noRoute) == 1)
        #expect(lone.sent().isEmpty)
        #expect(lone.pool.freeCount == lone.pool.slotCount)
    }

    /// RFC 1122 3.2.1.3: loopback (127/8) never leaves a host and "this
    /// network" (0/8) is never a destination, gateway or not: no route, no
    /// frame, and a TCP connect to them fails at once.
    @Test func loopbackAndThisNetworkHaveNoRouteEvenWithAGateway() throws {
        let h = PeerHarness { $0.gateway = IPv4Address(10, 0, 0, 254) }
        for destination in [IPv4Address(127, 0, 0, 1), IPv4Address(127, 9, 9, 9), IPv4Address(0, 0, 0, 0),
                            IPv4Address(0, 1, 2, 3)] {
            let ok = [UInt8(1)].withUnsafeBytes { p in
                h.interface.udp.send(from: 1, to: UDPEndpoint(address: destination, port: 2), payload: p, now: h.now)
            }
            #expect(!ok, "\(destination)")
        }
        #expect(h.drops(.noRoute) == 4)
        #expect(throws: TCPConnectError.noRoute) {
            try h.tcp.connect(to: .v4(IPv4Address(127, 0, 0, 1)), port: 80, now: h.now)
        }
        #expect(h.sent().isEmpty)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    /// A connect whose next hop never answers ARP fails with
    /// hostUnreachable once ARP gives up (about 3 s, as Linux's connect says
    /// EHOSTUNREACH), through a gateway too, not after two minutes of SYNs;
    /// a connection to a neighbour that answers is left alone.
    @Test func aConnectWhoseNextHopNeverResolvesFailsAsHostUnreachable() throws {
        let h = PeerHarness { $0.gateway = IPv4Address(10, 0, 0, 254) }
        h.resolvePeer()
        let silent = try h.tcp.connect(to: .v4(IPv4Address(10, 0, 0, 77)), port: 80, now: h.now)
        let viaGateway = try h.tcp.connect(to: .v4(IPv4Address(192, 0, 2, 1)), port: 80, now: h.now)
        let answered = try h.tcp.connect(to: .v4(H.peerIP), port: 80, now: h.now)
        h.interface.flushPending(now: h.now)
        _ = h.sent()
        var seconds = 0
        while silent.state == .synSent && seconds < 10 {
            _ = h.advance(by: .seconds(1))
            seconds += 1
        }
        #expect(seconds <= 4)
        #expect(silent.state == .closed && silent.error == .hostUnreachable)
        #expect(viaGateway.state == .closed && viaGateway.error == .hostUnreachable)
        #expect(answered.state == .synSent && answered.error == nil)
        #expect(h.tcp.counters.connectsUnreachable == 2)
    }

    @Test func broadcastNeedsNoResolution() {
        let h = PeerHarness()
        for dst in [IPv4Address.broadcast, IPv4Address(10, 0, 0, 255)] {
            _ = [UInt8(1)].withUnsafeBytes { p in
                h.interface.udp.send(from: 68, to: UDPEndpoint(address: dst, port: 67), payload: p, now: h.now)
            }
            let out = h.sent()
            #expect(out.count == 1)
            #expect(out.first?.ethernetDestination == .broadcast)
            #expect(out.first?.ipv4?.destination == dst)
        }
        #expect(h.counters.arpRequestsOut == 0)
    }

    @Test func announceSendsAGratuitousARP() {
        let h = PeerHarness()
        h.interface.announce()
        let out = h.sent()
        #expect(out.count == 1)
        guard let f = out.first, let arp = f.arp else { Issue.record("no announcement"); return }
        // RFC 5227 2.3: an ARP request with sender and target both our address, broadcast.
        #expect(f.ethernetDestination == .broadcast)
        #expect(f.ethernetSource == H.stackMAC)
        #expect(arp.operation == .request)
        #expect(arp.senderHardwareAddress == H.stackMAC)
        #expect(arp.senderProtocolAddress == H.stackIP)
        #expect(arp.targetProtocolAddress == H.stackIP)
        #expect(arp.targetHardwareAddress == .zero)
        #expect(h.counters.arpRequestsOut == 1)
    }

    @Test func poolExhaustionWhileAskingIsCounted() {
        let h = PeerHarness(slotCount: 2)
        // Hold every slot: sendUDP can take none, and says so.
        guard let x = h.pool.allocate(), let y = h.pool.allocate() else { Issue.record("allocate"); return }
        let ok = [UInt8(1)].withUnsafeBytes { p in
            h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.peerIP, port: 2), payload: p, now: h.now)
        }
        #expect(!ok)
        #expect(h.drops(.poolExhausted) == 1)
        _ = consume x
        _ = consume y
        #expect(h.pool.freeCount == 2)
    }
}
