// swift-tools-version: 6.1
import PackageDescription

/// Release builds of the stack's modules skip Swift's run-time exclusivity
/// checks: every access to a stored property of a class costs one
/// (`swift_beginAccess`, a thread-local access set), and without them
/// memory-bulk moved 4.96 -> 7.95 Gbit/s and tcp-rr 64 k -> 70 k per second
/// (`netstack bench --rounds 3 --duration 3`, 2 runs each); in the socket
/// API's server they were 7% of the loop's samples in tcp-rr through the
/// library (`swift_beginAccess` and the `__tls_get_addr` it calls, first
/// touched after each switch from the application). It is safe because everything of one stack
/// runs on its loop's thread (no two threads touch a stack's objects), and
/// overlapping accesses on that thread are programming errors that debug
/// builds, which run every test, still trap on.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "NetStack",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "NetStackWire", targets: ["NetStackWire"]),
        .library(name: "NetStack", targets: ["NetStack"]),
        .library(name: "NetStackApps", targets: ["NetStackApps"]),
        .library(name: "NetStackSockets", targets: ["NetStackSockets"]),
        /// The LD_PRELOAD library `netstack run` puts under unmodified applications.
        .library(name: "NetStackPreload", type: .dynamic, targets: ["CNetStackPreload"]),
        .executable(name: "netstack", targets: ["netstack"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        .target(
            name: "CURing",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        .target(name: "NetStackWire", swiftSettings: hotPathSettings),
        .target(
            name: "NetStack",
            dependencies: [
                "NetStackWire", "CURing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(name: "NetStackApps", dependencies: ["NetStack", "NetStackWire"]),
        /// The layout and system calls the stack and the preload library share.
        .target(name: "CNetStackABI", cSettings: [.unsafeFlags(["-fvisibility=hidden"])]),
        .target(name: "NetStackSockets", dependencies: ["NetStack", "NetStackWire", "CNetStackABI"],
                swiftSettings: hotPathSettings),
        .target(name: "CNetStackPreload", dependencies: ["CNetStackABI"],
                cSettings: [.define("_GNU_SOURCE"), .unsafeFlags(["-fvisibility=hidden"])], linkerSettings: [.linkedLibrary("dl")]),
        .executableTarget(
            name: "netstack",
            dependencies: [
                "NetStack", "NetStackApps", "NetStackWire", "NetStackSockets",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "NetStackWireTests", dependencies: ["NetStackWire"], exclude: ["Captures"]),
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
        .testTarget(
            name: "NetStackTests",
            dependencies: ["NetStack", "NetStackWire", "NetStackApps", "NetStackSockets", "CNetStackABI",
                           "AllocationCounter"],
            exclude: ["Snapshots"]
        ),
    ]
)
