import Foundation
import NIOCore
import Testing
@testable import KafkaProtocol
@testable import MessageGenerator

@Suite("Generated codec")
struct GeneratedRoundTripTests {
    @Test("every message and struct round-trips in every version it defines")
    func everyMessageEveryVersion() {
        var generator = ArbitraryGenerator(seed: 0xC0DEC)
        var checked = 0
        for entry in allGeneratedTypes {
            for version in entry.versions {
                for _ in 0..<6 {
                    let outcome = entry.roundTrip(version, &generator)
                    checked += 1
                    if let failure = outcome.failure {
                        Issue.record("\(entry.name) v\(version): \(failure)")
                        return
                    }
                }
            }
        }
        #expect(checked > 2000)
        #expect(allGeneratedTypes.count > 200)
    }

    static let schemaRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/kafka-protocol")

    static var schemasPresent: Bool {
        FileManager.default.fileExists(atPath: schemaRoot.appendingPathComponent("messages/ProduceRequest.json").path)
    }

    @Test("the committed Generated/ files are exactly what the generator writes",
          .enabled(if: schemasPresent, "needs Kafka's schemas in ../shared/kafka-protocol, which only the development checkout has"))
    func generatedFilesAreCurrent() throws {
        let (library, tests) = try Generator.generateAll(schemaRoot: Self.schemaRoot)
        let project = Self.schemaRoot.deletingLastPathComponent().deletingLastPathComponent()
        // ../shared sits beside the project directory, whatever that directory is called.
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        _ = project
        for (files, dir) in [(library, here.appendingPathComponent("Sources/KafkaProtocol/Generated")),
                             (tests, here.appendingPathComponent("Tests/KafkaProtocolTests/Generated"))] {
            let committed = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".swift") })
            #expect(committed == Set(files.keys), "file set differs in \(dir.lastPathComponent); run `make generate`")
            for (name, text) in files {
                let onDisk = try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
                #expect(onDisk == text, "\(name) is stale; run `make generate`")
            }
        }
    }

    @Test("generation is deterministic", .enabled(if: schemasPresent, "needs ../shared/kafka-protocol"))
    func deterministic() throws {
        let a = try Generator.generateAll(schemaRoot: Self.schemaRoot)
        let b = try Generator.generateAll(schemaRoot: Self.schemaRoot)
        #expect(a.library == b.library)
        #expect(a.tests == b.tests)
    }
}
