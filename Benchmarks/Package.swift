// swift-tools-version:6.1
// Sluice microbenchmarks (package-benchmark). Run: `make bench` from the project root, or
// `swift package --disable-sandbox benchmark` here. Reports time, throughput and malloc counts.
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name, which is whatever the clone was called.
let sluice = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "SluiceBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Records", package: sluice),
                .product(name: "SystemIO", package: sluice),
            ],
            path: "Benchmarks/CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
