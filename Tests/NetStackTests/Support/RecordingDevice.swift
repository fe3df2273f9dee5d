@testable import NetStack

/// Middleware that copies every frame crossing a device, both ways, so a
/// stack-to-stack test can look at the bytes an interface received and sent.
final class RecordingDevice<D: Device>: Device {
    let inner: D
    private(set) var received: [CapturedFrame] = []
    private(set) var transmitted: [CapturedFrame] = []

    init(_ inner: D) { self.inner = inner }

    var pool: PacketPool { inner.pool }
    var capabilities: DeviceCapabilities { inner.capabilities }

    func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        inner.receive(limit: limit) { frame in
            received.append(CapturedFrame(slot: frame.slot, bytes: frame.withBytes { [UInt8]($0) }))
            handler(frame)
        }
    }

    func transmit(_ frame: consuming PacketBuffer) {
        transmitted.append(CapturedFrame(slot: frame.slot, bytes: frame.withBytes { [UInt8]($0) }))
        inner.transmit(frame)
    }

    func flush() { inner.flush() }

    func clear() {
        received.removeAll()
        transmitted.removeAll()
    }
}
