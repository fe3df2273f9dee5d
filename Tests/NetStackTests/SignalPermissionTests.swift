import CNetStackABI
import Glibc
import Testing

/// The stack, which may run as root, signals a socket's owner (SIGURG,
/// SIGIO) only where the application's user could itself (kill(2)'s rule):
/// else an application could have it kill any process it names with F_SETOWN.
@Suite struct SignalPermissionTests {
    @Test func rootMaySignalAnyone() {
        #expect(ns_may_signal(0, getpid()))
        #expect(ns_may_signal(0, 1))
    }

    @Test func aUserMaySignalItsOwnProcesses() {
        #expect(ns_may_signal(UInt32(getuid()), getpid()))
    }

    @Test func anotherUserMayNot() {
        let other: UInt32 = getuid() == 65534 ? 65533 : 65534
        #expect(!ns_may_signal(other, getpid()))
        #expect(!ns_may_signal(UInt32(getuid()) &+ 1, getpid()))
    }

    @Test func aProcessThatIsGoneCannotBeSignalled() {
        #expect(!ns_may_signal(65534, Int32.max))
    }
}
