import NIOCore

/// Splits a byte stream into Kafka frames: an int32 size, then that many bytes. Sizes are checked
/// before anything is sliced; an incomplete frame leaves the reader index where it was; frames
/// are slices of the input (no copy).
public struct FrameDecoder: Sendable {
    public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
        case negativeSize(Int32)
        case tooSmall(Int32, minimum: Int)
        case tooLarge(Int32, maximum: Int)

        public var description: String {
            switch self {
            case .negativeSize(let s): "frame size \(s) is negative"
            case let .tooSmall(s, minimum): "frame size \(s) is below the smallest header (\(minimum) bytes)"
            case let .tooLarge(s, maximum): "frame size \(s) exceeds the limit of \(maximum) bytes (socket.request.max.bytes, or sasl.server.max.receive.size before authentication)"
            }
        }
    }

    /// `socket.request.max.bytes`, Kafka's default.
    public static let requestBytesMaxDefault = 100 * 1024 * 1024
    /// The smallest request: api key, api version, correlation id (request header v0).
    public static let requestBytesMin = 8
    /// The smallest response: a correlation id.
    public static let responseBytesMin = 4

    public let frameBytesMax: Int
    public let frameBytesMin: Int
    /// A lower limit the connection may lift later (before a SASL login completes).
    public let cap: FrameCap?

    public init(frameBytesMax: Int = FrameDecoder.requestBytesMaxDefault, frameBytesMin: Int = FrameDecoder.requestBytesMin, cap: FrameCap? = nil) {
        precondition(frameBytesMax >= frameBytesMin && frameBytesMin >= 0)
        self.frameBytesMax = frameBytesMax
        self.frameBytesMin = frameBytesMin
        self.cap = cap
    }

    /// Throws unless `size` (a frame's length prefix) is within the bounds.
    public func check(size: Int32) throws(FrameError) {
        if size < 0 { throw .negativeSize(size) }
        if Int(size) < frameBytesMin { throw .tooSmall(size, minimum: frameBytesMin) }
        let maximum = min(frameBytesMax, cap?.bytes ?? Int.max)
        if Int(size) > maximum { throw .tooLarge(size, maximum: maximum) }
    }

    /// The next whole frame's body, or nil until one has arrived.
    public func nextFrame(from buffer: inout ByteBuffer) throws(FrameError) -> ByteBuffer? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        try check(size: size)
        guard buffer.readableBytes >= 4 + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(size))!
    }
}

/// A connection's current frame limit, shared by its frame decoder and its request handler (both
/// on the connection's event loop): small until the client has authenticated.
public final class FrameCap: @unchecked Sendable {
    public var bytes: Int
    public init(bytes: Int) { self.bytes = bytes }
}

/// The frame decoder as a NIO inbound handler: bytes in, one `ByteBuffer` per frame out.
public struct KafkaFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    let frames: FrameDecoder

    public init(frames: FrameDecoder = FrameDecoder()) { self.frames = frames }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try frames.nextFrame(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at EOF is simply dropped with the connection.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
