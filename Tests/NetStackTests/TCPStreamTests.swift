import Testing
@testable import NetStack
import NetStackWire

/// The async face: tasks on each loop's executor talk over a memory link,
/// driven turn by turn on a virtual clock.
@Suite struct TCPStreamTests {
    final class Pair: @unchecked Sendable {
        let pool = PacketPool(slotCount: 2048)
        let clock = VirtualClock()
        let client: EventLoop<MemoryLink>
        let server: EventLoop<MemoryLink>

        init() {
            let (a, b) = MemoryLink.pair(pool: pool, queueCapacity: 1024)
            let clock = self.clock
            func iface(_ link: MemoryLink, _ last: UInt8) -> Interface<MemoryLink> {
                let ip = IPv4Address(10, 0, 0, last)
                return Interface(device: link,
                                 configuration: InterfaceConfiguration(address: IPv4CIDR(address: ip, prefixLength: 24)),
                                 now: clock.now)
            }
            client = EventLoop(interface: iface(a, 1), clock: clock)
            server = EventLoop(interface: iface(b, 2), clock: clock)
        }

        /// Turns both loops, advancing virtual time, until `done` or the turn budget runs out.
        func run(turns: Int = 200_000, until done: () -> Bool) {
            for _ in 0..<turns where !done() {
                client.runOnce()
                server.runOnce()
                clock.advance(by: .microseconds(50))
            }
        }
    }

    /// FNV-1a, enough to compare two byte streams.
    static func fnv(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    final class Result: @unchecked Sendable {
        var received: [UInt8] = []
        var serverDone = false
        var clientDone = false
        var error: (any Error)?
    }

    @Test func echoOneMebibyteThroughAsyncStreams() throws {
        let pair = Pair()
        let result = Result()
        var rng = SystemRandomNumberGenerator()
        let data = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let acceptor = try pair.server.stack.acceptor(port: 7)

        Task(executorPreference: pair.server.executor) {
            let s = await acceptor.accept()
            do {
                while true {
                    let chunk = try await s.read()
                    if chunk.isEmpty { break }
                    try await s.write(chunk)
                }
                await s.close()
            } catch { result.error = error }
            result.serverDone = true
        }
        Task(executorPreference: pair.client.executor) {
            do {
                let s = try await pair.client.stack.connect(to: .v4(IPv4Address(10, 0, 0, 2)), port: 7)
                // Write and read at once: the rings hold less than a mebibyte.
                let writer = Task(executorPreference: pair.client.executor) {
                    try await s.write(data)
                    s.shutdownWrite()
                }
                while true {
                    let chunk = try await s.read()
                    if chunk.isEmpty { break }
                    result.received += chunk
                }
                try await writer.value
                await s.close()
            } catch { result.error = error }
            result.clientDone = true
        }
        pair.run { result.clientDone && result.serverDone }

        #expect(result.error == nil)
        #expect(result.clientDone && result.serverDone)
        #expect(result.received.count == data.count)
        #expect(Self.fnv(result.received) == Self.fnv(data))
    }

    @Test func connectToAClosedPortIsRefused() {
        let pair = Pair()
        let result = Result()
        Task(executorPreference: pair.client.executor) {
            do {
                _ = try await pair.client.stack.connect(to: .v4(IPv4Address(10, 0, 0, 2)), port: 9)
            } catch { result.error = error }
            result.clientDone = true
        }
        pair.run { result.clientDone }
        #expect(result.error as? TCPError == .connectionRefused)
    }
}

/// A stream or acceptor the application drops while its connection or
/// listener lives on: the stack's callbacks must not call into it.
@Suite struct DroppedStreamTests {
    @Test func aDroppedStreamIsNotCalledIntoWhenDataArrives() throws {
        let pair = TCPStackPair()
        let (client, s) = try TCPConnectionSpanTests.connected(pair)
        weak var dropped: TCPStream?
        do {
            let stream = pair.stackB.stream(for: s)
            dropped = stream
        }
        #expect(dropped == nil, "nothing else holds the stream")
        // Data, then a FIN, arrive for the connection whose stream is gone.
        #expect([UInt8](repeating: 7, count: 3000).withUnsafeBytes { client.write($0) } == 3000)
        client.shutdownWrite()
        pair.run(until: { s.readableBytes == 3000 && s.receivedFin })
        #expect(s.state == .closeWait)
    }

    @Test func aDroppedAcceptorIsNotCalledIntoWhenAConnectionArrives() throws {
        let pair = TCPStackPair()
        weak var dropped: TCPAcceptor?
        do {
            let acceptor = try pair.stackB.acceptor(port: 9)
            dropped = acceptor
        }
        #expect(dropped == nil)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 9, now: pair.now)
        pair.run(until: { client.state == .established })
        #expect(client.state == .established)
    }
}
