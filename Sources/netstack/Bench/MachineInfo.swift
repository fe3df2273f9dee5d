import Foundation
import NetStackApps

/// What the bench ran on, for the report: the CPU and core count, the
/// kernel (the other system under test), the Swift toolchain and the build.
enum MachineInfo {
    static func collect() -> BenchMachine {
        BenchMachine(cpu: cpuModel(), cores: ProcessInfo.processInfo.activeProcessorCount, kernel: kernelRelease(),
                     swift: swiftVersion(), date: ISO8601DateFormatter().string(from: Date()), build: build)
    }

    /// The CPUs this process may run on (its `Cpus_allowed_list`, which a
    /// taskset or cpuset around the bench narrows), else every online one.
    static func allowedCPUs() -> [Int] {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let cpus = CPUList.allowed(fromStatus: status), !cpus.isEmpty {
            return cpus
        }
        return Array(0..<ProcessInfo.processInfo.activeProcessorCount)
    }

    static var build: String {
        #if DEBUG
        "debug"
        #else
        "release"
        #endif
    }

    static func cpuModel() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }

    static func kernelRelease() -> String {
        var u = utsname()
        guard uname(&u) == 0 else { return "unknown" }
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "Linux " + release
    }

    /// The toolchain's own words (`swift --version`), else the compiler this
    /// binary was built with.
    static func swiftVersion() -> String {
        for swift in ["swift", "/opt/swift/usr/bin/swift"] {
            let r = Shell.run([swift, "--version"], timeout: 10)
            if r.status == 0, let line = r.output.split(separator: "\n").first(where: { $0.contains("Swift version") }) {
                return line.trimmingCharacters(in: .whitespaces)
            }
        }
        #if compiler(>=6.3)
        return "Swift 6.3 or later (compiler)"
        #else
        return "Swift before 6.3 (compiler)"
        #endif
    }
}
