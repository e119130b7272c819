// swift-tools-version:6.0
// libFuzzer targets. Build and run with `make fuzz` (FUZZ_SECONDS per target, default 60) from
// the project root; `make fuzz-smoke` runs each for a few seconds (part of `make test`).
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name, whatever the clone was called.
let sluice = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
let fuzzFlags: [SwiftSetting] = [.unsafeFlags(["-parse-as-library", "-sanitize=fuzzer,address"])]
let fuzzLink: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]

let package = Package(
    name: "SluiceFuzz",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "FuzzRequest",
            dependencies: [.product(name: "KafkaProtocol", package: sluice), .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: fuzzFlags, linkerSettings: fuzzLink
        ),
        .executableTarget(
            name: "FuzzBroker",
            dependencies: [
                .product(name: "Broker", package: sluice), .product(name: "KafkaProtocol", package: sluice),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fuzzFlags, linkerSettings: fuzzLink
        ),
        .executableTarget(
            name: "FuzzRecordBatch",
            dependencies: [.product(name: "Records", package: sluice), .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: fuzzFlags, linkerSettings: fuzzLink
        ),
    ]
)
