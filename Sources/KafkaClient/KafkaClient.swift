#if canImport(Glibc)
import Glibc
#endif
import KafkaProtocol
import NIOCore
import Records

/// A small synchronous Kafka client over one broker connection: what the CLI tools need
/// (admin, produce with Java's partitioner, fetch, group offsets). Works against Sluice and Kafka.
public final class KafkaClient {
    public let connection: BrokerConnection
    typealias ClientError = BrokerConnection.ClientError

    public init(bootstrap: String, clientId: String = "sluice-cli") throws {
        connection = try BrokerConnection(bootstrap: bootstrap, clientId: clientId)
    }

    static func check(_ code: Int16, _ message: String? = nil) throws {
        if code != 0 { throw ClientError.kafka(ErrorCode(rawValue: code), message) }
    }

    // MARK: - topics

    public struct TopicInfo: Sendable {
        public var name: String
        public var id: Uuid
        public var partitions: [(partition: Int32, leader: Int32, replicas: [Int32], isr: [Int32])]
        public var isInternal = false
    }

    /// nil: every topic.
    public func topics(_ names: [String]? = nil) throws -> [TopicInfo] {
        try topics(names, autoCreate: false)
    }

    /// As a producer asks: the broker may create missing topics (auto.create.topics.enable).
    public func topicsAllowingCreate(_ names: [String]) throws -> [TopicInfo] {
        try topics(names, autoCreate: true)
    }

    func topics(_ names: [String]?, autoCreate: Bool) throws -> [TopicInfo] {
        // v10+ carries topic ids.
        let v = try connection.version(for: .metadata, preferred: 12)
        var request = MetadataRequest(allowAutoTopicCreation: autoCreate)
        request.topics = names.map { $0.map { MetadataRequest.MetadataRequestTopic(name: $0) } }
        let response = try connection.send(request, version: v, as: MetadataResponse.self)
        return try response.topics.map { t in
            try Self.check(t.errorCode, t.name)
            return TopicInfo(name: t.name ?? "", id: t.topicId, partitions: t.partitions.map {
                ($0.partitionIndex, $0.leaderId, $0.replicaNodes, $0.isrNodes)
            }.sorted { $0.0 < $1.0 }, isInternal: t.isInternal)
        }.sorted { $0.name < $1.name }
    }

    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int16, configs: [String: String]) throws {
        let v = try connection.version(for: .createTopics, preferred: 5)
        let request = CreateTopicsRequest(topics: [.init(name: name, numPartitions: partitions, replicationFactor: replicationFactor,
                                                         configs: configs.map { .init(name: $0.key, value: $0.value) })],
                                          timeoutMs: 30_000)
        let response = try connection.send(request, version: v, as: CreateTopicsResponse.self)
        for t in response.topics { try Self.check(t.errorCode, t.errorMessage) }
    }

    public func deleteTopic(_ name: String) throws {
        let v = try connection.version(for: .deleteTopics, preferred: 5)
        let response = try connection.send(DeleteTopicsRequest(topicNames: [name], timeoutMs: 30_000), version: v, as: DeleteTopicsResponse.self)
        for r in response.responses { try Self.check(r.errorCode, r.errorMessage) }
    }

    public func createPartitions(_ name: String, count: Int32) throws {
        let v = try connection.version(for: .createPartitions, preferred: 1)
        let response = try connection.send(CreatePartitionsRequest(topics: [.init(name: name, count: count, assignments: nil)], timeoutMs: 30_000),
                                           version: v, as: CreatePartitionsResponse.self)
        for r in response.results { try Self.check(r.errorCode, r.errorMessage) }
    }

    public func alterTopicConfigs(_ name: String, set: [String: String], delete: [String] = []) throws {
        let v = try connection.version(for: .incrementalAlterConfigs, preferred: 0)
        let configs = set.map { IncrementalAlterConfigsRequest.AlterableConfig(name: $0.key, configOperation: 0, value: $0.value) }
            + delete.map { .init(name: $0, configOperation: 1, value: nil) }
        let response = try connection.send(IncrementalAlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: name, configs: configs)]),
                                           version: v, as: IncrementalAlterConfigsResponse.self)
        for r in response.responses { try Self.check(r.errorCode, r.errorMessage) }
    }

    /// (name, value, isDefault) of a topic's configs.
    public func topicConfigs(_ name: String) throws -> [(name: String, value: String?, isDefault: Bool)] {
        let v = try connection.version(for: .describeConfigs, preferred: 1)
        let response = try connection.send(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: name, configurationKeys: nil)]),
                                           version: v, as: DescribeConfigsResponse.self)
        guard let result = response.results.first else { return [] }
        try Self.check(result.errorCode, result.errorMessage)
        return result.configs.map { ($0.name, $0.value, v == 0 ? $0.isDefault : $0.configSource == 5) }
    }

    // MARK: - produce and fetch

    /// Appends one batch to a partition; returns its base offset (-1 with acks=0).
    @discardableResult
    public func produce(topic: String, partition: Int32, records: [RecordBatchBuilder.Input], acks: Int16 = -1,
                        compression: CompressionCodec = .none) throws -> Int64 {
        var builder = RecordBatchBuilder()
        builder.compression = compression
        let batch = try builder.build(records)
        let v = try connection.version(for: .produce, preferred: 7)
        let request = ProduceRequest(acks: acks, timeoutMs: 30_000, topicData: [
            .init(name: topic, partitionData: [.init(index: partition, records: batch)]),
        ])
        if acks == 0 {
            try connection.sendOneWay(request, version: v)
            return -1
        }
        let response = try connection.send(request, version: v, as: ProduceResponse.self)
        let p = response.responses.first?.partitionResponses.first
        try Self.check(p?.errorCode ?? ErrorCode.unknownServerError.rawValue, p?.errorMessage)
        return p!.baseOffset
    }

    /// A Produce request of one batch for one partition, and the version to send it at, for a
    /// caller that keeps several in flight (`connection.submit` / `receive`).
    public func produceRequest(topic: String, partition: Int32, batch: ByteBuffer, acks: Int16,
                               transactionalId: String? = nil) throws -> (ProduceRequest, Int16) {
        let v = try connection.version(for: .produce, preferred: 7)
        let request = ProduceRequest(transactionalId: transactionalId, acks: acks, timeoutMs: 30_000, topicData: [
            .init(name: topic, partitionData: [.init(index: partition, records: batch)]),
        ])
        return (request, v)
    }

    // MARK: - producer ids and transactions

    /// Errors a transaction coordinator answers while it is busy; the request is retried.
    static let retriableCoordinatorErrors: Set<Int16> = [
        ErrorCode.coordinatorLoadInProgress.rawValue, ErrorCode.concurrentTransactions.rawValue,
    ]

    /// Sends `attempt` until its error code is not a retriable coordinator error, for at most `deadlineMs`.
    func retrying(deadlineMs: Int = 30_000, _ attempt: () throws -> Int16) throws -> Int16 {
        var waited = 0
        while true {
            let code = try attempt()
            guard Self.retriableCoordinatorErrors.contains(code), waited < deadlineMs else { return code }
            usleep(20_000)
            waited += 20
        }
    }

    /// InitProducerId: a producer id and epoch, for an idempotent producer (no transactional id)
    /// or a transactional one (fencing earlier producers with the same id).
    public func initProducerId(transactionalId: String?, transactionTimeoutMs: Int32 = 60_000) throws -> (id: Int64, epoch: Int16) {
        let v = try connection.version(for: .initProducerId, preferred: 4)
        var answer: InitProducerIdResponse?
        let code = try retrying {
            let r = try connection.send(InitProducerIdRequest(transactionalId: transactionalId, transactionTimeoutMs: transactionTimeoutMs),
                                        version: v, as: InitProducerIdResponse.self)
            answer = r
            return r.errorCode
        }
        try Self.check(code, transactionalId)
        return (answer!.producerId, answer!.producerEpoch)
    }

    /// AddPartitionsToTxn (v3: the client form) for partitions of one topic.
    public func addPartitionsToTxn(transactionalId: String, producer: (id: Int64, epoch: Int16), topic: String,
                                   partitions: [Int32]) throws {
        let v = try connection.version(for: .addPartitionsToTxn, preferred: 3)
        let request = AddPartitionsToTxnRequest(v3AndBelowTransactionalId: transactionalId, v3AndBelowProducerId: producer.id,
                                                v3AndBelowProducerEpoch: producer.epoch,
                                                v3AndBelowTopics: [.init(name: topic, partitions: partitions)])
        var failed: (Int16, String)?
        let code = try retrying {
            let r = try connection.send(request, version: v, as: AddPartitionsToTxnResponse.self)
            failed = nil
            if r.errorCode != 0 { return r.errorCode }
            for t in r.resultsByTopicV3AndBelow {
                for p in t.resultsByPartition where p.partitionErrorCode != 0 {
                    failed = (p.partitionErrorCode, "\(t.name)-\(p.partitionIndex)")
                    return p.partitionErrorCode
                }
            }
            return 0
        }
        try Self.check(code, failed?.1 ?? transactionalId)
    }

    /// EndTxn: commits (or aborts) the producer's open transaction.
    public func endTxn(transactionalId: String, producer: (id: Int64, epoch: Int16), commit: Bool) throws {
        let v = try connection.version(for: .endTxn, preferred: 3)
        let code = try retrying {
            try connection.send(EndTxnRequest(transactionalId: transactionalId, producerId: producer.id, producerEpoch: producer.epoch,
                                              committed: commit), version: v, as: EndTxnResponse.self).errorCode
        }
        try Self.check(code, transactionalId)
    }

    /// ListOffsets: -2 earliest, -1 latest, or the first offset at/after a timestamp (-1 if none).
    public func offset(topic: String, partition: Int32, timestamp: Int64) throws -> Int64 {
        let v = try connection.version(for: .listOffsets, preferred: 2)
        let response = try connection.send(ListOffsetsRequest(replicaId: -1, topics: [
            .init(name: topic, partitions: [.init(partitionIndex: partition, timestamp: timestamp)]),
        ]), version: v, as: ListOffsetsResponse.self)
        let p = response.topics.first?.partitions.first
        try Self.check(p?.errorCode ?? ErrorCode.unknownServerError.rawValue)
        return p!.offset
    }

    public struct FetchedRecord: Sendable {
        public var partition: Int32
        public var offset: Int64
        public var timestamp: Int64
        public var key: ByteBuffer?
        public var value: ByteBuffer?
        public var headers: [Record.Header]
    }

    /// One fetch of several partitions; returns records at or after each offset.
    public func fetch(topic: String, offsets: [Int32: Int64], maxWaitMs: Int32 = 500, maxBytes: Int32 = 1 << 20) throws -> [FetchedRecord] {
        let v = try connection.version(for: .fetch, preferred: 11)
        let request = FetchRequest(replicaId: -1, maxWaitMs: maxWaitMs, minBytes: 1, maxBytes: 50 << 20, isolationLevel: 0,
                                   sessionEpoch: -1, topics: [.init(topic: topic, partitions: offsets.sorted { $0.key < $1.key }.map {
                                       .init(partition: $0.key, fetchOffset: $0.value, partitionMaxBytes: maxBytes)
                                   })])
        let response = try connection.send(request, version: v, as: FetchResponse.self)
        try Self.check(response.errorCode)
        var out: [FetchedRecord] = []
        for t in response.responses {
            for p in t.partitions {
                try Self.check(p.errorCode)
                guard let records = p.records else { continue }
                var batches = RecordBatchSequence(records)
                while let batch = batches.next() {
                    if batch.isControl { continue }
                    for r in try batch.records() {
                        let offset = batch.baseOffset + Int64(r.offsetDelta)
                        guard offset >= offsets[p.partitionIndex] ?? 0 else { continue }
                        let ts = batch.isLogAppendTime ? batch.maxTimestamp : batch.baseTimestamp + r.timestampDelta
                        out.append(FetchedRecord(partition: p.partitionIndex, offset: offset, timestamp: ts, key: r.key, value: r.value, headers: r.headers))
                    }
                }
            }
        }
        return out
    }

    // MARK: - groups

    public func listGroups() throws -> [(groupId: String, state: String)] {
        let v = try connection.version(for: .listGroups, preferred: 4)
        let response = try connection.send(ListGroupsRequest(), version: v, as: ListGroupsResponse.self)
        try Self.check(response.errorCode)
        return response.groups.map { ($0.groupId, $0.groupState) }.sorted { $0.groupId < $1.groupId }
    }

    public func describeGroup(_ id: String) throws -> DescribeGroupsResponse.DescribedGroup {
        let v = try connection.version(for: .describeGroups, preferred: 4)
        let response = try connection.send(DescribeGroupsRequest(groups: [id]), version: v, as: DescribeGroupsResponse.self)
        guard let g = response.groups.first else { throw ClientError.protocolError("empty DescribeGroups response") }
        try Self.check(g.errorCode)
        return g
    }

    /// Committed offsets of a group (nil topics: all).
    public func committedOffsets(group: String) throws -> [(topic: String, partition: Int32, offset: Int64)] {
        let v = try connection.version(for: .offsetFetch, preferred: 7)
        let response = try connection.send(OffsetFetchRequest(groupId: group, topics: nil), version: v, as: OffsetFetchResponse.self)
        try Self.check(response.errorCode)
        return response.topics.flatMap { t in t.partitions.map { (t.name, $0.partitionIndex, $0.committedOffset) } }
    }

    /// Commits offsets as a standalone client (generation -1, no member id): allowed while the
    /// group has no active members, as `kafka-consumer-groups --reset-offsets` requires.
    public func commit(group: String, offsets: [(topic: String, partition: Int32, offset: Int64)]) throws {
        let v = try connection.version(for: .offsetCommit, preferred: 7)
        var byTopic: [String: [OffsetCommitRequest.OffsetCommitRequestPartition]] = [:]
        for o in offsets { byTopic[o.topic, default: []].append(.init(partitionIndex: o.partition, committedOffset: o.offset, committedMetadata: "")) }
        let request = OffsetCommitRequest(groupId: group, generationIdOrMemberEpoch: -1, memberId: "",
                                          topics: byTopic.map { .init(name: $0.key, partitions: $0.value) })
        let response = try connection.send(request, version: v, as: OffsetCommitResponse.self)
        for t in response.topics { for p in t.partitions { try Self.check(p.errorCode, "\(t.name)-\(p.partitionIndex)") } }
    }

    public func deleteGroup(_ id: String) throws {
        let v = try connection.version(for: .deleteGroups, preferred: 1)
        let response = try connection.send(DeleteGroupsRequest(groupsNames: [id]), version: v, as: DeleteGroupsResponse.self)
        for r in response.results { try Self.check(r.errorCode, r.groupId) }
    }
}

// MARK: - ACLs

extension KafkaClient {
    /// Creates bindings; throws on the first refused one.
    public func createAcls(_ creations: [CreateAclsRequest.AclCreation]) throws {
        let v = try connection.version(for: .createAcls, preferred: 2)
        let response = try connection.send(CreateAclsRequest(creations: creations), version: v, as: CreateAclsResponse.self)
        for r in response.results { try Self.check(r.errorCode, r.errorMessage) }
    }

    public func describeAcls(_ filter: DescribeAclsRequest) throws -> [DescribeAclsResponse.DescribeAclsResource] {
        let v = try connection.version(for: .describeAcls, preferred: 2)
        let response = try connection.send(filter, version: v, as: DescribeAclsResponse.self)
        try Self.check(response.errorCode, response.errorMessage)
        return response.resources
    }

    /// Deletes what the filters match; returns the deleted bindings.
    public func deleteAcls(_ filters: [DeleteAclsRequest.DeleteAclsFilter]) throws -> [DeleteAclsResponse.DeleteAclsMatchingAcl] {
        let v = try connection.version(for: .deleteAcls, preferred: 2)
        let response = try connection.send(DeleteAclsRequest(filters: filters), version: v, as: DeleteAclsResponse.self)
        for r in response.filterResults { try Self.check(r.errorCode, r.errorMessage) }
        return response.filterResults.flatMap(\.matchingAcls)
    }
}

// MARK: - SCRAM credentials

extension KafkaClient {
    /// (user, [(mechanism code, iterations)]) for the named users, or every user with credentials.
    public func describeScramCredentials(_ users: [String]?) throws -> [(user: String, credentials: [(mechanism: Int8, iterations: Int32)])] {
        let v = try connection.version(for: .describeUserScramCredentials, preferred: 0)
        let request = DescribeUserScramCredentialsRequest(users: users.map { $0.map { .init(name: $0) } })
        let response = try connection.send(request, version: v, as: DescribeUserScramCredentialsResponse.self)
        try Self.check(response.errorCode, response.errorMessage)
        return try response.results.map { r in
            try Self.check(r.errorCode, r.errorMessage)
            return (r.user, r.credentialInfos.map { ($0.mechanism, $0.iterations) })
        }
    }

    public func alterScramCredentials(upsertions: [AlterUserScramCredentialsRequest.ScramCredentialUpsertion],
                                      deletions: [AlterUserScramCredentialsRequest.ScramCredentialDeletion]) throws {
        let v = try connection.version(for: .alterUserScramCredentials, preferred: 0)
        let response = try connection.send(AlterUserScramCredentialsRequest(deletions: deletions, upsertions: upsertions), version: v,
                                           as: AlterUserScramCredentialsResponse.self)
        for r in response.results { try Self.check(r.errorCode, r.errorMessage.map { "\(r.user): \($0)" } ?? r.user) }
    }
}
