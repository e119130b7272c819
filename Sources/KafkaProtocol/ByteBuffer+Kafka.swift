import NIOCore
import Records

/// Kafka's primitive encodings on `ByteBuffer`. Every read checks the bytes that remain (and,
/// for lengths, a limit) before it allocates or slices; every failure names its field.
extension ByteBuffer {
    /// Kafka caps strings at 32767 bytes (a signed 16-bit length), compact ones too.
    public static let kafkaStringBytesMax = Int(Int16.max)

    // MARK: - fixed width

    @inlinable
    public mutating func readKafkaInteger<T: FixedWidthInteger>(_ type: T.Type, field: StaticString) throws(DecodeError) -> T {
        guard let value = readInteger(as: T.self) else {
            throw DecodeError(.truncated(needed: MemoryLayout<T>.size, remaining: readableBytes), field: "\(field)")
        }
        return value
    }

    public mutating func readKafkaBool(field: StaticString) throws(DecodeError) -> Bool {
        try readKafkaInteger(Int8.self, field: field) != 0
    }

    public mutating func writeKafkaBool(_ value: Bool) {
        writeInteger(Int8(value ? 1 : 0))
    }

    public mutating func readKafkaFloat64(field: StaticString) throws(DecodeError) -> Double {
        Double(bitPattern: try readKafkaInteger(UInt64.self, field: field))
    }

    public mutating func writeKafkaFloat64(_ value: Double) {
        writeInteger(value.bitPattern)
    }

    public mutating func readKafkaUuid(field: StaticString) throws(DecodeError) -> Uuid {
        let high = try readKafkaInteger(UInt64.self, field: field)
        let low = try readKafkaInteger(UInt64.self, field: field)
        return Uuid(high: high, low: low)
    }

    public mutating func writeKafkaUuid(_ value: Uuid) {
        writeInteger(value.high)
        writeInteger(value.low)
    }

    // MARK: - varints (the encodings live in Records; these add field context to failures)

    public mutating func readUnsignedVarint(field: StaticString) throws(DecodeError) -> UInt32 {
        guard let value = readUnsignedVarint32() else { throw varintError(field) }
        return value
    }

    public mutating func writeUnsignedVarint(_ value: UInt32) { writeUnsignedVarint32(value) }

    public mutating func readUnsignedVarlong(field: StaticString) throws(DecodeError) -> UInt64 {
        guard let value = readUnsignedVarint64() else { throw varintError(field) }
        return value
    }

    public mutating func writeUnsignedVarlong(_ value: UInt64) { writeUnsignedVarint64(value) }

    public mutating func readVarint(field: StaticString) throws(DecodeError) -> Int32 {
        guard let value = readZigZagVarint32() else { throw varintError(field) }
        return value
    }

    public mutating func writeVarint(_ value: Int32) { writeZigZagVarint32(value) }

    public mutating func readVarlong(field: StaticString) throws(DecodeError) -> Int64 {
        guard let value = readZigZagVarint64() else { throw varintError(field) }
        return value
    }

    public mutating func writeVarlong(_ value: Int64) { writeZigZagVarint64(value) }

    private func varintError(_ field: StaticString) -> DecodeError {
        readableBytes < 10 && readableBytesView.allSatisfy({ $0 & 0x80 != 0 })
            ? DecodeError(.truncated(needed: readableBytes + 1, remaining: readableBytes), field: "\(field)")
            : DecodeError(.malformedVarint, field: "\(field)")
    }

    // MARK: - lengths

    /// A length prefix: int16/int32 (classic) or unsigned varint N+1 (compact). nil means null.
    @inline(__always)
    mutating func readKafkaLength(compact: Bool, wide: Bool, field: StaticString) throws(DecodeError) -> Int? {
        if compact {
            let n = try readUnsignedVarint(field: field)
            return n == 0 ? nil : Int(n - 1)
        }
        let n = wide ? Int(try readKafkaInteger(Int32.self, field: field)) : Int(try readKafkaInteger(Int16.self, field: field))
        return n < 0 ? nil : n
    }

    @inline(__always)
    func checkLength(_ length: Int, limit: Int, field: StaticString) throws(DecodeError) {
        let bound = Swift.min(limit, readableBytes)
        if length > bound {
            throw DecodeError(.lengthOutOfBounds(length: Int64(length), limit: bound), field: "\(field)")
        }
    }

    // MARK: - strings

    public mutating func readKafkaNullableString(compact: Bool, field: StaticString) throws(DecodeError) -> String? {
        guard let length = try readKafkaLength(compact: compact, wide: false, field: field) else { return nil }
        try checkLength(length, limit: Self.kafkaStringBytesMax, field: field)
        return readString(length: length)
    }

    public mutating func readKafkaString(compact: Bool, field: StaticString) throws(DecodeError) -> String {
        guard let value = try readKafkaNullableString(compact: compact, field: field) else {
            throw DecodeError(.unexpectedNull, field: "\(field)")
        }
        return value
    }

    public mutating func writeKafkaString(_ value: String, compact: Bool) {
        let count = value.utf8.count
        if compact { writeUnsignedVarint(UInt32(count + 1)) } else { writeInteger(Int16(truncatingIfNeeded: count)) }
        writeString(value)
    }

    public mutating func writeKafkaNullableString(_ value: String?, compact: Bool) {
        guard let value else {
            if compact { writeUnsignedVarint(0) } else { writeInteger(Int16(-1)) }
            return
        }
        writeKafkaString(value, compact: compact)
    }

    // MARK: - bytes and records

    public mutating func readKafkaNullableBytes(compact: Bool, field: StaticString) throws(DecodeError) -> [UInt8]? {
        guard let length = try readKafkaLength(compact: compact, wide: true, field: field) else { return nil }
        try checkLength(length, limit: Int(Int32.max), field: field)
        return readBytes(length: length)
    }

    public mutating func readKafkaBytes(compact: Bool, field: StaticString) throws(DecodeError) -> [UInt8] {
        guard let value = try readKafkaNullableBytes(compact: compact, field: field) else {
            throw DecodeError(.unexpectedNull, field: "\(field)")
        }
        return value
    }

    public mutating func writeKafkaBytes(_ value: [UInt8], compact: Bool) {
        if compact { writeUnsignedVarint(UInt32(value.count + 1)) } else { writeInteger(Int32(value.count)) }
        writeBytes(value)
    }

    public mutating func writeKafkaNullableBytes(_ value: [UInt8]?, compact: Bool) {
        guard let value else {
            if compact { writeUnsignedVarint(0) } else { writeInteger(Int32(-1)) }
            return
        }
        writeKafkaBytes(value, compact: compact)
    }

    /// Record data as a slice of this buffer: no copy.
    public mutating func readKafkaRecords(compact: Bool, field: StaticString) throws(DecodeError) -> ByteBuffer? {
        guard let length = try readKafkaLength(compact: compact, wide: true, field: field) else { return nil }
        try checkLength(length, limit: Int(Int32.max), field: field)
        return readSlice(length: length)
    }

    public mutating func writeKafkaRecords(_ value: ByteBuffer?, compact: Bool) {
        guard let value else {
            if compact { writeUnsignedVarint(0) } else { writeInteger(Int32(-1)) }
            return
        }
        if compact { writeUnsignedVarint(UInt32(value.readableBytes + 1)) } else { writeInteger(Int32(value.readableBytes)) }
        writeImmutableBuffer(value)
    }

    // MARK: - arrays

    /// An array count. Every element takes at least one byte, so a count above the bytes that
    /// remain is refused before anything is allocated (the CVE-2022-34917 class).
    public mutating func readKafkaNullableArrayLength(compact: Bool, field: StaticString) throws(DecodeError) -> Int? {
        guard let count = try readKafkaLength(compact: compact, wide: true, field: field) else { return nil }
        try checkLength(count, limit: Int(Int32.max), field: field)
        return count
    }

    public mutating func readKafkaArrayLength(compact: Bool, field: StaticString) throws(DecodeError) -> Int {
        guard let count = try readKafkaNullableArrayLength(compact: compact, field: field) else {
            throw DecodeError(.unexpectedNull, field: "\(field)")
        }
        return count
    }

    public mutating func writeKafkaArrayLength(_ count: Int, compact: Bool) {
        if compact { writeUnsignedVarint(UInt32(count + 1)) } else { writeInteger(Int32(count)) }
    }

    public mutating func writeKafkaNullableArrayLength(_ count: Int?, compact: Bool) {
        guard let count else {
            if compact { writeUnsignedVarint(0) } else { writeInteger(Int32(-1)) }
            return
        }
        writeKafkaArrayLength(count, compact: compact)
    }

    // MARK: - tagged fields

    public mutating func readKafkaTaggedFieldCount() throws(DecodeError) -> Int {
        let count = Int(try readUnsignedVarint(field: "TaggedFields"))
        try checkLength(count, limit: Int(Int32.max), field: "TaggedFields")
        return count
    }

    public mutating func readKafkaTaggedField() throws(DecodeError) -> RawTaggedField {
        let tag = try readUnsignedVarint(field: "TaggedFields.tag")
        let size = Int(try readUnsignedVarint(field: "TaggedFields.size"))
        try checkLength(size, limit: Int(Int32.max), field: "TaggedFields.size")
        return RawTaggedField(tag: tag, data: readSlice(length: size)!)
    }

    /// Writes a tagged-field section: count, then each field in ascending tag order.
    public mutating func writeKafkaTaggedFields(_ fields: [RawTaggedField]) {
        writeUnsignedVarint(UInt32(fields.count))
        let ordered = fields.count > 1 ? fields.sorted { $0.tag < $1.tag } : fields
        for field in ordered {
            writeUnsignedVarint(field.tag)
            writeUnsignedVarint(UInt32(field.data.readableBytes))
            writeImmutableBuffer(field.data)
        }
    }
}
