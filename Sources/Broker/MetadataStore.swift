import KafkaProtocol
import Logging
import LogStorage
import NIOConcurrencyHelpers
import NIOCore
import Records
import Security

/// A topic as the metadata image knows it.
public struct TopicMetadata: Sendable, Equatable {
    public var name: String
    public var id: Uuid
    public var partitionCount: Int32
    /// Topic-level config overrides (name -> value).
    public var configs: [String: String]
}

/// Cluster metadata as an append-only log of KRaft metadata records in `__cluster_metadata-0`
/// (TopicRecord, PartitionRecord, ConfigRecord, RemoveTopicRecord, ProducerIdsRecord, ACL and SCRAM
/// credential records), replayed
/// into an in-memory image at start. A quorum of one: each change is one fsync'd batch, applied
/// to the image after it is durable. A Raft log can take the single writer's place later.
public final class MetadataStore: @unchecked Sendable {
    public static let logName = "__cluster_metadata"
    static let producerIdBlockSize: Int64 = 1000

    private let lock = NIOLock()
    private let log: PartitionLog
    private let nodeId: Int32
    private let logger: Logger
    private var topicsByName: [String: TopicMetadata] = [:]
    private var brokerConfigs: [String: String] = [:]
    /// Group configs (resource type 32, KIP-848) by group id.
    private var groupConfigs: [String: [String: String]] = [:]
    private var nextProducerId: Int64 = 0
    /// ACLs by the id their AccessControlEntryRecord gave them, and the authorizer built from them.
    private var aclsById: [Uuid: AclBinding] = [:]
    private var authorizer: AclAuthorizer
    /// SCRAM credentials by user, then mechanism.
    private var scram: [String: [ScramMechanism: ScramCredential]] = [:]
    private var producerIdBlockEnd: Int64 = 0

    /// The metadata log's own settings: every record fsynced before it counts, kept forever, and
    /// written inline without preallocation (small, rare appends that each wait for their sync).
    public static let logConfig: LogConfig = {
        var config = LogConfig()
        config.durability = .ack
        config.retentionMs = -1
        config.segmentBytes = 64 << 20
        config.preallocateStepBytes = 0
        config.bufferedSubmit = .inline
        return config
    }()

    public init(logManager: LogManager, nodeId: Int32, nowMs: Int64, logger: Logger,
                authorizerSettings: AclAuthorizer = AclAuthorizer()) throws {
        self.nodeId = nodeId
        authorizer = authorizerSettings
        self.logger = logger
        log = try logManager.createLog(topic: Self.logName, partition: 0, config: Self.logConfig, nowMs: nowMs)
        try replay()
    }

    public var topics: [TopicMetadata] { lock.withLock { Array(topicsByName.values) } }
    public func topic(_ name: String) -> TopicMetadata? { lock.withLock { topicsByName[name] } }
    public var dynamicBrokerConfigs: [String: String] { lock.withLock { brokerConfigs } }

    public func groupConfigs(_ groupId: String) -> [String: String] { lock.withLock { groupConfigs[groupId] ?? [:] } }

    /// The ACLs now in force (a value: later changes do not alter it).
    public var acls: AclAuthorizer { lock.withLock { authorizer } }

    public func scramCredentials(_ user: String) -> [ScramMechanism: ScramCredential] { lock.withLock { scram[user] ?? [:] } }
    public var scramUsers: [String] { lock.withLock { scram.keys.sorted() } }

    // MARK: - changes

    /// Stores bindings not stored yet (an identical binding is not stored twice).
    public func createAcls(_ bindings: [AclBinding], nowMs: Int64) throws {
        try lock.withLock {
            var seen = Set(aclsById.values)
            var records: [(Int16, Int16, ByteBuffer)] = []
            for b in bindings where seen.insert(b).inserted {
                records.append(Self.frame(AccessControlEntryRecord(
                    id: Uuid.random(), resourceType: b.resourceType.rawValue, resourceName: b.resourceName, patternType: b.patternType.rawValue,
                    principal: b.principal, host: b.host, operation: b.operation.rawValue, permissionType: b.permission.rawValue)))
            }
            if !records.isEmpty { try appendLocked(records, nowMs: nowMs) }
        }
    }

    /// Removes every binding a filter matches; answers, per filter, the bindings it removed.
    public func deleteAcls(_ filters: [AclBindingFilter], nowMs: Int64) throws -> [[AclBinding]] {
        try lock.withLock {
            var removed: [Uuid] = []
            let matched = filters.map { filter in
                aclsById.filter { filter.matches($0.value) }.sorted { $0.key.description < $1.key.description }
            }
            for m in matched { for (id, _) in m where !removed.contains(id) { removed.append(id) } }
            if !removed.isEmpty { try appendLocked(removed.map { Self.frame(RemoveAccessControlEntryRecord(id: $0)) }, nowMs: nowMs) }
            return matched.map { $0.map(\.value) }
        }
    }

    /// SCRAM credential changes: upserts and deletions, in one durable batch.
    public func alterScramCredentials(upserts: [(String, ScramCredential)], deletions: [(String, ScramMechanism)], nowMs: Int64) throws {
        var records = deletions.map { Self.frame(RemoveUserScramCredentialRecord(name: $0.0, mechanism: $0.1.rawValue)) }
        records += upserts.map { user, c in
            Self.frame(UserScramCredentialRecord(name: user, mechanism: c.mechanism.rawValue, salt: c.salt, storedKey: c.storedKey,
                                                 serverKey: c.serverKey, iterations: c.iterations))
        }
        guard !records.isEmpty else { return }
        try commit(records, nowMs: nowMs)
    }

    public func createTopic(_ name: String, partitions: Int32, configs: [String: String], nowMs: Int64) throws -> TopicMetadata {
        let id = Uuid.random()
        var records: [(Int16, Int16, ByteBuffer)] = [Self.frame(TopicRecord(name: name, topicId: id))]
        for p in 0..<partitions {
            records.append(Self.frame(PartitionRecord(partitionId: p, topicId: id, replicas: [nodeId], isr: [nodeId], leader: nodeId,
                                                      leaderEpoch: 0, partitionEpoch: 0)))
        }
        for (k, v) in configs.sorted(by: { $0.key < $1.key }) {
            records.append(Self.frame(ConfigRecord(resourceType: 2, resourceName: name, name: k, value: v)))
        }
        try commit(records, nowMs: nowMs)
        return topic(name)!
    }

    public func deleteTopic(_ name: String, nowMs: Int64) throws {
        guard let t = topic(name) else { return }
        try commit([Self.frame(RemoveTopicRecord(topicId: t.id))], nowMs: nowMs)
    }

    public func addPartitions(_ name: String, to count: Int32, nowMs: Int64) throws {
        guard let t = topic(name), count > t.partitionCount else { return }
        let records = (t.partitionCount..<count).map { p in
            Self.frame(PartitionRecord(partitionId: p, topicId: t.id, replicas: [nodeId], isr: [nodeId], leader: nodeId))
        }
        try commit(records, nowMs: nowMs)
    }

    /// Sets (or with nil removes) a topic config (resource type 2) or broker config (type 4).
    public func setConfigs(resourceType: Int8, resource: String, _ changes: [(String, String?)], nowMs: Int64) throws {
        guard !changes.isEmpty else { return }
        try commit(changes.map { Self.frame(ConfigRecord(resourceType: resourceType, resourceName: resource, name: $0.0, value: $0.1)) },
                   nowMs: nowMs)
    }

    /// A producer id never handed out before, also after restarts: ids come in blocks recorded
    /// in the metadata log before any id of the block is used.
    public func allocateProducerId(nowMs: Int64) throws -> Int64 {
        try lock.withLock {
            if nextProducerId >= producerIdBlockEnd {
                let start = producerIdBlockEnd
                let record = ProducerIdsRecord(brokerId: nodeId, brokerEpoch: 0, nextProducerId: start + Self.producerIdBlockSize)
                try appendLocked([Self.frame(record)], nowMs: nowMs)  // sets the block end
                nextProducerId = start
            }
            defer { nextProducerId += 1 }
            return nextProducerId
        }
    }

    // MARK: - log

    /// A metadata record value: frame version 1, api key, version, then the record.
    static func frame<R: KafkaStruct>(_ record: R) -> (Int16, Int16, ByteBuffer) {
        return (apiKey(of: record), R.validVersions.upperBound, record.encoded(version: R.validVersions.upperBound))
    }

    static func apiKey<R: KafkaStruct>(of record: R) -> Int16 {
        switch record {
        case is TopicRecord: TopicRecord.apiKey
        case is PartitionRecord: PartitionRecord.apiKey
        case is ConfigRecord: ConfigRecord.apiKey
        case is RemoveTopicRecord: RemoveTopicRecord.apiKey
        case is ProducerIdsRecord: ProducerIdsRecord.apiKey
        case is AccessControlEntryRecord: AccessControlEntryRecord.apiKey
        case is RemoveAccessControlEntryRecord: RemoveAccessControlEntryRecord.apiKey
        case is UserScramCredentialRecord: UserScramCredentialRecord.apiKey
        case is RemoveUserScramCredentialRecord: RemoveUserScramCredentialRecord.apiKey
        default: -1
        }
    }

    private func commit(_ records: [(Int16, Int16, ByteBuffer)], nowMs: Int64) throws {
        try lock.withLock { try appendLocked(records, nowMs: nowMs) }
    }

    private func appendLocked(_ records: [(Int16, Int16, ByteBuffer)], nowMs: Int64) throws {
        let inputs = records.map { (key, version, body) -> RecordBatchBuilder.Input in
            var value = ByteBuffer()
            value.writeUnsignedVarint32(1)
            value.writeUnsignedVarint32(UInt32(key))
            value.writeUnsignedVarint32(UInt32(version))
            var b = body
            value.writeBuffer(&b)
            return RecordBatchBuilder.Input(value: value, timestamp: nowMs)
        }
        let batch = try RecordBatch(try RecordBatchBuilder().build(inputs))
        _ = try log.append([batch], nowMs: nowMs)  // durability ack: on disk before it is applied
        for (key, version, body) in records { try apply(key: key, version: version, body: body) }
    }

    private func replay() throws {
        try log.forEachBatch { batch in
            for record in try batch.records() {
                guard var value = record.value,
                      value.readUnsignedVarint32() == 1,
                      let key = value.readUnsignedVarint32(), let version = value.readUnsignedVarint32()
                else { throw StorageError.corrupt("unreadable metadata record at \(batch.baseOffset)") }
                try apply(key: Int16(key), version: Int16(version), body: value)
            }
        }
        logger.debug("metadata: replayed \(topicsByName.count) topics up to offset \(log.logEndOffset)")
    }

    /// Applies one record to the image (callers hold the lock, or are the initialiser).
    private func apply(key: Int16, version: Int16, body: ByteBuffer) throws {
        var b = body
        switch key {
        case TopicRecord.apiKey:
            let r = try TopicRecord.decode(from: &b, version: version)
            topicsByName[r.name] = TopicMetadata(name: r.name, id: r.topicId, partitionCount: 0, configs: [:])
        case PartitionRecord.apiKey:
            let r = try PartitionRecord.decode(from: &b, version: version)
            if let name = topicsByName.first(where: { $0.value.id == r.topicId })?.key {
                topicsByName[name]!.partitionCount = max(topicsByName[name]!.partitionCount, r.partitionId + 1)
            }
        case ConfigRecord.apiKey:
            let r = try ConfigRecord.decode(from: &b, version: version)
            if r.resourceType == 2, topicsByName[r.resourceName] != nil {
                topicsByName[r.resourceName]!.configs[r.name] = r.value
            } else if r.resourceType == 4 {
                brokerConfigs[r.name] = r.value
            } else if r.resourceType == 32 {
                groupConfigs[r.resourceName, default: [:]][r.name] = r.value
                if groupConfigs[r.resourceName]!.isEmpty { groupConfigs.removeValue(forKey: r.resourceName) }
            }
        case RemoveTopicRecord.apiKey:
            let r = try RemoveTopicRecord.decode(from: &b, version: version)
            if let name = topicsByName.first(where: { $0.value.id == r.topicId })?.key { topicsByName.removeValue(forKey: name) }
        case ProducerIdsRecord.apiKey:
            let r = try ProducerIdsRecord.decode(from: &b, version: version)
            producerIdBlockEnd = max(producerIdBlockEnd, r.nextProducerId)
            nextProducerId = producerIdBlockEnd  // ids of a block in use at a crash are never reused
        case AccessControlEntryRecord.apiKey, RemoveAccessControlEntryRecord.apiKey:
            try applyAcl(key: key, version: version, body: &b)
        case UserScramCredentialRecord.apiKey:
            let r = try UserScramCredentialRecord.decode(from: &b, version: version)
            guard let m = ScramMechanism(rawValue: r.mechanism) else { break }
            scram[r.name, default: [:]][m] = ScramCredential(mechanism: m, salt: r.salt, storedKey: r.storedKey, serverKey: r.serverKey,
                                                             iterations: r.iterations)
        case RemoveUserScramCredentialRecord.apiKey:
            let r = try RemoveUserScramCredentialRecord.decode(from: &b, version: version)
            if let m = ScramMechanism(rawValue: r.mechanism) {
                scram[r.name]?.removeValue(forKey: m)
                if scram[r.name]?.isEmpty == true { scram.removeValue(forKey: r.name) }
            }
        default:
            logger.warning("metadata: skipping unknown record type \(key)")
        }
    }

    private func applyAcl(key: Int16, version: Int16, body: inout ByteBuffer) throws {
        if key == RemoveAccessControlEntryRecord.apiKey {
            let r = try RemoveAccessControlEntryRecord.decode(from: &body, version: version)
            if let b = aclsById.removeValue(forKey: r.id) { authorizer.remove(b) }
            return
        }
        let r = try AccessControlEntryRecord.decode(from: &body, version: version)
        guard let type = AclResourceType(rawValue: r.resourceType), let pattern = AclPatternType(rawValue: r.patternType),
              let op = AclOperation(rawValue: r.operation), let permission = AclPermissionType(rawValue: r.permissionType)
        else {
            logger.warning("metadata: skipping an ACL with codes this version does not know")
            return
        }
        let b = AclBinding(resourceType: type, resourceName: r.resourceName, patternType: pattern, principal: r.principal, host: r.host,
                           operation: op, permission: permission)
        aclsById[r.id] = b
        authorizer.add(b)
    }
}
