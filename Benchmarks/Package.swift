// swift-tools-version:6.1
// Sluice microbenchmarks (package-benchmark). Run: `make bench` from the project root, or
// `swift package --disable-sandbox benchmark` here. Reports time, throughput and malloc counts.
import PackageDescription

let package = Package(
    name: "SluiceBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Foundation",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "Records", package: "Sluice"),
                .product(name: "SystemIO", package: "Sluice"),
            ],
            path: "Benchmarks/Foundation",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
