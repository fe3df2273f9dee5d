import Foundation
import Testing
@testable import NetStack
import NetStackWire

/// Two stacks across an emulated link: `LinkEmulator` (bottleneck, drop-tail
/// queue, delay) over a `FaultInjector` (seeded loss on the wire) over a
/// `MemoryLink`, each end emulating its own outgoing direction.
typealias NetsimPair = StackPair<LinkEmulator<FaultInjector<MemoryLink>>>

extension StackPair where D == LinkEmulator<FaultInjector<MemoryLink>> {
    /// `aLoss` applies to A's frames, `bLoss` to B's, after the bottleneck.
    convenience init(link: LinkProfile, aLoss: FaultProfile, bLoss: FaultProfile, seed: UInt64) {
        self.init(wrap: { wire, isA, clock in
            LinkEmulator(wrapping: FaultInjector(wrapping: wire, transmit: isA ? aLoss : bLoss,
                                                 seed: isA ? seed : ~seed, clock: clock),
                         transmit: link, clock: clock)
        })
        otherDeadline = { [unowned self] in
            [a.device.nextReleaseDeadline, b.device.nextReleaseDeadline, a.device.inner.nextReleaseDeadline,
             b.device.inner.nextReleaseDeadline].compactMap { $0 }.min()
        }
        // ARP is resolved beforehand, so only TCP crosses the link and is timed.
        a.arp.update(Self.ipB, mac: b.macAddress, now: now, create: true)
        b.arp.update(Self.ipA, mac: a.macAddress, now: now, create: true)
    }
}

/// smoltcp's netsim test, for this stack: goodput of one bulk transfer across
/// an emulated path, for each loss rate and socket buffer size, rendered as
/// markdown tables and compared with the committed snapshot
/// `Snapshots/netsim.md`. Everything runs on the virtual clock with seeded
/// loss, so the tables are exact: any change to TCP's behaviour (congestion
/// control, loss recovery, timers, windows) that changes a transfer shows as a
/// diff in some cell, and a failure prints the diff.
///
/// To accept a change, regenerate the snapshot and commit it with the change:
/// `Scripts/netsim`, or `NETSIM_UPDATE=1 swift test --filter Netsim`.
///
/// Besides the snapshot, every cell must deliver its bytes intact (hashed), a
/// goodput above what the link can carry fails, and the emulator must have
/// been big enough never to drop for want of room. A cell that does not finish
/// by its virtual deadline shows as "stalled" with how much arrived.
@Suite struct NetsimTests {
    /// 10 ms round trip, 100 Mbit/s, a queue of one bandwidth-delay product.
    static let rtt: Duration = .milliseconds(10)
    static let bitsPerSecond = 100_000_000
    static let queueLimitBytes = LinkProfile.bandwidthDelayProduct(bitsPerSecond: bitsPerSecond, rtt: rtt)
    static var link: LinkProfile {
        LinkProfile(delay: rtt / 2, bitsPerSecond: bitsPerSecond, queueLimitBytes: queueLimitBytes)
    }
    static let losses: [Double] = [0, 0.005, 0.01, 0.02, 0.05, 0.10]
    static let bufferSizes = [16, 64, 256, 1024].map { $0 * 1024 }
    static let transferSize = 2 << 20
    static let lossSeed: UInt64 = 1
    static let dataSeed: UInt64 = 11
    /// Virtual time a cell may take before it counts as stalled, and rounds of
    /// the event loop before it counts as a livelock (either shows in the table).
    static let cellDeadline: Duration = .seconds(120)
    static let maxRounds = 1_000_000

    /// One table: which directions lose frames, and the TCP settings beyond the defaults.
    struct Table: Sendable {
        let title: String
        let lossOnAcks: Bool
        let configure: @Sendable (inout TCPConfiguration) -> Void
    }

    static let tables = [
        Table(title: "Loss on the data direction, default TCP settings", lossOnAcks: false, configure: { _ in }),
        Table(title: "Loss on the data direction, SACK off", lossOnAcks: false,
              configure: { $0.sackPermitted = false }),
        Table(title: "Loss both ways (data and ACKs), default TCP settings", lossOnAcks: true,
              configure: { _ in }),
    ]

    enum Cell: Equatable {
        case goodput(megabitsPerSecond: Double)
        /// Not finished by the deadline (or livelocked): how much had arrived.
        case stalled(delivered: Int)
    }

    struct CellRun {
        var cell: Cell
        var intact: Bool
        var overflowDrops: UInt64
        var connectionError: Bool
    }

    /// One transfer of `transferSize` bytes from A to B with the given loss and buffers.
    static func run(_ table: Table, loss: Double, buffer: Int) throws -> CellRun {
        let lossProfile = FaultProfile(loss: loss)
        let pair = NetsimPair(link: link, aLoss: lossProfile, bLoss: table.lossOnAcks ? lossProfile : .none,
                              seed: lossSeed)
        var config = TCPConfiguration()
        config.sendBufferSize = buffer
        config.receiveBufferSize = buffer
        table.configure(&config)
        pair.a.tcp.defaultConfiguration = config
        pair.b.tcp.defaultConfiguration = config

        let port: UInt16 = 5001
        let listener = try pair.b.tcp.listen(port: port)
        let start = pair.now
        let client = try pair.a.tcp.connect(to: NetsimPair.ipB, port: port, now: pair.now)
        var server: TCPConnection?
        let transfer = BulkTransfer(length: transferSize, seed: dataSeed)
        let outcome = pair.runEvents(until: { transfer.read == transferSize }, deadline: start + cellDeadline,
                                     maxRounds: maxRounds, app: {
            if server == nil { server = listener.accept() }
            var moved = transfer.pump(into: client)
            pair.a.tcp.flush(client, now: pair.now)
            if let s = server {
                moved = transfer.drain(from: s) || moved
                pair.b.tcp.flush(s, now: pair.now)
            }
            return moved
        })
        let elapsed = pair.now - start
        let seconds = Double(elapsed.nanoseconds) / 1e9
        let cell: Cell = outcome == .finished
            ? .goodput(megabitsPerSecond: Double(transferSize * 8) / seconds / 1e6)
            : .stalled(delivered: transfer.read)
        let overflow = pair.a.device.transmitCounters.overflowDrops + pair.b.device.transmitCounters.overflowDrops
        return CellRun(cell: cell, intact: transfer.receivedHash.value == transfer.sentHash.value,
                       overflowDrops: overflow, connectionError: client.error != nil || server?.error != nil)
    }

    // MARK: Rendering

    static func percent(_ p: Double) -> String {
        let s = String(format: "%g", p * 100)
        return s + "%"
    }

    static func milliseconds(_ d: Duration) -> String {
        String(format: "%g ms", Double(d.nanoseconds) / 1e6)
    }

    static func kib(_ bytes: Int) -> String { "\(bytes / 1024) KiB" }

    static func onOff(_ b: Bool) -> String { b ? "on" : "off" }

    static func render(_ cell: Cell) -> String {
        switch cell {
        case .goodput(let mbps): String(format: "%.2f", mbps)
        case .stalled(let delivered): "stalled (\(delivered * 100 / transferSize)%)"
        }
    }

    /// The payload rate the link could carry at best: every frame a full
    /// 1514-byte segment with no TCP options (1460 bytes of data).
    static var ceilingMegabitsPerSecond: Double { Double(bitsPerSecond) / 1e6 * 1460 / 1514 }

    static func header(_ table: Table) -> String {
        var c = TCPConfiguration()
        table.configure(&c)
        let lossWhere = table.lossOnAcks ? "every frame, both ways" : "A→B frames (data) only, B→A (ACKs) none"
        // The largest segment's payload and frame: MSS 1460 less the timestamp option.
        let payload = 1460 - (c.timestamps ? 12 : 0)
        let peak = String(format: "%.1f", Double(bitsPerSecond) / 1e6 * Double(payload) / 1514)
        return """
            ## \(table.title)

            - Link, each direction: \(milliseconds(rtt / 2)) delay (\(milliseconds(rtt)) RTT), \
            \(bitsPerSecond / 1_000_000) Mbit/s bottleneck, drop-tail queue of \(queueLimitBytes) bytes \
            (1 BDP). Full frames are 1514 bytes with \(payload) of data, so goodput peaks near \(peak) Mbit/s.
            - Loss: \(lossWhere); on the wire after the queue; seeded (xoshiro256**, seed \(lossSeed)).
            - TCP: congestion control \(c.congestionControl), SACK \(onOff(c.sackPermitted)), \
            RACK-TLP \(onOff(c.rackTLP)), timestamps \(onOff(c.timestamps)), window scaling \
            \(onOff(c.windowScaling)), initial RTO \(milliseconds(c.initialRTO)), minimum RTO \
            \(milliseconds(c.minimumRTO)), delayed ACK \(milliseconds(c.delayedAckTimeout)), \
            Nagle \(onOff(!c.noDelay)).
            - Each cell: goodput in Mbit/s of virtual time, \(transferSize >> 20) MiB from A to B, from \
            connect() to the last byte read (handshake and slow start included), send and receive \
            buffers of the row's size at both ends. "stalled (n%)": not done after \
            \(Int(Double(cellDeadline.nanoseconds) / 1e9)) s of virtual time.

            """
    }

    /// Runs every cell of every table and renders the snapshot's text;
    /// records an issue for any cell that broke an invariant.
    static func renderAll(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        var out = """
            # netsim: TCP goodput across an emulated link

            Generated by `Tests/NetStackTests/NetsimTests.swift`; do not edit. Regenerate with \
            `Scripts/netsim` (`NETSIM_UPDATE=1 swift test --filter Netsim`) and review the diff.


            """
        for table in tables {
            out += header(table)
            out += "\n| buffer \\ loss | " + losses.map(percent).joined(separator: " | ") + " |\n"
            out += "|---:|" + String(repeating: "---:|", count: losses.count) + "\n"
            for buffer in bufferSizes {
                var row: [String] = []
                for loss in losses {
                    let r = try run(table, loss: loss, buffer: buffer)
                    let what = "\(table.title), loss \(percent(loss)), buffer \(kib(buffer))"
                    #expect(r.intact, "\(what): data corrupted", sourceLocation: sourceLocation)
                    #expect(!r.connectionError, "\(what): connection failed", sourceLocation: sourceLocation)
                    #expect(r.overflowDrops == 0, "\(what): the emulator's ring overflowed; enlarge it",
                            sourceLocation: sourceLocation)
                    if case .goodput(let mbps) = r.cell {
                        #expect(mbps <= ceilingMegabitsPerSecond, "\(what): \(mbps) Mbit/s beats the link",
                                sourceLocation: sourceLocation)
                    }
                    row.append(render(r.cell))
                }
                out += "| \(kib(buffer)) | " + row.joined(separator: " | ") + " |\n"
            }
            out += "\n"
        }
        return out
    }

    /// The failure message names the table and shows the old and new row.
    @Test func aChangedCellShowsAsALineDiffUnderItsTable() {
        let old = "# t\n\n## A\n\n| 16 KiB | 1.00 |\n| 64 KiB | 2.00 |\n\n## B\n\nx\n| 16 KiB | 1.00 |\n| 64 KiB | 2.00 |\n"
        let new = old.replacingOccurrences(of: "x\n| 16 KiB | 1.00 |", with: "x\n| 16 KiB | 1.50 |")
        #expect(Snapshot.lineDiff(from: old, to: new, context: 1) == """
            … ## B
              x
            - | 16 KiB | 1.00 |
            + | 16 KiB | 1.50 |
              | 64 KiB | 2.00 |
            …
            """)
        #expect(Snapshot.lineDiff(from: "a\nb", to: "a\nb\nc", context: 0) == "…\n+ c")
    }

    @Test func goodputTablesMatchTheSnapshot() throws {
        let text = try Self.renderAll()
        Snapshot.check(text, against: Snapshot.url(named: "netsim.md"), update: "NETSIM_UPDATE")
    }
}
