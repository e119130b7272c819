import NIOCore

/// A zero-copy view of one record batch (magic 2) inside a buffer: the 61-byte header is read
/// with fixed-offset loads, records are parsed only when asked for.
///
/// ```
/// 0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
/// 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
/// 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records
/// ```
/// The CRC-32C covers bytes 21 to the end, so baseOffset and partitionLeaderEpoch can be patched
/// in place without recomputing it.
public struct RecordBatch: Sendable, Equatable {
    public static let headerBytes = 61
    /// batchLength counts the bytes after itself: total = batchLength + 12.
    public static let lengthFieldEnd = 12
    static let crcStart = 21
    public static let magic: Int8 = 2

    public enum Attribute {
        public static let compressionMask: Int16 = 0x07
        public static let logAppendTime: Int16 = 0x08
        public static let transactional: Int16 = 0x10
        public static let control: Int16 = 0x20
        public static let deleteHorizon: Int16 = 0x40
    }

    /// Exactly the batch's bytes.
    public private(set) var buffer: ByteBuffer

    /// Wraps one whole batch after checking its size and magic; `verifyCRC` also checks the CRC.
    public init(_ buffer: ByteBuffer, verifyCRC: Bool = true) throws(RecordBatchError) {
        guard buffer.readableBytes >= Self.headerBytes else {
            throw .truncated(needed: Self.headerBytes, remaining: buffer.readableBytes)
        }
        let magic = buffer.getInteger(at: buffer.readerIndex + 16, as: Int8.self)!
        guard magic == Self.magic else { throw .unsupportedMagic(magic) }
        let length = buffer.getInteger(at: buffer.readerIndex + 8, as: Int32.self)!
        guard Int(length) + Self.lengthFieldEnd == buffer.readableBytes else {
            throw .invalidLength(length)
        }
        self.buffer = buffer
        if verifyCRC {
            let computed = computeCRC()
            guard computed == crc else { throw .crcMismatch(stored: crc, computed: computed) }
        }
    }

    @inline(__always) private func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        buffer.getInteger(at: buffer.readerIndex + offset, as: T.self)!
    }

    public var byteCount: Int { buffer.readableBytes }
    public var baseOffset: Int64 { load(0, Int64.self) }
    public var batchLength: Int32 { load(8, Int32.self) }
    public var partitionLeaderEpoch: Int32 { load(12, Int32.self) }
    public var crc: UInt32 { load(17, UInt32.self) }
    public var attributes: Int16 { load(21, Int16.self) }
    public var lastOffsetDelta: Int32 { load(23, Int32.self) }
    public var baseTimestamp: Int64 { load(27, Int64.self) }
    public var maxTimestamp: Int64 { load(35, Int64.self) }
    public var producerId: Int64 { load(43, Int64.self) }
    public var producerEpoch: Int16 { load(51, Int16.self) }
    public var baseSequence: Int32 { load(53, Int32.self) }
    public var recordCount: Int32 { load(57, Int32.self) }

    public var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
    public var nextOffset: Int64 { lastOffset + 1 }
    public var compression: CompressionCodec? { CompressionCodec(attributes: attributes) }
    public var isLogAppendTime: Bool { attributes & Attribute.logAppendTime != 0 }
    public var isTransactional: Bool { attributes & Attribute.transactional != 0 }
    public var isControl: Bool { attributes & Attribute.control != 0 }
    public var hasDeleteHorizon: Bool { attributes & Attribute.deleteHorizon != 0 }
    /// The last sequence number in the batch (wrapping at Int32.max, as Kafka does).
    public var lastSequence: Int32 {
        baseSequence < 0 ? -1 : Int32(truncatingIfNeeded: (Int64(baseSequence) + Int64(lastOffsetDelta)) % (Int64(Int32.max) + 1))
    }

    /// CRC-32C over attributes..end.
    public func computeCRC() -> UInt32 {
        buffer.withUnsafeReadableBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[Self.crcStart...]))
        }
    }

    // MARK: - in-place patches

    /// Sets the first offset (not covered by the CRC).
    public mutating func setBaseOffset(_ offset: Int64) {
        buffer.setInteger(offset, at: buffer.readerIndex)
    }

    /// Sets the leader epoch (not covered by the CRC).
    public mutating func setPartitionLeaderEpoch(_ epoch: Int32) {
        buffer.setInteger(epoch, at: buffer.readerIndex + 12)
    }

    /// Stamps LogAppendTime: the timestamp-type bit and maxTimestamp change, so the CRC is
    /// recomputed (the only patch that needs it).
    public mutating func setLogAppendTime(_ timestampMs: Int64) {
        buffer.setInteger(attributes | Attribute.logAppendTime, at: buffer.readerIndex + 21)
        buffer.setInteger(timestampMs, at: buffer.readerIndex + 35)
        buffer.setInteger(computeCRC(), at: buffer.readerIndex + 17)
    }

    // MARK: - records

    /// The records, decompressing first when the batch is compressed (at most `decompressedBytesMax`).
    public func records(decompressedBytesMax: Int = Compression.decompressedBytesMaxDefault) throws(RecordBatchError) -> [Record] {
        var body = try recordsBody(decompressedBytesMax: decompressedBytesMax)
        var records: [Record] = []
        records.reserveCapacity(Int(recordCount))
        for _ in 0..<recordCount {
            records.append(try Record.read(from: &body))
        }
        guard body.readableBytes == 0 else {
            throw .invalidRecord("\(body.readableBytes) bytes after the last record")
        }
        return records
    }

    /// The bytes after the header, decompressed when the batch is compressed: a slice of the
    /// batch when it is not; the codec reads the compressed bytes in place when it is.
    func recordsBody(decompressedBytesMax: Int) throws(RecordBatchError) -> ByteBuffer {
        guard let codec = compression else { throw .unknownCompression(attributes) }
        var body = buffer.getSlice(at: buffer.readerIndex + Self.headerBytes, length: byteCount - Self.headerBytes)!
        if codec != .none {
            let result: Result<[UInt8], CompressionError> = body.withUnsafeReadableBytes { compressed in
                do throws(CompressionError) {
                    return .success(try Compression.decompress(compressed, codec: codec, cap: decompressedBytesMax))
                } catch {
                    return .failure(error)
                }
            }
            switch result {
            case .success(let plain): body = ByteBuffer(bytes: plain)
            case .failure(let error): throw .compression(error)
            }
        }
        guard recordCount >= 0, Int(recordCount) <= body.readableBytes else {
            throw .invalidRecord("record count \(recordCount) does not fit in \(body.readableBytes) bytes")
        }
        return body
    }

    /// Kafka's checks on a batch a client produced: magic, CRC and length already hold (init);
    /// here the offset deltas, count, control bit and producer fields. With `deep`, every record is
    /// parsed (decompressing) and its offset delta checked against its position; with
    /// `requireKeys` (compacted topics) a record without a key is refused, in the same pass.
    public func validateForAppend(deep: Bool, requireKeys: Bool = false,
                                  decompressedBytesMax: Int = Compression.decompressedBytesMaxDefault) throws(RecordBatchError) {
        if isControl { throw .invalidRecord("clients may not produce control batches") }
        if recordCount <= 0 { throw .invalidRecord("a batch must hold at least one record") }
        if Int64(lastOffsetDelta) + 1 != Int64(recordCount) {
            throw .invalidRecord("lastOffsetDelta \(lastOffsetDelta) does not match record count \(recordCount)")
        }
        if producerId >= 0 && baseSequence < 0 { throw .invalidRecord("idempotent batch without a base sequence") }
        guard compression != nil else { throw .unknownCompression(attributes) }
        guard deep else { return }
        // Walk every record without building `Record` values: this runs once per produced batch.
        let body = try recordsBody(decompressedBytesMax: decompressedBytesMax)
        let count = recordCount
        let outcome: Result<Void, RecordBatchError> = body.withUnsafeReadableBytes { raw in
            do throws(RecordBatchError) {
                try Record.validate(raw, count: count, requireKeys: requireKeys)
                return .success(())
            } catch { return .failure(error) }
        }
        try outcome.get()
    }

    /// The same checks as `validateForAppend(deep: true)`, through `Record`'s general parser: the
    /// reference the fast path is tested against.
    public func validateRecordsByParsing(requireKeys: Bool = false,
                                         decompressedBytesMax: Int = Compression.decompressedBytesMaxDefault) throws(RecordBatchError) {
        var body = try recordsBody(decompressedBytesMax: decompressedBytesMax)
        for i in 0..<recordCount {
            let delta: Int32
            if requireKeys {
                let record = try Record.read(from: &body)
                if record.key == nil { throw .invalidRecord("Compacted topic cannot accept message without key") }
                delta = record.offsetDelta
            } else {
                delta = try Record.skip(from: &body)
            }
            if delta != i { throw .invalidRecord("record \(i) has offset delta \(delta)") }
        }
        guard body.readableBytes == 0 else {
            throw .invalidRecord("\(body.readableBytes) bytes after the last record")
        }
    }
}

/// Splits a records field (a sequence of batches, as in Produce and Fetch and in a segment file)
/// into batch views without copying. A trailing partial batch (allowed in Fetch responses) ends
/// the sequence and is reported through `trailingPartialBytes`.
public struct RecordBatchSequence: Sequence, IteratorProtocol {
    var remaining: ByteBuffer
    public private(set) var trailingPartialBytes = 0
    public private(set) var error: RecordBatchError?
    let verifyCRC: Bool

    public init(_ records: ByteBuffer, verifyCRC: Bool = true) {
        remaining = records
        self.verifyCRC = verifyCRC
    }

    public mutating func next() -> RecordBatch? {
        guard error == nil, remaining.readableBytes > 0 else { return nil }
        guard remaining.readableBytes >= RecordBatch.lengthFieldEnd + 5,
              let length = remaining.getInteger(at: remaining.readerIndex + 8, as: Int32.self)
        else {
            trailingPartialBytes = remaining.readableBytes
            return nil
        }
        let magic = remaining.getInteger(at: remaining.readerIndex + 16, as: Int8.self)!
        if magic != RecordBatch.magic {
            error = .unsupportedMagic(magic)
            return nil
        }
        guard length >= Int32(RecordBatch.headerBytes - RecordBatch.lengthFieldEnd) else {
            error = .invalidLength(length)
            return nil
        }
        let total = Int(length) + RecordBatch.lengthFieldEnd
        guard total <= remaining.readableBytes else {
            trailingPartialBytes = remaining.readableBytes
            return nil
        }
        let slice = remaining.readSlice(length: total)!
        do {
            return try RecordBatch(slice, verifyCRC: verifyCRC)
        } catch {
            self.error = error
            return nil
        }
    }
}
