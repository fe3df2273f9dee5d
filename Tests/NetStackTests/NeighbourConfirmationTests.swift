import Testing
@testable import NetStack
import NetStackWire

/// Neighbour entries in use never expire (Linux's NUD for ARP): confirmed by
/// TCP's forward progress through the IP boundary, or refreshed by a unicast
/// request shortly before expiry; an idle neighbour's entry still expires.
@Suite(.serialized) struct NeighbourConfirmationTests {
    // MARK: The table

    @Test func aConfirmationRenewsAResolvedEntryOnly() {
        var cache = ARPCacheTests.cache()
        let t0 = ARPCacheTests.t0
        let none = cache.confirm(ARPCacheTests.a, now: t0)
        #expect(!none && cache.entries.isEmpty)
        cache.update(ARPCacheTests.a, mac: ARPCacheTests.macA, now: t0, create: true)
        let confirmed = cache.confirm(ARPCacheTests.a, now: t0 + .seconds(50))
        #expect(confirmed)
        #expect(cache.lookup(ARPCacheTests.a, now: t0 + .seconds(109)) == ARPCacheTests.macA)
        #expect(cache.lookup(ARPCacheTests.a, now: t0 + .seconds(110)) == nil)
        // Just expired but still kept: the confirmation proves the address.
        let late = cache.confirm(ARPCacheTests.a, now: t0 + .seconds(111))
        #expect(late)
        #expect(cache.lookup(ARPCacheTests.a, now: t0 + .seconds(170)) == ARPCacheTests.macA)
        // A pending entry has no address to confirm.
        _ = cache.shouldRequest(ARPCacheTests.b, now: t0)
        let pending = cache.confirm(ARPCacheTests.b, now: t0)
        #expect(!pending)
        #expect(cache.lookup(ARPCacheTests.b, now: t0) == nil)
    }

    @Test func anEntryInUseAsksForARefreshWithinTheMarginOncePerInterval() {
        var cache = ARPCacheTests.cache()
        let t0 = ARPCacheTests.t0
        #expect(cache.refreshMargin == .seconds(5))
        cache.update(ARPCacheTests.a, mac: ARPCacheTests.macA, now: t0, create: true)
        var refresh = false
        let early = cache.lookup(ARPCacheTests.a, now: t0 + .seconds(54), refresh: &refresh)
        #expect(early == ARPCacheTests.macA && !refresh)
        var asked: [Duration] = []
        var t = t0 + .seconds(54)
        while t < t0 + .seconds(61) {
            refresh = false
            let mac = cache.lookup(ARPCacheTests.a, now: t, refresh: &refresh)
            if t < t0 + .seconds(60) { #expect(mac == ARPCacheTests.macA) } else { #expect(mac == nil) }
            if refresh { asked.append(t - t0) }
            t = t + .milliseconds(100)
        }
        // From 55 s on, one a second until it expires unanswered.
        #expect(asked == [.seconds(55), .seconds(56), .seconds(57), .seconds(58), .seconds(59)])
        // The answer renews it, and the next refresh is a lifetime on.
        cache.update(ARPCacheTests.a, mac: ARPCacheTests.macA, now: t0 + .seconds(59), create: false)
        refresh = false
        let renewed = cache.lookup(ARPCacheTests.a, now: t0 + .seconds(113), refresh: &refresh)
        #expect(renewed == ARPCacheTests.macA && !refresh)
        let again = cache.lookup(ARPCacheTests.a, now: t0 + .seconds(114), refresh: &refresh)
        #expect(again == ARPCacheTests.macA && refresh)
    }

    /// RFC 4861 7.2.3: learned without asking, an entry is STALE and usable;
    /// in use after 5 s it asks by unicast, up to three times, then expires
    /// unanswered; an answer or a confirmation makes it REACHABLE.
    @Test func aLearnedEntryIsStaleThenProbedThenConfirmed() {
        var cache = ARPCacheTests.cache()
        let (a, mac, t0) = (ARPCacheTests.a, ARPCacheTests.macA, ARPCacheTests.t0)
        cache.learn(a, mac: mac, now: t0)
        #expect(cache.state(of: a, now: t0) == .stale)
        var asked: [Duration] = []
        var t = t0
        while t < t0 + .seconds(10) {
            var refresh = false
            let found = cache.lookup(a, now: t, refresh: &refresh)
            if t < t0 + .seconds(8) { #expect(found == mac) } else { #expect(found == nil) }
            if refresh { asked.append(t - t0) }
            t = t + .milliseconds(500)
        }
        #expect(asked == [.seconds(5), .seconds(6), .seconds(7)])
        #expect(cache.state(of: a, now: t0 + .seconds(7)) == .probe)

        cache.learn(a, mac: mac, now: t0 + .seconds(20))
        let confirmed = cache.confirm(a, now: t0 + .seconds(21))
        #expect(confirmed)
        #expect(cache.state(of: a, now: t0 + .seconds(21)) == .reachable)
        // Learning the same address again changes nothing; a new one makes it STALE.
        cache.learn(a, mac: mac, now: t0 + .seconds(22))
        #expect(cache.state(of: a, now: t0 + .seconds(22)) == .reachable)
        cache.learn(a, mac: ARPCacheTests.macB, now: t0 + .seconds(23))
        #expect(cache.state(of: a, now: t0 + .seconds(23)) == .stale)
        #expect(cache.lookup(a, now: t0 + .seconds(23)) == ARPCacheTests.macB)
    }

    // MARK: Two stacks

    /// Runs `pair` in steps of `step` until `end`, calling `each` every step
    /// after both stacks polled and ran their timers.
    static func run(_ pair: TCPStackPair, for d: Duration, step: Duration = .milliseconds(10),
                    _ each: () -> Void) {
        let end = pair.now + d
        while pair.now < end {
            _ = pair.a.poll(now: pair.now, limit: .max)
            _ = pair.b.poll(now: pair.now, limit: .max)
            pair.a.tick(now: pair.now)
            pair.b.tick(now: pair.now)
            each()
            pair.clock.advance(by: step)
        }
    }

    @Test func aBusyConnectionsNeighbourNeverExpiresAndNothingWaitsForARP() throws {
        let (pair, client, server) = try TCPServiceTests.established()
        let s = try #require(server)
        s.onReadable = { c in
            var got: [UInt8] = []
            c.read(appendingTo: &got)
            _ = c.write(got)
        }
        var echoed = 0
        client.onReadable = { c in echoed += c.skip(c.readableBytes) }
        let requestsBefore = (pair.a.counters.arpRequestsOut, pair.b.counters.arpRequestsOut)
        var sent = 0
        var nextSend = pair.now
        var waited = 0
        var unresolved = 0
        // 200 s, over three lifetimes (60 s): a 32-byte request every 100 ms, echoed.
        Self.run(pair, for: .seconds(200)) {
            if pair.now >= nextSend {
                sent += client.write([UInt8](repeating: 7, count: 32))
                nextSend = pair.now + .milliseconds(100)
            }
            waited += pair.a.arp.waitingCount + pair.b.arp.waitingCount
            if pair.a.arp.lookup(TCPStackPair.ipB, now: pair.now) == nil { unresolved += 1 }
            if pair.b.arp.lookup(TCPStackPair.ipA, now: pair.now) == nil { unresolved += 1 }
        }
        #expect(sent == 2000 * 32)
        #expect(echoed >= sent - 32)
        #expect(waited == 0 && unresolved == 0)
        // TCP's progress kept both entries, without a single request.
        #expect(pair.a.counters.arpRequestsOut == requestsBefore.0)
        #expect(pair.b.counters.arpRequestsOut == requestsBefore.1)
        #expect(pair.a.counters.arpConfirmations >= 190 && pair.a.counters.arpConfirmations <= 201)
        #expect(pair.b.counters.arpConfirmations >= 190)
        #expect(pair.a.counters.drops.total == 0 && pair.b.counters.drops.total == 0)
    }

    /// Traffic without TCP's confirmation (UDP one way): the entry in use is
    /// refreshed by unicast requests before it expires, so no datagram waits.
    @Test func aNeighbourInUseWithoutConfirmationIsRefreshedBeforeExpiry() throws {
        let pair = TCPStackPair()
        let sink = try pair.stackB.bind(udpPort: 9)
        var got = 0
        sink.onReadable = { s in
            var buffer: [UInt8] = []
            while s.receive(into: &buffer) != nil { got += 1 }
        }
        let source = try pair.stackA.bind(udpPort: 4000)
        var sent = 0
        var nextSend = pair.now
        var waited = 0
        var unresolved = 0
        var resolved = false
        Self.run(pair, for: .seconds(200)) {
            if pair.now >= nextSend {
                if source.send([1, 2, 3], to: UDPEndpoint(address: .v4(TCPStackPair.ipB), port: 9)) { sent += 1 }
                nextSend = pair.now + .milliseconds(100)
            }
            // The first datagram waits for the first resolution, as it must.
            if resolved {
                waited += pair.a.arp.waitingCount
                if pair.a.arp.lookup(TCPStackPair.ipB, now: pair.now) == nil { unresolved += 1 }
            } else {
                resolved = pair.a.arp.lookup(TCPStackPair.ipB, now: pair.now) != nil
            }
        }
        #expect(sent == 2000 && got == 2000)
        #expect(waited == 0 && unresolved == 0)
        // One broadcast to resolve, then about one unicast refresh per lifetime.
        #expect(pair.a.counters.arpRefreshRequestsOut >= 3 && pair.a.counters.arpRefreshRequestsOut <= 4)
        #expect(pair.a.counters.arpRequestsOut == 1 + pair.a.counters.arpRefreshRequestsOut)
        #expect(pair.a.counters.arpConfirmations == 0)
    }

    @Test func anIdleNeighboursEntryStillExpires() throws {
        let (pair, client, server) = try TCPServiceTests.established()
        let s = try #require(server)
        s.onReadable = { c in _ = c.skip(c.readableBytes) }
        Self.run(pair, for: .seconds(5)) { _ = client.write([1]) }
        let quiet = pair.now
        #expect(pair.a.arp.lookup(TCPStackPair.ipB, now: pair.now) != nil)
        let refreshes = pair.a.counters.arpRefreshRequestsOut
        // Nothing sent any more: no confirmation, no refresh, and the entry goes.
        Self.run(pair, for: .seconds(62), step: .milliseconds(100)) {}
        #expect(pair.a.arp.lookup(TCPStackPair.ipB, now: pair.now) == nil)
        #expect(pair.b.arp.lookup(TCPStackPair.ipA, now: pair.now) == nil)
        #expect(pair.a.counters.arpRefreshRequestsOut == refreshes)
        #expect(pair.now >= quiet + .seconds(60))
        #expect(client.state == .established)
    }
}
