/// Why a request or response could not be decoded, with the field and message version that
/// failed, so that a malformed request can be answered or logged precisely.
public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// Fewer bytes remain than the field needs.
        case truncated(needed: Int, remaining: Int)
        /// A length or count larger than the bytes that remain or than its limit.
        case lengthOutOfBounds(length: Int64, limit: Int)
        /// A negative length where none is allowed (null in a non-nullable field).
        case unexpectedNull
        /// A varint longer than its type allows.
        case malformedVarint
        /// The version is outside what the message defines.
        case unsupportedVersion
        /// Anything else, described.
        case invalid(String)
    }

    public var reason: Reason
    public var field: String
    public var message: String?
    public var version: Int16?

    public init(_ reason: Reason, field: String, message: String? = nil, version: Int16? = nil) {
        self.reason = reason
        self.field = field
        self.message = message
        self.version = version
    }

    /// The same error, located in a message version (added once per message, not per field).
    public func within(message: String, version: Int16) -> DecodeError {
        var copy = self
        if copy.message == nil { copy.message = message }
        if copy.version == nil { copy.version = version }
        return copy
    }

    public var description: String {
        let place = message.map { "\($0) v\(version.map(String.init) ?? "?")" } ?? "message"
        let what: String = switch reason {
        case let .truncated(needed, remaining): "needs \(needed) bytes, \(remaining) remain"
        case let .lengthOutOfBounds(length, limit): "length \(length) is out of bounds (at most \(limit))"
        case .unexpectedNull: "null is not allowed here"
        case .malformedVarint: "malformed varint"
        case .unsupportedVersion: "unsupported version"
        case let .invalid(text): text
        }
        return "\(place), field \(field): \(what)"
    }
}
