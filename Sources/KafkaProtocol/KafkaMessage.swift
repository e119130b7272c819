import NIOCore

/// A tagged field kept as raw bytes (KIP-482): one the decoder does not know in this version.
public struct RawTaggedField: Sendable, Equatable {
    public var tag: UInt32
    public var data: ByteBuffer

    public init(tag: UInt32, data: ByteBuffer) {
        self.tag = tag
        self.data = data
    }
}

/// A generated schema type: it encodes and decodes itself for any version the schema defines.
public protocol KafkaStruct: Sendable, Equatable {
    static var messageName: String { get }
    static var validVersions: ClosedRange<Int16> { get }
    /// The first flexible (KIP-482) version, or nil when the type has none.
    static var flexibleVersionsStart: Int16? { get }

    init(from buffer: inout ByteBuffer, version: Int16) throws(DecodeError)
    func encode(into buffer: inout ByteBuffer, version: Int16)
}

/// A request or response body of one API.
public protocol KafkaMessage: KafkaStruct {
    static var apiKey: Int16 { get }
}

extension KafkaStruct {
    public static func isFlexible(version: Int16) -> Bool {
        guard let start = flexibleVersionsStart else { return false }
        return version >= start
    }

    /// Decodes one value, checking the version first and locating any error in this message.
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws(DecodeError) -> Self {
        guard validVersions.contains(version) else {
            throw DecodeError(.unsupportedVersion, field: "(version)", message: messageName, version: version)
        }
        do {
            return try Self(from: &buffer, version: version)
        } catch {
            throw error.within(message: messageName, version: version)
        }
    }

    /// Encodes into a fresh buffer (convenient for tests and small messages).
    public func encoded(version: Int16, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        encode(into: &buffer, version: version)
        return buffer
    }
}
