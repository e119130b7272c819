// swift-tools-version:6.0
// Sluice: a Kafka-compatible log server. Module layout and import rules: docs/ARCHITECTURE.md.
import PackageDescription

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SystemIO", targets: ["SystemIO"]),
        .library(name: "Records", targets: ["Records"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // The C shim: io_uring, mmap/fallocate/splice helpers, CRC-32C, compression codecs.
        .target(
            name: "CSluice",
            path: "CSupport/CSluice",
            linkerSettings: [
                .linkedLibrary("uring"),
                .linkedLibrary("lz4"),
                .linkedLibrary("zstd"),
                .linkedLibrary("snappy"),
                .linkedLibrary("z"),
            ]
        ),
        // Errno-typed syscalls, ~Copyable file and mapping owners, the io_uring DiskRing.
        .target(
            name: "SystemIO",
            dependencies: ["CSluice", .product(name: "Logging", package: "swift-log")]
        ),
        // Record batches as they are on the wire and on disk: CRC-32C, compression codecs.
        .target(name: "Records", dependencies: ["CSluice"]),

        .testTarget(name: "SystemIOTests", dependencies: ["SystemIO"]),
        .testTarget(
            name: "RecordsTests",
            dependencies: ["Records"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "ArchitectureTests"),
    ],
    swiftLanguageModes: [.v6]
)
