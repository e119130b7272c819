import NIOCore
import NIOEmbedded
import Testing
@testable import KafkaProtocol

@Suite("Frames and headers")
struct FramingTests {
    static func frame(_ body: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: Int32(body.count).bigEndian, Array.init) + body
    }

    @Test("frames fed one byte at a time come out whole, and an incomplete frame moves nothing")
    func dripFeed() throws {
        let bodies: [[UInt8]] = [Array(repeating: 1, count: 8), Array(0..<200), Array(repeating: 9, count: 8)]
        let stream = bodies.flatMap(Self.frame)
        let decoder = FrameDecoder()
        var buffer = ByteBufferAllocator().buffer(capacity: stream.count)
        var frames: [[UInt8]] = []
        for byte in stream {
            buffer.writeInteger(byte)
            let before = buffer.readerIndex
            if let frame = try decoder.nextFrame(from: &buffer) {
                frames.append(Array(frame.readableBytesView))
            } else {
                #expect(buffer.readerIndex == before)
            }
        }
        #expect(frames == bodies)
        #expect(buffer.readableBytes == 0)
    }

    @Test("many frames in one buffer, sliced without copying")
    func manyFrames() throws {
        let bodies = (0..<50).map { i in [UInt8](repeating: UInt8(i), count: 8 + i) }
        var buffer = ByteBufferAllocator().buffer(bytes: bodies.flatMap(Self.frame))
        let decoder = FrameDecoder()
        var count = 0
        while let frame = try decoder.nextFrame(from: &buffer) {
            #expect(Array(frame.readableBytesView) == bodies[count])
            count += 1
        }
        #expect(count == 50)
    }

    @Test("hostile sizes are refused before anything is allocated",
          arguments: [Int32(-1), 0, 7, Int32.max, Int32(FrameDecoder.requestBytesMaxDefault + 1)])
    func hostileSizes(size: Int32) {
        var buffer = ByteBufferAllocator().buffer(capacity: 8)
        buffer.writeInteger(size)
        buffer.writeBytes([0, 1, 2, 3])
        #expect(throws: FrameDecoder.FrameError.self) { _ = try FrameDecoder().nextFrame(from: &buffer) }
    }

    @Test("a size at the limit waits for its bytes instead of failing")
    func sizeAtLimit() throws {
        let decoder = FrameDecoder(frameBytesMax: 1000)
        var buffer = ByteBufferAllocator().buffer(capacity: 8)
        buffer.writeInteger(Int32(1000))
        #expect(try decoder.nextFrame(from: &buffer) == nil)
        buffer.writeInteger(Int32(1001))
        var over = ByteBufferAllocator().buffer(capacity: 8)
        over.writeInteger(Int32(1001))
        #expect(throws: FrameDecoder.FrameError.tooLarge(1001, maximum: 1000)) { _ = try decoder.nextFrame(from: &over) }
    }

    @Test("the NIO handler emits one buffer per frame and fails the channel on a bad size")
    func channelHandler() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(KafkaFrameDecoder()))
        var input = channel.allocator.buffer(bytes: Self.frame(Array(repeating: 5, count: 10)) + Self.frame(Array(repeating: 6, count: 9)))
        try channel.writeInbound(input.readSlice(length: 7)!)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        try channel.writeInbound(input)
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 10)
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 9)
        var bad = channel.allocator.buffer(capacity: 4)
        bad.writeInteger(Int32(-5))
        #expect(throws: (any Error).self) { try channel.writeInbound(bad) }
        _ = try? channel.finish()
    }

    @Test("header versions follow the flexible versions, ApiVersions answers with header v0")
    func headerVersions() {
        #expect(KafkaHeaders.requestHeaderVersion(apiKey: 0, apiVersion: 8) == 1)
        #expect(KafkaHeaders.requestHeaderVersion(apiKey: 0, apiVersion: 9) == 2)
        #expect(KafkaHeaders.requestHeaderVersion(apiKey: 7, apiVersion: 0) == 0)
        #expect(KafkaHeaders.requestHeaderVersion(apiKey: 18, apiVersion: 3) == 2)
        #expect(KafkaHeaders.responseHeaderVersion(apiKey: 18, apiVersion: 3) == 0)
        #expect(KafkaHeaders.responseHeaderVersion(apiKey: 3, apiVersion: 9) == 1)
        #expect(KafkaHeaders.responseHeaderVersion(apiKey: 3, apiVersion: 8) == 0)
    }

    @Test("an ApiVersions v3 request as librdkafka writes it decodes field by field")
    func apiVersionsV3Bytes() throws {
        // Header v2: key 18, version 3, correlation 1, client id "rdkafka" (int16 length), no tags;
        // body: compact "librdkafka", compact "2.16.0", no tags.
        var bytes: [UInt8] = [0, 18, 0, 3, 0, 0, 0, 1, 0, 7] + Array("rdkafka".utf8) + [0]
        bytes += [11] + Array("librdkafka".utf8) + [7] + Array("2.16.0".utf8) + [0]
        var frame = ByteBufferAllocator().buffer(bytes: bytes)
        let header = try KafkaHeaders.decodeRequestHeader(from: &frame)
        #expect(header.requestApiKey == 18 && header.requestApiVersion == 3 && header.correlationId == 1)
        #expect(header.clientId == "rdkafka")
        let body = try ApiVersionsRequest.decode(from: &frame, version: 3)
        #expect(body.clientSoftwareName == "librdkafka")
        #expect(body.clientSoftwareVersion == "2.16.0")
        #expect(frame.readableBytes == 0)
        // And it re-encodes to the same bytes.
        let again = KafkaHeaders.encodeRequest(body, version: 3, correlationId: 1, clientId: "rdkafka")
        #expect(Array(again.readableBytesView.dropFirst(4)) == bytes)
    }

    @Test("an ApiVersions version newer than ours still yields its correlation id, and the fallback answer is v0")
    func apiVersionsFallback() throws {
        var bytes: [UInt8] = [0, 18, 0, 9, 0, 0, 0x30, 0x39, 0xFF, 0xFF, 0]
        bytes += [99, 98, 97]  // a body we cannot parse
        var frame = ByteBufferAllocator().buffer(bytes: bytes)
        let header = try KafkaHeaders.decodeRequestHeader(from: &frame)
        #expect(header.correlationId == 12345)
        #expect(header.clientId == nil)
        var response = KafkaHeaders.unsupportedApiVersionsResponse(
            correlationId: 12345, supported: [ApiVersionsResponse.ApiVersion(apiKey: 18, minVersion: 0, maxVersion: 4)])
        let size = response.readInteger(as: Int32.self)!
        #expect(Int(size) == response.readableBytes)
        #expect(response.readInteger(as: Int32.self) == 12345)               // header v0: correlation id only
        #expect(response.readInteger(as: Int16.self) == ErrorCode.unsupportedVersion.rawValue)
        #expect(response.readInteger(as: Int32.self) == 1)                   // one ApiVersion, classic array
        #expect(response.readInteger(as: Int16.self) == 18)
    }

    @Test("decode errors name the message, version and field")
    func decodeErrorContext() {
        var truncated = ByteBufferAllocator().buffer(bytes: [0, 1, 0, 0])  // acks, then a cut timeout
        #expect {
            _ = try ProduceRequest.decode(from: &truncated, version: 2)
        } throws: { error in
            let e = error as! DecodeError
            return e.message == "ProduceRequest" && e.version == 2 && e.field == "TimeoutMs"
        }
        var hugeArray = ByteBufferAllocator().buffer(bytes: [0, 1, 0, 0, 0, 100, 0x7F, 0xFF, 0xFF, 0xFF])
        #expect {
            _ = try ProduceRequest.decode(from: &hugeArray, version: 2)
        } throws: { error in
            guard let e = error as? DecodeError, case .lengthOutOfBounds = e.reason else { return false }
            return e.field == "TopicData"
        }
        var unsupported = ByteBufferAllocator().buffer(bytes: [])
        #expect(throws: DecodeError.self) { _ = try ProduceRequest.decode(from: &unsupported, version: 99) }
    }

    @Test("varints and zigzag encodings at their edges")
    func varints() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        for v: UInt32 in [0, 1, 127, 128, 16383, 16384, UInt32.max] { buffer.writeUnsignedVarint(v) }
        for v: UInt32 in [0, 1, 127, 128, 16383, 16384, UInt32.max] { #expect(try buffer.readUnsignedVarint(field: "v") == v) }
        for v: Int32 in [0, -1, 1, Int32.min, Int32.max] { buffer.writeVarint(v) }
        for v: Int32 in [0, -1, 1, Int32.min, Int32.max] { #expect(try buffer.readVarint(field: "v") == v) }
        for v: Int64 in [0, -1, Int64.min, Int64.max] { buffer.writeVarlong(v) }
        for v: Int64 in [0, -1, Int64.min, Int64.max] { #expect(try buffer.readVarlong(field: "v") == v) }
        var tooLong = ByteBufferAllocator().buffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(throws: DecodeError.self) { _ = try tooLong.readUnsignedVarint(field: "v") }
        var zig = ByteBufferAllocator().buffer(capacity: 4)
        zig.writeVarint(-1)
        #expect(zig.readableBytesView.first == 1)  // zigzag: -1 -> 1
    }

    @Test("Kafka's UUID text form round-trips")
    func uuidText() {
        let u = Uuid.random()
        #expect(Uuid(u.description) == u)
        #expect(u.description.count == 22)
        #expect(Uuid.zero.description == "AAAAAAAAAAAAAAAAAAAAAA")
    }
}
