import Foundation

/// The wire vocabulary of iperf3's control connection (esnet/iperf, iperf_api.h):
/// one signed byte per state, and JSON blobs framed by a 4-byte big-endian length.
public enum IPerf3 {
    /// The client's session cookie: 36 characters and a NUL, sent first on
    /// the control connection and on every data stream.
    public static let cookieSize = 37

    /// Control states, sent as one (signed) byte.
    public enum State: Int8, Sendable {
        case testStart = 1
        case testRunning = 2
        case testEnd = 4
        case paramExchange = 9
        case createStreams = 10
        case serverTerminate = 11
        case clientTerminate = 12
        case exchangeResults = 13
        case displayResults = 14
        case iperfStart = 15
        case iperfDone = 16
        case accessDenied = -1
        case serverError = -2

        public var byte: UInt8 { UInt8(bitPattern: rawValue) }
    }

    /// The `i_errno` values the server reports after SERVER_ERROR (iperf_api.h).
    public enum ErrorCode: Int32, Sendable {
        /// "not implemented yet": UDP, SCTP and bidirectional tests.
        case notImplemented = 13
        case unknownMessage = 110
        case receiveParameters = 114
        case receiveResults = 117
    }

    /// Largest JSON blob accepted (iperf3 itself caps results at a few MB).
    public static let maxJSONLength = 1 << 20

    /// The test parameters the client sends after PARAM_EXCHANGE.
    public struct Parameters: Equatable, Sendable {
        public var tcp = true
        public var udp = false
        public var sctp = false
        public var reverse = false
        public var bidirectional = false
        public var time = 10
        /// Bytes (-n) or blocks (-k) to send instead of a time; 0 means time.
        public var bytes: UInt64 = 0
        public var blockCount: UInt64 = 0
        public var omit = 0
        public var parallel = 1
        /// Block size (-l): the client's write size, and ours in reverse mode.
        public var length = 128 * 1024
        public var clientVersion: String?

        public init() {}

        public enum ParseError: Error, Equatable, CustomStringConvertible {
            case notJSONObject
            case badValue(String)
            public var description: String {
                switch self {
                case .notJSONObject: "parameters are not a JSON object"
                case .badValue(let k): "bad parameter '\(k)'"
                }
            }
        }

        /// Parses the client's parameter JSON (iperf_api.c, send_parameters).
        public init(json: [UInt8]) throws(ParseError) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(json)),
                  let d = object as? [String: Any] else { throw .notJSONObject }
            func int(_ key: String) throws(ParseError) -> Int? {
                guard let v = d[key] else { return nil }
                if let b = v as? Bool { return b ? 1 : 0 }
                guard let n = v as? NSNumber else { throw .badValue(key) }
                let x = n.doubleValue
                guard x.isFinite, x >= 0, x <= 1e15 else { throw .badValue(key) }
                return Int(x)
            }
            func flag(_ key: String) throws(ParseError) -> Bool {
                guard let v = d[key] else { return false }
                if let b = v as? Bool { return b }
                guard let n = v as? NSNumber else { throw .badValue(key) }
                return n.doubleValue != 0
            }
            tcp = try flag("tcp")
            udp = try flag("udp")
            sctp = try flag("sctp")
            reverse = try flag("reverse")
            bidirectional = try flag("bidirectional")
            if let t = try int("time") { time = t }
            if let n = try int("num") { bytes = UInt64(n) }
            if let k = try int("blockcount") { blockCount = UInt64(k) }
            if let o = try int("omit") { omit = o }
            if let p = try int("parallel") {
                guard (1...128).contains(p) else { throw .badValue("parallel") }
                parallel = p
            }
            if let l = try int("len") {
                guard l > 0 else { throw .badValue("len") }
                length = l
            }
            clientVersion = d["client_version"] as? String
            if !tcp && !udp && !sctp { tcp = true }
        }

        /// The JSON a client sends (iperf_api.c, send_parameters): only what
        /// these parameters cover, with iperf3's defaults for pacing.
        public func json() -> [UInt8] {
            var d: [String: Any] = [
                "omit": omit, "time": time, "num": NSNumber(value: bytes), "blockcount": NSNumber(value: blockCount),
                "parallel": parallel, "len": length, "pacing_timer": 1000,
            ]
            if tcp { d["tcp"] = true }
            if udp { d["udp"] = true }
            if sctp { d["sctp"] = true }
            if reverse { d["reverse"] = true }
            if bidirectional { d["bidirectional"] = true }
            if let clientVersion { d["client_version"] = clientVersion }
            let data = (try? JSONSerialization.data(withJSONObject: d, options: [.sortedKeys])) ?? Data("{}".utf8)
            return [UInt8](data)
        }
    }

    /// One stream's line in the results.
    public struct StreamResult: Equatable, Sendable {
        public var id: Int
        public var bytes: UInt64
        /// -1 when this side did not send (iperf3 sends it as UINT64_MAX).
        public var retransmits: Int64
        public var startTime: Double
        public var endTime: Double

        public init(id: Int, bytes: UInt64, retransmits: Int64, startTime: Double, endTime: Double) {
            self.id = id
            self.bytes = bytes
            self.retransmits = retransmits
            self.startTime = startTime
            self.endTime = endTime
        }
    }

    /// The results one side sends in EXCHANGE_RESULTS (iperf_api.c, send_results).
    public struct Results: Equatable, Sendable {
        public var cpuUtilTotal: Double = 0
        public var cpuUtilUser: Double = 0
        public var cpuUtilSystem: Double = 0
        /// 1 when this side sent and counts retransmissions, -1 when it did not send.
        public var senderHasRetransmits: Int = -1
        /// The sender's congestion controller, by its Linux name (the server fills in its own).
        public var congestionUsed: String? = "cubic"
        public var streams: [StreamResult] = []

        public init() {}

        public func json() -> [UInt8] {
            var d: [String: Any] = [
                "cpu_util_total": cpuUtilTotal,
                "cpu_util_user": cpuUtilUser,
                "cpu_util_system": cpuUtilSystem,
                "sender_has_retransmits": senderHasRetransmits,
                "streams": streams.map { s -> [String: Any] in
                    ["id": s.id, "bytes": NSNumber(value: s.bytes), "retransmits": NSNumber(value: s.retransmits),
                     "jitter": 0, "errors": 0, "omitted_errors": 0, "packets": 0, "omitted_packets": 0,
                     "start_time": s.startTime, "end_time": s.endTime]
                },
            ]
            if let congestionUsed { d["congestion_used"] = congestionUsed }
            let data = (try? JSONSerialization.data(withJSONObject: d, options: [.sortedKeys])) ?? Data("{}".utf8)
            return [UInt8](data)
        }

        /// Parses the peer's results; only what the server logs is kept.
        public init(json: [UInt8]) throws(Parameters.ParseError) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(json)),
                  let d = object as? [String: Any] else { throw .notJSONObject }
            func double(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }
            cpuUtilTotal = double(d["cpu_util_total"]) ?? 0
            cpuUtilUser = double(d["cpu_util_user"]) ?? 0
            cpuUtilSystem = double(d["cpu_util_system"]) ?? 0
            senderHasRetransmits = (d["sender_has_retransmits"] as? NSNumber)?.intValue ?? -1
            congestionUsed = d["congestion_used"] as? String
            guard let list = d["streams"] as? [[String: Any]] else { throw .badValue("streams") }
            streams = try list.map { (s) throws(Parameters.ParseError) -> StreamResult in
                guard let id = (s["id"] as? NSNumber)?.intValue, let bytes = double(s["bytes"]), bytes >= 0 else {
                    throw .badValue("streams")
                }
                return StreamResult(id: id, bytes: UInt64(min(bytes, 1.8e19)),
                                    retransmits: (s["retransmits"] as? NSNumber)?.int64Value ?? -1,
                                    startTime: double(s["start_time"]) ?? 0, endTime: double(s["end_time"]) ?? 0)
            }
        }
    }

    /// A session cookie as iperf3's make_cookie draws it: 36 characters from a
    /// 32-letter alphabet, then a NUL.
    public static func makeCookie(using rng: inout some RandomNumberGenerator) -> [UInt8] {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
        return (0..<(cookieSize - 1)).map { _ in alphabet[Int(rng.next(upperBound: UInt32(alphabet.count)))] } + [0]
    }

    /// The process's CPU time, for the results' cpu_util fields (iperf3's cpu_util).
    public struct CPUTime: Sendable {
        public var user: Double
        public var system: Double

        public static func now() -> CPUTime {
            var u = rusage()
            getrusage(RUSAGE_SELF.rawValue, &u)
            func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
            return CPUTime(user: seconds(u.ru_utime), system: seconds(u.ru_stime))
        }

        /// Percentages of `elapsed` wall-clock seconds spent since `start`.
        public func utilization(since start: CPUTime, elapsed: Double) -> (total: Double, user: Double, system: Double) {
            guard elapsed > 0 else { return (0, 0, 0) }
            let user = 100 * (self.user - start.user) / elapsed
            let system = 100 * (self.system - start.system) / elapsed
            return (user + system, user, system)
        }
    }

    /// iperf3's stream ids: 1 for the first, then 3, 4, 5... (iperf_add_stream).
    public static func streamID(index: Int) -> Int { index == 0 ? 1 : index + 2 }

    /// A JSON blob as sent on the control connection: length, big-endian, then the text.
    public static func frame(_ json: [UInt8]) -> [UInt8] {
        let n = UInt32(json.count)
        return [UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8),
                UInt8(truncatingIfNeeded: n)] + json
    }
}
