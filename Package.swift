// swift-tools-version:6.0
// Sluice: a Kafka-compatible log server. Module layout and import rules: docs/ARCHITECTURE.md.
import PackageDescription

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SystemIO", targets: ["SystemIO"]),
        .library(name: "Records", targets: ["Records"]),
        .library(name: "KafkaProtocol", targets: ["KafkaProtocol"]),
        .library(name: "LogStorage", targets: ["LogStorage"]),
        .library(name: "Broker", targets: ["Broker"]),
        .executable(name: "sluice", targets: ["sluice"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
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
        .target(name: "Records", dependencies: ["CSluice", .product(name: "NIOCore", package: "swift-nio")]),
        // Segments, indexes, recovery, retention: Kafka's log format, no knowledge of requests.
        .target(
            name: "LogStorage",
            dependencies: [
                "SystemIO", "Records",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The Kafka wire codec: primitives, headers, frame decoder, and Generated/ (committed
        // output of MessageGenerator over Kafka's JSON schemas).
        .target(
            name: "KafkaProtocol",
            dependencies: ["Records", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // Pure state machines (consumer groups, later producer state and Raft): no I/O, no clock.
        .target(name: "Coordination", dependencies: ["Records"]),
        // Who a client is and what it may do, as values: Kafka's ACL model and the standard
        // authorizer's rules, SCRAM credentials (RFC 5802). No I/O.
        .target(name: "Security", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // The broker: request handlers wired to storage and metadata, and the NIO server.
        .target(
            name: "Broker",
            dependencies: [
                "LogStorage", "KafkaProtocol", "Records", "SystemIO", "Coordination", "Security",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // A small synchronous Kafka client for the CLI tools (admin, produce, fetch, group offsets).
        .target(
            name: "KafkaClient",
            dependencies: ["KafkaProtocol", "Records", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // The executable: `sluice server`, `sluice storage`, CLI tools.
        .executableTarget(
            name: "sluice",
            dependencies: [
                "Broker", "KafkaClient", "LogStorage", "KafkaProtocol", "Records", "SystemIO", "Security",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Reads Kafka's message schemas and writes Sources/KafkaProtocol/Generated.
        .executableTarget(name: "MessageGenerator"),

        .testTarget(name: "SystemIOTests", dependencies: ["SystemIO"]),
        .testTarget(
            name: "RecordsTests",
            dependencies: ["Records"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "ArchitectureTests"),
        .testTarget(name: "LogStorageTests", dependencies: ["LogStorage", "Records", "SystemIO"]),
        .testTarget(name: "CoordinationTests", dependencies: ["Coordination"]),
        .testTarget(name: "SecurityTests", dependencies: ["Security", "Records"]),
        .testTarget(name: "KafkaClientTests", dependencies: ["KafkaClient"]),
        .testTarget(
            name: "BrokerTests",
            dependencies: [
                "Broker", "KafkaProtocol",
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "KafkaProtocolTests",
            dependencies: [
                "KafkaProtocol", "MessageGenerator", "Records",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
