// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "NetStack",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "NetStackWire", targets: ["NetStackWire"]),
        .library(name: "NetStack", targets: ["NetStack"]),
        .library(name: "NetStackApps", targets: ["NetStackApps"]),
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
        .target(name: "NetStackWire"),
        .target(
            name: "NetStack",
            dependencies: [
                "NetStackWire", "CURing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(name: "NetStackApps", dependencies: ["NetStack", "NetStackWire"]),
        .executableTarget(
            name: "netstack",
            dependencies: [
                "NetStack", "NetStackApps", "NetStackWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "NetStackWireTests", dependencies: ["NetStackWire"], exclude: ["Captures"]),
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
        .testTarget(
            name: "NetStackTests",
            dependencies: ["NetStack", "NetStackWire", "NetStackApps", "AllocationCounter"],
            exclude: ["Snapshots"]
        ),
    ]
)
