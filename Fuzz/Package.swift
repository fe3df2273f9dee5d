// swift-tools-version: 6.1
// Fuzzing a whole Interface. A separate package, as Benchmarks/ is, so the
// root package's build and tests do not carry it.
//
//   fuzz-interface  libFuzzer entry point; build it with the fuzzer and ASan:
//     swift build --package-path Fuzz --product fuzz-interface \
//       -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
//   fuzz-loop       the same driver fed by a seeded generator, no sanitizers
//                   (Scripts/test runs it for a bounded time).
//
// See README.md here for the input format, the checks and the commands.
import PackageDescription

let package = Package(
    name: "NetStackFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "NetStack", path: ".."),
        // Already NetStack's; named so the rig can give its interface a logger that discards.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(
            name: "FuzzRig",
            dependencies: [
                .product(name: "NetStack", package: "NetStack"),
                .product(name: "NetStackApps", package: "NetStack"),
                .product(name: "NetStackWire", package: "NetStack"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // No main: libFuzzer supplies it.
        .executableTarget(name: "fuzz-interface", dependencies: ["FuzzRig"]),
        .executableTarget(name: "fuzz-loop", dependencies: ["FuzzRig", .product(name: "NetStack", package: "NetStack")]),
    ]
)
