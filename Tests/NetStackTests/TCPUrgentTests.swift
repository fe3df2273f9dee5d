import Testing
@testable import NetStack
import NetStackWire

/// Urgent data (RFC 9293 3.8.5, MUST-30 to MUST-33), with the pointer read
/// as RFC 6093 and Linux read it: one past the last urgent byte.
@Suite struct TCPUrgentTests {
    let iss = TCPHarness.defaultISS
    let peerISS = TCPHarness.defaultPeerISS

    // MARK: Receiving

    @Test func thePointerMarksTheByteBeforeItAndTheBytesStayInTheStream() {
        let h = TCPHarness.established()
        h.receive(.ack, payload: Array("abc".utf8))
        #expect(h.connection.urgentMark == nil)
        h.receive([.ack, .urg], urgentPointer: 1, payload: Array("!de".utf8))
        #expect(h.connection.urgentByte == peerISS + 4)
        #expect(h.connection.urgentMark?.count == 1)
        #expect(h.connection.urgentMark?.streamIndex == 3)
        // Whether the byte is read out of band is the reader's business: the stream keeps it.
        #expect(h.read() == Array("abc!de".utf8))
    }

    /// MUST-31: the application hears of the pointer as soon as it comes,
    /// even ahead of its byte, and the mark counts from the stream's start.
    @Test func aPointerAheadOfItsByteIsNotedAtOnce() {
        let h = TCPHarness.established()
        h.receive(.ack, payload: testBytes(100))
        _ = h.read()
        var told = 0
        h.connection.onUrgent = { _ in told += 1 }
        h.receive([.ack, .urg], urgentPointer: 500, payload: testBytes(10))
        #expect(told == 1)
        #expect(h.connection.urgentMark?.streamIndex == UInt32(100 + 499))
        // A pure ACK may carry it too.
        h.receive([.ack, .urg], urgentPointer: 600)
        #expect(told == 2)
        #expect(h.connection.urgentMark?.count == 2)
        #expect(h.connection.urgentMark?.streamIndex == UInt32(110 + 599))
    }

    @Test func aRepeatedStaleOrRecedingPointerIsNoNews() {
        let h = TCPHarness.established()
        h.receive([.ack, .urg], urgentPointer: 5, payload: testBytes(10))
        #expect(h.connection.urgentMark?.count == 1)
        // The same segment again (a retransmission): its byte is behind RCV.NXT.
        h.receive([.ack, .urg], seq: peerISS + 1, urgentPointer: 5, payload: testBytes(10))
        #expect(h.connection.urgentMark?.count == 1)
        // A pointer of 0 names the segment's first byte.
        h.receive([.ack, .urg], urgentPointer: 0, payload: testBytes(10))
        #expect(h.connection.urgentMark?.count == 2)
        #expect(h.connection.urgentMark?.streamIndex == 10)
        // One far ahead, then one behind it (but not yet received): the first stands.
        h.receive([.ack, .urg], urgentPointer: 100, payload: testBytes(10))
        h.receive([.ack, .urg], urgentPointer: 50, payload: testBytes(10))
        #expect(h.connection.urgentMark?.count == 3)
        #expect(h.connection.urgentMark?.streamIndex == UInt32(20 + 99))
        #expect(h.read() == testBytes(10) + testBytes(10) + testBytes(10) + testBytes(10))
    }

    /// RFC 9293 3.10.7.4 sixth: after the peer's FIN an URG is ignored.
    @Test func urgentAfterTheFinIsIgnored() {
        let h = TCPHarness.inState(.closeWait)
        h.receive([.ack, .urg], seq: peerISS + 1, urgentPointer: 1)
        #expect(h.connection.urgentMark == nil)
    }

    // MARK: Sending

    /// MUST-32's other side: every segment before SND.UP carries URG and the
    /// pointer to just past the last urgent byte, until the peer acknowledges it.
    @Test func urgentDataCarriesThePointerUntilAcknowledged() {
        let h = TCPHarness.established()
        h.write(Array("xy".utf8))
        let first = h.drain()
        #expect(first.count == 1 && !first[0].flags.contains(.urg))
        // Nagle would hold a small segment while "xy" is unacknowledged: urgent data goes now.
        h.write(Array("pz".utf8))
        #expect(h.drain().isEmpty)
        h.connection.markUrgent()
        h.dispatch()
        let urgent = h.drain()
        #expect(urgent.count == 1)
        #expect(urgent.first?.flags.contains(.urg) == true)
        #expect(urgent.first?.seq == iss + 3)
        #expect(urgent.first?.repr.urgentPointer == 2)
        // Its retransmission carries the pointer too.
        let resent = h.advance(by: .seconds(2)).filter { !$0.payload.isEmpty }
        #expect(resent.first?.seq == iss + 1)
        #expect(resent.first?.flags.contains(.urg) == true)
        #expect(resent.first?.repr.urgentPointer == 4)
        // Once acknowledged, nothing more is urgent.
        h.receive(.ack, ack: iss + 5)
        h.write(Array("w".utf8))
        let after = h.drain().filter { !$0.payload.isEmpty }
        #expect(after.count == 1 && after.first?.flags.contains(.urg) == false)
    }

    /// MSG_OOB's mark falls on the last byte of that send, however much the
    /// application wrote after it before the stack looked.
    @Test func aMarkBehindTheEndOfTheWrittenBytes() {
        let h = TCPHarness.established()
        h.connection.sender.offloadLimit = 60_000
        _ = testBytes(3000).withUnsafeBytes { h.connection.write($0) }  // not sent yet
        h.connection.markUrgent(excluding: 1000)
        h.dispatch()
        let sent = h.drain().filter { !$0.payload.isEmpty }
        // No segment longer than one frame while urgent (a device would copy one pointer into all).
        #expect(sent.allSatisfy { $0.payload.count <= h.connection.sendMSS })
        let urgent = sent.filter { $0.flags.contains(.urg) }
        #expect(!urgent.isEmpty)
        #expect(urgent.allSatisfy { $0.seq + Int($0.repr.urgentPointer) == iss + 1 + 2000 })
        #expect(sent.filter { $0.seq >= iss + 1 + 2000 }.allSatisfy { !$0.flags.contains(.urg) })
    }

    @Test func aMarkOverNothingOrBehindTheLastIsIgnored() {
        let h = TCPHarness.established()
        h.connection.markUrgent()
        #expect(h.connection.sender.sndUp == nil)
        h.write(testBytes(10))
        h.connection.markUrgent(excluding: 10)
        #expect(h.connection.sender.sndUp == nil)
        h.connection.markUrgent()
        #expect(h.connection.sender.sndUp == iss + 11)
        h.connection.markUrgent(excluding: 5)
        #expect(h.connection.sender.sndUp == iss + 11)
    }

    @Test func thePointerSaturatesWhenUrgentDataLiesFartherThanItReaches() {
        let plain = TCPRepr(sourcePort: 1, destinationPort: 2, seq: iss, ack: peerISS, flags: .ack, window: 100,
                            payloadLength: 1000)
        // New data: 0xFFFF points past everything sent.
        var new = plain
        TCPConnection.point(&new, at: iss + 70_000, sent: iss)
        #expect(new.flags.contains(.urg) && new.urgentPointer == 0xFFFF)
        // A resend with more than 64 KiB sent after it: 0xFFFF would name a byte
        // the peer may hold as ordinary, so no URG (Linux's tcp_transmit_skb).
        var resent = plain
        TCPConnection.point(&resent, at: iss + 70_000, sent: iss + 66_000)
        #expect(!resent.flags.contains(.urg) && resent.urgentPointer == 0)
        var near = plain
        TCPConnection.point(&near, at: iss + 2000, sent: iss + 66_000)
        #expect(near.flags.contains(.urg) && near.urgentPointer == 2000)
        var behind = plain
        TCPConnection.point(&behind, at: iss, sent: iss)
        #expect(!behind.flags.contains(.urg) && behind.urgentPointer == 0)
    }
}

/// Urgent data between two stacks through loss and reordering: the urgent
/// pointer says only "urgent data up to here" (RFC 9293 3.8.5), so a
/// receiver may see fewer marks than were set (a retransmission carries the
/// latest), but each one it sees is one the sender set, they only advance,
/// the last is the sender's last, and the stream around them is intact.
@Suite struct TCPUrgentUnderFaultsTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func marksSurviveLossAndReordering(seed: UInt64) throws {
        let faults = FaultProfile(loss: 0.05, reorder: 0.05)
        let pair = FaultyStackPair(aReceive: faults, aTransmit: faults, seed: seed)
        let listener = try pair.b.tcp.listen(port: 7)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 7, now: pair.now)
        var server: TCPConnection?
        let chunk = 5_000, chunks = 60
        let data = testBytes(chunk * chunks, seed: UInt8(seed))
        var written = 0, received: [UInt8] = []
        var setMarks: [UInt32] = [], seenMarks: [UInt32] = []
        var scratch = [UInt8](repeating: 0, count: 65_536)
        let done = pair.run(until: { received.count == data.count && seenMarks.last == setMarks.last }, app: {
            var moved = false
            if server == nil, let s = listener.accept() {
                server = s
                s.onUrgent = { c in seenMarks.append(c.urgentMark!.streamIndex) }
            }
            // A chunk at a time, its last byte urgent (MSG_OOB's mark), no
            // more than the pointer's 64 KiB reach ahead of SND.UNA: farther,
            // a segment's pointer saturates (0xFFFF) and names a byte no one marked.
            if written < data.count, client.state == .established, client.unacknowledgedBytes + chunk < 60_000 {
                let n = data[written..<(written + chunk)].withUnsafeBytes { client.write($0) }
                if n == chunk {
                    written += n
                    client.markUrgent()
                    setMarks.append(UInt32(written - 1))
                    moved = true
                } else if n > 0 {
                    Issue.record("a partial chunk")
                }
            }
            if let s = server, s.readableBytes > 0 {
                let n = scratch.withUnsafeMutableBytes { s.read(into: $0) }
                received += scratch[0..<n]
                moved = true
            }
            return moved
        })
        #expect(done, "seed \(seed): \(received.count) of \(data.count) bytes, marks \(seenMarks.count)")
        #expect(received == data, "seed \(seed): the stream keeps its urgent bytes in line")
        #expect(!seenMarks.isEmpty && seenMarks.last == setMarks.last)
        #expect(zip(seenMarks, seenMarks.dropFirst()).allSatisfy { $0 < $1 }, "marks only advance")
        #expect(Set(seenMarks).isSubset(of: Set(setMarks)), "seed \(seed): \(seenMarks) not all set")
        #expect(pair.a.tcp.counters.retransmissions > 0, "seed \(seed): the faults did not bite")
    }
}
