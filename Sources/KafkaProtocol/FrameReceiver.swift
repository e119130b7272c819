import NIOCore

/// Splits a connection's bytes into Kafka frames like ``KafkaFrameDecoder``, but lets a large
/// frame's body arrive in one buffer of its own so that it is never copied in user space.
///
/// `ByteToMessageHandler` keeps a cumulation buffer: whenever a frame spans socket reads, every
/// byte of it after the first read is copied into the cumulation. Produce requests are large
/// (librdkafka sends up to 1 MB per partition) and almost always span reads, so that copy was the
/// broker's biggest user-space cost. Here, once a frame's length prefix is known and more than
/// ``armBytesMin`` of its body is still missing, the handler *arms* ``FrameReceiveState``: the
/// channel's receive allocator (``FrameReceiveAllocator``) then hands the socket a buffer sized
/// for the whole body, with the few bytes already received copied to its front, and the next
/// read lands the rest of the body right behind them. The `lowWater` callback lets the caller set
/// `SO_RCVLOWAT` to the missing byte count, so that the socket reports readable only once the
/// body is there and the read takes it whole.
///
/// Correctness never depends on that read being whole: a short read falls back to assembling the
/// frame by copying, as before, and a read that reports "would block" (which drops the buffer)
/// loses nothing because the armed prefix stays in the state until a read delivers it.
///
/// Only for plaintext connections whose bytes reach this handler exactly as the socket read them
/// (a TLS handler in front would see the armed buffer as ciphertext).
public final class FrameReceiver: ChannelDuplexHandler, @unchecked Sendable {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = NIOAny

    /// Bodies missing fewer bytes than this are assembled by copying (cheap, and it saves a read).
    public static let armBytesMinDefault = 32 * 1024

    public let state: FrameReceiveState
    let frames: FrameDecoder
    let armBytesMin: Int
    let lowWater: (ChannelHandlerContext, Int) -> Void

    /// Up to three bytes of a length prefix split across reads.
    private var headerBytes: [UInt8] = []
    /// The body of the current frame once its length is known and some of it is missing.
    private var assembly: ByteBuffer?
    private var assemblySize = 0
    private var failed = false
    private var lowWaterSet = false
    /// The broker-wide request budget; a frame's size is taken from it before its body is read.
    let memory: RequestMemory?
    /// The frame being received has its size reserved (returned by whoever answers it, or here
    /// if the connection closes before it is complete).
    private var reservedForCurrent = 0
    /// Bytes read but not yet split, held while the next frame waits for memory.
    private var stalled: ByteBuffer?

    public init(frames: FrameDecoder = FrameDecoder(), state: FrameReceiveState = FrameReceiveState(),
                armBytesMin: Int = FrameReceiver.armBytesMinDefault, memory: RequestMemory? = nil,
                lowWater: @escaping (ChannelHandlerContext, Int) -> Void = { _, _ in }) {
        self.frames = frames
        self.state = state
        self.armBytesMin = armBytesMin
        self.memory = memory
        self.lowWater = lowWater
    }

    /// Reading pauses while a frame waits for memory.
    public func read(context: ChannelHandlerContext) {
        if stalled == nil { context.read() }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var buffer = unwrapInboundIn(data)
        if let armed = state.armed {
            state.armed = nil
            if lowWaterSet {
                lowWaterSet = false
                lowWater(context, 1)
            }
            if state.handedOut {
                // This read went into the armed body buffer: the prefix, then what the socket gave.
                state.handedOut = false
                guard buffer.readableBytes >= armed.size else {
                    // A short read: finish this frame by copying into the buffer we already have.
                    state.assemblyMissing = armed.size - buffer.readableBytes
                    assembly = buffer
                    assemblySize = armed.size
                    lowWaterSet = true
                    lowWater(context, state.assemblyMissing)
                    return
                }
                reservedForCurrent = 0
                context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: armed.size)!))
            } else {
                // These bytes did not come through FrameReceiveAllocator: assemble by copying.
                var body = context.channel.allocator.buffer(capacity: armed.size)
                var prefix = armed.prefix
                body.writeBuffer(&prefix)
                state.assemblyMissing = armed.size - body.readableBytes
                assembly = body
                assemblySize = armed.size
            }
        }
        if stalled != nil {
            stalled!.writeBuffer(&buffer)
            return
        }
        do {
            try consume(&buffer, context: context)
        } catch {
            failed = true
            state.armed = nil
            context.fireErrorCaught(error)
        }
    }

    private func consume(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) throws {
        if var body = assembly {
            assembly = nil  // keep `body` the only reference, so appending does not copy it
            let take = min(assemblySize - body.readableBytes, buffer.readableBytes)
            var part = buffer.readSlice(length: take)!
            body.writeBuffer(&part)
            guard body.readableBytes == assemblySize else {
                state.assemblyMissing = assemblySize - body.readableBytes
                assembly = body
                return
            }
            state.assemblyMissing = 0
            if lowWaterSet {
                lowWaterSet = false
                lowWater(context, 1)
            }
            reservedForCurrent = 0
            context.fireChannelRead(wrapInboundOut(body))
        }
        while buffer.readableBytes > 0 {
            let start = buffer.readerIndex
            let partialHeader = headerBytes
            guard let size = try nextSize(&buffer) else { return }
            if let memory, !memory.reserve(size, whenFree: resumer(context)) {
                // Wait for memory with the prefix unread, then start again from it.
                headerBytes = partialHeader
                buffer.moveReaderIndex(to: start)
                stalled = buffer.readSlice(length: buffer.readableBytes)!
                return
            }
            if buffer.readableBytes >= size {
                context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: size)!))
                continue
            }
            reservedForCurrent = size
            let missing = size - buffer.readableBytes
            if missing >= armBytesMin {
                state.armed = (buffer.readSlice(length: buffer.readableBytes)!, size)
                lowWaterSet = true
                lowWater(context, missing)
            } else {
                var body = context.channel.allocator.buffer(capacity: size)
                body.writeBuffer(&buffer)
                assembly = body
                assemblySize = size
                state.assemblyMissing = missing
            }
            return
        }
    }

    /// Reads a length prefix (possibly completing one split across reads) and checks it.
    private func nextSize(_ buffer: inout ByteBuffer) throws -> Int? {
        let raw: Int32
        if headerBytes.isEmpty, let whole = buffer.readInteger(as: Int32.self) {
            raw = whole
        } else {
            while headerBytes.count < 4, let byte = buffer.readInteger(as: UInt8.self) { headerBytes.append(byte) }
            guard headerBytes.count == 4 else { return nil }
            raw = headerBytes.withUnsafeBytes { Int32(bigEndian: $0.loadUnaligned(as: Int32.self)) }
            headerBytes.removeAll(keepingCapacity: true)
        }
        try frames.check(size: raw)
        return Int(raw)
    }

    /// Once memory is returned: split what was held, then read again.
    private func resumer(_ context: ChannelHandlerContext) -> @Sendable () -> Void {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        return {
            loop.execute {
                let (handler, context) = bound.value
                guard var held = handler.stalled, !handler.failed else { return }
                handler.stalled = nil
                do { try handler.consume(&held, context: context) } catch {
                    handler.failed = true
                    context.fireErrorCaught(error)
                    return
                }
                if handler.stalled == nil { context.read() }
            }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        // A partial frame dies with the connection, and its memory is returned.
        state.armed = nil
        state.assemblyMissing = 0
        assembly = nil
        stalled = nil
        memory?.release(reservedForCurrent)
        reservedForCurrent = 0
        context.fireChannelInactive()
    }
}

/// What ``FrameReceiver`` tells the channel's receive allocator. Confined to the channel's event
/// loop: the allocator runs inside the channel's read, the handler inside its `channelRead`.
public final class FrameReceiveState: @unchecked Sendable {
    /// The received part of a frame body and the body's full size, while a read should land the rest.
    public internal(set) var armed: (prefix: ByteBuffer, size: Int)?
    /// Set when the allocator has handed the armed buffer to a read; cleared by the next channelRead.
    var handedOut = false
    /// Bytes still missing from a frame being assembled by copying (after a short read): the next
    /// ordinary read may be that large, so the rest arrives in one read rather than many.
    var assemblyMissing = 0
    /// The largest such read.
    static let assemblyReadBytesMax = 4 << 20
    /// Size of ordinary reads (length prefixes, small frames, the start of large ones).
    public let readBytes: Int
    /// Where armed body buffers come from (nil: the channel's allocator). A recycling allocator
    /// spares each body the page faults of fresh memory.
    public let bodyAllocator: ByteBufferAllocator?

    public init(readBytes: Int = 16 * 1024, bodyAllocator: ByteBufferAllocator? = nil) {
        precondition(readBytes > 0)
        self.readBytes = readBytes
        self.bodyAllocator = bodyAllocator
    }
}

/// The receive allocator for a channel read by ``FrameReceiver``: an armed body buffer when one is
/// due, otherwise a fresh buffer of ``FrameReceiveState/readBytes``.
///
/// It never reports a next buffer size and always allows growth, which keeps NIO's receive-buffer
/// pool from reusing (and clearing) a buffer: every read goes into the buffer returned here. Use it
/// with `maxMessagesPerRead` 1, so that the pool (whose capacity is that value) holds on to no
/// more than the first, ordinary buffer.
public struct FrameReceiveAllocator: RecvByteBufferAllocator {
    public let state: FrameReceiveState

    public init(state: FrameReceiveState) { self.state = state }

    public func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        guard let armed = state.armed else {
            state.handedOut = false
            guard state.assemblyMissing > state.readBytes else { return allocator.buffer(capacity: state.readBytes) }
            let size = min(state.assemblyMissing, FrameReceiveState.assemblyReadBytesMax)
            return (state.bodyAllocator ?? allocator).buffer(capacity: size)
        }
        // The prefix stays armed: if this read would block, NIO drops the buffer and the next
        // read starts again from the prefix.
        var body = (state.bodyAllocator ?? allocator).buffer(capacity: armed.size)
        var prefix = armed.prefix
        body.writeBuffer(&prefix)
        state.handedOut = true
        return body
    }

    public func nextBufferSize() -> Int? { nil }

    public mutating func record(actualReadBytes: Int) -> Bool { true }
}
