import CSluice

/// Kafka's compression codecs, numbered as in bits 0-2 of a record batch's attributes.
public enum CompressionCodec: Int8, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case gzip = 1
    case snappy = 2
    case lz4 = 3
    case zstd = 4

    public var description: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }

    /// The attribute bits of a batch, if they name a known codec.
    public init?(attributes: Int16) {
        self.init(rawValue: Int8(attributes & 0x07))
    }
}
