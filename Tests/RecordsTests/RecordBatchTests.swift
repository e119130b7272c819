import Foundation
import NIOCore
import Testing
@testable import Records

@Suite("Record batches")
struct RecordBatchTests {
    static func fixture(_ name: String) throws -> ByteBuffer {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
        return ByteBuffer(bytes: [UInt8](try Data(contentsOf: url)))
    }

    static func text(_ b: ByteBuffer?) -> String? { b.map { String(buffer: $0) } }

    @Test("batches written by kafka-python parse: header, every record, keys, nulls, headers",
          arguments: ["none", "gzip", "snappy", "lz4", "zstd"])
    func foreignBatches(codec: String) throws {
        let batch = try RecordBatch(try Self.fixture("batch-\(codec).bin"))
        #expect(batch.compression?.description == codec)
        #expect(batch.recordCount == 5 && batch.lastOffsetDelta == 4)
        #expect(batch.producerId == 1000 && batch.producerEpoch == 3 && batch.baseSequence == 7)
        #expect(batch.lastSequence == 11)
        #expect(batch.baseTimestamp == 1_700_000_000_000 && batch.maxTimestamp == 1_700_000_000_009)
        try batch.validateForAppend(deep: true)
        let records = try batch.records()
        #expect(records.map(\.offsetDelta) == [0, 1, 2, 3, 4])
        #expect(Self.text(records[0].key) == "key-0" && Self.text(records[0].value) == "value-0")
        #expect(records[1].key == nil)
        #expect(records[1].headers.map(\.key) == ["h1", "h2"])
        #expect(Self.text(records[1].headers[0].value) == "v1" && records[1].headers[1].value == nil)
        #expect(records[2].value == nil)
        #expect(records[3].key?.readableBytes == 0 && records[3].value?.readableBytes == 0)
        #expect(records[4].value?.readableBytes == 5000)
        #expect(records.map(\.timestampDelta) == [0, 5, 9, 2, 1])
    }

    @Test("our builder round-trips every codec, and its output is accepted as a client's", arguments: CompressionCodec.allCases)
    func builderRoundTrip(codec: CompressionCodec) throws {
        var builder = RecordBatchBuilder()
        builder.compression = codec
        builder.producerId = 42
        builder.producerEpoch = 1
        builder.baseSequence = Int32.max - 1
        let inputs = (0..<100).map { i in
            RecordBatchBuilder.Input(key: i % 3 == 0 ? nil : ByteBuffer(string: "k\(i)"),
                                     value: i % 7 == 0 ? nil : ByteBuffer(string: String(repeating: "v", count: i)),
                                     headers: i % 5 == 0 ? [Record.Header(key: "trace", value: ByteBuffer(string: "\(i)"))] : [],
                                     timestamp: 1000 + Int64(i))
        }
        let batch = try RecordBatch(try builder.build(inputs))
        try batch.validateForAppend(deep: true)
        #expect(batch.lastSequence == 97)  // wraps past Int32.max
        let records = try batch.records()
        #expect(records.count == 100)
        for (i, r) in records.enumerated() {
            #expect(r.key == inputs[i].key && r.value == inputs[i].value && r.headers == inputs[i].headers)
            #expect(Int64(r.timestampDelta) + batch.baseTimestamp == inputs[i].timestamp)
        }
    }

    @Test("a flipped byte anywhere after the CRC field is caught")
    func corruptionDetected() throws {
        let good = try Self.fixture("batch-none.bin")
        for position in stride(from: 21, to: good.readableBytes, by: 97) {
            var bad = good
            bad.setInteger(bad.getInteger(at: position, as: UInt8.self)! ^ 0x20, at: position)
            #expect(throws: RecordBatchError.self) { _ = try RecordBatch(bad) }
        }
    }

    @Test("baseOffset and leader epoch patch in place without touching the CRC; LogAppendTime recomputes it")
    func patches() throws {
        var batch = try RecordBatch(try Self.fixture("batch-lz4.bin"))
        let crc = batch.crc
        batch.setBaseOffset(123_456)
        batch.setPartitionLeaderEpoch(9)
        #expect(batch.crc == crc && batch.computeCRC() == crc)
        #expect(batch.baseOffset == 123_456 && batch.lastOffset == 123_460 && batch.partitionLeaderEpoch == 9)
        batch.setLogAppendTime(1_800_000_000_000)
        #expect(batch.isLogAppendTime && batch.maxTimestamp == 1_800_000_000_000)
        #expect(batch.crc != crc)
        _ = try RecordBatch(batch.buffer)  // still valid
    }

    @Test("legacy message sets (magic 0 and 1) are recognised and refused", arguments: [Int8(0), 1])
    func legacyMagic(magic: Int8) throws {
        var bytes = try Self.fixture("batch-none.bin")
        bytes.setInteger(magic, at: 16)
        #expect(throws: RecordBatchError.unsupportedMagic(magic)) { _ = try RecordBatch(bytes) }
        var sequence = RecordBatchSequence(bytes)
        #expect(sequence.next() == nil)
        #expect(sequence.error == .unsupportedMagic(magic))
    }

    @Test("truncated batches and bad lengths are refused; a sequence reports a trailing partial batch")
    func truncation() throws {
        let good = try Self.fixture("batch-gzip.bin")
        #expect(throws: RecordBatchError.self) { _ = try RecordBatch(good.getSlice(at: 0, length: 40)!) }
        #expect(throws: RecordBatchError.self) { _ = try RecordBatch(good.getSlice(at: 0, length: good.readableBytes - 1)!) }
        var two = good
        var copy = good
        two.writeBuffer(&copy)
        var partial = two.getSlice(at: 0, length: two.readableBytes - 10)!
        var sequence = RecordBatchSequence(partial)
        #expect(sequence.next() != nil)
        #expect(sequence.next() == nil)
        #expect(sequence.trailingPartialBytes == good.readableBytes - 10)
        #expect(sequence.error == nil)
        partial.setInteger(Int32(5), at: 8)  // absurdly small batch length
        var broken = RecordBatchSequence(partial)
        #expect(broken.next() == nil)
        #expect(broken.error == .invalidLength(5))
    }

    @Test("a compressed batch that inflates past the cap is refused", arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
    func bombBatch(codec: CompressionCodec) throws {
        var builder = RecordBatchBuilder()
        builder.compression = codec
        let big = ByteBuffer(repeating: 0, count: 4 << 20)
        let batch = try RecordBatch(try builder.build([.init(value: big, timestamp: 1)]))
        #expect(batch.byteCount < 1 << 20)
        #expect(throws: RecordBatchError.compression(.outputExceedsCap(cap: 1 << 20))) {
            _ = try batch.records(decompressedBytesMax: 1 << 20)
        }
    }

    @Test("Kafka's append rules: no control batches from clients, count matches deltas, sequences for idempotence")
    func appendRules() throws {
        let control = try RecordBatch(RecordBatchBuilder.controlBatch(.commit, producerId: 5, producerEpoch: 0, coordinatorEpoch: 2, timestamp: 9))
        #expect(control.isControl && control.isTransactional)
        #expect(throws: RecordBatchError.self) { try control.validateForAppend(deep: false) }
        let marker = try control.records()
        #expect(marker.count == 1)
        var key = marker[0].key!
        #expect(key.readInteger(as: Int16.self) == 0 && key.readInteger(as: Int16.self) == 1)

        var builder = RecordBatchBuilder()
        builder.producerId = 7
        builder.baseSequence = -1
        let noSequence = try RecordBatch(try builder.build([.init(value: ByteBuffer(string: "x"), timestamp: 1)]))
        #expect(throws: RecordBatchError.self) { try noSequence.validateForAppend(deep: false) }

        var mismatched = try Self.fixture("batch-none.bin")
        mismatched.setInteger(Int32(9), at: 23)  // lastOffsetDelta no longer count - 1
        let crc = RecordBatch.crcOf(mismatched)
        mismatched.setInteger(crc, at: 17)
        let batch = try RecordBatch(mismatched)
        #expect(throws: RecordBatchError.self) { try batch.validateForAppend(deep: false) }
    }
}

extension RecordBatch {
    static func crcOf(_ buffer: ByteBuffer) -> UInt32 {
        buffer.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[21...])) }
    }
}
