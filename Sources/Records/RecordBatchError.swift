/// Why bytes are not a valid record batch. The broker maps these to Kafka error codes
/// (CORRUPT_MESSAGE for CRC and framing, INVALID_RECORD for rule violations,
/// UNSUPPORTED_COMPRESSION_TYPE, ...).
public enum RecordBatchError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(needed: Int, remaining: Int)
    case invalidLength(Int32)
    /// Magic 0 and 1 (legacy message sets) are recognised and refused.
    case unsupportedMagic(Int8)
    case crcMismatch(stored: UInt32, computed: UInt32)
    case unknownCompression(Int16)
    case invalidRecord(String)
    case compression(CompressionError)

    public var description: String {
        switch self {
        case let .truncated(needed, remaining): "batch truncated: needs \(needed) bytes, \(remaining) remain"
        case .invalidLength(let l): "invalid batch length \(l)"
        case .unsupportedMagic(let m): "record format magic \(m) is not supported (only magic 2)"
        case let .crcMismatch(stored, computed): "CRC mismatch: stored \(stored), computed \(computed)"
        case .unknownCompression(let a): "unknown compression codec in attributes \(a)"
        case .invalidRecord(let why): "invalid record: \(why)"
        case .compression(let e): "compression: \(e)"
        }
    }
}
