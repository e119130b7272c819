import Coordination
import KafkaProtocol
import Logging
import LogStorage
import NIOConcurrencyHelpers
import NIOCore
import Records

/// Wires `ConsumerGroup` state machines to requests, time and storage: parks JoinGroup and
/// SyncGroup requests until their group answers them, ticks the groups' clocks, and keeps
/// committed offsets in `__consumer_offsets` (Kafka's key/value record formats).
final class GroupCoordinator: @unchecked Sendable {
    static let offsetsTopic = "__consumer_offsets"
    /// offsets.topic.num.partitions (Kafka's default; fixed once the topic exists, as in Kafka).
    static let offsetsPartitionsDefault: Int32 = 50
    let offsetsPartitions: Int32
    /// offset.metadata.max.bytes
    static let metadataBytesMax = 4096

    struct Committed: Sendable, Equatable {
        var offset: Int64
        var leaderEpoch: Int32
        var metadata: String
        var commitTimestamp: Int64
    }

    struct TopicPartition: Hashable, Sendable { var topic: String; var partition: Int32 }

    private let lock = NIOLock()
    private var groups: [String: ConsumerGroup] = [:]
    private var offsets: [String: [TopicPartition: Committed]] = [:]
    /// TxnOffsetCommit offsets per producer id, applied when its COMMIT marker is written.
    private var pendingTransactional: [Int64: [String: [TopicPartition: Committed]]] = [:]
    private var parkedJoins: [String: [String: EventLoopPromise<ConsumerGroup.Outcome>]] = [:]
    private var parkedSyncs: [String: [String: EventLoopPromise<ConsumerGroup.Outcome>]] = [:]
    private var offsetLogs: [PartitionLog] = []
    let limits: ConsumerGroup.Limits
    let logger: Logger

    init(logManager: LogManager, config: LogConfig, limits: ConsumerGroup.Limits, partitions requested: Int32, logger: Logger) throws {
        self.limits = limits
        self.logger = logger
        offsetLogs = try Self.openInternalTopic(Self.offsetsTopic, partitions: requested, logManager: logManager, config: config)
        offsetsPartitions = Int32(offsetLogs.count)
        try load()
    }

    /// Opens (or creates) an internal topic's logs: compacted, never deleted by retention, small
    /// indexes. An existing topic keeps its partition count, because ids hash onto it.
    static func openInternalTopic(_ topic: String, partitions requested: Int32, logManager: LogManager,
                                  config: LogConfig) throws -> [PartitionLog] {
        let existing = logManager.allLogs.filter { $0.topic == topic }.count
        var c = config
        c.segmentIndexBytes = min(c.segmentIndexBytes, 1 << 20)
        c.retentionMs = -1
        c.retentionBytes = -1
        _ = try? c.set("cleanup.policy", "compact")  // Kafka: internal topics are compacted
        let now = currentTimeMs()
        return try (0..<(existing > 0 ? Int32(existing) : requested)).map { p in
            let log = try logManager.log(topic: topic, partition: p) ?? logManager.createLog(topic: topic, partition: p, config: c, nowMs: now)
            log.updateConfig(c)
            return log
        }
    }

    /// Kafka's choice: abs(groupId.hashCode) % partitions, with Java's String.hashCode.
    static func partition(for groupId: String, partitions: Int32) -> Int32 {
        var h: Int32 = 0
        for unit in groupId.utf16 { h = h &* 31 &+ Int32(unit) }
        return (h & 0x7fff_ffff) % partitions
    }

    // MARK: - persistence

    private func load() throws {
        for log in offsetLogs {
            try log.forEachBatch { batch in
                if batch.isControl {
                    if let type = try ProducerStates.controlType(of: batch) { finish(producerId: batch.producerId, commit: type == .commit) }
                } else if batch.isTransactional {
                    for record in try batch.records() {
                        guard let (group, tp, c) = Self.decode(key: record.key, value: record.value), let c else { continue }
                        pendingTransactional[batch.producerId, default: [:]][group, default: [:]][tp] = c
                    }
                } else {
                    for record in try batch.records() { apply(key: record.key, value: record.value) }
                }
            }
        }
        let count = offsets.values.reduce(0) { $0 + $1.count }
        if count > 0 { logger.info("loaded \(count) committed offsets of \(offsets.count) groups") }
    }

    private func apply(key: ByteBuffer?, value: ByteBuffer?) {
        guard let (group, tp, committed) = Self.decode(key: key, value: value) else { return }
        if let committed {
            offsets[group, default: [:]][tp] = committed
        } else {
            offsets[group]?.removeValue(forKey: tp)
            if offsets[group]?.isEmpty == true { offsets.removeValue(forKey: group) }
        }
    }

    /// An offset-commit record: (group, partition, offset) or a tombstone; nil for other records.
    static func decode(key: ByteBuffer?, value: ByteBuffer?) -> (String, TopicPartition, Committed?)? {
        guard var k = key, let keyVersion = k.readInteger(as: Int16.self), keyVersion <= 1,
              let ck = try? OffsetCommitKey.decode(from: &k, version: keyVersion) else { return nil }
        let tp = TopicPartition(topic: ck.topic, partition: ck.partition)
        guard var v = value else { return (ck.group, tp, nil) }
        guard let valueVersion = v.readInteger(as: Int16.self), let cv = try? OffsetCommitValue.decode(from: &v, version: valueVersion) else { return nil }
        return (ck.group, tp, Committed(offset: cv.offset, leaderEpoch: cv.leaderEpoch, metadata: cv.metadata, commitTimestamp: cv.commitTimestamp))
    }

    /// A transaction marker reached `__consumer_offsets`: its offsets become visible or vanish.
    private func finish(producerId: Int64, commit: Bool) {
        guard let pending = pendingTransactional.removeValue(forKey: producerId), commit else { return }
        for (group, entries) in pending { offsets[group, default: [:]].merge(entries) { $1 } }
    }

    func completeTransaction(producerId: Int64, commit: Bool) { lock.withLock { finish(producerId: producerId, commit: commit) } }

    /// The group's offsets partition (where TxnOffsetCommit writes and its markers go).
    func offsetsLog(for group: String) -> PartitionLog { offsetLogs[Int(Self.partition(for: group, partitions: offsetsPartitions))] }

    /// TxnOffsetCommit: appends the offsets as a transactional batch of the producer; they stay
    /// pending until the transaction's marker.
    func persistTransactional(group: String, producerId: Int64, epoch: Int16, _ entries: [(TopicPartition, Committed)]) throws {
        guard !entries.isEmpty else { return }
        var builder = RecordBatchBuilder()
        builder.transactional = true
        builder.producerId = producerId
        builder.producerEpoch = epoch
        let batch = try RecordBatch(try builder.build(entries.map { Self.record(group: group, $0.0, $0.1) }))
        _ = try offsetsLog(for: group).append([batch], nowMs: currentTimeMs())
        lock.withLock {
            for (tp, c) in entries { pendingTransactional[producerId, default: [:]][group, default: [:]][tp] = c }
        }
    }

    /// Whether an open transaction holds offsets of this group for this partition (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT for it).
    func hasPendingOffset(group: String, _ tp: TopicPartition) -> Bool {
        lock.withLock { pendingTransactional.values.contains { $0[group]?[tp] != nil } }
    }

    static func record(group: String, _ tp: TopicPartition, _ c: Committed?) -> RecordBatchBuilder.Input {
        var key = ByteBuffer()
        key.writeInteger(Int16(1))
        OffsetCommitKey(group: group, topic: tp.topic, partition: tp.partition).encode(into: &key, version: 1)
        var value: ByteBuffer? = nil
        if let c {
            var v = ByteBuffer()
            v.writeInteger(Int16(3))
            OffsetCommitValue(offset: c.offset, leaderEpoch: c.leaderEpoch, metadata: c.metadata, commitTimestamp: c.commitTimestamp)
                .encode(into: &v, version: 3)
            value = v
        }
        return RecordBatchBuilder.Input(key: key, value: value, timestamp: c?.commitTimestamp ?? currentTimeMs())
    }

    /// Appends commits (or tombstones) for one group, then applies them: an offset is visible
    /// only once it is in the log (and, under durability `ack`, on disk).
    func persist(group: String, _ entries: [(TopicPartition, Committed?)]) throws {
        guard !entries.isEmpty else { return }
        let log = offsetLogs[Int(Self.partition(for: group, partitions: offsetsPartitions))]
        let batch = try RecordBatch(try RecordBatchBuilder().build(entries.map { Self.record(group: group, $0.0, $0.1) }))
        _ = try log.append([batch], nowMs: currentTimeMs())
        lock.withLock {
            for (tp, c) in entries {
                if let c { offsets[group, default: [:]][tp] = c } else { offsets[group]?.removeValue(forKey: tp) }
            }
            if offsets[group]?.isEmpty == true { offsets.removeValue(forKey: group) }
        }
    }

    func committed(group: String) -> [TopicPartition: Committed] { lock.withLock { offsets[group] ?? [:] } }

    // MARK: - membership

    /// Runs an event on a group and delivers every outcome; returns the requester's outcome if
    /// the event answered it at once.
    /// Runs an event on a group and delivers every outcome. The requester (known by any of
    /// `aliases`: the id it sent, or the id handed out to it) gets its outcome through the returned
    /// future, at once or when a later event produces it.
    @discardableResult
    private func run(_ groupId: String, requester aliases: [String] = [], kind: Kind, on loop: EventLoop,
                     _ event: (inout ConsumerGroup) -> [ConsumerGroup.Outcome]) -> EventLoopFuture<ConsumerGroup.Outcome>? {
        let promise = aliases.isEmpty ? nil : loop.makePromise(of: ConsumerGroup.Outcome.self)
        var deliveries: [(EventLoopPromise<ConsumerGroup.Outcome>, ConsumerGroup.Outcome)] = []
        lock.withLock {
            var group = groups[groupId] ?? ConsumerGroup(groupId: groupId, limits: limits)
            let outcomes = event(&group)
            groups[groupId] = group
            var answered = false
            for outcome in outcomes {
                let (member, isJoin) = Self.target(outcome)
                if let promise, aliases.contains(member), isJoin == (kind == .join), !answered {
                    deliveries.append((promise, outcome))
                    answered = true
                } else if isJoin, let parked = parkedJoins[groupId]?.removeValue(forKey: member) {
                    deliveries.append((parked, outcome))
                } else if !isJoin, let parked = parkedSyncs[groupId]?.removeValue(forKey: member) {
                    deliveries.append((parked, outcome))
                }
            }
            if !answered, let promise, let parkAs = aliases.first {
                if kind == .join {
                    if let old = parkedJoins[groupId]?[parkAs] { deliveries.append((old, .joinFailed(memberId: parkAs, .unknownMemberId))) }
                    parkedJoins[groupId, default: [:]][parkAs] = promise
                } else {
                    parkedSyncs[groupId, default: [:]][parkAs] = promise
                }
            }
        }
        for (p, outcome) in deliveries {
            logger.debug("group \(groupId): \(outcome)")
            p.succeed(outcome)
        }
        return promise?.futureResult
    }

    enum Kind { case join, sync }

    private static func target(_ outcome: ConsumerGroup.Outcome) -> (String, Bool) {
        switch outcome {
        case .joined(let r): (r.memberId, true)
        case .joinFailed(let m, _): (m, true)
        case .synced(let m, _): (m, false)
        case .syncFailed(let m, _): (m, false)
        }
    }

    func join(groupId: String, memberId: String, groupInstanceId: String?, clientId: String, clientHost: String,
              sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32, protocolType: String,
              protocols: [(name: String, metadata: [UInt8])], requireKnownMemberId: Bool,
              on loop: EventLoop) -> EventLoopFuture<ConsumerGroup.Outcome> {
        let newId = "\(clientId.isEmpty ? "member" : clientId)-\(Uuid.random().description)"
        // A member without an id is parked under the id handed out to it; failures for it come
        // back under the empty id it sent.
        let resolved = memberId.isEmpty ? newId : memberId
        return run(groupId, requester: [resolved, memberId], kind: .join, on: loop) { group in
            group.join(memberId: memberId, groupInstanceId: groupInstanceId, clientId: clientId, clientHost: clientHost,
                       sessionTimeoutMs: sessionTimeoutMs, rebalanceTimeoutMs: rebalanceTimeoutMs,
                       protocolType: protocolType, protocols: protocols, newMemberId: newId,
                       requireKnownMemberId: requireKnownMemberId, nowMs: currentTimeMs())
        }!
    }

    func sync(groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32,
              assignments: [String: [UInt8]], on loop: EventLoop) -> EventLoopFuture<ConsumerGroup.Outcome> {
        run(groupId, requester: [memberId], kind: .sync, on: loop) { group in
            group.sync(memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId,
                       assignments: assignments, nowMs: currentTimeMs())
        }!
    }

    func heartbeat(groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32) -> ConsumerGroup.Error? {
        lock.withLock {
            guard groups[groupId] != nil else { return .unknownMemberId }
            return groups[groupId]!.heartbeat(memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId,
                                              nowMs: currentTimeMs())
        }
    }

    func leave(groupId: String, memberId: String, groupInstanceId: String?, on loop: EventLoop) -> ConsumerGroup.Error? {
        var error: ConsumerGroup.Error? = nil
        run(groupId, kind: .join, on: loop) { group in
            let (e, outcomes) = group.leave(memberId: memberId, groupInstanceId: groupInstanceId, nowMs: currentTimeMs())
            error = e
            return outcomes
        }
        return error
    }

    /// Called periodically: session expiry and rebalance deadlines.
    func tick(on loop: EventLoop) {
        let ids = lock.withLock { Array(groups.keys) }
        for id in ids {
            run(id, kind: .join, on: loop) { group in group.tick(nowMs: currentTimeMs()) }
        }
    }

    func validateCommit(groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32) -> ConsumerGroup.Error? {
        lock.withLock {
            guard let group = groups[groupId] else {
                return generationId < 0 && memberId.isEmpty ? nil : .unknownMemberId
            }
            return group.validateCommit(memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId)
        }
    }

    struct GroupSummary {
        var groupId: String
        var state: String
        var protocolType: String
        var protocolName: String
        var members: [ConsumerGroup.Member]
    }

    func summaries() -> [GroupSummary] {
        lock.withLock {
            var out: [String: GroupSummary] = [:]
            for (id, g) in groups {
                out[id] = GroupSummary(groupId: id, state: g.state.rawValue, protocolType: g.protocolType ?? "",
                                       protocolName: g.protocolName ?? "", members: Array(g.members.values))
            }
            for id in offsets.keys where out[id] == nil {
                out[id] = GroupSummary(groupId: id, state: "Empty", protocolType: "consumer", protocolName: "", members: [])
            }
            return out.values.sorted { $0.groupId < $1.groupId }
        }
    }

    /// Topics the group's members subscribe to (from their consumer-protocol metadata).
    func subscribedTopics(group groupId: String) -> Set<String>? {
        lock.withLock {
            guard let g = groups[groupId], !g.isEmpty else { return nil }
            var topics: Set<String> = []
            for m in g.members.values {
                var b = ByteBuffer(bytes: m.protocols.first { $0.name == g.protocolName }?.metadata ?? m.protocols.first?.metadata ?? [])
                if let version = b.readInteger(as: Int16.self),
                   let sub = try? ConsumerProtocolSubscription.decode(from: &b, version: min(max(version, 0), ConsumerProtocolSubscription.validVersions.upperBound)) {
                    topics.formUnion(sub.topics)
                }
            }
            return topics
        }
    }

    func groupExists(_ groupId: String) -> Bool {
        lock.withLock { groups[groupId] != nil || offsets[groupId] != nil }
    }

    /// offsets.retention.minutes: offsets of a group without members expire this long after
    /// their last commit (Kafka 2.1+ semantics). Called from housekeeping.
    func expireOffsets(retentionMs: Int64, nowMs: Int64) {
        let expired: [(String, [TopicPartition])] = lock.withLock {
            offsets.compactMap { (groupId, committed) in
                guard groups[groupId]?.isEmpty ?? true else { return nil }
                let old = committed.filter { nowMs - $0.value.commitTimestamp > retentionMs }.map(\.key)
                return old.isEmpty ? nil : (groupId, old)
            }
        }
        for (groupId, tps) in expired {
            do {
                try persist(group: groupId, tps.map { ($0, nil) })
                logger.info("expired \(tps.count) committed offsets of group \(groupId)")
            } catch {
                logger.error("expiring offsets of \(groupId) failed: \(error)")
            }
        }
    }

    /// Deletes an empty group and its offsets.
    func delete(groupId: String) throws -> ErrorCode {
        let (exists, empty, tps): (Bool, Bool, [TopicPartition]) = lock.withLock {
            let g = groups[groupId]
            let committed = offsets[groupId].map { Array($0.keys) } ?? []
            return (g != nil || !committed.isEmpty, g?.isEmpty ?? true, committed)
        }
        guard exists else { return .groupIdNotFound }
        guard empty else { return .nonEmptyGroup }
        try persist(group: groupId, tps.map { ($0, nil) })
        lock.withLock { _ = groups.removeValue(forKey: groupId) }
        return .none
    }
}

extension ConsumerGroup.Error {
    var code: ErrorCode {
        switch self {
        case .unknownMemberId: .unknownMemberId
        case .illegalGeneration: .illegalGeneration
        case .rebalanceInProgress: .rebalanceInProgress
        case .inconsistentGroupProtocol: .inconsistentGroupProtocol
        case .invalidSessionTimeout: .invalidSessionTimeout
        case .fencedInstanceId: .fencedInstanceId
        case .memberIdRequired: .memberIdRequired
        case .groupMaxSizeReached: .groupMaxSizeReached
        case .coordinatorNotAvailable: .coordinatorNotAvailable
        }
    }
}
