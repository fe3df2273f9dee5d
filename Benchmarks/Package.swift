// swift-tools-version: 6.1
// Micro-benchmarks for NetStack (package-benchmark). A separate package so the
// root package's own release build stays fast: package-benchmark and its
// dependencies add about a minute to a clean build.
//
//   cd Benchmarks && swift package --disable-sandbox benchmark
//
// See README.md for what each suite measures and how to read the tables.
import PackageDescription

let package = Package(
    name: "NetStackBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "NetStack", path: ".."),
        // The traits argument is required: the default traits add RuntimeInterposer,
        // whose swift-runtime-interposer dependency is not in the package mirror, so
        // resolution fails without it. MallocInterposer is what counts mallocs.
        // (The package's old URL, .../package-benchmark, works too but warns.)
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1",
                 traits: ["MallocInterposer"]),
    ],
    targets: []
)

/// One executable per suite, under Benchmarks/<Name>/<Name>.swift, as the
/// benchmark plugin expects.
func benchmark(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name,
        dependencies: [.product(name: "Benchmark", package: "benchmark")] + dependencies,
        path: "Benchmarks/\(name)",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}

package.targets += [
    benchmark("Checksum", [.product(name: "NetStackWire", package: "NetStack")]),
    benchmark("Parse", [.product(name: "NetStackWire", package: "NetStack")]),
    benchmark("TCPTransfer", [
        .product(name: "NetStack", package: "NetStack"),
        .product(name: "NetStackWire", package: "NetStack"),
    ]),
    benchmark("TimerWheel", [.product(name: "NetStack", package: "NetStack")]),
    benchmark("Interface", [
        .product(name: "NetStack", package: "NetStack"),
        .product(name: "NetStackApps", package: "NetStack"),
        .product(name: "NetStackWire", package: "NetStack"),
    ]),
]
