// The fuzz driver without libFuzzer or sanitizers: the corpus first, then
// inputs made by a seeded generator (corpus entries mutated, spliced, or
// random bytes), until a time or frame budget runs out. Same seed, same
// inputs, so a failure here reproduces with the seed it prints.
//
//   fuzz-loop [--seconds S] [--frames N] [--seed N] [--save-failing DIR] [corpus-dir ...]
import FuzzRig
import Foundation
import NetStack

var seconds = 20.0
var frameBudget = Int.max
var seed: UInt64 = 1
var corpusDirs: [String] = []
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let a = arguments.next() {
    switch a {
    case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
    case "--frames": frameBudget = Int(arguments.next() ?? "") ?? frameBudget
    case "--seed": seed = UInt64(arguments.next() ?? "") ?? seed
    case "--show-setup":
        for (k, v) in try FuzzDriver.setupReport() { print(k, v) }
        exit(0)
    case "-h", "--help":
        print("usage: fuzz-loop [--seconds S] [--frames N] [--seed N] [corpus-dir ...]")
        exit(0)
    default: corpusDirs.append(a)
    }
}

/// Lends every array's bytes at once.
@MainActor func withUnsafeBytesOfAll(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> Void) {
    var buffers: [UnsafeRawBufferPointer] = []
    func nest(_ i: Int) {
        guard i < arrays.count else { return body(buffers) }
        arrays[i].withUnsafeBytes { b in
            buffers.append(b)
            nest(i + 1)
        }
    }
    nest(0)
}

/// The fault injector's seeded generator picks the mutations too.
extension Xoshiro256StarStar {
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

var corpus: [[UInt8]] = []
for dir in corpusDirs {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? []
    for f in files {
        if let d = FileManager.default.contents(atPath: dir + "/" + f) { corpus.append([UInt8](d)) }
    }
}

var driver = FuzzDriver()
var rng = Xoshiro256StarStar(seed: seed)
let start = Date()
@MainActor func run(_ input: [UInt8]) {
    input.withUnsafeBytes { bytes in driver.run(bytes) }
}
for input in corpus { run(input) }
let corpusInputs = driver.inputs
/// A corpus program with a few mutations: bytes flipped, inserted or
/// removed, another program's tail spliced in.
@MainActor func mutated() -> [UInt8] {
    var input = corpus[rng.below(corpus.count)]
    for _ in 0..<(1 + rng.below(8)) {
        switch rng.below(5) {
        case 0, 1: if !input.isEmpty { input[rng.below(input.count)] ^= rng.byte() | 1 }
        case 2: input.insert(rng.byte(), at: rng.below(input.count + 1))
        case 3: if !input.isEmpty { input.remove(at: rng.below(input.count)) }
        default:
            let other = corpus[rng.below(corpus.count)]
            let cut = rng.below(input.count + 1), from = rng.below(other.count + 1)
            input = Array(input[..<cut]) + Array(other[from...])
        }
    }
    return input
}
while Date().timeIntervalSince(start) < seconds, driver.frames < frameBudget {
    // Mostly many mutated corpus programs against one rig; sometimes random bytes.
    var programs: [[UInt8]] = []
    for _ in 0..<(1 + rng.below(64)) {
        if !corpus.isEmpty, rng.below(8) != 0 {
            programs.append(mutated())
        } else {
            programs.append((0..<(8 + rng.below(512))).map { _ in rng.byte() })
        }
    }
    withUnsafeBytesOfAll(programs) { driver.run(programs: $0) }
}
let elapsed = Date().timeIntervalSince(start)
print("fuzz-loop: seed \(seed), \(driver.inputs) inputs (\(corpusInputs) from the corpus) on \(driver.rigs) rigs, "
      + "\(driver.frames) frames in, \(driver.framesOut) frames out, "
      + String(format: "%.1f s, %.0f frames/s, ", elapsed, Double(driver.frames) / elapsed)
      + "0 findings (every slot back once after every input)")
