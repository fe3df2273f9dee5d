@testable import NetStack

/// Any device behind one type, for a `StackPair` whose stacks sit on
/// different devices (middleware in front of one of them only).
final class AnyDevice: Device {
    let inner: any Device

    init(_ inner: any Device) { self.inner = inner }

    var pool: PacketPool { inner.pool }
    var capabilities: DeviceCapabilities { inner.capabilities }

    func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        inner.receive(limit: limit, handler)
    }

    func transmit(_ frame: consuming PacketBuffer) { inner.transmit(frame) }
    func flush() { inner.flush() }
    func wait(timeout: Duration) { inner.wait(timeout: timeout) }
}
