import CURing
import Testing
@testable import NetStack
#if canImport(Glibc)
import Glibc
#endif

/// Doorbells read by the TAP device's io_uring (the socket API's path): a
/// write from another thread ends the loop's sleep in `wait` and reaches
/// `onRung` with the next receive, and a disarmed doorbell's read is
/// cancelled, so a later write is not heard.
@Suite(.enabled(if: TAPHarness.available, "needs root, /dev/net/tun and ip(8)"))
struct TAPDoorbellTests {
    @Test("a doorbell rung by another thread ends the device's wait; a disarmed one stays silent")
    func aRingEndsTheWait() async throws {
        let ns = try TAPHarness.Namespace()
        defer { ns.delete() }
        let (heard, waited) = try await ns.onThread { () throws -> ([UInt32], Duration) in
            let device = try TAPDevice(name: "tap0", pool: PacketPool(slotCount: 64), receiveBuffers: 16)
            let doorbells = Doorbells()
            doorbells.deviceReads = device.watch(doorbells: doorbells)
            var heard: [UInt32] = []
            doorbells.onRung = { heard.append($0) }
            let bell = curing_eventfd()
            defer { close(bell) }
            doorbells.arm(bell, token: 42)
            device.flush()
            var ringer = pthread_t()
            pthread_create(&ringer, nil, { arg in
                usleep(50_000)
                var one: UInt64 = 1
                _ = write(Int32(Int(bitPattern: arg)), &one, 8)
                return nil
            }, UnsafeMutableRawPointer(bitPattern: Int(bell)))
            let start = ContinuousClock.now
            device.wait(timeout: .seconds(5))
            let waited = ContinuousClock.now - start
            pthread_join(ringer, nil)
            _ = device.receive(limit: 8) { _ in }
            _ = doorbells.deliver()

            doorbells.arm(bell, token: 43)
            device.flush()
            doorbells.disarm(token: 43)
            device.flush()
            var one: UInt64 = 1
            _ = write(bell, &one, 8)
            device.wait(timeout: .milliseconds(100))
            _ = device.receive(limit: 8) { _ in }
            _ = doorbells.deliver()
            return (heard, waited)
        }
        #expect(heard == [42])
        #expect(waited < .seconds(2), "woken by the ring, not the 5 s timeout: \(waited)")
    }
}
