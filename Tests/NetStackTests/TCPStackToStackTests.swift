import Testing
@testable import NetStack
import NetStackWire

/// Two copies of the stack talking TCP over a lossless `MemoryLink`, both
/// driven on one virtual clock.
@Suite struct TCPStackToStackTests {
    static let port: UInt16 = 5001

    @Test func sixteenMebibytesEachWayArriveIntact() throws {
        let pair = TCPStackPair()
        let listener = try pair.b.tcp.listen(port: Self.port)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: Self.port, now: pair.now)
        var server: TCPConnection?
        let size = 16 * 1024 * 1024
        let aToB = BulkTransfer(length: size, seed: 1)
        let bToA = BulkTransfer(length: size, seed: 2)

        let finished = pair.run(until: {
            aToB.read == size && bToA.read == size && client.isReadClosed && server?.isReadClosed == true
        }, app: {
            if server == nil { server = listener.accept() }
            var moved = aToB.pump(into: client)
            moved = bToA.drain(from: client) || moved
            pair.a.tcp.flush(client, now: pair.now)
            if let s = server {
                moved = bToA.pump(into: s) || moved
                moved = aToB.drain(from: s) || moved
                pair.b.tcp.flush(s, now: pair.now)
            }
            return moved
        })
        #expect(finished)
        #expect(aToB.read == size)
        #expect(bToA.read == size)
        #expect(aToB.receivedHash.value == aToB.sentHash.value)
        #expect(bToA.receivedHash.value == bToA.sentHash.value)
        #expect(aToB.sentHash.value != bToA.sentHash.value)
        // A lossless link: nothing needed resending, nothing was refused.
        #expect(pair.a.tcp.counters.retransmissions == 0)
        #expect(pair.b.tcp.counters.retransmissions == 0)
        #expect(pair.linkA.droppedForQueueFull == 0 && pair.linkB.droppedForQueueFull == 0)
        #expect(client.bytesSent == UInt64(size) && client.bytesReceived == UInt64(size))

        // Both closed their sending sides; after 2 MSL both tables are empty.
        pair.run(until: { pair.a.tcp.allConnections.isEmpty && pair.b.tcp.allConnections.isEmpty })
        #expect(client.state == .closed && server?.state == .closed)
        #expect(client.error == nil && server?.error == nil)
    }

    @Test func slowReaderClosesTheWindowAndTheTransferResumes() throws {
        let pair = TCPStackPair()
        var config = TCPConfiguration()
        config.receiveBufferSize = 16 * 1024
        let listener = try pair.b.tcp.listen(port: Self.port, configuration: config)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: Self.port, now: pair.now)
        var server: TCPConnection?
        let size = 256 * 1024
        let transfer = BulkTransfer(length: size, seed: 3)
        var nextRead = pair.now
        var sawZeroWindow = false

        let finished = pair.run(until: { transfer.read == size && server?.isReadClosed == true }, app: {
            if server == nil { server = listener.accept() }
            var moved = transfer.pump(into: client)
            pair.a.tcp.flush(client, now: pair.now)
            if client.sender.sndWnd == 0 && client.state.isSynchronized { sawZeroWindow = true }
            // The reader wakes up only every 500 ms.
            if let s = server, pair.now >= nextRead {
                moved = transfer.drain(from: s) || moved
                pair.b.tcp.flush(s, now: pair.now)
                nextRead = pair.now + .milliseconds(500)
            }
            return moved
        })
        #expect(finished)
        #expect(sawZeroWindow)
        #expect(transfer.receivedHash.value == transfer.sentHash.value)
    }
}
