import Foundation
import NetStack
import SystemPackage
import Testing

/// `DeviceCapabilities`: its defaults and narrowing, what each device reports,
/// and that middleware reports its inner device's (or narrows them to wire
/// frames, as `FaultInjector` and `LinkEmulator` do).
struct DeviceCapabilitiesTests {
    /// A device that segments and checksums for the stack, as a TAP with the
    /// virtio-net header will: 64 KiB segments both ways, every checksum offloaded.
    static let offloading = DeviceCapabilities(mtu: 9000, maxTransmitSegment: 65535, maxReceiveSegment: 65535,
                                               checksum: .all(.both))

    @Test func segmentLimitsDefaultToTheMTUAndNoChecksumIsOffloaded() {
        let c = DeviceCapabilities(mtu: 1500)
        #expect(c.mtu == 1500 && c.maxTransmitSegment == 1500 && c.maxReceiveSegment == 1500)
        #expect(c.checksum == .none)
        #expect(c.checksum.ipv4Header.isEmpty && c.checksum.tcp.isEmpty && c.checksum.udp.isEmpty
                    && c.checksum.icmpv4.isEmpty)
        #expect(c == .ethernet())
        #expect(DeviceCapabilities.ethernet(mtu: 576).mtu == 576)
        #expect(c.isValid)
    }

    @Test func checksumOffloadIsPerProtocolAndDirection() {
        let c = ChecksumCapabilities(tcp: .transmit, udp: .both, icmpv4: .receive)
        #expect(c.ipv4Header == [])
        #expect(c.tcp.contains(.transmit) && !c.tcp.contains(.receive))
        #expect(c.udp == [.transmit, .receive])
        #expect(c.icmpv4.contains(.receive) && !c.icmpv4.contains(.transmit))
        let all = ChecksumCapabilities.all(.transmit)
        #expect([all.ipv4Header, all.tcp, all.udp, all.icmpv4].allSatisfy { $0 == .transmit })
        #expect(c != .none && all != c)
    }

    @Test func rangesAreChecked() {
        #expect(Self.offloading.isValid)
        #expect(!DeviceCapabilities(mtu: 67).isValid)
        #expect(!DeviceCapabilities(mtu: 1500, maxTransmitSegment: 1400).isValid)
        #expect(!DeviceCapabilities(mtu: 1500, maxReceiveSegment: 1000).isValid)
    }

    @Test func wireFramesCapTransmitSegmentsAndDropChecksumOffload() {
        let w = Self.offloading.wireFrames
        #expect(w.mtu == 9000 && w.maxTransmitSegment == 9000)
        #expect(w.maxReceiveSegment == 65535, "the device still delivers what it delivers")
        #expect(w.checksum == .none)
        #expect(DeviceCapabilities.ethernet().wireFrames == .ethernet())
    }

    @Test func mtuComesFromTheCapabilities() {
        let pool = PacketPool(slotCount: 4)
        let device = ScriptedDevice(pool: pool, capabilities: Self.offloading)
        #expect(device.mtu == 9000)
        let (a, b) = MemoryLink.pair(pool: pool, mtu: 576)
        #expect(a.capabilities == .ethernet(mtu: 576) && b.mtu == 576)
        let (c, d) = MemoryLink.pair(pool: pool, capabilities: Self.offloading)
        #expect(c.capabilities == Self.offloading && d.capabilities == Self.offloading)
    }

    @Test func pcapWriterReportsItsInnerDevicesCapabilities() throws {
        let pool = PacketPool(slotCount: 4)
        let inner = ScriptedDevice(pool: pool, capabilities: Self.offloading)
        let clock = VirtualClock()
        let path = NSTemporaryDirectory() + "netstack-caps-\(getpid())-\(UInt32.random(in: 0 ... .max)).pcap"
        defer { unlink(path) }
        let capture = try PcapWriter(wrapping: inner, path: FilePath(path), clock: clock)
        #expect(capture.capabilities == Self.offloading)
        // Whatever wraps the capture sees them, narrowed if it needs wire frames.
        let emulator = LinkEmulator(wrapping: capture, both: LinkProfile(delay: .milliseconds(5)), clock: clock)
        #expect(emulator.capabilities == Self.offloading.wireFrames && emulator.mtu == 9000)
    }

    @Test func linkEmulatorNarrowsItsInnerDevicesCapabilitiesToWireFrames() {
        let pool = PacketPool(slotCount: 4)
        let clock = VirtualClock()
        let emulator = LinkEmulator(wrapping: ScriptedDevice(pool: pool, capabilities: Self.offloading), both: .none,
                                    clock: clock)
        #expect(emulator.capabilities == Self.offloading.wireFrames)
        let plain = LinkEmulator(wrapping: ScriptedDevice(pool: pool), both: .none, clock: clock)
        #expect(plain.capabilities == .ethernet())
    }

    @Test func faultInjectorNarrowsItsInnerDevicesCapabilitiesToWireFrames() {
        let pool = PacketPool(slotCount: 4)
        let inner = ScriptedDevice(pool: pool, capabilities: Self.offloading)
        let clock = VirtualClock()
        let faults = FaultInjector(wrapping: inner, both: .none, seed: 1, clock: clock)
        #expect(faults.capabilities == Self.offloading.wireFrames)
        // Whatever wraps the injector sees the narrowed capabilities.
        let emulator = LinkEmulator(wrapping: faults, both: .none, clock: clock)
        #expect(emulator.capabilities == Self.offloading.wireFrames)
        let plain = FaultInjector(wrapping: ScriptedDevice(pool: pool), both: .none, seed: 1, clock: clock)
        #expect(plain.capabilities == .ethernet())
    }
}
