import Foundation
import Testing

/// The dependency direction of docs/ARCHITECTURE.md, checked on the source files themselves:
/// a module may import only the modules listed for it (plus the system and the standard library).
@Suite("Import rules")
struct ImportRulesTests {
    static let system: Set<String> = ["Glibc", "Musl", "Darwin", "Foundation", "FoundationEssentials", "Dispatch", "Synchronization", "_Concurrency"]

    /// Module -> the project and package modules it may import. A module not listed here fails the
    /// test until someone decides where it sits.
    static let allowed: [String: Set<String>] = [
        "SystemIO": ["CSluice", "Logging"],
        "Records": ["CSluice", "NIOCore"],
        "LogStorage": ["SystemIO", "Records", "CSluice", "NIOCore", "NIOConcurrencyHelpers", "Logging", "Metrics", "Atomics", "DequeModule", "Collections"],
        "KafkaProtocol": ["Records", "NIOCore"],
        "Coordination": ["KafkaProtocol", "Records"],
        "Security": ["Crypto"],
        "Broker": ["Foundation", "NIOConcurrencyHelpers", "NIOHTTP1", "LogStorage", "KafkaProtocol", "Coordination", "Security", "Records", "SystemIO", "CSluice", "NIOCore", "NIOPosix",
                   "Logging", "Metrics", "Prometheus", "ServiceLifecycle", "Atomics", "Collections", "DequeModule"],
        "KafkaClient": ["KafkaProtocol", "Records", "NIOCore", "NIOPosix", "Logging"],
        "MessageGenerator": [],
        "sluice": ["Broker", "KafkaClient", "KafkaProtocol", "Security", "LogStorage", "Records", "SystemIO", "ArgumentParser", "Dispatch", "Metrics", "Prometheus",
                   "Logging", "NIOCore", "NIOPosix", "ServiceLifecycle"],
    ]

    static var sourcesDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
    }

    static func imports(in file: URL) throws -> [String] {
        let text = try String(contentsOf: file, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line -> String? in
            var words = line.trimmingCharacters(in: .whitespaces).split(separator: " ").map(String.init)
            while let first = words.first, first.hasPrefix("@") || ["public", "internal", "package", "private", "fileprivate"].contains(first) {
                words.removeFirst()
            }
            guard words.count >= 2, words[0] == "import" else { return nil }
            let target = ["struct", "class", "enum", "func", "protocol", "var", "let", "typealias"].contains(words[1]) && words.count >= 3 ? words[2] : words[1]
            return String(target.split(separator: ".").first ?? "")
        }
    }

    @Test("every module imports only what its layer allows")
    func modulesRespectLayers() throws {
        let fm = FileManager.default
        let modules = try fm.contentsOfDirectory(atPath: Self.sourcesDirectory.path).filter { !$0.hasPrefix(".") }
        #expect(!modules.isEmpty)
        for module in modules {
            guard let allowed = Self.allowed[module] else {
                Issue.record("module \(module) has no entry in the import rules; add one in ImportRulesTests")
                continue
            }
            let root = Self.sourcesDirectory.appendingPathComponent(module)
            let files = fm.enumerator(at: root, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL }
                .filter { $0.pathExtension == "swift" } ?? []
            for file in files {
                for imported in try Self.imports(in: file) where !Self.system.contains(imported) {
                    #expect(allowed.contains(imported),
                            "\(module)/\(file.lastPathComponent) imports \(imported), which its layer does not allow")
                }
            }
        }
    }

    @Test("storage never sees the protocol and the protocol never sees storage or sockets")
    func keyRulesAreInTheTable() {
        #expect(!(Self.allowed["LogStorage"]!.contains("KafkaProtocol")))
        #expect(!(Self.allowed["KafkaProtocol"]!.contains("LogStorage")))
        #expect(!(Self.allowed["KafkaProtocol"]!.contains("NIOPosix")))
        #expect(!(Self.allowed["Coordination"]!.contains("SystemIO")))
        #expect(!(Self.allowed["Records"]!.contains("SystemIO")))
    }

    @Test("the import scanner sees the imports it must police")
    func scannerFindsImports() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("import-probe-\(getpid()).swift")
        try "import Foundation\n@_exported import KafkaProtocol\n  public import struct NIOCore.ByteBuffer\nlet importer = 1\n"
            .write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try Self.imports(in: file) == ["Foundation", "KafkaProtocol", "NIOCore"])
    }
}
