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

    /// Validates `count` records laid out in `raw` exactly as `parse` would (lengths within
    /// bounds, varints well-formed, offset deltas 0, 1, 2, ..., nothing left over; keys present
    /// when `requireKeys`), straight from memory: no slices, no reference counting. This runs
    /// for every produced record, so it is the broker's hottest loop on small records.
    static func validate(_ raw: UnsafeRawBufferPointer, count: Int32, requireKeys: Bool) throws(RecordBatchError) {
        var i = 0
        let end = raw.count
        for n in 0..<count {
            guard let length = zigzag32(raw, &i, end) else { throw .invalidRecord("bad record length") }
            guard length >= 0, Int(length) <= end - i else {
                throw .invalidRecord("record length \(length) exceeds the \(end - i) bytes left")
            }
            let recordEnd = i + Int(length)
            guard i < recordEnd else { throw .invalidRecord("truncated record header") }
            i += 1  // attributes
            guard varint64(raw, &i, recordEnd) != nil, let offsetDelta = zigzag32(raw, &i, recordEnd) else {
                throw .invalidRecord("truncated record header")
            }
            guard let keyLength = zigzag32(raw, &i, recordEnd) else { throw .invalidRecord("bad key length") }
            if keyLength >= 0 {
                guard Int(keyLength) <= recordEnd - i else { throw .invalidRecord("key length \(keyLength) exceeds the record") }
                i += Int(keyLength)
            } else if requireKeys {
                throw .invalidRecord("Compacted topic cannot accept message without key")
            }
            try skipBytes(raw, &i, recordEnd, "value")
            guard let headerCount = zigzag32(raw, &i, recordEnd), headerCount >= 0, Int(headerCount) <= recordEnd - i else {
                throw .invalidRecord("bad header count")
            }
            for _ in 0..<headerCount {
                guard let keyLength = zigzag32(raw, &i, recordEnd), keyLength >= 0, Int(keyLength) <= recordEnd - i else {
                    throw .invalidRecord("bad header key")
                }
                i += Int(keyLength)
                try skipBytes(raw, &i, recordEnd, "header value")
            }
            guard i == recordEnd else { throw .invalidRecord("\(recordEnd - i) bytes left inside a record") }
            if offsetDelta != n { throw .invalidRecord("record \(n) has offset delta \(offsetDelta)") }
        }
        guard i == end else { throw .invalidRecord("\(end - i) bytes after the last record") }
    }

    @inline(__always)
    private static func skipBytes(_ raw: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int, _ what: String) throws(RecordBatchError) {
        guard let length = zigzag32(raw, &i, end) else { throw .invalidRecord("bad \(what) length") }
        if length < 0 { return }
        guard Int(length) <= end - i else { throw .invalidRecord("\(what) length \(length) exceeds the record") }
        i += Int(length)
    }

    /// A zigzag varint of at most 5 bytes ending before `end` (as `ByteBuffer.readZigZagVarint32`).
    @inline(__always)
    private static func zigzag32(_ raw: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int) -> Int32? {
        var result: UInt32 = 0
        var at = i
        for shift in 0..<5 {
            guard at < end else { return nil }
            let byte = raw[at]
            at += 1
            if shift == 4 && byte > 0x0F { return nil }
            result |= UInt32(byte & 0x7F) << (7 * UInt32(shift))
            if byte & 0x80 == 0 {
                i = at
                return Int32(bitPattern: (result >> 1) ^ (0 &- (result & 1)))
            }
        }
        return nil
    }

    /// A varint of at most 10 bytes (its value is not needed, only that it is well-formed).
    @inline(__always)
    private static func varint64(_ raw: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int) -> Void? {
        var at = i
        for shift in 0..<10 {
            guard at < end else { return nil }
            let byte = raw[at]
            at += 1
            if shift == 9 && byte > 0x01 { return nil }
            if byte & 0x80 == 0 {
                i = at
                return ()
            }
        }
        return nil
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
        // The length comes first, so it is computed rather than measured on a copy of the record.
        var length = 1 + ByteBuffer.zigZagVarint64Size(timestampDelta) + ByteBuffer.zigZagVarint32Size(offsetDelta)
            + Self.bytesSize(key) + Self.bytesSize(value) + ByteBuffer.zigZagVarint32Size(Int32(headers.count))
        for header in headers {
            let keyBytes = header.key.utf8.count
            length += ByteBuffer.zigZagVarint32Size(Int32(keyBytes)) + keyBytes + Self.bytesSize(header.value)
        }
        out.reserveCapacity(minimumWritableBytes: length + 5)
        out.writeZigZagVarint32(Int32(length))
        out.writeInteger(attributes)
        out.writeZigZagVarint64(timestampDelta)
        out.writeZigZagVarint32(offsetDelta)
        Self.writeBytes(key, to: &out)
        Self.writeBytes(value, to: &out)
        out.writeZigZagVarint32(Int32(headers.count))
        for header in headers {
            out.writeZigZagVarint32(Int32(header.key.utf8.count))
            out.writeString(header.key)
            Self.writeBytes(header.value, to: &out)
        }
    }

    /// Bytes `writeBytes` writes for `bytes`: the length varint and the bytes.
    private static func bytesSize(_ bytes: ByteBuffer?) -> Int {
        guard let bytes else { return 1 }
        return ByteBuffer.zigZagVarint32Size(Int32(bytes.readableBytes)) + bytes.readableBytes
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
