import NIOCore

/// Builds record batches: for control markers, the CLI producer, our client and tests.
public struct RecordBatchBuilder {
    public struct Input: Sendable {
        public var key: ByteBuffer?
        public var value: ByteBuffer?
        public var headers: [Record.Header]
        public var timestamp: Int64

        public init(key: ByteBuffer? = nil, value: ByteBuffer?, headers: [Record.Header] = [], timestamp: Int64) {
            self.key = key
            self.value = value
            self.headers = headers
            self.timestamp = timestamp
        }
    }

    public var baseOffset: Int64 = 0
    public var partitionLeaderEpoch: Int32 = -1
    public var compression: CompressionCodec = .none
    public var logAppendTime = false
    public var transactional = false
    public var control = false
    public var producerId: Int64 = -1
    public var producerEpoch: Int16 = -1
    public var baseSequence: Int32 = -1

    public init() {}

    public func build(_ records: [Input]) throws(CompressionError) -> ByteBuffer {
        precondition(!records.isEmpty, "a batch holds at least one record")
        let baseTimestamp = records.map(\.timestamp).min()!
        let maxTimestamp = records.map(\.timestamp).max()!
        var body = ByteBuffer()
        body.reserveCapacity(records.reduce(0) { $0 + ($1.key?.readableBytes ?? 0) + ($1.value?.readableBytes ?? 0) + 24 })
        for (i, input) in records.enumerated() {
            Record(timestampDelta: input.timestamp - baseTimestamp, offsetDelta: Int32(i),
                   key: input.key, value: input.value, headers: input.headers).write(to: &body)
        }
        if compression != .none {
            let plain = Array(body.readableBytesView)
            body = ByteBuffer(bytes: try Compression.compress(plain, codec: compression))
        }
        var attributes = Int16(compression.rawValue)
        if logAppendTime { attributes |= RecordBatch.Attribute.logAppendTime }
        if transactional { attributes |= RecordBatch.Attribute.transactional }
        if control { attributes |= RecordBatch.Attribute.control }

        return Self.assemble(
            .init(baseOffset: baseOffset, partitionLeaderEpoch: partitionLeaderEpoch, attributes: attributes,
                  lastOffsetDelta: Int32(records.count - 1), baseTimestamp: baseTimestamp, maxTimestamp: maxTimestamp,
                  producerId: producerId, producerEpoch: producerEpoch, baseSequence: baseSequence, recordCount: Int32(records.count)),
            body: &body)
    }

    /// The fields of a batch header that a writer chooses (length and CRC are computed).
    struct Header {
        var baseOffset: Int64, partitionLeaderEpoch: Int32, attributes: Int16, lastOffsetDelta: Int32
        var baseTimestamp: Int64, maxTimestamp: Int64, producerId: Int64, producerEpoch: Int16, baseSequence: Int32
        var recordCount: Int32
    }

    /// Header + records body, with the batch length and CRC-32C filled in.
    static func assemble(_ h: Header, body: inout ByteBuffer) -> ByteBuffer {
        var batch = ByteBuffer()
        batch.reserveCapacity(RecordBatch.headerBytes + body.readableBytes)
        batch.writeInteger(h.baseOffset)
        batch.writeInteger(Int32(RecordBatch.headerBytes - RecordBatch.lengthFieldEnd + body.readableBytes))
        batch.writeInteger(h.partitionLeaderEpoch)
        batch.writeInteger(RecordBatch.magic)
        batch.writeInteger(UInt32(0))  // CRC, set below
        batch.writeInteger(h.attributes)
        batch.writeInteger(h.lastOffsetDelta)
        batch.writeInteger(h.baseTimestamp)
        batch.writeInteger(h.maxTimestamp)
        batch.writeInteger(h.producerId)
        batch.writeInteger(h.producerEpoch)
        batch.writeInteger(h.baseSequence)
        batch.writeInteger(h.recordCount)
        batch.writeBuffer(&body)
        let crc = batch.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[21...])) }
        batch.setInteger(crc, at: 17)
        return batch
    }

    /// A transaction marker: a control batch with one record whose key is (version 0, type) and
    /// whose value is (version 0, coordinator epoch).
    public enum ControlType: Int16, Sendable { case abort = 0, commit = 1 }

    public static func controlBatch(
        _ type: ControlType, producerId: Int64, producerEpoch: Int16, coordinatorEpoch: Int32, timestamp: Int64
    ) -> ByteBuffer {
        var key = ByteBuffer()
        key.writeInteger(Int16(0))
        key.writeInteger(type.rawValue)
        var value = ByteBuffer()
        value.writeInteger(Int16(0))
        value.writeInteger(coordinatorEpoch)
        var builder = RecordBatchBuilder()
        builder.control = true
        builder.transactional = true
        builder.producerId = producerId
        builder.producerEpoch = producerEpoch
        // Uncompressed, so building cannot fail.
        return try! builder.build([Input(key: key, value: value, timestamp: timestamp)])
    }
}

extension RecordBatch {
    /// This batch with only `kept` of its records (as `records()` returned them, in order),
    /// for the log cleaner. Offsets are preserved: the base offset, each record's offset delta
    /// and the last offset delta stay, so a batch may end up with gaps or with no records at
    /// all (kept only to carry the producer's sequence). The codec, producer fields, leader
    /// epoch and timestamp type stay; with `deleteHorizonMs` the batch gets Kafka's
    /// delete-horizon attribute and the horizon as its base timestamp, record timestamps kept.
    public func rewritten(keeping kept: [Record], deleteHorizonMs: Int64? = nil) throws(CompressionError) -> ByteBuffer {
        // Record timestamp deltas are relative to the base-timestamp field, whatever it holds.
        let base = baseTimestamp
        let absolute = kept.map { base + $0.timestampDelta }
        let maxTs = isLogAppendTime ? maxTimestamp : (absolute.max() ?? maxTimestamp)
        let newBase = deleteHorizonMs ?? (hasDeleteHorizon ? baseTimestamp : (absolute.min() ?? baseTimestamp))
        var body = ByteBuffer()
        for (record, ts) in zip(kept, absolute) {
            var r = record
            r.timestampDelta = ts - newBase
            r.write(to: &body)
        }
        let codec = compression ?? .none
        if codec != .none && !kept.isEmpty {
            let plain = Array(body.readableBytesView)
            body = ByteBuffer(bytes: try Compression.compress(plain, codec: codec))
        }
        var attrs = attributes
        if deleteHorizonMs != nil { attrs |= Attribute.deleteHorizon }
        if kept.isEmpty { attrs &= ~Attribute.compressionMask }  // nothing to decompress
        return RecordBatchBuilder.assemble(
            .init(baseOffset: baseOffset, partitionLeaderEpoch: partitionLeaderEpoch, attributes: attrs,
                  lastOffsetDelta: lastOffsetDelta, baseTimestamp: newBase, maxTimestamp: maxTs, producerId: producerId,
                  producerEpoch: producerEpoch, baseSequence: baseSequence, recordCount: Int32(kept.count)),
            body: &body)
    }
}
