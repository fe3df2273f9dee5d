import Foundation
import NetStack

/// The end of a test as iperf3 reports it: per stream, the sender's and the
/// receiver's counts (one side's are ours, the other's came in the server's
/// results), and their sums.
public struct IPerf3Summary: Sendable {
    public struct Side: Sendable, Equatable {
        public var bytes: UInt64
        /// From TEST_START to TEST_END on that side's clock.
        public var seconds: Double
        /// Nil when that side does not count them (a receiver, or a sender that says so).
        public var retransmits: Int64?

        public var bitsPerSecond: Double { seconds > 0 ? Double(bytes) * 8 / seconds : 0 }
    }

    public struct Stream: Sendable {
        public var id: Int
        public var sender: Side
        public var receiver: Side
    }

    public var reverse: Bool
    public var streams: [Stream]
    public var sent: Side
    public var received: Side
    public var local: IPerf3.Results
    public var remote: IPerf3.Results

    /// Nil until both results are known (after EXCHANGE_RESULTS).
    public init?(client: IPerf3Client) {
        guard let local = client.localResults, let remote = client.remoteResults else { return nil }
        self.init(local: local, remote: remote, reverse: client.options.reverse)
    }

    public init(local: IPerf3.Results, remote: IPerf3.Results, reverse: Bool) {
        self.reverse = reverse
        self.local = local
        self.remote = remote
        let senderResults = reverse ? remote : local
        func side(_ s: IPerf3.StreamResult?, sender: Bool) -> Side {
            guard let s else { return Side(bytes: 0, seconds: 0, retransmits: nil) }
            let counts = sender && senderResults.senderHasRetransmits == 1 && s.retransmits >= 0
            return Side(bytes: s.bytes, seconds: max(0, s.endTime - s.startTime), retransmits: counts ? s.retransmits : nil)
        }
        streams = local.streams.map { mine in
            let theirs = remote.streams.first { $0.id == mine.id }
            let (s, r) = reverse ? (theirs, Optional(mine)) : (Optional(mine), theirs)
            return Stream(id: mine.id, sender: side(s, sender: true), receiver: side(r, sender: false))
        }
        func sum(_ sides: [Side]) -> Side {
            let retransmits = sides.compactMap(\.retransmits)
            return Side(bytes: sides.reduce(0) { $0 &+ $1.bytes }, seconds: sides.map(\.seconds).max() ?? 0,
                        retransmits: retransmits.isEmpty ? nil : retransmits.reduce(0, +))
        }
        sent = sum(streams.map(\.sender))
        received = sum(streams.map(\.receiver))
    }
}

/// iperf3's client output from an `IPerf3Client`'s records: the text report
/// in iperf_locale.c's formats with units_snprintf's units, and the -J JSON in
/// iperf_api.c's schema (start, intervals, end).
public enum IPerf3Report {
    // MARK: Units

    /// unit_snprintf: adaptive units (1024 for bytes, 1000 for bits), as few
    /// as four characters of number.
    static func adaptive(_ value: Double, base: Double, labels: [String]) -> String {
        var v = value
        var i = 0
        while v >= base && i < labels.count - 1 {
            v /= base
            i += 1
        }
        let number = v < 9.995 ? String(format: "%4.2f", v) : v < 99.95 ? String(format: "%4.1f", v)
            : String(format: "%4.0f", v)
        return "\(number) \(labels[i])"
    }

    /// "1.15 GBytes" (binary units, as iperf3's Transfer column).
    public static func bytes(_ n: Double) -> String {
        adaptive(n, base: 1024, labels: ["Byte", "KByte", "MByte", "GByte", "TByte"]) + "s"
    }

    /// "9.83 Gbits/sec" (decimal units, as iperf3's Bitrate column).
    public static func bitrate(bytes: UInt64, seconds: Double) -> String {
        let bits = seconds > 0 ? Double(bytes) * 8 / seconds : 0
        return adaptive(bits, base: 1000, labels: ["bit", "Kbit", "Mbit", "Gbit", "Tbit"]) + "s/sec"
    }

    static func id(_ n: Int) -> String {
        let s = String(n)
        return "[" + String(repeating: " ", count: max(0, 3 - s.count)) + s + "]"
    }

    static func times(_ start: Double, _ end: Double) -> String { String(format: "%6.2f-%-6.2f", start, end) }

    static func padded(_ n: Int64, width: Int) -> String {
        let s = String(n)
        return String(repeating: " ", count: max(0, width - s.count)) + s
    }

    // MARK: Text

    public static let separator = "- - - - - - - - - - - - - - - - - - - - - - - - -"

    public static func connecting(host: String, port: UInt16, reverse: Bool) -> [String] {
        ["Connecting to host \(host), port \(port)"] + (reverse ? ["Reverse mode, remote host \(host) is sending"] : [])
    }

    public static func connected(_ s: IPerf3Client.Stream) -> String {
        let t = s.connection.tuple
        return "\(id(s.id)) local \(t.localAddress) port \(t.localPort) connected to \(t.remoteAddress) port \(t.remotePort)"
    }

    /// The column header before the first interval.
    public static func intervalHeader(reverse: Bool) -> String {
        reverse ? "[ ID] Interval           Transfer     Bitrate"
            : "[ ID] Interval           Transfer     Bitrate         Retr  Cwnd"
    }

    /// One line per stream; with more than one, a [SUM] line too, and a
    /// separator between intervals.
    public static func intervalLines(_ interval: IPerf3Client.Interval, reverse: Bool, first: Bool) -> [String] {
        let span = times(interval.start, interval.end)
        var lines = !first && interval.streams.count > 1 ? [separator] : []
        lines += interval.streams.map { s in
            let head = "\(id(s.id)) \(span) sec  \(bytes(Double(s.bytes)))  \(bitrate(bytes: s.bytes, seconds: interval.seconds))"
            if reverse { return head + "                  " }
            let cwnd = bytes(Double(s.info?.congestionWindow ?? 0))
            return head + "  \(padded(Int64(s.retransmits), width: 3))   \(cwnd)       "
        }
        if interval.streams.count > 1 {
            let head = "[SUM] \(span) sec  \(bytes(Double(interval.bytes)))  \(bitrate(bytes: interval.bytes, seconds: interval.seconds))"
            lines.append(reverse ? head + "                  " : head + "  \(padded(Int64(interval.retransmits), width: 3))             ")
        }
        return lines
    }

    /// The sender and receiver lines, per stream and summed, and "iperf Done.".
    public static func summaryLines(_ summary: IPerf3Summary) -> [String] {
        func line(_ label: String, _ side: IPerf3Summary.Side, _ role: String) -> String {
            let head = "\(label) \(times(0, side.seconds)) sec  \(bytes(Double(side.bytes)))  \(bitrate(bytes: side.bytes, seconds: side.seconds))"
            if let r = side.retransmits { return head + "  \(padded(r, width: 3))             \(role)" }
            return head + "                  \(role)"
        }
        var lines = [separator, "[ ID] Interval           Transfer     Bitrate         Retr"]
        for s in summary.streams {
            lines.append(line(id(s.id), s.sender, "sender"))
            lines.append(line(id(s.id), s.receiver, "receiver"))
        }
        if summary.streams.count > 1 {
            lines.append(line("[SUM]", summary.sent, "sender"))
            lines.append(line("[SUM]", summary.received, "receiver"))
        }
        return lines + ["", "iperf Done."]
    }

    // MARK: JSON

    /// What the JSON's start section says about the run besides the client's records.
    public struct Context: Sendable {
        public var host: String
        public var version = "netstack iperf3-compatible client"
        public var systemInfo = ""
        public var time = Date()

        public init(host: String) { self.host = host }
    }

    /// iperf3 -J's document. `error` as iperf3 puts it when the test failed.
    public static func json(client: IPerf3Client, context: Context, error: String? = nil) -> String {
        let reverse = client.options.reverse
        let sender = !reverse
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let start = JSON.Start(
            connected: client.streams.map { s in
                let t = s.connection.tuple
                return JSON.Connected(socket: s.id, localHost: "\(t.localAddress)", localPort: Int(t.localPort),
                                      remoteHost: "\(t.remoteAddress)", remotePort: Int(t.remotePort))
            },
            version: context.version, systemInfo: context.systemInfo,
            timestamp: JSON.Timestamp(time: formatter.string(from: context.time),
                                      timesecs: Int(context.time.timeIntervalSince1970)),
            connectingTo: JSON.ConnectingTo(host: context.host, port: Int(client.options.port)),
            cookie: client.cookieText, tcpMssDefault: client.controlMSS ?? 0, sockBufsize: client.options.window ?? 0,
            testStart: JSON.TestStart(numStreams: client.options.parallel, blksize: client.options.length,
                                      duration: client.parameters.time, reverse: reverse ? 1 : 0))
        let intervals = client.intervals.map { i in
            JSON.Interval(
                streams: i.streams.map { s in
                    JSON.IntervalStream(
                        socket: s.id, start: i.start, end: i.end, seconds: i.seconds, bytes: s.bytes,
                        bitsPerSecond: i.seconds > 0 ? Double(s.bytes) * 8 / i.seconds : 0,
                        retransmits: reverse ? nil : s.retransmits, sndCwnd: s.info?.congestionWindow,
                        sndWnd: s.info?.sendWindow, rtt: s.info?.smoothedRTT.map(microseconds),
                        rttvar: s.info?.rttVariation.map(microseconds), pmtu: reverse ? nil : s.info?.pathMTU,
                        sender: sender)
                },
                sum: JSON.Sum(start: i.start, end: i.end, seconds: i.seconds, bytes: i.bytes,
                              bitsPerSecond: i.seconds > 0 ? Double(i.bytes) * 8 / i.seconds : 0,
                              retransmits: reverse ? nil : Int64(i.retransmits), omitted: false, sender: sender))
        }
        var end: JSON.End?
        if let summary = IPerf3Summary(client: client) {
            func sum(_ side: IPerf3Summary.Side, retransmits: Bool) -> JSON.Sum {
                JSON.Sum(start: 0, end: side.seconds, seconds: side.seconds, bytes: side.bytes,
                         bitsPerSecond: side.bitsPerSecond, retransmits: retransmits ? side.retransmits ?? 0 : nil,
                         omitted: nil, sender: sender)
            }
            let streams = summary.streams.map { s in
                // The sender's TCP state is known only when we sent.
                let mine = client.streams.first { $0.id == s.id }
                let rtts = reverse ? [] : (mine?.rttSamples ?? []).map(microseconds)
                let senderSide = JSON.SenderStream(
                    socket: s.id, start: 0, end: s.sender.seconds, seconds: s.sender.seconds, bytes: s.sender.bytes,
                    bitsPerSecond: s.sender.bitsPerSecond, retransmits: s.sender.retransmits ?? 0,
                    maxSndCwnd: reverse ? 0 : mine?.maxCongestionWindow ?? 0,
                    maxSndWnd: reverse ? 0 : mine?.maxSendWindow ?? 0, maxRtt: rtts.max() ?? 0,
                    minRtt: rtts.min() ?? 0, meanRtt: rtts.isEmpty ? 0 : rtts.reduce(0, +) / rtts.count, sender: sender)
                let receiverSide = JSON.Sum(socket: s.id, start: 0, end: s.receiver.seconds, seconds: s.receiver.seconds,
                                            bytes: s.receiver.bytes, bitsPerSecond: s.receiver.bitsPerSecond,
                                            retransmits: nil, omitted: nil, sender: sender)
                return JSON.EndStream(sender: senderSide, receiver: receiverSide)
            }
            let local = summary.local, remote = summary.remote
            let ours = client.congestionAlgorithm.rawValue
            let theirs = remote.congestionUsed
            end = JSON.End(
                streams: streams, sumSent: sum(summary.sent, retransmits: true),
                sumReceived: sum(summary.received, retransmits: false),
                cpuUtilizationPercent: JSON.CPU(hostTotal: local.cpuUtilTotal, hostUser: local.cpuUtilUser,
                                                hostSystem: local.cpuUtilSystem, remoteTotal: remote.cpuUtilTotal,
                                                remoteUser: remote.cpuUtilUser, remoteSystem: remote.cpuUtilSystem),
                senderTcpCongestion: reverse ? theirs : ours, receiverTcpCongestion: reverse ? ours : theirs)
        }
        let document = JSON.Document(start: start, intervals: intervals, end: end, error: error)
        let encoder = JSONEncoder()
        // Foundation does not keep declaration order; sorted keys at least keep runs comparable.
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        guard let data = try? encoder.encode(document) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    static func microseconds(_ d: Duration) -> Int { Int(d.nanoseconds / 1000) }

    /// iperf3 -J's objects, in its key order (camelCase here, snake_case out).
    enum JSON {
        struct Document: Encodable {
            var start: Start
            var intervals: [Interval]
            var end: End?
            var error: String?

            enum CodingKeys: String, CodingKey { case start, intervals, end, error }

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(start, forKey: .start)
                try c.encode(intervals, forKey: .intervals)
                // A failed test has an empty end, as iperf3's.
                if let end { try c.encode(end, forKey: .end) } else { try c.encode([String: Int](), forKey: .end) }
                try c.encodeIfPresent(error, forKey: .error)
            }
        }

        struct Connected: Encodable {
            var socket: Int
            var localHost: String
            var localPort: Int
            var remoteHost: String
            var remotePort: Int
        }

        struct Timestamp: Encodable {
            var time: String
            var timesecs: Int
        }

        struct ConnectingTo: Encodable {
            var host: String
            var port: Int
        }

        struct TestStart: Encodable {
            var `protocol` = "TCP"
            var numStreams: Int
            var blksize: Int
            var omit = 0
            var duration: Int
            var bytes = 0
            var blocks = 0
            var reverse: Int
            var tos = 0
            var targetBitrate = 0
        }

        struct Start: Encodable {
            var connected: [Connected]
            var version: String
            var systemInfo: String
            var timestamp: Timestamp
            var connectingTo: ConnectingTo
            var cookie: String
            var tcpMssDefault: Int
            var targetBitrate = 0
            var sockBufsize: Int
            var testStart: TestStart
        }

        struct IntervalStream: Encodable {
            var socket: Int
            var start: Double
            var end: Double
            var seconds: Double
            var bytes: UInt64
            var bitsPerSecond: Double
            var retransmits: UInt64?
            var sndCwnd: Int?
            var sndWnd: Int?
            var rtt: Int?
            var rttvar: Int?
            var pmtu: Int?
            var omitted = false
            var sender: Bool
        }

        struct Sum: Encodable {
            var socket: Int?
            var start: Double
            var end: Double
            var seconds: Double
            var bytes: UInt64
            var bitsPerSecond: Double
            var retransmits: Int64?
            var omitted: Bool?
            var sender: Bool
        }

        struct Interval: Encodable {
            var streams: [IntervalStream]
            var sum: Sum
        }

        struct SenderStream: Encodable {
            var socket: Int
            var start: Double
            var end: Double
            var seconds: Double
            var bytes: UInt64
            var bitsPerSecond: Double
            var retransmits: Int64
            var maxSndCwnd: Int
            var maxSndWnd: Int
            var maxRtt: Int
            var minRtt: Int
            var meanRtt: Int
            var sender: Bool
        }

        struct EndStream: Encodable {
            var sender: SenderStream
            var receiver: Sum
        }

        struct CPU: Encodable {
            var hostTotal: Double
            var hostUser: Double
            var hostSystem: Double
            var remoteTotal: Double
            var remoteUser: Double
            var remoteSystem: Double
        }

        struct End: Encodable {
            var streams: [EndStream]
            var sumSent: Sum
            var sumReceived: Sum
            var cpuUtilizationPercent: CPU
            var senderTcpCongestion: String?
            var receiverTcpCongestion: String?
        }
    }
}
