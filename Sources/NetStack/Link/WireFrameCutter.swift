import NetStackWire

/// Turns a buffer into the frames it stands for on the wire, for middleware
/// whose meaning is per wire frame (`FaultInjector` judges each, `LinkEmulator`
/// queues and paces each). With offloads a buffer may be a TCP segment the
/// device coalesced (the kernel's GSO through a TAP) or one left for TSO: it
/// is cut with `TCPSegmentation` into frames with full checksums, which the
/// stack checks itself. A checksum left partial is completed, so the bytes
/// are final. A plain frame passes as it is.
///
/// Allocates nothing: each piece takes a slot from the pool, and the whole
/// goes back to it once cut.
struct WireFrameCutter {
    let pool: PacketPool

    /// The most wire frames one buffer from a device with `capabilities`
    /// becomes: 1 unless it coalesces, else enough pieces of 536 bytes
    /// (RFC 9293 3.7.1's default MSS) to fill its largest segment.
    /// Middleware sizes its queues by this; a segment cut finer may overflow them.
    static func maxPieces(receivingFrom capabilities: DeviceCapabilities) -> Int {
        capabilities.maxReceiveSegment > capabilities.mtu ? (capabilities.maxReceiveSegment + 535) / 536 : 1
    }

    /// Hands `frame`'s wire frames to `emit`, in order, and returns how many
    /// were lost for want of a pool slot (free, and large enough) to cut them
    /// into. A frame that is not TCP/IPv4, or is one wire frame already,
    /// goes on whole with only its checksum vouching kept.
    func cut(_ frame: consuming PacketBuffer, _ emit: (consuming PacketBuffer) -> Void) -> Int {
        let offload = frame.offload
        if offload.segmentSize == 0 && !offload.checksumPartial {
            emit(frame)
            return 0
        }
        if offload.checksumPartial {
            _ = frame.withBytes {
                TCPSegmentation.completeChecksum($0, start: Int(offload.checksumStart),
                                                 offset: Int(offload.checksumOffset))
            }
        }
        let segmentSize = Int(offload.segmentSize)
        guard segmentSize > 0,
              let count = frame.withBytes({ bytes -> Int? in
                  TCPSegmentation.headers(of: UnsafeRawBufferPointer(bytes)).map {
                      TCPSegmentation.frameCount(payloadLength: bytes.count - $0.length, segmentSize: segmentSize)
                  }
              }), count > 1 else {
            frame.offload = PacketOffload(checksumVerified: offload.checksumVerified)
            emit(frame)
            return 0
        }
        var lost = 0
        for index in 0..<count {
            guard var wire = pool.allocate() else {
                lost += 1
                continue
            }
            wire.reserveHeadroom(frame.headroom)
            let length = frame.withBytes { whole in
                wire.withCapacity { out in
                    TCPSegmentation.cut(UnsafeRawBufferPointer(whole), segmentSize: segmentSize, index: index,
                                        into: out)
                }
            }
            guard let length else {
                lost += 1
                continue
            }
            wire.setLength(length)
            emit(wire)
        }
        return lost
    }
}
