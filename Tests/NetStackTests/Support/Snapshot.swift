import Foundation
import Testing

/// Text a test renders, checked against a file committed beside the tests
/// (insta's snapshot testing, smoltcp's netsim uses it): any change in what is
/// rendered fails the test with a line diff, and running with the update
/// variable set to 1 rewrites the file instead, so the change is reviewed as a
/// diff in the commit.
enum Snapshot {
    /// `Tests/NetStackTests/Snapshots/<name>`, found from this source file, so
    /// the snapshot is not a resource of the test target.
    static func url(named name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // NetStackTests
            .appendingPathComponent("Snapshots").appendingPathComponent(name)
    }

    /// Records an issue with a diff when `actual` differs from the file at `url`,
    /// or rewrites the file when the environment variable `update` is 1.
    static func check(_ actual: String, against url: URL, update: String,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        if ProcessInfo.processInfo.environment[update] == "1" {
            do {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                        withIntermediateDirectories: true)
                try actual.write(to: url, atomically: true, encoding: .utf8)
                print("wrote snapshot \(url.path)")
            } catch {
                Issue.record("cannot write snapshot \(url.path): \(error)", sourceLocation: sourceLocation)
            }
            return
        }
        guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
            Issue.record("no snapshot at \(url.path); run with \(update)=1 to write it",
                         sourceLocation: sourceLocation)
            return
        }
        guard expected != actual else { return }
        Issue.record("""
            output differs from the snapshot \(url.lastPathComponent) (- snapshot, + now); \
            if the change is intended, run with \(update)=1 and commit the file
            \(lineDiff(from: expected, to: actual))
            """, sourceLocation: sourceLocation)
    }

    /// A line diff (longest common subsequence), changed lines marked `-`/`+`,
    /// with `context` unchanged lines around each change and `…` for the rest.
    static func lineDiff(from old: String, to new: String, context: Int = 2) -> String {
        let a = old.split(separator: "\n", omittingEmptySubsequences: false)
        let b = new.split(separator: "\n", omittingEmptySubsequences: false)
        // lcs[i][j]: longest common subsequence of a[i...] and b[j...].
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var ops: [(Character, Substring)] = []
        var i = 0, j = 0
        while i < a.count || j < b.count {
            if i < a.count && j < b.count && a[i] == b[j] {
                ops.append((" ", a[i])); i += 1; j += 1
            } else if i < a.count && (j == b.count || lcs[i + 1][j] >= lcs[i][j + 1]) {
                ops.append(("-", a[i])); i += 1
            } else {
                ops.append(("+", b[j])); j += 1
            }
        }
        let changed = ops.indices.filter { ops[$0].0 != " " }
        var out: [String] = []
        var lastShown = -1
        var heading: Substring?
        for k in ops.indices {
            let near = changed.contains { abs($0 - k) <= context }
            guard near else {
                if ops[k].1.hasPrefix("#") { heading = ops[k].1 }
                continue
            }
            // Skipped lines: say which section the next hunk is in.
            if k > lastShown + 1 { out.append(heading.map { "… \($0)" } ?? "…") }
            if ops[k].1.hasPrefix("#") { heading = ops[k].1 }
            out.append("\(ops[k].0) \(ops[k].1)")
            lastShown = k
        }
        if lastShown < ops.count - 1 { out.append("…") }
        return out.joined(separator: "\n")
    }
}
