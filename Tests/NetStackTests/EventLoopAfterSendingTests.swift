import Testing
@testable import NetStack
import NetStackWire

/// `Stack.afterSending`: the loop runs it once a turn, after the turn's
/// frames went to the device. The socket API wakes applications there, so
/// one that shares the loop's CPU and takes it at the wake-up does not hold
/// back the turn's segments and ACKs.
@Suite struct EventLoopAfterSendingTests {
    @Test func runsOnceATurnAfterTheTurnsFramesWentToTheDevice() {
        let (loop, device, clock) = EventLoopBusyPollTests.loop(busyPoll: .zero)
        var seen: [(transmitted: Int, flushes: Int, waits: Int)] = []
        loop.stack.afterSending = { seen.append((device.transmitted.count, device.flushes, device.waits.count)) }
        // The turn's own work sends (a datagram to an unresolved neighbour: an ARP request goes out).
        var sent = false
        loop.onTurn = [{ [unowned loop] now in
            guard !sent else { return }
            sent = true
            _ = loop.interface.udp.send(from: 1, to: UDPEndpoint(address: .v4(IPv4Address(10, 0, 0, 1)), port: 2),
                                        payload: UnsafeRawBufferPointer(start: nil, count: 0), now: now)
        }]
        loop.runOnce()
        #expect(seen.count == 1)
        #expect(seen.first?.transmitted == 1, "the ARP request reached the device before the hook ran")
        #expect(seen.first?.flushes == device.flushes, "after the turn's last flush")
        #expect(seen.first?.waits == 0 && device.waits.count == 1, "and before the loop slept")
        let request = CapturedFrame(slot: 0, bytes: device.transmitted.first ?? []).arp
        #expect(request?.operation == .request && request?.targetProtocolAddress == IPv4Address(10, 0, 0, 1))

        clock.advance(by: .microseconds(1))
        loop.runOnce()
        #expect(seen.count == 2, "an idle turn runs it too, before it sleeps")
        #expect(seen.last?.waits == 1 && device.waits.count == 2)
    }
}
