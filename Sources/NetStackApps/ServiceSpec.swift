import NetStack

/// A service named on the command line, as in `--serve echo:7,discard:9`.
public struct ServiceSpec: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, CaseIterable, Sendable {
        /// RFC 862, on UDP and TCP.
        case echo
        /// RFC 863, TCP.
        case discard
        /// RFC 864, TCP.
        case chargen
        /// HTTP/1.1 (RFC 9112): `/bytes/N` and, with a root directory, files.
        case http
        /// iperf3's server (TCP tests; see IPerf3Server).
        case iperf3
    }

    public var kind: Kind
    public var port: UInt16

    public init(kind: Kind, port: UInt16) {
        self.kind = kind
        self.port = port
    }

    /// Parses one `name:port` item; the port defaults to the service's well-known one.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let kind = Kind(rawValue: String(parts[0])) else { return nil }
        if parts.count == 2 {
            guard let p = UInt16(parts[1]), p != 0 else { return nil }
            port = p
        } else {
            port = kind.defaultPort
        }
        self.kind = kind
    }

    /// Parses a comma-separated list, refusing what could not all run: an
    /// empty list or item, a bad item, and two services on one port (each
    /// listens on it with TCP, and echo on UDP too).
    public static func parseList(_ text: String) -> Result<[ServiceSpec], ServiceSpecError> {
        guard !text.allSatisfy(\.isWhitespace) else { return .failure(.empty) }
        var out: [ServiceSpec] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { return .failure(.emptyItem(list: text)) }
            guard let s = ServiceSpec(item) else { return .failure(.badItem(String(item))) }
            if let other = out.first(where: { $0.port == s.port }) {
                return .failure(.samePort(other, s))
            }
            out.append(s)
        }
        return .success(out)
    }

    /// Starts the service on `stack`. Returns, for the services that keep an
    /// object (http, iperf3), its counters and a way to stop it.
    @discardableResult
    public func install(on stack: Stack, options: ServiceOptions = ServiceOptions()) throws -> RunningService? {
        switch kind {
        case .echo:
            try UDPEchoService.install(on: stack, port: port)
            try TCPEchoService.install(on: stack, port: port,
                                       idleTimeout: options.idleTimeout(TCPServiceTimeouts.defaultIdleTimeout))
        case .discard:
            try TCPDiscardService.install(on: stack, port: port,
                                          idleTimeout: options.idleTimeout(TCPServiceTimeouts.defaultIdleTimeout))
        case .chargen:
            try TCPChargenService.install(on: stack, port: port,
                                          idleTimeout: options.idleTimeout(TCPServiceTimeouts.defaultIdleTimeout))
        case .http:
            var configuration = HTTPServer.Configuration(root: options.root)
            configuration.idleTimeout = options.idleTimeout(configuration.idleTimeout)
            let server = try HTTPServer.install(on: stack, port: port, configuration: configuration)
            return RunningService(report: { server.counters.report }, stop: server.stop)
        case .iperf3:
            let server = try IPerf3Server.install(on: stack, port: port,
                                                  idleTimeout: options.idleTimeout(IPerf3Server.defaultIdleTimeout),
                                                  receiveTimeout: options.idleTimeout(IPerf3Server.defaultReceiveTimeout))
            return RunningService(report: { server.counters.report }, stop: server.stop)
        }
        return nil
    }

    public var description: String { "\(kind.rawValue):\(port)" }
}

/// Settings for the services started from the command line. (TCP settings
/// come from the stack's `tcp.defaultConfiguration`.)
public struct ServiceOptions: Sendable {
    /// The HTTP service's document root (`--root`); nil serves only `/bytes/N`.
    public var root: String?
    /// One idle timeout for every service's connections (`--idle-timeout`),
    /// in place of each service's default; zero turns them off.
    public var idleTimeoutOverride: Duration?

    public init(root: String? = nil, idleTimeoutOverride: Duration? = nil) {
        self.root = root
        self.idleTimeoutOverride = idleTimeoutOverride
    }

    /// The timeout a service with `serviceDefault` runs with.
    func idleTimeout(_ serviceDefault: Duration?) -> Duration? {
        guard let o = idleTimeoutOverride else { return serviceDefault }
        return o == .zero ? nil : o
    }
}

/// A service started from the command line: its counters, as (name,
/// value) pairs, and its `stop()` (holding both keeps the server alive).
public struct RunningService {
    public let report: () -> [(String, UInt64)]
    public let stop: () -> Void
    public init(report: @escaping () -> [(String, UInt64)], stop: @escaping () -> Void = {}) {
        self.report = report
        self.stop = stop
    }
}

/// Why a list of services was refused.
public enum ServiceSpecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing named at all.
    case empty
    /// Two commas in a row, or one at either end.
    case emptyItem(list: String)
    /// Not NAME[:PORT] with a known NAME and a port from 1 to 65535.
    case badItem(String)
    /// Two services on one port: the second could not listen.
    case samePort(ServiceSpec, ServiceSpec)

    public var description: String {
        switch self {
        case .empty:
            "no service named: expected NAME[:PORT],... with NAME one of \(Self.names)"
        case .emptyItem(let list):
            "empty item in '\(list)': expected NAME[:PORT],... with NAME one of \(Self.names)"
        case .badItem(let item):
            "bad service '\(item)': expected NAME[:PORT] with NAME one of \(Self.names) and PORT from 1 to 65535"
        case .samePort(let a, let b):
            "\(a) and \(b) both want port \(a.port)"
        }
    }

    static var names: String { ServiceSpec.Kind.allCases.map(\.rawValue).joined(separator: ", ") }
}

extension ServiceSpec.Kind {
    public var defaultPort: UInt16 {
        switch self {
        case .echo: 7
        case .discard: 9
        case .chargen: 19
        case .http: 80
        case .iperf3: 5201
        }
    }
}

extension TCPConfiguration.Keepalive {
    /// `IDLE[,INTERVAL,COUNT]` (`--keepalive`), seconds and a count, as
    /// Linux's tcp_keepalive_time, _intvl and _probes and within their limits
    /// (32767 s, 127 probes); what is left out keeps Linux's default
    /// (7200 s, 75 s, 9).
    public init?(spec text: String) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else { return nil }
        func seconds(_ s: Substring) -> Duration? {
            guard let v = Double(s), v.isFinite, v > 0, v <= 32767 else { return nil }
            return .nanoseconds(Int64(v * 1e9))
        }
        self.init()
        guard let idle = seconds(parts[0]) else { return nil }
        self.idle = idle
        if parts.count > 1 {
            guard let interval = seconds(parts[1]) else { return nil }
            self.interval = interval
        }
        if parts.count > 2 {
            guard let n = Int(parts[2]), (1...127).contains(n) else { return nil }
            probes = n
        }
    }
}
