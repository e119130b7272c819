import NIOCore

/// The variable-length integers of record batches (zigzag, as in protobuf) and of the flexible
/// protocol (unsigned). Readers return nil on truncated or over-long input and move nothing then.
extension ByteBuffer {
    @inlinable
    public mutating func readUnsignedVarint32() -> UInt32? {
        var result: UInt32 = 0
        var index = readerIndex
        for i in 0..<5 {
            guard let byte = getInteger(at: index, as: UInt8.self) else { return nil }
            index += 1
            if i == 4 && byte > 0x0F { return nil }
            result |= UInt32(byte & 0x7F) << (7 * UInt32(i))
            if byte & 0x80 == 0 {
                moveReaderIndex(to: index)
                return result
            }
        }
        return nil
    }

    @inlinable
    public mutating func readUnsignedVarint64() -> UInt64? {
        var result: UInt64 = 0
        var index = readerIndex
        for i in 0..<10 {
            guard let byte = getInteger(at: index, as: UInt8.self) else { return nil }
            index += 1
            if i == 9 && byte > 0x01 { return nil }
            result |= UInt64(byte & 0x7F) << (7 * UInt64(i))
            if byte & 0x80 == 0 {
                moveReaderIndex(to: index)
                return result
            }
        }
        return nil
    }

    @inlinable
    public mutating func readZigZagVarint32() -> Int32? {
        guard let raw = readUnsignedVarint32() else { return nil }
        return Int32(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    @inlinable
    public mutating func readZigZagVarint64() -> Int64? {
        guard let raw = readUnsignedVarint64() else { return nil }
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    @inlinable
    public mutating func writeUnsignedVarint32(_ value: UInt32) {
        var v = value
        while v >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(v))
    }

    @inlinable
    public mutating func writeUnsignedVarint64(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(v))
    }

    @inlinable
    public mutating func writeZigZagVarint32(_ value: Int32) {
        writeUnsignedVarint32(UInt32(bitPattern: (value << 1) ^ (value >> 31)))
    }

    @inlinable
    public mutating func writeZigZagVarint64(_ value: Int64) {
        writeUnsignedVarint64(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Bytes a zigzag varint of `value` takes.
    public static func zigZagVarint32Size(_ value: Int32) -> Int {
        var v = UInt32(bitPattern: (value << 1) ^ (value >> 31))
        var n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// Bytes a zigzag varint of `value` takes.
    public static func zigZagVarint64Size(_ value: Int64) -> Int {
        var v = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        var n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }
}
