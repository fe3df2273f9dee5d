import Testing
@testable import NetStack
import NetStackApps

/// `--serve LIST`: what it accepts, and what it refuses before anything runs.
@Suite struct ServiceSpecTests {
    @Test func aListNamesServicesWithTheirPorts() throws {
        let list = try ServiceSpec.parseList("echo,http:8080,iperf3").get()
        #expect(list == [ServiceSpec(kind: .echo, port: 7), ServiceSpec(kind: .http, port: 8080),
                         ServiceSpec(kind: .iperf3, port: 5201)])
    }

    @Test(arguments: [
        ("", ServiceSpecError.empty), ("  ", .empty),
        ("echo,,http", .emptyItem(list: "echo,,http")), ("echo,", .emptyItem(list: "echo,")),
        ("gopher:70", .badItem("gopher:70")), ("http:0", .badItem("http:0")), ("http:65536", .badItem("http:65536")),
        ("http:80,echo:80", .samePort(ServiceSpec(kind: .http, port: 80), ServiceSpec(kind: .echo, port: 80))),
        ("http,http", .samePort(ServiceSpec(kind: .http, port: 80), ServiceSpec(kind: .http, port: 80))),
        ("discard:7,echo", .samePort(ServiceSpec(kind: .discard, port: 7), ServiceSpec(kind: .echo, port: 7))),
    ])
    func whatCouldNotAllRunIsRefused(text: String, error: ServiceSpecError) {
        #expect(ServiceSpec.parseList(text) == .failure(error))
    }

    @Test func theReasonsSayWhatIsWrong() {
        let same = ServiceSpecError.samePort(ServiceSpec(kind: .http, port: 80), ServiceSpec(kind: .echo, port: 80))
        #expect("\(same)" == "http:80 and echo:80 both want port 80")
        #expect("\(ServiceSpecError.empty)".hasPrefix("no service named"))
        #expect("\(ServiceSpecError.badItem("gopher"))".contains("echo, discard, chargen, http, iperf3"))
    }

    /// What the refusal prevents: the second service could not listen.
    @Test func twoServicesOnOnePortCannotBothListen() throws {
        let pair = TCPStackPair()
        try ServiceSpec(kind: .http, port: 80).install(on: pair.stackB)
        #expect(throws: TCPListenError.portInUse(80)) { try ServiceSpec(kind: .echo, port: 80).install(on: pair.stackB) }
    }
}
