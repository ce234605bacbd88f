// swift-tools-version: 6.1
// The hot-path benchmarks of saslgate (docs/BENCHMARKS.md): a package of its own, so the main build,
// `swift test` and CI need nothing of ordo-one/benchmark. Run with `scripts/bench-hotpaths`.
import PackageDescription

let package = Package(
    name: "saslgate-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "saslgate", path: ".."),
        // Only the malloc interposer: the runtime-interposer trait (ARC counts on Swift 6.3/Linux) needs a
        // package this machine does not have, and the hot paths are judged by mallocs, not retains.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
    ],
    targets: [
        .executableTarget(
            name: "HotPaths",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "AuthCore", package: "saslgate"),
                .product(name: "AuthProtocol", package: "saslgate"),
                .product(name: "SASL", package: "saslgate"),
                .product(name: "AuthConfig", package: "saslgate"),
                .product(name: "Passdb", package: "saslgate"),
                .product(name: "AuthEngine", package: "saslgate"),
                .product(name: "AuthServer", package: "saslgate"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/HotPaths",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
