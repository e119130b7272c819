import NIOCore
import NIOEmbedded
import Testing
@testable import KafkaProtocol

/// FrameReceiver on an EmbeddedChannel. EmbeddedChannel does not read from a socket, so the tests
/// play the socket: they ask the receive allocator for a buffer, as NIO's read does, fill it and
/// pass it in; or they skip the allocator and pass buffers of their own.
@Suite("Frame receiver")
struct FrameReceiverTests {
    static func frame(_ body: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: Int32(body.count).bigEndian, Array.init) + body
    }

    static func body(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    final class LowWater: @unchecked Sendable {
        var calls: [Int] = []
    }

    static func channel(armBytesMin: Int = 1024, readBytes: Int = 256) throws
        -> (EmbeddedChannel, FrameReceiveState, LowWater) {
        let state = FrameReceiveState(readBytes: readBytes)
        let low = LowWater()
        let handler = FrameReceiver(state: state, armBytesMin: armBytesMin) { _, bytes in low.calls.append(bytes) }
        return (EmbeddedChannel(handler: handler), state, low)
    }

    static func drain(_ channel: EmbeddedChannel) throws -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        while let frame = try channel.readInbound(as: ByteBuffer.self) { out.append(frame) }
        return out
    }

    @Test("queued.max.request.bytes: a frame that does not fit waits, unread, until memory is returned")
    func requestMemoryBudget() throws {
        let memory = RequestMemory(limit: 100)
        let handler = FrameReceiver(state: FrameReceiveState(readBytes: 256), armBytesMin: 1024, memory: memory)
        let channel = EmbeddedChannel(handler: handler)
        let first = Self.body(80, seed: 1), second = Self.body(60, seed: 2), third = Self.body(10, seed: 3)
        try channel.writeInbound(channel.allocator.buffer(bytes: Self.frame(first) + Self.frame(second)))
        #expect(try Self.drain(channel).map { Array($0.readableBytesView) } == [first])
        #expect(memory.used == 80)
        // More bytes arrive meanwhile (already read by the socket): they queue behind the stall.
        try channel.writeInbound(channel.allocator.buffer(bytes: Self.frame(third)))
        #expect(try Self.drain(channel).isEmpty)
        memory.release(80)  // the first request was answered
        channel.embeddedEventLoop.run()
        #expect(try Self.drain(channel).map { Array($0.readableBytesView) } == [second, third])
        #expect(memory.used == 70)
        // A frame larger than the whole budget is still read when nothing else is held.
        memory.release(70)
        let huge = Self.body(500, seed: 4)
        try channel.writeInbound(channel.allocator.buffer(bytes: Self.frame(huge)))
        #expect(try Self.drain(channel).map(\.readableBytes) == [500])
        _ = try channel.finish()
    }

    @Test("frames fed one byte at a time, without the allocator, come out whole")
    func dripFeed() throws {
        let bodies = [Self.body(8, seed: 1), Self.body(5000, seed: 2), Self.body(8, seed: 3), Self.body(300, seed: 4)]
        let (channel, _, _) = try Self.channel()
        for byte in bodies.flatMap(Self.frame) {
            try channel.writeInbound(channel.allocator.buffer(bytes: [byte]))
        }
        #expect(try Self.drain(channel).map { Array($0.readableBytesView) } == bodies)
        _ = try channel.finish()
    }

    @Test("a large body lands in the armed buffer and is passed on without a copy")
    func armedBodyIsNotCopied() throws {
        let body = Self.body(100_000, seed: 7)
        let stream = Self.frame(body) + Self.frame(Self.body(20, seed: 8))
        let (channel, state, low) = try Self.channel()
        let allocator = FrameReceiveAllocator(state: state)

        var first = allocator.buffer(allocator: channel.allocator)
        #expect(first.capacity >= 256)
        first.writeBytes(stream[0..<200])
        try channel.writeInbound(first)
        #expect(try Self.drain(channel).isEmpty)
        #expect(state.armed?.size == body.count)
        #expect(state.armed?.prefix.readableBytes == 196)
        #expect(low.calls == [body.count - 196])

        // What NIO's read does: ask for a buffer, read into its writable bytes.
        var second = allocator.buffer(allocator: channel.allocator)
        #expect(second.readableBytes == 196 && second.capacity >= body.count)
        second.writeBytes(stream[200..<(4 + body.count)])
        let address = second.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        try channel.writeInbound(second)
        let frames = try Self.drain(channel)
        #expect(frames.count == 1)
        #expect(frames.first.map { Array($0.readableBytesView) } == body)
        #expect(frames.first?.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == address)
        #expect(state.armed == nil)
        #expect(low.calls == [body.count - 196, 1])

        // The next read is an ordinary one again.
        var third = allocator.buffer(allocator: channel.allocator)
        #expect(third.readableBytes == 0)
        third.writeBytes(stream[(4 + body.count)...])
        try channel.writeInbound(third)
        #expect(try Self.drain(channel).map { Array($0.readableBytesView) } == [Self.body(20, seed: 8)])
        _ = try channel.finish()
    }

    @Test("a read that would block drops its buffer; the prefix is handed out again")
    func wouldBlockLosesNothing() throws {
        let body = Self.body(50_000, seed: 9)
        let stream = Self.frame(body)
        let (channel, state, _) = try Self.channel()
        let allocator = FrameReceiveAllocator(state: state)
        var first = allocator.buffer(allocator: channel.allocator)
        first.writeBytes(stream[0..<100])
        try channel.writeInbound(first)

        _ = allocator.buffer(allocator: channel.allocator)  // EAGAIN: NIO forgets this buffer
        var retry = allocator.buffer(allocator: channel.allocator)
        #expect(retry.readableBytes == 96)
        retry.writeBytes(stream[100...])
        try channel.writeInbound(retry)
        #expect(try Self.drain(channel).map { Array($0.readableBytesView) } == [body])
        _ = try channel.finish()
    }

    @Test("a short read into the armed buffer is finished by copying, followed by more frames")
    func shortReadFallsBack() throws {
        let body = Self.body(40_000, seed: 11)
        let tail = [Self.body(10, seed: 12), Self.body(3000, seed: 13)]
        let stream = Self.frame(body) + tail.flatMap(Self.frame)
        let (channel, state, low) = try Self.channel()
        let allocator = FrameReceiveAllocator(state: state)
        var first = allocator.buffer(allocator: channel.allocator)
        first.writeBytes(stream[0..<64])
        try channel.writeInbound(first)
        var armed = allocator.buffer(allocator: channel.allocator)
        armed.writeBytes(stream[64..<20_000])
        try channel.writeInbound(armed)
        #expect(try Self.drain(channel).isEmpty)
        #expect(state.armed == nil)
        #expect(low.calls.last == body.count - (20_000 - 4))  // the remainder should come in one read
        #expect(allocator.buffer(allocator: channel.allocator).writableBytes >= body.count - (20_000 - 4))
        var offset = 20_000
        while offset < stream.count {
            var next = allocator.buffer(allocator: channel.allocator)
            let end = min(stream.count, offset + next.writableBytes)
            next.writeBytes(stream[offset..<end])
            offset = end
            try channel.writeInbound(next)
        }
        #expect(try Self.drain(channel).map { Array($0.readableBytesView) } == [body] + tail)
        #expect(low.calls.last == 1)
        _ = try channel.finish()
    }

    @Test("an armed buffer with room to spare carries the following frames too")
    func armedBufferWithFollowingFrames() throws {
        let body = Self.body(30_000, seed: 21)
        let following = (0..<5).map { Self.body(10 + $0, seed: UInt8($0)) }
        let stream = Self.frame(body) + following.flatMap(Self.frame)
        let (channel, state, _) = try Self.channel()
        let allocator = FrameReceiveAllocator(state: state)
        var first = allocator.buffer(allocator: channel.allocator)
        first.writeBytes(stream[0..<50])
        try channel.writeInbound(first)
        var armed = allocator.buffer(allocator: channel.allocator)
        armed.reserveCapacity(minimumWritableBytes: stream.count)
        armed.writeBytes(stream[50...])
        try channel.writeInbound(armed)
        #expect(try Self.drain(channel).map { Array($0.readableBytesView) } == [body] + following)
        _ = try channel.finish()
    }

    @Test("bytes that bypass the allocator while a body is armed are assembled, not misread as a header")
    func bypassedAllocator() throws {
        let body = Self.body(10_000, seed: 31)
        let stream = Self.frame(body) + Self.frame(Self.body(9, seed: 32))
        let (channel, state, _) = try Self.channel()
        try channel.writeInbound(channel.allocator.buffer(bytes: stream[0..<10]))
        #expect(state.armed != nil)
        try channel.writeInbound(channel.allocator.buffer(bytes: stream[10...]))
        #expect(try Self.drain(channel).map { Array($0.readableBytesView) } == [body, Self.body(9, seed: 32)])
        _ = try channel.finish()
    }

    @Test("hostile sizes fail the channel and later bytes are ignored",
          arguments: [Int32(-1), 0, 7, Int32.max, Int32(FrameDecoder.requestBytesMaxDefault + 1)])
    func hostileSizes(size: Int32) throws {
        let (channel, state, _) = try Self.channel()
        var buffer = channel.allocator.buffer(capacity: 8)
        buffer.writeInteger(size)
        buffer.writeBytes([0, 1, 2, 3])
        #expect(throws: FrameDecoder.FrameError.self) { try channel.writeInbound(buffer) }
        #expect(state.armed == nil)
        try channel.writeInbound(channel.allocator.buffer(bytes: Self.frame(Self.body(8, seed: 1))))
        #expect(try Self.drain(channel).isEmpty)
        _ = try? channel.finish()
    }
}
