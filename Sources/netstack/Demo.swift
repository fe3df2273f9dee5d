import ArgumentParser
import Foundation

/// `netstack demo`: a self-contained tour. It makes its own network namespace,
/// brings the stack up inside it, and has the kernel ping it and exchange UDP
/// with it, printing what it saw. Needs root (namespaces and TAP devices).
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Demonstrate the stack in a private network namespace.",
        discussion: """
            Makes its own network namespace, runs `netstack up` on a TAP device inside \
            it, and has the kernel ping the stack, echo UDP and TCP through it (nc, \
            Python) and curl its HTTP server, printing what each saw. Needs root; the \
            namespace is deleted at the end.
            """
    )

    func run() throws {
        guard geteuid() == 0 else {
            print("netstack demo needs root: it creates a network namespace and a TAP device.")
            throw ExitCode(1)
        }
        let ns = "netstack-demo-\(getpid())"
        let stackIP = "10.0.0.2"
        section("Creating network namespace \(ns)")
        guard Shell.run(["ip", "netns", "add", ns]).status == 0 else {
            print("cannot create namespace \(ns)")
            throw ExitCode(1)
        }
        defer {
            Shell.run(["ip", "netns", "del", ns])
            print("\nRemoved namespace \(ns).")
        }
        Shell.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])

        section("Starting: netstack up --tap tap0 --host 10.0.0.1/24 --address \(stackIP) --serve \(Self.services)")
        let stack = Process()
        stack.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        stack.arguments = ["ip", "netns", "exec", ns, Shell.selfPath, "up", "--tap", "tap0",
                           "--host", "10.0.0.1/24", "--address", stackIP, "--serve", Self.services]
        let out = Pipe()
        stack.standardOutput = out
        try stack.run()
        let lines = LineReader(out.fileHandleForReading)
        guard let ready = lines.next(timeout: 15), ready.hasPrefix("ready") else {
            print("the stack did not come up")
            stack.terminate()
            throw ExitCode(1)
        }
        print(ready)
        var failures = 0

        section("Kernel pings the stack: ping -c 5 \(stackIP)")
        let ping = Shell.run(["ip", "netns", "exec", ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", stackIP])
        print(ping.output.trimmingCharacters(in: .whitespacesAndNewlines))
        if ping.status != 0 { failures += 1 }

        section("Fragmented ping: ping -c 3 -s 4000 \(stackIP) (each way as 3 IP fragments)")
        let big = Shell.run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "4000", stackIP])
        print(big.output.trimmingCharacters(in: .whitespacesAndNewlines))
        if big.status != 0 { failures += 1 }

        section("UDP echo from Python: datagrams of 1, 100, 1472 and 3000 bytes to \(stackIP):7, then port 9 (closed)")
        let udp = Shell.run(["ip", "netns", "exec", ns, "python3", "-c", Self.udpProbe, stackIP])
        print(udp.output.trimmingCharacters(in: .newlines))
        if udp.status != 0 { failures += 1 }

        section("TCP echo with nc: printf 'hello over TCP' | nc -N \(stackIP) 7")
        let nc = Shell.run(["ip", "netns", "exec", ns, "sh", "-c", "printf 'hello over TCP' | nc -N -w 5 \(stackIP) 7"])
        print("  sent 'hello over TCP', got back '\(nc.output)'")
        if nc.output != "hello over TCP" { failures += 1 }

        section("TCP echo of 1 MiB from Python, sending and receiving at once, compared by SHA-256")
        let tcp = Shell.run(["ip", "netns", "exec", ns, "python3", "-c", Self.tcpProbe, stackIP])
        print(tcp.output.trimmingCharacters(in: .newlines))
        if tcp.status != 0 { failures += 1 }

        section("HTTP: curl http://\(stackIP)/bytes/1048576 (byte i is i % 251), checked byte by byte")
        let body = FileManager.default.temporaryDirectory.appendingPathComponent("netstack-demo-\(getpid()).bin").path
        defer { try? FileManager.default.removeItem(atPath: body) }
        let curl = Shell.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", body, "-w",
                              "%{http_code} %{size_download} %{time_total}", "http://\(stackIP)/bytes/1048576"])
        let fields = curl.output.split(separator: " ")
        let exact = Self.isBytesPattern(atPath: body, count: 1 << 20)
        if fields.count == 3 {
            print("  HTTP \(fields[0]), \(fields[1]) bytes in \(fields[2]) s, every byte as expected: \(exact)")
        } else {
            print("  curl failed: \(curl.output)")
        }
        if curl.status != 0 || !exact { failures += 1 }

        section("Stopping the stack (SIGINT); its counters:")
        kill(stack.processIdentifier, SIGINT)
        // `ip netns exec` execs the stack, so the signal reaches it directly.
        while let line = lines.next(timeout: 10) { print("  " + line) }
        stack.waitUntilExit()
        print(failures == 0 ? "\nDemo finished: every exchange succeeded." : "\nDemo finished with \(failures) failed step(s).")
        if failures > 0 { throw ExitCode(1) }
    }

    private func section(_ title: String) {
        print("\n== \(title)")
    }

    /// True if the file holds exactly `count` bytes with byte i == i % 251.
    static func isBytesPattern(atPath path: String, count: Int) -> Bool {
        guard let data = FileManager.default.contents(atPath: path), data.count == count else { return false }
        var i = 0
        for b in data {
            if b != UInt8(i % 251) { return false }
            i += 1
        }
        return true
    }

    static let services = "echo:7,discard:9,chargen:19,http:80"

    /// Kernel-side TCP client: 1 MiB through the stack's echo service.
    static let tcpProbe = #"""
import hashlib, os, socket, sys, threading, time
ip = sys.argv[1]
data = os.urandom(1 << 20)
s = socket.create_connection((ip, 7), timeout=10)
got = bytearray()
def reader():
    while True:
        b = s.recv(65536)
        if not b: break
        got.extend(b)
t = threading.Thread(target=reader); t.start()
start = time.time()
s.sendall(data); s.shutdown(socket.SHUT_WR)
t.join(20)
same = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
print(f"  {len(data)} bytes sent, {len(got)} received in {time.time() - start:.2f} s, identical: {same}")
s.close()
sys.exit(0 if same else 1)
"""#

    /// Kernel-side UDP client: echoes through the stack and checks the bytes,
    /// then shows ICMP port unreachable as a refused connection.
    static let udpProbe = #"""
import os, socket, sys
ip = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((ip, 7))
ok = True
for n in (1, 100, 1472, 3000):
    data = os.urandom(n)
    s.send(data)
    back = s.recv(65535)
    same = back == data
    ok = ok and same
    print(f"  {n:5d} bytes sent, {len(back):5d} received, identical: {same}")
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(2)
c.connect((ip, 9))
c.send(b"anyone there?")
try:
    c.recv(100)
    print("  port 9: unexpected answer"); ok = False
except ConnectionRefusedError:
    print("  port 9: ConnectionRefusedError (the stack sent ICMP port unreachable)")
except socket.timeout:
    print("  port 9: no answer"); ok = False
sys.exit(0 if ok else 1)
"""#
}

/// Reads lines from a pipe with a timeout per line.
final class LineReader: @unchecked Sendable {
    private let handle: FileHandle
    private var buffer = Data()
    private var eof = false

    init(_ handle: FileHandle) { self.handle = handle }

    func next(timeout: TimeInterval) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let i = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<i], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...i)
                return line
            }
            if eof || Date() >= deadline { return nil }
            var pfd = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard poll(&pfd, 1, ms) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(handle.fileDescriptor, &chunk, chunk.count)
            if n <= 0 { eof = true } else { buffer.append(contentsOf: chunk[0..<n]) }
        }
    }
}
