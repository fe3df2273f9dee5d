import Testing
@testable import NetStack
import NetStackWire

/// Path MTU discovery (RFC 1191, RFC 8201) with RFC 5927's checks: a router
/// on the path (`NarrowHop`) that takes smaller packets than the link drops
/// what is larger and says so with ICMP "fragmentation needed"; IP learns
/// the path's MTU only when TCP has matched the report to a segment in
/// flight, every connection's MSS follows it, what was dropped is resent at
/// once in frames that fit, and the estimate ages out after 10 minutes.
@Suite struct PathMTUDiscoveryTests {
    typealias Pair = StackPair<NarrowHop<MemoryLink>>
    static var peer: IPAddress { .v4(TCPStackPair.ipB) }

    /// Two stacks whose A sends through a `NarrowHop` (B's passes everything).
    static func pair(capabilities: DeviceCapabilities? = nil) -> Pair {
        let pair = capabilities == nil ? Pair { link, _, _ in NarrowHop(link) }
            : Pair(slotCount: 512, slotSize: TAPDevice.offloadSlotSize, capabilities: capabilities) { link, _, _ in
                NarrowHop(link)
            }
        // The router's reports are frames waiting for A: time must not jump past them.
        pair.otherDeadline = { [unowned pair] in pair.a.device.hasInbound ? pair.now : nil }
        return pair
    }

    /// Sends `size` bytes over a new connection from A to B's `port`, calling
    /// `midway` once B has read `midwayAt` bytes, and every round `each`.
    /// Returns A's connection, whether every byte arrived intact.
    static func transfer(_ pair: Pair, size: Int, seed: UInt64, port: UInt16 = 9, midwayAt: Int? = nil,
                         midway: (TCPConnection) -> Void = { _ in },
                         each: (TCPConnection) -> Void = { _ in }) throws -> (TCPConnection, Bool) {
        let listener = try pair.b.tcp.listen(port: port)
        defer { pair.b.tcp.close(listener) }
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: port, now: pair.now)
        let bulk = BulkTransfer(length: size, seed: seed)
        var server: TCPConnection?
        var midwayDone = midwayAt == nil
        let finished = pair.run(until: { bulk.read == size }, app: {
            if server == nil { server = listener.accept() }
            var moved = bulk.pump(into: client)
            if let s = server { moved = bulk.drain(from: s) || moved }
            if !midwayDone, let at = midwayAt, bulk.read >= at {
                midwayDone = true
                midway(client)
                moved = true
            }
            each(client)
            return moved
        })
        return (client, finished && bulk.receivedHash.value == bulk.sentHash.value)
    }

    // MARK: Learning the path

    /// The first flight, 1500-byte frames, meets a 1280-byte hop: each frame
    /// is dropped and reported. The first report matches a segment in flight:
    /// IP learns 1280, the connection's MSS drops to 1280 - 40 - 12 (IP, TCP,
    /// timestamps), and everything sent too large (the quoted segment among
    /// it) is resent at once, cut to fit, without a congestion response.
    /// Nothing larger than 1280 bytes leaves after that, and every byte
    /// arrives in order.
    @Test func fragmentationNeededShrinksSegmentsToThePathAndEveryByteArrives() throws {
        let pair = Self.pair()
        let hop = pair.a.device
        hop.mtu = 1280
        let (client, intact) = try Self.transfer(pair, size: 2 << 20, seed: 21) { c in
            let mss = c.sendMSS
            #expect(c.sender.scoreboard.records.allSatisfy { $0.length <= mss || $0.length == 1 })
        }
        #expect(intact, "bytes lost or out of order")
        #expect(hop.dropped > 0 && hop.reportsDelivered > 0)
        #expect(hop.droppedAfterReport == 0, "a frame too large for the path left after the report")
        #expect(hop.passedLengths.max() ?? 0 <= 1280)
        #expect(hop.passedLengths.max() == 1280, "segments fill the path")
        #expect(client.sendMSS == 1280 - 40 - 12)
        #expect(pair.a.pathMTU(towards: Self.peer) == 1280)
        #expect(pair.a.maximumSegmentLength(towards: Self.peer) == 1260)
        #expect(pair.a.counters.pathMTULearned == 1)
        let tcp = pair.a.tcp.counters
        #expect(tcp.icmpPacketTooBig >= 1)
        #expect(tcp.pathMTUMSSLowered == 1)
        #expect(tcp.pathMTUResends > 0)
        #expect(tcp.fastRecoveries == 0 && tcp.timeouts == 0, "the resends were taken for congestion")
        #expect(pair.a.counters.report.contains { $0 == "pmtu-learned" && $1 == 1 })
        #expect(tcp.report.contains { $0 == "tcp-icmp-packet-too-big" && $1 == tcp.icmpPacketTooBig })
    }

    /// A next-hop MTU below IPv4's floor (a bogus or hostile 100) is taken as
    /// 552 (Linux's `ip_rt_min_pmtu`): segments of 500 bytes, and a path that
    /// does take 552 carries the transfer.
    @Test func aBogusMTUIsRaisedToTheMinimum() throws {
        let pair = Self.pair()
        let hop = pair.a.device
        hop.mtu = 552
        hop.reportedMTU = 100
        let (client, intact) = try Self.transfer(pair, size: 256 << 10, seed: 22)
        #expect(intact)
        #expect(pair.a.pathMTU(towards: Self.peer) == 552)
        #expect(client.sendMSS == 552 - 40 - 12)
        #expect(hop.droppedAfterReport == 0)
        #expect(hop.passedLengths.max() ?? 0 <= 552)
    }

    /// With TSO the device cuts segments of many frames by the segment size
    /// the stack gives it: after the report that size is the new MSS, so the
    /// wire frames fit the path, and the scoreboard keeps a record per frame.
    @Test func segmentationOffloadFollowsTheNewMSS() throws {
        let pair = Self.pair(capabilities: TCPSegmentationOffloadTests.offloading)
        let hop = pair.a.device
        hop.mtu = 1280
        var recordsWithinOneFrame = true
        let (client, intact) = try Self.transfer(pair, size: 8 << 20, seed: 23) { c in
            let mss = c.sendMSS
            if !c.sender.scoreboard.records.allSatisfy({ $0.length <= mss || $0.length == 1 }) {
                recordsWithinOneFrame = false
            }
        }
        #expect(intact)
        #expect(client.sendMSS == 1228)
        let before = hop.segmentSizes.filter { !$0.afterReport && $0.size > 0 }.map(\.size)
        let after = hop.segmentSizes.filter { $0.afterReport && $0.size > 0 }.map(\.size)
        #expect(before.allSatisfy { $0 == 1448 } && !before.isEmpty, "TSO before the report: \(Set(before))")
        #expect(after.count > 100, "A still sent segments of many frames")
        #expect(after.allSatisfy { $0 == 1228 }, "TSO segment sizes after the report: \(Set(after))")
        #expect(hop.droppedAfterReport == 0)
        #expect(hop.passedLengths.max() ?? 0 <= 1280)
        #expect(recordsWithinOneFrame, "a scoreboard record longer than one MSS")
        #expect(pair.a.tcp.counters.fastRecoveries == 0 && pair.a.tcp.counters.timeouts == 0)
    }

    // MARK: What is not believed (RFC 5927 4.1)

    enum Forgery: String, CaseIterable, CustomTestStringConvertible {
        /// The quote names a port we have no connection on.
        case noConnection
        /// Its sequence number lies below SND.UNA: long acknowledged.
        case acknowledged
        /// Its sequence number lies at or beyond SND.MAX: never sent.
        case neverSent
        var testDescription: String { rawValue }
    }

    /// A "fragmentation needed" for 1280 bytes that names no connection, or
    /// a sequence number not in flight, arriving mid-transfer: TCP counts it
    /// and nothing changes, IP's table included (it is only lowered once TCP
    /// believed a report); segments stay 1500-byte frames.
    @Test(arguments: Forgery.allCases)
    func aReportNamingNothingInFlightChangesNothing(_ forgery: Forgery) throws {
        let pair = Self.pair()
        let hop = pair.a.device
        var lengthsAfter: [Int] = []
        var passedAtForgery = 0
        let (client, intact) = try Self.transfer(pair, size: 1 << 20, seed: 24, midwayAt: 256 << 10) { c in
            guard let frame = hop.lastDataFrame, var ip = CapturedIPv4(Array(frame.dropFirst(14)))?.bytes else {
                Issue.record("no data frame to quote")
                return
            }
            let tcp = Int(ip[0] & 0x0f) * 4
            switch forgery {
            case .noConnection:
                ip[tcp + 2] = 0; ip[tcp + 3] = 10
            case .acknowledged:
                Self.setSequence(&ip, at: tcp, c.sender.sndUna - 100_000)
            case .neverSent:
                Self.setSequence(&ip, at: tcp, c.sender.sndMax)
            }
            guard let quoted = CapturedIPv4(ip) else { return }
            hop.inject(NarrowHop<MemoryLink>.fragmentationNeeded(quoting: quoted, mtu: 1280, to: frame))
            passedAtForgery = hop.passedLengths.count
        }
        lengthsAfter = Array(hop.passedLengths[passedAtForgery...])
        #expect(intact)
        #expect(hop.reportsDelivered == 1)
        #expect(pair.a.counters.icmpErrorsIn == 1)
        let tcp = pair.a.tcp.counters
        switch forgery {
        case .noConnection: #expect(tcp.icmpNoConnection == 1 && tcp.icmpOutOfWindow == 0)
        case .acknowledged, .neverSent: #expect(tcp.icmpOutOfWindow == 1 && tcp.icmpNoConnection == 0)
        }
        #expect(tcp.icmpPacketTooBig == 0 && tcp.pathMTUResends == 0 && tcp.retransmissions == 0)
        #expect(pair.a.pathMTUs.isEmpty && pair.a.counters.pathMTULearned == 0)
        #expect(client.sendMSS == 1448)
        #expect(lengthsAfter.filter { $0 == 1500 }.count > 100, "full-sized frames after the forgery")
    }

    static func setSequence(_ ip: inout [UInt8], at tcp: Int, _ seq: SequenceNumber) {
        let v = seq.rawValue
        ip[tcp + 4] = UInt8(v >> 24); ip[tcp + 5] = UInt8(v >> 16 & 0xff)
        ip[tcp + 6] = UInt8(v >> 8 & 0xff); ip[tcp + 7] = UInt8(v & 0xff)
    }

    // MARK: Ageing (RFC 1191 6.3, RFC 8201 5.3)

    /// The estimate holds for 10 minutes: a connection opened at 9 minutes
    /// announces and uses the path's MSS. Then it ages out (`pmtu-expired`),
    /// and a new connection sends 1500-byte frames again over a path that
    /// has widened. (The older connections keep their smaller MSS: RFC 1191
    /// lets them probe up, which is not done.)
    @Test func theEstimateAgesOutAfterTenMinutes() throws {
        let pair = Self.pair()
        let hop = pair.a.device
        hop.mtu = 1280
        let learnedAt = pair.now
        let (first, intact) = try Self.transfer(pair, size: 128 << 10, seed: 25)
        #expect(intact && pair.a.counters.pathMTULearned == 1)
        hop.mtu = nil
        // Learned on the first flight, within a second of the start.
        let expiry = try #require(pair.a.pathMTUs.nextExpiry)
        #expect(expiry - learnedAt >= .seconds(600) && expiry - learnedAt < .seconds(601))
        #expect(pair.a.nextTimerDeadline.map { $0 <= expiry } == true, "the loop wakes for the expiry")

        pair.clock.set(learnedAt + .seconds(540))
        pair.a.tick(now: pair.now)
        hop.clearMeasurements()
        let (nine, intactNine) = try Self.transfer(pair, size: 128 << 10, seed: 26, port: 10)
        #expect(intactNine)
        #expect(nine.localMSS == 1240 && nine.sendMSS == 1228)
        #expect(hop.passedLengths.max() == 1280)

        pair.clock.set(learnedAt + .seconds(601))
        pair.a.tick(now: pair.now)
        #expect(pair.a.counters.pathMTUExpired == 1)
        #expect(pair.a.pathMTUs.isEmpty && pair.a.pathMTU(towards: Self.peer) == 1500)
        #expect(pair.a.counters.report.contains { $0 == "pmtu-expired" && $1 == 1 })
        hop.clearMeasurements()
        let (ten, intactTen) = try Self.transfer(pair, size: 128 << 10, seed: 27, port: 11)
        #expect(intactTen)
        #expect(ten.localMSS == 1460 && ten.sendMSS == 1448)
        #expect(hop.passedLengths.max() == 1500)
        #expect(first.sendMSS == 1228, "an older connection keeps its MSS")
    }
}

/// The stack alone, the test its peer: ICMP errors about a connection still
/// opening, and IP's side of the table.
@Suite struct PathMTUInterfaceTests {
    /// An ICMP error from the peer about `ip` (type 3 with `code`, and a next-hop MTU).
    static func unreachable(_ code: ICMPv4Message.DestinationUnreachable, mtu: UInt16 = 0,
                            quoting ip: CapturedIPv4, harness p: PeerHarness) -> [UInt8] {
        let quote = Array(ip.bytes[0..<(ip.headerLength + 8)])
        var icmp = [UInt8](repeating: 0, count: ICMPv4Packet.headerLength) + quote
        icmp.withUnsafeMutableBytes { b in
            ICMPv4Repr(message: .destinationUnreachable(code, nextHopMTU: mtu), dataLength: quote.count).emit(into: b)
        }
        return p.ipFrame(FrameBuilder.ipv4(source: p.peerIP, destination: p.stackIP, protocol: .icmp, payload: icmp))
    }

    /// Opens a connection from the stack to the peer's port 80; returns it and its SYN.
    static func connect(_ p: PeerHarness) throws -> (TCPConnection, CapturedIPv4) {
        let c = try p.tcp.connect(to: p.peerIP, port: 80, now: p.now)
        let syn = try #require(p.sent().first?.ipv4)
        #expect(CapturedTCP(syn)?.flags == .syn)
        return (c, syn)
    }

    /// Port (or protocol) unreachable quoting our SYN is a hard error: the
    /// connection is refused as a RST would refuse it (Linux aborts).
    @Test(arguments: [ICMPv4Message.DestinationUnreachable.port, .protocol])
    func aHardErrorRefusesAConnectionInSynSent(_ code: ICMPv4Message.DestinationUnreachable) throws {
        let p = PeerHarness()
        p.resolvePeer()
        let (c, syn) = try Self.connect(p)
        #expect(p.exchange(Self.unreachable(code, quoting: syn, harness: p)).isEmpty)
        #expect(c.state == .closed && c.error == .connectionRefused)
        #expect(p.tcp.counters.icmpAborts == 1)
        #expect(p.tcp.allConnections.isEmpty)
    }

    /// Host unreachable is soft (RFC 1122 4.2.3.9): recorded, and the SYN is retried.
    @Test func aSoftErrorIsRecordedAndTheConnectionTriesOn() throws {
        let p = PeerHarness()
        p.resolvePeer()
        let (c, syn) = try Self.connect(p)
        #expect(p.exchange(Self.unreachable(.host, quoting: syn, harness: p)).isEmpty)
        #expect(c.state == .synSent && c.softError == .unreachable(code: 1))
        #expect(p.tcp.counters.icmpSoftErrors == 1 && p.tcp.counters.icmpAborts == 0)
        #expect(p.advanceTCP(by: .seconds(1)).first?.flags == .syn)
    }

    /// A hard error quoting a sequence number other than our SYN's is not believed.
    @Test func aHardErrorQuotingAnotherSequenceNumberIsIgnored() throws {
        let p = PeerHarness()
        p.resolvePeer()
        let (c, syn) = try Self.connect(p)
        var bytes = syn.bytes
        bytes[20 + 7] &+= 1
        let forged = try #require(CapturedIPv4(bytes))
        #expect(p.exchange(Self.unreachable(.port, quoting: forged, harness: p)).isEmpty)
        #expect(c.state == .synSent && c.error == nil)
        #expect(p.tcp.counters.icmpOutOfWindow == 1)
    }

    /// A "packet too big" quoting our SYN lowers the path's estimate before
    /// the peer's SYN-ACK arrives: the MSS negotiated then is the path's,
    /// not the peer's 1460.
    @Test func aPacketTooBigBeforeTheHandshakeBoundsTheNegotiatedMSS() throws {
        let p = PeerHarness()
        p.resolvePeer()
        let (c, syn) = try Self.connect(p)
        #expect(p.exchange(Self.unreachable(.fragmentationNeeded, mtu: 1400, quoting: syn, harness: p)).isEmpty)
        #expect(p.interface.pathMTU(towards: .v4(p.peerIP)) == 1400)
        let synTCP = try #require(CapturedTCP(syn))
        let ack = p.exchangeTCP(p.tcpFrame([.syn, .ack], sourcePort: 80, destinationPort: synTCP.sourcePort,
                                           seq: SequenceNumber(5000), ack: synTCP.seq + 1,
                                           options: TCPOptions(mss: 1460)))
        #expect(ack.first?.flags == .ack)
        #expect(c.state == .established)
        #expect(c.sendMSS == 1400 - 40)
    }

    /// IP's table: the family's floor (an IPv6 report below 1280 counts as
    /// 1280, RFC 8201 4), only decreases, nothing at or above the link MTU,
    /// the oldest evicted when full, and ageing.
    @Test func theTableOnlyLowersWithinTheFamilysBounds() {
        func at(_ s: Int64) -> Instant { Instant(nanoseconds: s * 1_000_000_000) }
        var t = PathMTUCache(capacity: 2, lifetime: .seconds(600))
        var evicted = false
        let v4 = IPAddress.v4(IPv4Address(192, 0, 2, 1))
        let v6 = IPAddress.v6(IPv6Address("2001:db8::1")!)
        #expect(t.isEmpty && t.mtu(towards: v4) == nil)
        #expect(t.lower(1500, towards: v4, linkMTU: 1500, now: at(0), evicted: &evicted) == nil)
        #expect(t.lower(9000, towards: v4, linkMTU: 1500, now: at(0), evicted: &evicted) == nil)
        #expect(t.lower(1400, towards: v4, linkMTU: 1500, now: at(0), evicted: &evicted) == 1400)
        #expect(t.lower(1450, towards: v4, linkMTU: 1500, now: at(0), evicted: &evicted) == nil, "a raise")
        #expect(t.lower(1400, towards: v4, linkMTU: 1500, now: at(0), evicted: &evicted) == nil)
        #expect(t.lower(68, towards: v4, linkMTU: 1500, now: at(1), evicted: &evicted) == 552)
        #expect(t.lower(1000, towards: v6, linkMTU: 1500, now: at(2), evicted: &evicted) == 1280)
        #expect(t.lower(1200, towards: v6, linkMTU: 1500, now: at(2), evicted: &evicted) == nil)
        #expect(!evicted && t.count == 2)
        let other = IPAddress.v4(IPv4Address(192, 0, 2, 2))
        #expect(t.lower(1300, towards: other, linkMTU: 1500, now: at(3), evicted: &evicted) == 1300)
        #expect(evicted && t.count == 2 && t.mtu(towards: v4) == nil, "the oldest made room")
        #expect(t.expire(now: at(601)) == 0)
        #expect(t.expire(now: at(602)) == 1 && t.mtu(towards: v6) == nil && t.mtu(towards: other) == 1300)
        #expect(t.expire(now: at(603)) == 1 && t.isEmpty && t.nextExpiry == nil)
    }

    /// IP's side: the segment limit follows the table for IPv4 and counts
    /// 40 bytes of header for IPv6; and the unfragmented send path refuses
    /// what exceeds the estimate (TCP never builds it: it resized first).
    @Test func ipSizesAndRefusesByThePath() throws {
        let p = PeerHarness()
        p.resolvePeer()
        let peer = IPAddress.v4(p.peerIP)
        #expect(p.interface.maximumSegmentLength(towards: peer) == 1480)
        #expect(p.interface.maximumSegmentLength(towards: .v6(IPv6Address("2001:db8::1")!)) == 1460)
        #expect(p.interface.lowerPathMTU(1300, towards: peer, now: p.now) == 1280)
        #expect(p.interface.lowerPathMTU(1300, towards: peer, now: p.now) == nil)
        #expect(p.interface.maximumSegmentLength(towards: peer) == 1280)
        let send = { (length: Int) in
            p.interface.send(from: .v4(p.stackIP), to: peer, protocol: .tcp, length: length, offload: .none,
                             tail: .none, settings: .standard, now: p.now) { _ in }
        }
        #expect(!send(1281))
        #expect(p.drops(DropReason.tooLargeToSend) == 1)
        #expect(send(1280))
    }
}
