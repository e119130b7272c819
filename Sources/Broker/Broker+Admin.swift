import KafkaProtocol
import LogStorage
import NIOCore
import Security

/// ApiVersions, Metadata, topics, configs, producer ids, cluster description.
extension Broker {
    /// An authorized-operations field nobody asked for.
    static let authorizedOperationsUnknown = Int32.min

    func handleApiVersions(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        _ = try ApiVersionsRequest.decode(from: &body, version: context.version)
        return frame(ApiVersionsResponse(apiKeys: apiVersionList()), context)
    }

    func handleMetadata(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try MetadataRequest.decode(from: &body, version: context.version)
        let access = access(context)
        let (host, port) = (context.session.listener.advertisedHost, context.session.listener.advertisedPort)
        var response = MetadataResponse(
            brokers: [.init(nodeId: config.nodeId, host: host, port: Int32(port), rack: nil)],
            clusterId: clusterId, controllerId: config.nodeId,
            clusterAuthorizedOperations: request.includeClusterAuthorizedOperations
                ? access.operations(.cluster, AclResourceType.clusterName) : Self.authorizedOperationsUnknown)
        // v0: an empty list means every topic; v1+: null means every topic, empty means none.
        let all = request.topics == nil || (context.version == 0 && request.topics!.isEmpty)
        var topics: [(String?, Uuid, TopicMetadata?, ErrorCode)] = []
        if all {
            // Topics the caller may not describe are left out, as Kafka does.
            topics = (metadata.topics + shownInternalTopics).sorted { $0.name < $1.name }
                .filter { access.allows(.describe, .topic, $0.name) }.map { ($0.name, $0.id, $0, .none) }
        } else {
            let allowCreate = (context.version < 4 || request.allowAutoTopicCreation) && config.autoCreateTopics
            topics = request.topics!.map { metadataTopic($0, access: access, allowCreate: allowCreate) }
        }
        for (name, id, topic, error) in topics {
            var t = MetadataResponse.MetadataResponseTopic(errorCode: error.rawValue, name: name, topicId: id,
                                                           isInternal: name.map(Self.isInternal) ?? false,
                                                           topicAuthorizedOperations: request.includeTopicAuthorizedOperations && topic != nil
                                                               ? access.operations(.topic, topic!.name) : Self.authorizedOperationsUnknown)
            if let topic {
                t.partitions = (0..<topic.partitionCount).map { p in
                    .init(partitionIndex: p, leaderId: config.nodeId, leaderEpoch: 0, replicaNodes: [config.nodeId],
                          isrNodes: [config.nodeId], offlineReplicas: [])
                }
            }
            response.topics.append(t)
        }
        return frame(response, context)
    }

    /// One topic a Metadata request names: found, created (auto-create, where the caller may
    /// create topics), or an error. A topic the caller may not describe is
    /// TOPIC_AUTHORIZATION_FAILED whether it exists or not, so names do not leak.
    private func metadataTopic(_ wanted: MetadataRequest.MetadataRequestTopic, access: Access,
                               allowCreate: Bool) -> (String?, Uuid, TopicMetadata?, ErrorCode) {
        guard let name = wanted.name else {
            if let t = (metadata.topics + shownInternalTopics).first(where: { $0.id == wanted.topicId }), access.allows(.describe, .topic, t.name) {
                return (t.name, t.id, t, .none)
            }
            return (nil, wanted.topicId, nil, .unknownTopicId)
        }
        guard access.allows(.describe, .topic, name) else { return (name, .zero, nil, .topicAuthorizationFailed) }
        if let t = metadata.topic(name) { return (name, t.id, t, .none) }
        if let t = internalTopic(name) {
            // Kafka creates an internal topic when a Metadata request names it.
            markInUse(internalTopic: name)
            return (name, t.id, t, .none)
        }
        if !Self.isValidTopicName(name) || name == MetadataStore.logName { return (name, .zero, nil, .invalidTopicException) }
        guard allowCreate, access.allowsCluster(.create) || access.allows(.create, .topic, name) else {
            return (name, .zero, nil, .unknownTopicOrPartition)
        }
        do {
            let t = try createTopic(name, partitions: config.numPartitions, configs: [:])
            return (name, t.id, t, .none)
        } catch is PartitionLimitExceeded {
            return (name, .zero, nil, .policyViolation)
        } catch {
            return (name, .zero, nil, .unknownTopicOrPartition)
        }
    }

    func handleCreateTopics(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try CreateTopicsRequest.decode(from: &body, version: context.version)
        var response = CreateTopicsResponse()
        let access = access(context)
        let names = request.topics.map(\.name)
        for t in request.topics {
            var r = CreateTopicsResponse.CreatableTopicResult(name: t.name, numPartitions: -1, replicationFactor: -1)
            func fail(_ code: ErrorCode, _ message: String) { r.errorCode = code.rawValue; r.errorMessage = message }
            let partitions = t.assignments.isEmpty ? (t.numPartitions == -1 ? config.numPartitions : t.numPartitions) : Int32(t.assignments.count)
            var configs: [String: String] = [:]
            var configError: String? = nil
            var probe = topicDefaults()
            for c in t.configs {
                guard let value = c.value else { continue }
                do {
                    if try !probe.set(c.name, value) { configError = "unknown topic config \(c.name)" } else { configs[c.name] = value }
                } catch { configError = "\(error)" }
            }
            if names.filter({ $0 == t.name }).count > 1 {
                fail(.invalidRequest, "topic \(t.name) appears more than once")
            } else if !access.allowsCluster(.create) && !access.allows(.create, .topic, t.name) {
                fail(.topicAuthorizationFailed, "not authorized to create topic \(t.name)")
            } else if !Self.isValidTopicName(t.name) || t.name == MetadataStore.logName {
                fail(.invalidTopicException, "invalid topic name \(t.name)")
            } else if metadata.topic(t.name) != nil || Self.isInternal(t.name) {
                fail(.topicAlreadyExists, "topic \(t.name) already exists")
            } else if partitions <= 0 {
                fail(.invalidPartitions, "the number of partitions must be positive")
            } else if request.validateOnly && Int(partitions) > config.partitionsMax - hostedPartitions {
                fail(.policyViolation, "\(PartitionLimitExceeded(requested: Int(partitions), limit: config.partitionsMax))")
            } else if t.replicationFactor != -1 && t.replicationFactor != 1 {
                fail(.invalidReplicationFactor, "replication factor \(t.replicationFactor) is larger than the 1 available broker")
            } else if let configError {
                fail(.invalidConfig, configError)
            } else if !request.validateOnly {
                do {
                    let created = try createTopic(t.name, partitions: partitions, configs: configs)
                    r.topicId = created.id
                } catch let error as PartitionLimitExceeded {
                    fail(.policyViolation, "\(error)")
                } catch {
                    fail(.kafkaStorageError, "\(error)")
                }
            }
            if r.errorCode == 0 {
                r.numPartitions = partitions
                r.replicationFactor = 1
                r.configs = configEntries(topic: t.name, overrides: configs).map {
                    .init(name: $0.name, value: $0.value, readOnly: false, configSource: $0.source, isSensitive: false)
                }
            }
            response.topics.append(r)
        }
        return frame(response, context)
    }

    func handleDeleteTopics(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DeleteTopicsRequest.decode(from: &body, version: context.version)
        var response = DeleteTopicsResponse()
        let access = access(context)
        var wanted: [(String?, Uuid)] = request.topicNames.map { ($0, .zero) }
        wanted += request.topics.map { ($0.name, $0.topicId) }
        for (name, id) in wanted {
            let topic = name.flatMap { metadata.topic($0) } ?? (id != .zero ? metadata.topics.first { $0.id == id } : nil)
            var r = DeleteTopicsResponse.DeletableTopicResult(name: name ?? topic?.name, topicId: topic?.id ?? id)
            if let shown = name ?? topic?.name, !access.allows(.delete, .topic, shown) {
                r.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                if name == nil { r.name = nil }
            } else if !config.deleteTopicEnable {
                r.errorCode = ErrorCode.topicDeletionDisabled.rawValue
            } else if let name, Self.isInternal(name) {
                r.errorCode = ErrorCode.invalidRequest.rawValue
                r.errorMessage = "\(name) is an internal topic and cannot be deleted"
                r.topicId = Self.internalTopicId(name)
            } else if let topic {
                do { try deleteTopic(topic.name) } catch { r.errorCode = ErrorCode.kafkaStorageError.rawValue; r.errorMessage = "\(error)" }
            } else {
                r.errorCode = (name == nil ? ErrorCode.unknownTopicId : ErrorCode.unknownTopicOrPartition).rawValue
            }
            response.responses.append(r)
        }
        return frame(response, context)
    }

    /// Partitions of user topics on this broker.
    var hostedPartitions: Int { metadata.topics.reduce(0) { $0 + Int($1.partitionCount) } }

    func handleCreatePartitions(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try CreatePartitionsRequest.decode(from: &body, version: context.version)
        var response = CreatePartitionsResponse()
        let access = access(context)
        for t in request.topics {
            var r = CreatePartitionsResponse.CreatePartitionsTopicResult(name: t.name)
            if !access.allows(.alter, .topic, t.name) {
                r.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
            } else if let topic = metadata.topic(t.name) {
                if t.count <= topic.partitionCount {
                    r.errorCode = ErrorCode.invalidPartitions.rawValue
                    r.errorMessage = "topic has \(topic.partitionCount) partitions; the new count must be larger"
                } else if request.validateOnly && Int(t.count - topic.partitionCount) > config.partitionsMax - hostedPartitions {
                    r.errorCode = ErrorCode.policyViolation.rawValue
                    r.errorMessage = "\(PartitionLimitExceeded(requested: Int(t.count - topic.partitionCount), limit: config.partitionsMax))"
                } else if !request.validateOnly {
                    do {
                        try addPartitions(topic, to: t.count)
                    } catch let error as PartitionLimitExceeded {
                        r.errorCode = ErrorCode.policyViolation.rawValue
                        r.errorMessage = "\(error)"
                    } catch {
                        r.errorCode = ErrorCode.kafkaStorageError.rawValue
                        r.errorMessage = "\(error)"
                    }
                }
            } else if Self.isInternal(t.name) {
                // Group and transactional ids hash onto the partition count; changing it would
                // move every group's and producer's coordinator state.
                r.errorCode = ErrorCode.invalidRequest.rawValue
                r.errorMessage = "\(t.name) is an internal topic; its partition count is fixed"
            } else {
                r.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
            }
            response.results.append(r)
        }
        return frame(response, context)
    }

    func handleInitProducerId(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try InitProducerIdRequest.decode(from: &body, version: context.version)
        var response = InitProducerIdResponse(producerId: -1, producerEpoch: -1)
        let access = access(context)
        if let id = request.transactionalId, !access.allows(.write, .transactionalId, id) {
            response.errorCode = ErrorCode.transactionalIdAuthorizationFailed.rawValue
        } else if request.transactionalId == nil, !access.allowsCluster(.idempotentWrite), !access.allowsAny(.write, .topic) {
            // KIP-679: an idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
            response.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
        } else if let id = request.transactionalId {
            response = initTransactionalProducer(request, id: id, version: context.version)
        } else if request.producerId >= 0 && request.producerEpoch >= 0 && request.producerEpoch < Int16.max - 1 {
            // KIP-360: an idempotent producer bumps its epoch after an error.
            response.producerId = request.producerId
            response.producerEpoch = request.producerEpoch + 1
        } else {
            do {
                response.producerId = try metadata.allocateProducerId(nowMs: currentTimeMs())
                response.producerEpoch = 0
            } catch {
                response.errorCode = ErrorCode.coordinatorNotAvailable.rawValue
            }
        }
        return frame(response, context)
    }

    func handleDescribeCluster(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DescribeClusterRequest.decode(from: &body, version: context.version)
        let access = access(context)
        let (host, port) = (context.session.listener.advertisedHost, context.session.listener.advertisedPort)
        var response = DescribeClusterResponse(
            endpointType: 1, clusterId: clusterId, controllerId: config.nodeId,
            brokers: [.init(brokerId: config.nodeId, host: host, port: Int32(port), rack: nil)],
            clusterAuthorizedOperations: request.includeClusterAuthorizedOperations
                ? access.operations(.cluster, AclResourceType.clusterName) : Self.authorizedOperationsUnknown)
        if !access.allowsCluster(.describe) {
            response = DescribeClusterResponse(errorCode: ErrorCode.clusterAuthorizationFailed.rawValue, endpointType: 1, clusterId: clusterId,
                                               controllerId: -1)
        }
        return frame(response, context)
    }

    // MARK: - configs

    /// Config sources as DescribeConfigs numbers them.
    enum ConfigSource: Int8 { case topic = 1, dynamicBroker = 2, staticBroker = 4, defaultConfig = 5, group = 8 }

    func topicDefaults() -> LogConfig { Self.topicDefaults(config.logDefaults, metadata: metadata) }

    func configEntries(topic: String, overrides: [String: String]? = nil) -> [(name: String, value: String, source: Int8)] {
        let set = overrides ?? metadata.topic(topic)?.configs ?? [:]
        var effective = topicDefaults()
        for (k, v) in set { _ = try? effective.set(k, v) }
        let entries = effective.entries.map { e in
            (name: e.name, value: e.value, source: set[e.name] != nil ? ConfigSource.topic.rawValue : ConfigSource.defaultConfig.rawValue)
        }
        return entries.sorted { $0.name < $1.name }
    }

    func brokerEntries() -> [(name: String, value: String, source: Int8)] {
        let listeners = (try? config.resolveListeners()) ?? []
        var entries: [(String, String, Int8)] = [
            ("node.id", "\(config.nodeId)", ConfigSource.staticBroker.rawValue),
            ("listeners", listeners.map { "\($0.name)://\($0.host):\($0.port)" }.joined(separator: ","), ConfigSource.staticBroker.rawValue),
            ("advertised.listeners", listeners.map { "\($0.name)://\($0.advertisedHost):\($0.advertisedPort)" }.joined(separator: ","),
             ConfigSource.staticBroker.rawValue),
            ("listener.security.protocol.map", config.securityProtocolMap.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.rawValue)" }
                .joined(separator: ","), ConfigSource.staticBroker.rawValue),
            ("log.dirs", config.logDir, ConfigSource.staticBroker.rawValue),
            ("num.partitions", "\(config.numPartitions)", ConfigSource.staticBroker.rawValue),
            ("auto.create.topics.enable", "\(config.autoCreateTopics)", ConfigSource.staticBroker.rawValue),
            ("delete.topic.enable", "\(config.deleteTopicEnable)", ConfigSource.staticBroker.rawValue),
            ("socket.request.max.bytes", "\(config.requestBytesMax)", ConfigSource.staticBroker.rawValue),
        ]
        let dynamic = metadata.dynamicBrokerConfigs
        let defaults = topicDefaults()
        let byTopicName = Dictionary(uniqueKeysWithValues: defaults.entries.map { ($0.name, $0.value) })
        for (brokerName, topicName) in BrokerConfig.topicDefaults.sorted(by: { $0.key < $1.key }) {
            entries.append((brokerName, byTopicName[topicName] ?? "", dynamic[brokerName] != nil ? ConfigSource.dynamicBroker.rawValue : ConfigSource.staticBroker.rawValue))
        }
        for (k, v) in dynamic.sorted(by: { $0.key < $1.key }) where BrokerConfig.dynamicBrokerConfigs.contains(k) {
            entries.removeAll { $0.0 == k }
            entries.append((k, v, ConfigSource.dynamicBroker.rawValue))
        }
        return entries.map { (name: $0.0, value: $0.1, source: $0.2) }
    }

    /// Passwords, keys and JAAS lines are described with no value, as Kafka does.
    static func isSensitive(_ name: String) -> Bool {
        name.hasSuffix(".password") || name == "sasl.jaas.config" || name == "ssl.keystore.key"
    }

    func handleDescribeConfigs(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DescribeConfigsRequest.decode(from: &body, version: context.version)
        var response = DescribeConfigsResponse()
        let access = access(context)
        for resource in request.resources {
            var r = DescribeConfigsResponse.DescribeConfigsResult(resourceType: resource.resourceType, resourceName: resource.resourceName)
            var entries: [(name: String, value: String, source: Int8)] = []
            if let code = Self.configAccessRefusal(access, .describeConfigs, type: resource.resourceType, name: resource.resourceName) {
                r.errorCode = code.rawValue
                response.results.append(r)
                continue
            }
            switch resource.resourceType {
            case 2:
                if metadata.topic(resource.resourceName) != nil {
                    entries = configEntries(topic: resource.resourceName)
                } else if Self.isInternal(resource.resourceName), shownInternalTopics.contains(where: { $0.name == resource.resourceName }) {
                    entries = internalConfigEntries(resource.resourceName)
                } else {
                    r.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    r.errorMessage = "unknown topic \(resource.resourceName)"
                }
            case 4:
                if resource.resourceName.isEmpty || resource.resourceName == "\(config.nodeId)" {
                    entries = brokerEntries()
                } else {
                    r.errorCode = ErrorCode.invalidRequest.rawValue
                    r.errorMessage = "unknown broker \(resource.resourceName)"
                }
            case 8:
                entries = []
            case 32:
                entries = groupConfigEntries(resource.resourceName)
            default:
                r.errorCode = ErrorCode.invalidRequest.rawValue
                r.errorMessage = "unsupported resource type \(resource.resourceType)"
            }
            if let keys = resource.configurationKeys { entries = entries.filter { keys.contains($0.name) } }
            r.configs = entries.map { e in
                let sensitive = Self.isSensitive(e.name)
                var c = DescribeConfigsResponse.DescribeConfigsResourceResult(
                    name: e.name, value: sensitive ? nil : e.value, readOnly: resource.resourceType == 4 && e.source == ConfigSource.staticBroker.rawValue,
                    isDefault: e.source == ConfigSource.defaultConfig.rawValue, configSource: e.source, isSensitive: sensitive)
                if request.includeSynonyms { c.synonyms = [.init(name: e.name, value: sensitive ? nil : e.value, source: e.source)] }
                return c
            }
            response.results.append(r)
        }
        return frame(response, context)
    }

    /// The error for a config resource the caller may not describe or alter, or nil: topics
    /// (2) are checked on the topic, brokers (4, 8) on the cluster, groups (32) on the group.
    static func configAccessRefusal(_ access: Access, _ operation: AclOperation, type: Int8, name: String) -> ErrorCode? {
        switch type {
        case 2: access.allows(operation, .topic, name) ? nil : .topicAuthorizationFailed
        case 4, 8: access.allowsCluster(operation) ? nil : .clusterAuthorizationFailed
        case 32: access.allows(operation, .group, name) ? nil : .groupAuthorizationFailed
        default: nil
        }
    }

    /// Validates and applies config changes to a topic (2) or the broker (4); nil removes.
    func alterConfigs(type: Int8, name: String, _ changes: [(String, String?)], replaceAll: Bool, validateOnly: Bool) -> (ErrorCode, String?) {
        switch type {
        case 2:
            if Self.isInternal(name) {
                return (.invalidRequest, "\(name) is an internal topic: its settings come from the broker's offsets.topic.* and transaction.state.log.* properties")
            }
            guard let topic = metadata.topic(name) else { return (.unknownTopicOrPartition, "unknown topic \(name)") }
            var probe = topicDefaults()
            var final = replaceAll ? [:] : topic.configs
            for (k, v) in changes {
                if let v {
                    do {
                        if try !probe.set(k, v) { return (.invalidConfig, "unknown topic config \(k)") }
                    } catch { return (.invalidConfig, "\(error)") }
                    final[k] = v
                } else {
                    final.removeValue(forKey: k)
                }
            }
            if validateOnly { return (.none, nil) }
            var records: [(String, String?)] = final.map { ($0.key, $0.value) }
            for k in topic.configs.keys where final[k] == nil { records.append((k, nil)) }
            do {
                try metadata.setConfigs(resourceType: 2, resource: name, records.sorted { $0.0 < $1.0 }, nowMs: currentTimeMs())
            } catch { return (.kafkaStorageError, "\(error)") }
            let effective = topicConfig(name)
            for p in 0..<topic.partitionCount { logManager.log(topic: name, partition: p)?.updateConfig(effective) }
            return (.none, nil)
        case 4:
            return alterBrokerConfigs(name: name, changes, replaceAll: replaceAll, validateOnly: validateOnly)
        case 32:
            return alterGroupConfigs(group: name, changes, replaceAll: replaceAll, validateOnly: validateOnly)
        default:
            return (.invalidRequest, "unsupported resource type \(type)")
        }
    }

    /// Dynamic broker configs: topic defaults (applied to every user topic at once) and the rest
    /// of Kafka's dynamic set (stored). AlterConfigs replaces the whole dynamic set.
    private func alterBrokerConfigs(name: String, _ changes: [(String, String?)], replaceAll: Bool, validateOnly: Bool) -> (ErrorCode, String?) {
        guard name.isEmpty || name == "\(config.nodeId)" else { return (.invalidRequest, "unknown broker \(name)") }
        var probe = config.logDefaults
        for (k, v) in changes {
            if let topicName = BrokerConfig.topicDefaults[k] {
                if let v { do { try probe.set(topicName, v) } catch { return (.invalidConfig, "\(error)") } }
            } else if !BrokerConfig.dynamicBrokerConfigs.contains(k) {
                return (.invalidConfig, "\(k) cannot be changed dynamically")
            } else if let v, BrokerConfig.appliedDynamicConfigs.contains(k), (Int64(v) ?? 0) < 1 {
                return (.invalidConfig, "\(k): expected a positive integer, got \(v)")
            } else if name.isEmpty && BrokerConfig.perBrokerConfigs.contains(k) {
                return (.invalidRequest, "\(k) is a per-broker config: name the broker id, not the cluster default")
            }
        }
        if validateOnly { return (.none, nil) }
        var records = changes
        if replaceAll {
            let named = Set(changes.map(\.0))
            records += metadata.dynamicBrokerConfigs.keys.sorted().filter { !named.contains($0) }.map { ($0, nil) }
        }
        do { try metadata.setConfigs(resourceType: 4, resource: "", records, nowMs: currentTimeMs()) }
        catch { return (.kafkaStorageError, "\(error)") }
        // Broker defaults are user-topic defaults: the internal logs keep their own settings
        // (compacted, kept forever, inline), or a changed log.retention.ms would start
        // deleting committed offsets.
        for log in logManager.allLogs where log.topic != MetadataStore.logName && !Self.isInternal(log.topic) {
            log.updateConfig(topicConfig(log.topic))
        }
        return (.none, nil)
    }

    /// A group's configs (resource type 32): its own settings, else Kafka's defaults.
    func groupConfigEntries(_ groupId: String) -> [(name: String, value: String, source: Int8)] {
        let set = metadata.groupConfigs(groupId)
        return BrokerConfig.groupConfigs.keys.sorted().map { k in
            set[k].map { (name: k, value: $0, source: ConfigSource.group.rawValue) }
                ?? (name: k, value: BrokerConfig.groupConfigs[k]!.defaultValue, source: ConfigSource.defaultConfig.rawValue)
        }
    }

    private func alterGroupConfigs(group: String, _ changes: [(String, String?)], replaceAll: Bool, validateOnly: Bool) -> (ErrorCode, String?) {
        guard !group.isEmpty else { return (.invalidRequest, "a group config needs a group id") }
        for (k, v) in changes {
            guard let spec = BrokerConfig.groupConfigs[k] else { return (.invalidConfig, "unknown group config \(k)") }
            guard let v else { continue }
            if let range = spec.range {
                guard let n = Int64(v), range.contains(n) else {
                    return (.invalidConfig, "\(k) must be an integer in \(range.lowerBound)...\(range.upperBound), got \(v)")
                }
            } else if !["latest", "earliest"].contains(v) && !v.hasPrefix("by_duration:") {
                return (.invalidConfig, "\(k) must be latest, earliest or by_duration:<ISO-8601 duration>, got \(v)")
            }
        }
        if validateOnly { return (.none, nil) }
        var records = changes
        if replaceAll {
            let named = Set(changes.map(\.0))
            records += metadata.groupConfigs(group).keys.sorted().filter { !named.contains($0) }.map { ($0, nil) }
        }
        do { try metadata.setConfigs(resourceType: 32, resource: group, records, nowMs: currentTimeMs()) }
        catch { return (.kafkaStorageError, "\(error)") }
        return (.none, nil)
    }

    /// The value APPEND and SUBTRACT start from: the resource's own setting, else its default.
    private func currentValue(type: Int8, name: String, key: String) -> String? {
        switch type {
        case 2: configEntries(topic: name).first { $0.name == key }?.value
        case 4: metadata.dynamicBrokerConfigs[key] ?? brokerEntries().first { $0.name == key }?.value
        default: nil
        }
    }

    /// IncrementalAlterConfigs operations as SET/DELETE changes: APPEND adds the values a list
    /// config lacks, SUBTRACT removes them (Kafka refuses both on other configs).
    private func incrementalChanges(_ resource: IncrementalAlterConfigsRequest.AlterConfigsResource) -> Result<[(String, String?)], Failure> {
        var changes: [(String, String?)] = []
        for c in resource.configs {
            switch c.configOperation {
            case 0: changes.append((c.name, c.value))
            case 1: changes.append((c.name, nil))
            case 2, 3:
                guard BrokerConfig.listConfigs.contains(c.name) else {
                    return .failure(Failure(.invalidConfig, "APPEND and SUBTRACT apply to list configs, and \(c.name) is not one"))
                }
                func items(_ text: String?) -> [String] {
                    (text ?? "").split(separator: ",").map { String($0).trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }
                }
                let old = items(changes.last { $0.0 == c.name }.map { $0.1 } ?? currentValue(type: resource.resourceType, name: resource.resourceName, key: c.name))
                let given = items(c.value)
                var result = old
                if c.configOperation == 2 { for v in given where !result.contains(v) { result.append(v) } }
                else { result.removeAll { given.contains($0) } }
                changes.append((c.name, result.joined(separator: ",")))
            default:
                return .failure(Failure(.invalidRequest, "unknown config operation \(c.configOperation)"))
            }
        }
        return .success(changes)
    }

    func handleAlterConfigs(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try AlterConfigsRequest.decode(from: &body, version: context.version)
        var response = AlterConfigsResponse()
        let access = access(context)
        for r in request.resources {
            if let code = Self.configAccessRefusal(access, .alterConfigs, type: r.resourceType, name: r.resourceName) {
                response.responses.append(.init(errorCode: code.rawValue, resourceType: r.resourceType, resourceName: r.resourceName))
                continue
            }
            let (code, message) = alterConfigs(type: r.resourceType, name: r.resourceName, r.configs.map { ($0.name, $0.value) },
                                               replaceAll: true, validateOnly: request.validateOnly)
            response.responses.append(.init(errorCode: code.rawValue, errorMessage: message, resourceType: r.resourceType, resourceName: r.resourceName))
        }
        return frame(response, context)
    }

    func handleIncrementalAlterConfigs(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try IncrementalAlterConfigsRequest.decode(from: &body, version: context.version)
        var response = IncrementalAlterConfigsResponse()
        let access = access(context)
        for r in request.resources {
            let (code, message): (ErrorCode, String?)
            if let refusal = Self.configAccessRefusal(access, .alterConfigs, type: r.resourceType, name: r.resourceName) {
                (code, message) = (refusal, nil)
            } else {
                switch incrementalChanges(r) {
                case .failure(let f): (code, message) = (f.code, f.message)
                case .success(let changes):
                    (code, message) = alterConfigs(type: r.resourceType, name: r.resourceName, changes, replaceAll: false,
                                                   validateOnly: request.validateOnly)
                }
            }
            response.responses.append(.init(errorCode: code.rawValue, errorMessage: message, resourceType: r.resourceType, resourceName: r.resourceName))
        }
        return frame(response, context)
    }
}
