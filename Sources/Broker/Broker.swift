import KafkaProtocol
import Logging
import LogStorage
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Metrics
import Records
import Security
import Dispatch

/// Wall-clock milliseconds (the only clock the handlers read; state machines get it passed in).
func currentTimeMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// A decoded request with what the handlers need to answer it.
struct RequestContext {
    var header: RequestHeader
    var apiKey: ApiKey
    var version: Int16
    var eventLoop: EventLoop
    /// The connection it came on: listener, principal, SASL login.
    var session: ConnectionSession
    var clientHost: String { session.clientHost }
    /// Who sent it: the SASL user, or User:ANONYMOUS on a PLAINTEXT listener.
    var principal: RequestPrincipal
}

/// The broker: storage, metadata and request handlers, independent of sockets (the server in
/// `KafkaServer` feeds it frames). Every handler answers with a whole response frame, or nil
/// when the request gets none (Produce with acks=0).
public final class Broker: @unchecked Sendable {
    public let config: BrokerConfig
    public let clusterId: String
    let logManager: LogManager
    let metadata: MetadataStore
    let logger: Logger
    let threadPool: NIOThreadPool
    /// The fdatasyncs that acknowledgements wait for (durability `ack`, due `interval` flushes),
    /// grouped across partitions on `sluice.storage.threads` io_uring commit threads.
    let committer: GroupCommitter
    let fetchWaiters = FetchWaiters()
    let groups: GroupCoordinator
    let producerStates: ProducerStates
    let transactions: TransactionCoordinator
    let cleaner: LogCleaner
    private let cleanerPool: NIOThreadPool
    /// When timed-out transactions were last looked for.
    var lastTransactionSweepMs: Int64 = 0
    /// When the recovery points were last written (`log.flush.offset.checkpoint.interval.ms`).
    var lastRecoveryCheckpointMs: Int64 = 0
    /// Transactional ids decided (PrepareX stored) whose markers could not all be written yet.
    let markersOwed = NIOLockedValueBox<Set<String>>([])
    /// Housekeeping passes never overlap (one slow pass must not race the next).
    private let housekeepingRunning = NIOLockedValueBox(false)
    let metrics = BrokerMetrics()
    /// Per-API request counters and timers, made once (creating a metric is a registry lookup).
    let requestMetrics: [Int16: (count: Counter, time: MillisecondHistogram)]
    private let createLock = NIOLock()
    /// Internal topics a client has used (they show in full Metadata listings from then on).
    let internalTopicsInUse = NIOLockedValueBox<Set<String>>([])

    /// What we advertise in ApiVersions: only what is implemented and tested.
    static let supportedVersions: [(ApiKey, ClosedRange<Int16>)] = [
        (.produce, 3...10), (.fetch, 4...12), (.listOffsets, 1...7), (.metadata, 0...12),
        (.apiVersions, 0...4), (.createTopics, 2...7), (.deleteTopics, 1...6), (.deleteRecords, 0...2),
        (.initProducerId, 0...4), (.offsetForLeaderEpoch, 2...4), (.describeConfigs, 0...4),
        (.alterConfigs, 0...2), (.createPartitions, 0...3), (.incrementalAlterConfigs, 0...1),
        (.describeCluster, 0...1),
        (.findCoordinator, 0...4), (.joinGroup, 0...7), (.syncGroup, 0...5), (.heartbeat, 0...4),
        (.leaveGroup, 0...5), (.offsetCommit, 2...9), (.offsetFetch, 1...9), (.listGroups, 0...5),
        (.describeGroups, 0...5), (.deleteGroups, 0...2), (.offsetDelete, 0...0), (.describeLogDirs, 0...4),
        (.addPartitionsToTxn, 0...3), (.addOffsetsToTxn, 0...3), (.endTxn, 0...3), (.txnOffsetCommit, 0...3),
        (.listTransactions, 0...1), (.describeTransactions, 0...0),
        (.describeAcls, 0...3), (.createAcls, 0...3), (.deleteAcls, 0...3),
        (.describeUserScramCredentials, 0...0), (.alterUserScramCredentials, 0...0),
        (.saslHandshake, 1...1), (.saslAuthenticate, 0...2),
    ]
    static let supportedByKey: [Int16: ClosedRange<Int16>] = Dictionary(uniqueKeysWithValues: supportedVersions.map { ($0.0.rawValue, $0.1) })

    public init(config: BrokerConfig, logger: Logger, threadPool: NIOThreadPool) throws {
        self.config = config
        self.logger = logger
        self.threadPool = threadPool
        producerStates = ProducerStates(logger: logger)
        cleaner = LogCleaner(config: config.cleaner, logger: logger)
        cleanerPool = NIOThreadPool(numberOfThreads: config.cleaner.threads)
        let m = BrokerMetrics()
        let flushTimer = m.logFlush
        committer = GroupCommitter(threads: config.storageThreads, preference: config.commitBackend == "syscalls" ? .syscalls : .automatic,
                                   logger: logger) { flushTimer.recordNanoseconds(Int64($0)) }
        requestMetrics = Dictionary(uniqueKeysWithValues: Self.supportedVersions.map { ($0.0.rawValue, (m.request($0.0.name), m.requestTime($0.0.name))) })
        let now = currentTimeMs()
        clusterId = try StorageFormat.ensureFormatted(logDir: config.logDir, nodeId: config.nodeId, logger: logger)
        let defaults = config.logDefaults
        // The internal topics are created at start, 50 partitions each: they take Kafka's own
        // segment sizes and are never preallocated (log.preallocate would otherwise reserve
        // 100 segments of log.segment.bytes before the first client connects) nor written behind.
        func internalConfig(segmentBytes: Int) -> LogConfig {
            var c = config.logDefaults
            c.segmentBytes = segmentBytes
            c.preallocate = false
            c.preallocateStepBytes = 0
            c.zeroAheadBytes = 0
            c.dropBehindBytes = 0
            // Their appends are written by the coordinators themselves (never deferred), so a
            // write-behind gains nothing, and inline writes keep them up through a full disk.
            c.bufferedSubmit = .inline
            return c
        }
        let offsetsConfig = internalConfig(segmentBytes: config.offsetsTopicSegmentBytes)
        let transactionStateConfig = internalConfig(segmentBytes: config.transactionStateSegmentBytes)
        // Every log opens with its own config (an active segment keeps the I/O settings it was
        // opened with): the internal logs with theirs; user topics once the metadata log, which
        // holds their overrides and the dynamic broker defaults, has been replayed.
        let internalTopics: Set = [MetadataStore.logName, GroupCoordinator.offsetsTopic, TransactionCoordinator.stateTopic]
        logManager = try LogManager(logDir: config.logDir, nowMs: now, logger: logger,
                                    openSegmentsLimit: config.openSegmentsMax, deferring: { !internalTopics.contains($0) }) { topic in
            switch topic {
            case GroupCoordinator.offsetsTopic: offsetsConfig
            case TransactionCoordinator.stateTopic: transactionStateConfig
            default: MetadataStore.logConfig
            }
        }
        let store = try MetadataStore(logManager: logManager, nodeId: config.nodeId, nowMs: now, logger: logger,
                                      authorizerSettings: AclAuthorizer(superUsers: AclAuthorizer.parseSuperUsers(config.superUsers),
                                                                        allowEveryoneIfNoAclFound: config.allowEveryoneIfNoAclFound))
        metadata = store
        try logManager.openDeferred(nowMs: now) { Self.topicConfig($0, defaults: defaults, metadata: store) }
        groups = try GroupCoordinator(logManager: logManager, config: offsetsConfig,
                                      limits: config.groupLimits, partitions: config.offsetsTopicPartitions, logger: logger)
        transactions = try TransactionCoordinator(logManager: logManager, config: transactionStateConfig,
                                                  partitions: config.transactionStatePartitions, logger: logger)
        // Before internal topics were known as such, a Metadata request naming one created a
        // user topic of that name; drop such records (the metadata only: the logs are the
        // coordinators').
        for name in Self.internalTopicNames where metadata.topic(name) != nil {
            logger.warning("the metadata log lists internal topic \(name) as a user topic; removing that record")
            // A full disk must not keep the broker from starting: the record is retried at the next start.
            do { try metadata.deleteTopic(name, nowMs: now) } catch {
                logger.error("could not remove the record of \(name) from the metadata log: \(error)")
            }
        }
        let known = Set(metadata.topics.map(\.name))
        for log in logManager.allLogs where !internalTopics.contains(log.topic) {
            if !known.contains(log.topic) {
                logger.warning("log \(log.name) belongs to no topic in the metadata log; deleting it")
                logManager.deleteLogs(topic: log.topic)
            }
        }
        for topic in metadata.topics {
            for p in 0..<topic.partitionCount where logManager.log(topic: topic.name, partition: p) == nil {
                producerStates.created(try logManager.createLog(topic: topic.name, partition: p, config: topicConfig(topic.name), nowMs: now))
            }
        }
        // Producer state (sequences, open transactions, the LSO) for every data partition:
        // newest snapshot plus a replay of what follows it.
        for log in logManager.allLogs where log.topic != MetadataStore.logName && log.topic != TransactionCoordinator.stateTopic {
            _ = try producerStates.state(for: log)
        }
        internalTopicsInUse.withLockedValue { $0 = internalTopicsWithData() }
        try completeInterruptedTransactions()
        if config.cleaner.enabled { startCleaner() }
    }

    /// `log.cleaner.threads` loops: clean the dirtiest compacted log, or back off.
    private func startCleaner() {
        cleanerPool.start()
        for _ in 0..<config.cleaner.threads {
            cleanerPool.submit { [self] state in
                guard state == .active else { return }
                while !cleaner.isStopping {
                    let logs = logManager.allLogs.filter { $0.topic != MetadataStore.logName }
                    if let stats = cleaner.runOnce(logs: logs, nowMs: currentTimeMs(), lastStableOffset: { [self] log in
                        producerStates.lastStableOffset(log, highWatermark: highWatermark(log))
                    }) {
                        metrics.recordCleaning(stats, totals: cleaner.totals)
                        continue
                    }
                    var slept: Int64 = 0
                    while slept < config.cleaner.backoffMs && !cleaner.isStopping {
                        usleep(useconds_t(min(100, config.cleaner.backoffMs - slept) * 1000))
                        slept += 100
                    }
                }
            }
        }
    }

    /// The effective config of a topic: broker defaults, then dynamic broker configs, then the
    /// topic's overrides.
    func topicConfig(_ topic: String) -> LogConfig {
        Self.topicConfig(topic, defaults: config.logDefaults, metadata: metadata)
    }

    /// A user topic's config: the static defaults, the dynamic broker defaults, its overrides.
    static func topicConfig(_ topic: String, defaults: LogConfig, metadata: MetadataStore) -> LogConfig {
        var c = topicDefaults(defaults, metadata: metadata)
        for (k, v) in metadata.topic(topic)?.configs ?? [:] { _ = try? c.set(k, v) }
        return c
    }

    /// User-topic defaults: the static ones, then the dynamic broker defaults.
    static func topicDefaults(_ defaults: LogConfig, metadata: MetadataStore) -> LogConfig {
        var c = defaults
        for (k, v) in metadata.dynamicBrokerConfigs {
            if let name = BrokerConfig.topicDefaults[k] { _ = try? c.set(name, v) }
        }
        return c
    }

    public func shutdown() throws {
        fetchWaiters.wakeAll()
        cleaner.stop()
        try? cleanerPool.syncShutdownGracefully()
        committer.shutdown()
        producerStates.writeSnapshots(logManager.allLogs, force: true)
        try logManager.shutdown(nowMs: currentTimeMs())
    }

    /// Group clocks: session expiry and rebalance deadlines (every 100 ms).
    func tickGroups(on loop: EventLoop) { groups.tick(on: loop) }

    /// Periodic work: retention, interval flushes, checkpoints.
    func housekeeping() {
        guard housekeepingRunning.withLockedValue({ running in
            defer { running = true }
            return !running
        }) else { return }
        defer { housekeepingRunning.withLockedValue { $0 = false } }
        let now = currentTimeMs()
        // Kafka's PartitionCount: every partition hosted, the internal topics in use included.
        metrics.partitions.record(Int(hostedPartitions) + shownInternalTopics.reduce(0) { $0 + Int($1.partitionCount) })
        logManager.applyRetention(nowMs: now)
        for log in logManager.allLogs {
            let c = log.currentConfig
            if c.durability == .interval && c.flushMs != Int64.max {
                try? log.flush(nowMs: now)
            }
        }
        let recoveryPointsDue = now - lastRecoveryCheckpointMs >= config.recoveryPointCheckpointIntervalMs
        if (try? logManager.checkpoint(recoveryPoints: recoveryPointsDue)) != nil && recoveryPointsDue {
            lastRecoveryCheckpointMs = now
        }
        groups.expireOffsets(retentionMs: config.offsetsRetentionMs, nowMs: now)
        producerStates.expire(idleMs: dynamicInt("producer.id.expiration.ms", default: config.producerIdExpirationMs), nowMs: now)
        producerStates.writeSnapshots(logManager.allLogs, force: false)
        if now - lastTransactionSweepMs >= config.transactionAbortIntervalMs {
            lastTransactionSweepMs = now
            abortTimedOutTransactions(nowMs: now)
        }
        // Markers a full disk held back are retried until they land.
        retryOwedMarkers()
    }

    // MARK: - dispatch

    /// Handles one request frame. Errors that Kafka answers by closing the connection (an
    /// unreadable header, an API or version we do not speak) fail the future.
    func handle(frame: ByteBuffer, eventLoop: EventLoop, session: ConnectionSession) -> EventLoopFuture<ResponseFrame?> {
        let clientHost = session.clientHost
        var body = frame
        let header: RequestHeader
        do {
            header = try KafkaHeaders.decodeRequestHeader(from: &body)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let key = header.requestApiKey, version = header.requestApiVersion
        guard let apiKey = ApiKey(rawValue: key), let range = Self.supportedByKey[key], range.contains(version) else {
            if key == ApiKey.apiVersions.rawValue {
                // KIP-511: answer in v0 with our ranges so the client can pick a version.
                return eventLoop.makeSucceededFuture(ResponseFrame(KafkaHeaders.unsupportedApiVersionsResponse(
                    correlationId: header.correlationId, supported: apiVersionList())))
            }
            logger.debug("closing connection: unsupported api \(key) v\(version) from \(clientHost)")
            return eventLoop.makeFailedFuture(BrokerError.unsupportedVersion(key, version))
        }
        if !session.authenticated && !ConnectionSession.allowedBeforeLogin(apiKey) {
            // Kafka closes a connection that sends anything else before its SASL login is done.
            logger.info("closing connection from \(clientHost): \(apiKey.name) before SASL authentication")
            return eventLoop.makeFailedFuture(BrokerError.unauthenticated(apiKey.name))
        }
        let context = RequestContext(header: header, apiKey: apiKey, version: version, eventLoop: eventLoop, session: session,
                                     principal: session.principal)
        let started = DispatchTime.now().uptimeNanoseconds
        if let m = requestMetrics[key] {
            m.count.increment()
            return dispatch(context, &body).always { _ in
                m.time.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
            }
        }
        return dispatch(context, &body)
    }

    private func dispatch(_ context: RequestContext, _ body: inout ByteBuffer) -> EventLoopFuture<ResponseFrame?> {
        if context.apiKey == .fetch {
            do { return try handleFetch(context, &body) } catch {
                logger.info("closing connection: malformed Fetch v\(context.version) from \(context.clientHost): \(error)")
                return context.eventLoop.makeFailedFuture(error)
            }
        }
        return dispatchBuffered(context, &body).map { $0.map(ResponseFrame.init) }
    }

    private func dispatchBuffered(_ context: RequestContext, _ body: inout ByteBuffer) -> EventLoopFuture<ByteBuffer?> {
        let (apiKey, version, eventLoop, clientHost) = (context.apiKey, context.version, context.eventLoop, context.clientHost)
        let key = apiKey.rawValue
        do {
            switch apiKey {
            case .apiVersions: return done(context, try handleApiVersions(context, &body))
            case .metadata: return done(context, try handleMetadata(context, &body))
            case .produce: return try handleProduce(context, &body)
            case .listOffsets: return done(context, try handleListOffsets(context, &body))
            case .createTopics: return done(context, try handleCreateTopics(context, &body))
            case .deleteTopics: return done(context, try handleDeleteTopics(context, &body))
            case .createPartitions: return done(context, try handleCreatePartitions(context, &body))
            case .deleteRecords: return done(context, try handleDeleteRecords(context, &body))
            case .initProducerId: return done(context, try handleInitProducerId(context, &body))
            case .offsetForLeaderEpoch: return done(context, try handleOffsetForLeaderEpoch(context, &body))
            case .describeConfigs: return done(context, try handleDescribeConfigs(context, &body))
            case .alterConfigs: return done(context, try handleAlterConfigs(context, &body))
            case .incrementalAlterConfigs: return done(context, try handleIncrementalAlterConfigs(context, &body))
            case .describeCluster: return done(context, try handleDescribeCluster(context, &body))
            case .findCoordinator: return done(context, try handleFindCoordinator(context, &body))
            case .joinGroup: return try handleJoinGroup(context, &body)
            case .syncGroup: return try handleSyncGroup(context, &body)
            case .heartbeat: return done(context, try handleHeartbeat(context, &body))
            case .leaveGroup: return done(context, try handleLeaveGroup(context, &body))
            case .offsetCommit: return try handleOffsetCommit(context, &body)
            case .offsetFetch: return done(context, try handleOffsetFetch(context, &body))
            case .listGroups: return done(context, try handleListGroups(context, &body))
            case .describeGroups: return done(context, try handleDescribeGroups(context, &body))
            case .deleteGroups: return done(context, try handleDeleteGroups(context, &body))
            case .offsetDelete: return try handleOffsetDelete(context, &body)
            case .describeLogDirs: return done(context, try handleDescribeLogDirs(context, &body))
            case .addPartitionsToTxn: return try handleAddPartitionsToTxn(context, &body)
            case .addOffsetsToTxn: return try handleAddOffsetsToTxn(context, &body)
            case .endTxn: return try handleEndTxn(context, &body)
            case .txnOffsetCommit: return try handleTxnOffsetCommit(context, &body)
            case .listTransactions: return done(context, try handleListTransactions(context, &body))
            case .describeTransactions: return done(context, try handleDescribeTransactions(context, &body))
            case .saslHandshake: return done(context, try handleSaslHandshake(context, &body))
            case .saslAuthenticate: return done(context, try handleSaslAuthenticate(context, &body))
            case .describeAcls: return done(context, try handleDescribeAcls(context, &body))
            case .createAcls: return done(context, try handleCreateAcls(context, &body))
            case .deleteAcls: return done(context, try handleDeleteAcls(context, &body))
            case .describeUserScramCredentials: return done(context, try handleDescribeUserScramCredentials(context, &body))
            case .alterUserScramCredentials: return done(context, try handleAlterUserScramCredentials(context, &body))
            default: return eventLoop.makeFailedFuture(BrokerError.unsupportedVersion(key, version))
            }
        } catch let error as DecodeError {
            logger.info("closing connection: malformed \(apiKey.name) v\(version) from \(clientHost): \(error)")
            return eventLoop.makeFailedFuture(error)
        } catch {
            logger.error("\(apiKey.name) v\(version) failed: \(error)")
            return eventLoop.makeFailedFuture(error)
        }
    }

    private func done(_ context: RequestContext, _ response: ByteBuffer) -> EventLoopFuture<ByteBuffer?> {
        context.eventLoop.makeSucceededFuture(response)
    }

    func frame<M: KafkaMessage>(_ body: M, _ context: RequestContext) -> ByteBuffer {
        KafkaHeaders.encodeResponse(body, version: context.version, correlationId: context.header.correlationId)
    }

    func apiVersionList() -> [ApiVersionsResponse.ApiVersion] {
        Self.supportedVersions.map { ApiVersionsResponse.ApiVersion(apiKey: $0.0.rawValue, minVersion: $0.1.lowerBound, maxVersion: $0.1.upperBound) }
    }

    // MARK: - topics

    static func isValidTopicName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 249, name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
        }
    }

    /// Creates a topic and its logs (the metadata record first, so a crash in between leaves
    /// logs to be created at the next start rather than orphans).
    func createTopic(_ name: String, partitions: Int32, configs: [String: String]) throws -> TopicMetadata {
        try createLock.withLock {
            if let existing = metadata.topic(name) { return existing }
            try checkPartitionLimit(adding: Int(partitions))
            let now = currentTimeMs()
            let topic = try metadata.createTopic(name, partitions: partitions, configs: configs, nowMs: now)
            let c = topicConfig(name)
            for p in 0..<partitions { producerStates.created(try logManager.createLog(topic: name, partition: p, config: c, nowMs: now)) }
            logger.info("created topic \(name) with \(partitions) partitions")
            return topic
        }
    }

    /// Grows a topic to `count` partitions (CreatePartitions).
    func addPartitions(_ topic: TopicMetadata, to count: Int32) throws {
        try createLock.withLock {
            try checkPartitionLimit(adding: Int(count - topic.partitionCount))
            let now = currentTimeMs()
            try metadata.addPartitions(topic.name, to: count, nowMs: now)
            for p in topic.partitionCount..<count {
                producerStates.created(try logManager.createLog(topic: topic.name, partition: p, config: topicConfig(topic.name), nowMs: now))
            }
        }
    }

    /// sluice.partitions.max, checked where partitions are made (whichever request asks: CreateTopics,
    /// CreatePartitions, or a Metadata request that auto-creates); the caller holds `createLock`.
    private func checkPartitionLimit(adding count: Int) throws {
        guard count <= config.partitionsMax - hostedPartitions else {
            throw PartitionLimitExceeded(requested: count, limit: config.partitionsMax)
        }
    }

    func deleteTopic(_ name: String) throws {
        try createLock.withLock {
            try metadata.deleteTopic(name, nowMs: currentTimeMs())
            logManager.deleteLogs(topic: name)
            producerStates.forget(topic: name)
            logger.info("deleted topic \(name)")
        }
    }

    /// A dynamic broker config (AlterConfigs on the broker) that Sluice applies at run time, as an
    /// integer, else the static value.
    func dynamicInt(_ key: String, default value: Int64) -> Int64 {
        metadata.dynamicBrokerConfigs[key].flatMap { Int64($0) } ?? value
    }

    /// max.connections and max.connections.per.ip, dynamic as in Kafka.
    var connectionLimits: (total: Int, perIp: Int) {
        (Int(dynamicInt("max.connections", default: Int64(config.maxConnections))),
         Int(dynamicInt("max.connections.per.ip", default: Int64(config.maxConnectionsPerIp))))
    }

    /// Logs this broker has open (user topics, the internal topics and the metadata log).
    public var openLogCount: Int { logManager.allLogs.count }

    /// High watermark: everything appended (in direct mode: written to the segment file, which
    /// is where the fetch reads it), or with durability `ack` everything on disk — a consumer
    /// never sees a record that a crash could take back.
    func highWatermark(_ log: PartitionLog) -> Int64 {
        log.currentConfig.durability == .ack ? log.durableOffset : log.writtenOffset
    }
}

struct PartitionLimitExceeded: Error, CustomStringConvertible {
    let requested: Int
    let limit: Int
    var description: String { "\(requested) more partitions would exceed sluice.partitions.max (\(limit))" }
}

public enum BrokerError: Error, CustomStringConvertible {
    case unsupportedVersion(Int16, Int16)
    case unauthenticated(String)
    public var description: String {
        switch self {
        case let .unsupportedVersion(k, v): "unsupported API key \(k) version \(v)"
        case let .unauthenticated(api): "\(api) before SASL authentication"
        }
    }
}
