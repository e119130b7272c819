import Foundation
import NIOCore
import Testing
@testable import KafkaProtocol

/// Frames captured from kcat (librdkafka 2.0.2), confluent-kafka (librdkafka 2.16),
/// kafka-python and aiokafka through Tests/Interop/capture/capture.sh. Requests must decode and
/// re-encode to the same bytes; responses (from the broker used for capture) must decode fully.
@Suite("Golden bytes from real clients")
struct GoldenBytesTests {
    struct Capture: CustomTestStringConvertible, Sendable {
        let client: String
        let file: String
        let apiKey: Int16
        let version: Int16
        var testDescription: String { "\(client)/\(file)" }
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/golden")

    static var captures: [Capture] {
        var out: [Capture] = []
        let fm = FileManager.default
        for client in (try? fm.contentsOfDirectory(atPath: root.path).sorted()) ?? [] {
            for file in (try? fm.contentsOfDirectory(atPath: root.appendingPathComponent(client).path).sorted()) ?? []
            where file.hasSuffix(".req") {
                let parts = file.dropLast(4).split(separator: "-")
                guard parts.count == 3, let key = Int16(parts[0]), let version = Int16(parts[1].dropFirst()) else { continue }
                out.append(Capture(client: client, file: String(file.dropLast(4)), apiKey: key, version: version))
            }
        }
        return out
    }

    static func bytes(_ c: Capture, _ ext: String) -> [UInt8]? {
        (try? Data(contentsOf: root.appendingPathComponent(c.client).appendingPathComponent(c.file + ext))).map { [UInt8]($0) }
    }

    @Test("there are captures from all four clients")
    func capturesExist() {
        #expect(Set(Self.captures.map(\.client)) == ["kcat", "confluent", "kafka-python", "aiokafka"])
        #expect(Self.captures.count > 40)
    }

    @Test("requests decode and re-encode byte for byte", arguments: captures)
    func request(_ c: Capture) throws {
        let original = try #require(Self.bytes(c, ".req"))
        guard let key = ApiKey(rawValue: c.apiKey), key.schemaVersions.contains(c.version) else {
            // e.g. ApiVersions newer than the schemas: only the header must be readable.
            var frame = ByteBuffer(bytes: original)
            let header = try KafkaHeaders.decodeRequestHeader(from: &frame)
            #expect(header.requestApiKey == c.apiKey)
            return
        }
        var frame = ByteBuffer(bytes: original)
        let header = try KafkaHeaders.decodeRequestHeader(from: &frame)
        #expect(header.requestApiKey == c.apiKey && header.requestApiVersion == c.version)
        let body = try key.requestType.decode(from: &frame, version: c.version)
        #expect(frame.readableBytes == 0, "\(frame.readableBytes) bytes not consumed")
        var again = ByteBuffer()
        header.encode(into: &again, version: KafkaHeaders.requestHeaderVersion(apiKey: c.apiKey, apiVersion: c.version))
        body.encode(into: &again, version: c.version)
        #expect(Array(again.readableBytesView) == original)
    }

    @Test("responses decode completely", arguments: captures.filter { bytes($0, ".resp") != nil })
    func response(_ c: Capture) throws {
        let original = try #require(Self.bytes(c, ".resp"))
        var frame = ByteBuffer(bytes: original)
        let headerVersion = KafkaHeaders.responseHeaderVersion(apiKey: c.apiKey, apiVersion: c.version)
        let header = try ResponseHeader.decode(from: &frame, version: headerVersion)
        guard let key = ApiKey(rawValue: c.apiKey) else { return }
        // A downgraded ApiVersions answer is the v0 fallback body, whatever the request version.
        let version = c.apiKey == 18 && !key.schemaVersions.contains(c.version) ? 0 : c.version
        let body = try key.responseType.decode(from: &frame, version: version)
        #expect(frame.readableBytes == 0, "\(frame.readableBytes) bytes not consumed")
        // The capture broker writes some tagged fields at their default values, which Kafka (and
        // we) omit, so the check here is semantic: our encoding decodes to the same value.
        let same = reencodesToSameValue(body, version: version)
        #expect(same)
    }

    func reencodesToSameValue<M: KafkaMessage>(_ value: M, version: Int16) -> Bool {
        var buffer = value.encoded(version: version)
        guard let back = try? M.decode(from: &buffer, version: version) else { return false }
        return back == value && buffer.readableBytes == 0
    }
}
