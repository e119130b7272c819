import NIOCore

/// One record inside a batch. Keys, values and header values are slices of the batch (or of
/// its decompressed body), not copies.
public struct Record: Sendable, Equatable {
    public struct Header: Sendable, Equatable {
        public var key: String
        public var value: ByteBuffer?
        public init(key: String, value: ByteBuffer?) {
            self.key = key
            self.value = value
        }
    }

    public var attributes: Int8
    public var timestampDelta: Int64
    public var offsetDelta: Int32
    public var key: ByteBuffer?
    public var value: ByteBuffer?
    public var headers: [Header]

    public init(attributes: Int8 = 0, timestampDelta: Int64 = 0, offsetDelta: Int32, key: ByteBuffer?, value: ByteBuffer?, headers: [Header] = []) {
        self.attributes = attributes
        self.timestampDelta = timestampDelta
        self.offsetDelta = offsetDelta
        self.key = key
        self.value = value
        self.headers = headers
    }

    /// Reads one record: varint length, then its fields, all bounded by that length.
    static func read(from body: inout ByteBuffer) throws(RecordBatchError) -> Record {
        var record = Record(offsetDelta: 0, key: nil, value: nil)
        _ = try parse(from: &body, into: &record)
        return record
    }

    /// Checks one record's structure and returns its offset delta, building nothing.
    static func skip(from body: inout ByteBuffer) throws(RecordBatchError) -> Int32 {
        try parse(from: &body, into: nil)
    }

    /// The one record parser: fills `record` when given one, otherwise only validates.
    private static func parse(from body: inout ByteBuffer, into record: UnsafeMutablePointer<Record>?) throws(RecordBatchError) -> Int32 {
        guard let length = body.readZigZagVarint32() else { throw .invalidRecord("bad record length") }
        guard length >= 0, Int(length) <= body.readableBytes else {
            throw .invalidRecord("record length \(length) exceeds the \(body.readableBytes) bytes left")
        }
        var r = body.readSlice(length: Int(length))!
        guard let attributes = r.readInteger(as: Int8.self),
              let timestampDelta = r.readZigZagVarint64(),
              let offsetDelta = r.readZigZagVarint32()
        else { throw .invalidRecord("truncated record header") }
        let key = try readBytes(&r, "key")
        let value = try readBytes(&r, "value")
        guard let headerCount = r.readZigZagVarint32(), headerCount >= 0, Int(headerCount) <= r.readableBytes else {
            throw .invalidRecord("bad header count")
        }
        var headers: [Header] = []
        for _ in 0..<headerCount {
            guard let keyLength = r.readZigZagVarint32(), keyLength >= 0, Int(keyLength) <= r.readableBytes else {
                throw .invalidRecord("bad header key")
            }
            if record == nil {
                r.moveReaderIndex(forwardBy: Int(keyLength))
                _ = try readBytes(&r, "header value")
            } else {
                guard let headerKey = r.readString(length: Int(keyLength)) else { throw .invalidRecord("bad header key") }
                headers.append(Header(key: headerKey, value: try readBytes(&r, "header value")))
            }
        }
        guard r.readableBytes == 0 else { throw .invalidRecord("\(r.readableBytes) bytes left inside a record") }
        record?.pointee = Record(attributes: attributes, timestampDelta: timestampDelta, offsetDelta: offsetDelta,
                                 key: key, value: value, headers: headers)
        return offsetDelta
    }

    private static func readBytes(_ r: inout ByteBuffer, _ what: String) throws(RecordBatchError) -> ByteBuffer? {
        guard let length = r.readZigZagVarint32() else { throw .invalidRecord("bad \(what) length") }
        if length < 0 { return nil }
        guard Int(length) <= r.readableBytes else { throw .invalidRecord("\(what) length \(length) exceeds the record") }
        return r.readSlice(length: Int(length))!
    }

    /// Appends this record's encoding.
    public func write(to out: inout ByteBuffer) {
        var body = ByteBuffer()
        body.reserveCapacity(32 + (key?.readableBytes ?? 0) + (value?.readableBytes ?? 0))
        body.writeInteger(attributes)
        body.writeZigZagVarint64(timestampDelta)
        body.writeZigZagVarint32(offsetDelta)
        Self.writeBytes(key, to: &body)
        Self.writeBytes(value, to: &body)
        body.writeZigZagVarint32(Int32(headers.count))
        for header in headers {
            body.writeZigZagVarint32(Int32(header.key.utf8.count))
            body.writeString(header.key)
            Self.writeBytes(header.value, to: &body)
        }
        out.writeZigZagVarint32(Int32(body.readableBytes))
        out.writeBuffer(&body)
    }

    private static func writeBytes(_ bytes: ByteBuffer?, to out: inout ByteBuffer) {
        guard let bytes else {
            out.writeZigZagVarint32(-1)
            return
        }
        out.writeZigZagVarint32(Int32(bytes.readableBytes))
        out.writeImmutableBuffer(bytes)
    }
}
