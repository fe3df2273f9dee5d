import Testing
@testable import NetStack
import NetStackWire

/// `EventLoop.busyPoll`: after a frame the loop keeps polling, without
/// sleeping, for the time given; then it sleeps as before.
@Suite struct EventLoopBusyPollTests {
    static func loop(busyPoll: Duration) -> (EventLoop<ScriptedDevice>, ScriptedDevice, VirtualClock) {
        let pool = PacketPool(slotCount: 16)
        let device = ScriptedDevice(pool: pool)
        let clock = VirtualClock()
        let interface = Interface(device: device, configuration: InterfaceConfiguration(
            address: IPv4CIDR(address: IPv4Address(10, 0, 0, 2), prefixLength: 24)), now: clock.now)
        let loop = EventLoop(interface: interface, clock: clock)
        loop.busyPoll = busyPoll
        return (loop, device, clock)
    }

    /// Any frame will do: the loop counts it as activity whatever IP makes of it.
    static let frame = [UInt8](repeating: 0xff, count: 6) + [0x02, 0, 0, 0, 0, 1, 0x08, 0x06] + [UInt8](repeating: 0, count: 28)

    @Test func withoutBusyPollingAnIdleTurnSleeps() {
        let (loop, device, clock) = Self.loop(busyPoll: .zero)
        device.incoming = [Self.frame]
        loop.runOnce()
        #expect(device.waits.isEmpty, "a turn that received does not sleep")
        clock.advance(by: .microseconds(1))
        loop.runOnce()
        #expect(device.waits.count == 1)
    }

    @Test func busyPollingSpinsForItsTimeAfterAFrameThenSleeps() {
        let (loop, device, clock) = Self.loop(busyPoll: .microseconds(50))
        device.incoming = [Self.frame]
        loop.runOnce()
        for _ in 0..<4 {
            clock.advance(by: .microseconds(10))
            loop.runOnce()
        }
        #expect(device.waits.isEmpty, "40 µs after the frame the loop still polls")
        clock.advance(by: .microseconds(20))
        loop.runOnce()
        #expect(device.waits.count == 1, "60 µs after it, it sleeps")
        // A new frame starts the spin again.
        device.incoming = [Self.frame]
        loop.runOnce()
        clock.advance(by: .microseconds(10))
        loop.runOnce()
        #expect(device.waits.count == 1)
    }
}
