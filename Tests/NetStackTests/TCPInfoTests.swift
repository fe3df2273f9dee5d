import Testing
@testable import NetStack
import NetStackWire

/// `TCPConnection.info`, the fields TCP_INFO reports: the options the
/// handshake agreed on, whatever shifts window scaling ended with.
@Suite struct TCPInfoTests {
    /// A receive buffer under 64 KiB needs no shift.
    static func smallBuffer() -> TCPConfiguration {
        var config = TCPConfiguration()
        config.receiveBufferSize = 16 * 1024
        return config
    }

    @Test func windowScalingAgreedWithZeroShiftsStillReadsAsInUse() {
        let h = TCPHarness.established(configuration: Self.smallBuffer(),
                                       synOptions: TCPHarness.linuxSynOptions(windowScale: 0))
        let info = h.connection.info
        #expect(info.windowScaling && info.sendWindowScale == 0 && info.receiveWindowScale == 0)
        #expect(info.timestamps && info.selectiveAcknowledgments)
    }

    @Test func aPeerWithoutTheOptionLeavesItOff() {
        let h = TCPHarness.established(configuration: Self.smallBuffer(),
                                       synOptions: TCPHarness.linuxSynOptions(windowScale: nil, timestamps: false))
        let info = h.connection.info
        #expect(!info.windowScaling && !info.timestamps)
    }
}
