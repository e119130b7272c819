import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The network side: accepts connections, splits frames, hands them to the broker, and writes
/// responses strictly in request order per connection (clients pipeline). Reading pauses while
/// `queued.max.requests` requests of a connection are in flight.
public final class KafkaServer: @unchecked Sendable {
    let broker: Broker
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    private var channels: [Channel] = []
    /// Each listener's bound port, by listener name.
    public private(set) var boundPorts: [String: Int] = [:]
    private var housekeeping: RepeatedTask?
    private var groupClock: RepeatedTask?
    let connections = ConnectionCounter()
    /// Requests received and not yet answered, over all connections (for a graceful stop).
    let inFlight = RequestCounter()

    public init(broker: Broker, group: MultiThreadedEventLoopGroup, logger: Logger) {
        self.broker = broker
        self.group = group
        self.logger = logger
    }

    /// Binds every listener; returns the first one's bound port (useful with port 0).
    public func start() throws -> Int {
        let config = broker.config
        BodyPool.setLimit(bytes: config.socketReceivePoolBytes)
        // queued.max.request.bytes: reserved by the frame receiver, returned once answered.
        let memory = config.socketReceive == "frames" ? RequestMemory(limit: config.queuedMaxRequestBytes) : nil
        for listener in try config.resolveListeners() {
            let channel = try bootstrap(listener, memory: memory).bind(host: listener.host, port: listener.port).wait()
            channels.append(channel)
            boundPorts[listener.name] = channel.localAddress?.port ?? listener.port
        }
        let interval = TimeAmount.milliseconds(min(broker.config.retentionCheckIntervalMs, 1000))
        housekeeping = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { [broker] _ in
            broker.threadPool.submit { _ in broker.housekeeping() }
        }
        let loop = group.next()
        groupClock = loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [broker] _ in
            broker.tickGroups(on: loop)
        }
        return boundPorts[config.listenerAddresses[0].name] ?? config.listenerPort
    }

    private func bootstrap(_ listener: Listener, memory: RequestMemory?) -> ServerBootstrap {
        let config = broker.config
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: config.socketReceive == "frames" ? UInt(1) : UInt(16))
            .childChannelInitializer { [broker, logger, connections, inFlight, memory] channel in
                let host = channel.remoteAddress?.ipAddress ?? "?"
                let limits = broker.connectionLimits
                guard connections.open(host: host, max: limits.total, maxPerIp: limits.perIp) else {
                    logger.warning("refusing connection from \(host): max.connections reached")
                    return channel.close()
                }
                broker.metrics.connections.record(connections.count)
                channel.closeFuture.whenComplete { _ in
                    connections.close(host: host)
                    broker.metrics.connections.record(connections.count)
                }
                let session = ConnectionSession(listener: listener, clientHost: host, preAuthenticationFrameBytes: config.saslServerMaxReceiveSize)
                return channel.eventLoop.makeCompletedFuture {
                    let frames = FrameDecoder(frameBytesMax: config.requestBytesMax, cap: session.frameCap)
                    let sync = channel.pipeline.syncOperations
                    if config.connectionsMaxIdleMs > 0 {
                        try sync.addHandler(IdleCloser(idleMs: config.connectionsMaxIdleMs))
                    }
                    if config.socketReceive == "frames" {
                        // One read per wake-up: NIO's receive pool keeps the first `maxMessagesPerRead`
                        // buffers it is given, which must not be large frame bodies.
                        let state = FrameReceiveState(bodyAllocator: BodyPool.allocator)
                        try channel.syncOptions?.setOption(.recvAllocator, value: FrameReceiveAllocator(state: state))
                        try sync.addHandler(FrameReceiver(frames: frames, state: state, memory: memory, lowWater: Self.setReceiveLowWater))
                    } else {
                        try sync.addHandler(ByteToMessageHandler(KafkaFrameDecoder(frames: frames)))
                    }
                    try sync.addHandler(RequestHandler(broker: broker, session: session, queuedMax: config.queuedMaxRequests,
                                                       inFlight: inFlight, memory: memory, logger: logger))
                }
            }
    }

    /// SO_RCVLOWAT: the socket reports readable once this many bytes are queued (the kernel caps
    /// it at half the largest receive buffer and still wakes early when the window closes).
    static func setReceiveLowWater(context: ChannelHandlerContext, bytes: Int) {
        let option = ChannelOptions.socketOption(NIOBSDSocket.Option(rawValue: SO_RCVLOWAT))
        try? context.channel.syncOptions?.setOption(option, value: SocketOptionValue(min(bytes, Int(Int32.max))))
    }

    /// Stops accepting connections and waits (at most `drainMs`) for in-flight requests to be
    /// answered; the event loop group's shutdown then closes the connections.
    public func stop(drainMs: Int64 = 5_000) async {
        housekeeping?.cancel()
        groupClock?.cancel()
        for channel in channels { try? await channel.close().get() }
        let deadline = currentTimeMs() + drainMs
        while inFlight.count > 0 && currentTimeMs() < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if inFlight.count > 0 { logger.warning("stopping with \(inFlight.count) requests still in flight") }
    }
}

final class ConnectionCounter: @unchecked Sendable {
    private let lock = NIOLock()
    private var total = 0
    private var perHost: [String: Int] = [:]

    func open(host: String, max: Int, maxPerIp: Int) -> Bool {
        lock.withLock {
            guard total < max, perHost[host, default: 0] < maxPerIp else { return false }
            total += 1
            perHost[host, default: 0] += 1
            return true
        }
    }

    var count: Int { lock.withLock { total } }

    func close(host: String) {
        lock.withLock {
            total -= 1
            perHost[host, default: 1] -= 1
            if perHost[host] == 0 { perHost.removeValue(forKey: host) }
        }
    }
}

/// Requests received and not yet answered, over all connections.
final class RequestCounter: @unchecked Sendable {
    private let value = NIOLockedValueBox(0)
    func add(_ n: Int) { value.withLockedValue { $0 += n } }
    var count: Int { value.withLockedValue { $0 } }
}

/// Closes a connection idle for connections.max.idle.ms.
final class IdleCloser: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    let idleMs: Int64
    private var lastActivity = NIODeadline.now()
    private var timer: RepeatedTask?

    init(idleMs: Int64) { self.idleMs = idleMs }

    func handlerAdded(context: ChannelHandlerContext) {
        let period = TimeAmount.milliseconds(max(100, min(idleMs / 4, 10_000)))
        let channel = context.channel
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { [self] _ in
            if NIODeadline.now() - lastActivity > .milliseconds(idleMs) { channel.close(promise: nil) }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = .now()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        context.write(data, promise: promise)
    }
}

/// One connection: frames in, responses out in request order.
final class RequestHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = IOData
    typealias OutboundIn = IOData

    let broker: Broker
    let session: ConnectionSession
    var clientHost: String { session.clientHost }
    let queuedMax: Int
    let logger: Logger
    let inFlightTotal: RequestCounter
    private var nextSequence = 0
    private var nextToWrite = 0
    private var ready: [Int: ResponseFrame?] = [:]
    /// Requests received but not started: they wait behind a request that must run alone.
    private var held = CircularBuffer<(ByteBuffer, Int)>()
    /// Requests started and not yet answered.
    private var running = 0
    /// A request that runs alone (anything but Produce and Fetch) is in flight.
    private var serialRunning = false
    private var readsPaused = false
    private var closing = false
    /// True between a read's first channelRead and its channelReadComplete: responses ready by
    /// then are flushed once, together, at channelReadComplete (one writev for a burst of
    /// pipelined requests instead of one per response).
    private var reading = false
    private var flushPending = false

    /// The request budget the frame receiver reserved each frame's bytes from.
    let memory: RequestMemory?

    init(broker: Broker, session: ConnectionSession, queuedMax: Int, inFlight: RequestCounter, memory: RequestMemory?, logger: Logger) {
        self.inFlightTotal = inFlight
        self.memory = memory
        self.broker = broker
        self.session = session
        self.queuedMax = queuedMax
        self.logger = logger
    }

    var inFlight: Int { nextSequence - nextToWrite }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !closing else {
            // Dropped unanswered: its reserved bytes go back to the budget all the same.
            memory?.release(frame.readableBytes)
            return
        }
        reading = true
        let sequence = nextSequence
        nextSequence += 1
        inFlightTotal.add(1)
        if held.isEmpty && mayStart(frame) {
            start(frame, sequence: sequence, context: context)
        } else {
            held.append((frame, sequence))
        }
        if inFlight >= queuedMax && !readsPaused {
            readsPaused = true
        }
    }

    /// Produce and Fetch run side by side (Produce appends on this loop, in arrival order, before
    /// its future is made). Every other request changes or reads coordinator state whose
    /// updates may finish off the loop, so it starts only once everything before it has been
    /// answered, and holds back what follows, as Kafka serves a connection one request at a time:
    /// two pipelined OffsetCommits are applied in the order they were sent.
    private func mayStart(_ frame: ByteBuffer) -> Bool {
        if serialRunning { return false }
        return Self.pipelines(frame) || running == 0
    }

    static func pipelines(_ frame: ByteBuffer) -> Bool {
        guard let key = frame.getInteger(at: frame.readerIndex, as: Int16.self) else { return false }
        return key == ApiKey.produce.rawValue || key == ApiKey.fetch.rawValue
    }

    private func start(_ frame: ByteBuffer, sequence: Int, context: ChannelHandlerContext) {
        let serial = !Self.pipelines(frame)
        let bytes = frame.readableBytes
        running += 1
        if serial { serialRunning = true }
        let loop = context.eventLoop
        broker.handle(frame: frame, eventLoop: loop, session: session)
            .hop(to: loop)
            .assumeIsolatedUnsafeUnchecked()
            .whenComplete { [self] result in
                inFlightTotal.add(-1)
                memory?.release(bytes)
                running -= 1
                if serial { serialRunning = false }
                switch result {
                case .success(let response):
                    ready[sequence] = .some(response)
                    writeReady(context: context)
                    if session.closeAfterResponse {
                        closeAfterWrites(context: context)
                        return
                    }
                    startHeld(context: context)
                case .failure:
                    // Kafka closes the connection on requests it cannot parse or serve.
                    closing = true
                    dropHeld()
                    context.close(promise: nil)
                }
            }
    }

    /// A failed SASL login: its answer goes out, then the connection closes (as Kafka does).
    private func closeAfterWrites(context: ChannelHandlerContext) {
        closing = true
        dropHeld()
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(ByteBuffer())), promise: written)
        written.futureResult.whenComplete { _ in context.close(promise: nil) }
    }

    private func dropHeld() {
        inFlightTotal.add(-held.count)
        memory?.release(held.reduce(0) { $0 + $1.0.readableBytes })
        held.removeAll()
    }

    func channelInactive(context: ChannelHandlerContext) {
        dropHeld()
        context.fireChannelInactive()
    }

    private func startHeld(context: ChannelHandlerContext) {
        while !closing, let (frame, sequence) = held.first, mayStart(frame) {
            held.removeFirst()
            start(frame, sequence: sequence, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if !readsPaused { context.read() }
    }

    private func writeReady(context: ChannelHandlerContext) {
        var wrote = false
        while let entry = ready.removeValue(forKey: nextToWrite) {
            if let response = entry {
                for part in response.parts {
                    switch part {
                    case .bytes(let buffer):
                        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
                    case let .file(owned, position, length):
                        // sendfile from the segment: the record bytes stay in the kernel.
                        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: owned.take())
                        let region = FileRegion(fileHandle: handle, readerIndex: Int(position), endIndex: Int(position) + length)
                        let written = context.eventLoop.makePromise(of: Void.self)
                        written.futureResult.whenComplete { _ in try? handle.close() }
                        context.write(wrapOutboundOut(.fileRegion(region)), promise: written)
                    }
                }
                wrote = true
            }
            nextToWrite += 1
        }
        if wrote {
            if reading { flushPending = true } else { context.flush() }
        }
        if readsPaused && inFlight < queuedMax {
            readsPaused = false
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("closing connection from \(clientHost): \(error)")
        closing = true
        context.close(promise: nil)
    }
}
