import KafkaProtocol
import LogStorage
import Records

/// `__consumer_offsets` and `__transaction_state` as clients see them. Kafka creates each on
/// first use and then lists it like any topic, flagged internal: readable, but closed to
/// producers, deletion and partition changes. Sluice opens their logs at start, so a topic
/// shows in a full listing from its first use: a FindCoordinator of its key type, a Metadata
/// request that names it, or data in its logs. `__cluster_metadata` stays hidden, as in Kafka.
extension Broker {
    static let internalTopicNames: Set<String> = [GroupCoordinator.offsetsTopic, TransactionCoordinator.stateTopic]

    static func isInternal(_ topic: String) -> Bool { internalTopicNames.contains(topic) }

    /// The internal topic's description (no config overrides: its settings are the broker's
    /// `offsets.topic.*` and `transaction.state.log.*` properties).
    func internalTopic(_ name: String) -> TopicMetadata? {
        let partitions: Int32
        switch name {
        case GroupCoordinator.offsetsTopic: partitions = groups.offsetsPartitions
        case TransactionCoordinator.stateTopic: partitions = transactions.statePartitions
        default: return nil
        }
        return TopicMetadata(name: name, id: Self.internalTopicId(name), partitionCount: partitions, configs: [:])
    }

    /// The internal topics in use so far, by name: marked so, or holding data (a commit that
    /// came without a FindCoordinator, as a single-node client may send it).
    var shownInternalTopics: [TopicMetadata] {
        var inUse = internalTopicsInUse.withLockedValue { $0 }
        let unmarked = Self.internalTopicNames.subtracting(inUse)
        if !unmarked.isEmpty {
            let withData = internalTopicsWithData(among: unmarked)
            if !withData.isEmpty {
                internalTopicsInUse.withLockedValue { $0.formUnion(withData) }
                inUse.formUnion(withData)
            }
        }
        return inUse.sorted().compactMap { internalTopic($0) }
    }

    func markInUse(internalTopic name: String) {
        guard Self.isInternal(name) else { return }
        _ = internalTopicsInUse.withLockedValue { $0.insert(name) }
    }

    /// Which of `names` have data in their logs (at start: used before a restart).
    func internalTopicsWithData(among names: Set<String> = internalTopicNames) -> Set<String> {
        names.filter { name in
            let partitions = internalTopic(name)?.partitionCount ?? 0
            return (0..<partitions).contains { logManager.log(topic: name, partition: $0).map { $0.logEndOffset > 0 } ?? false }
        }
    }

    /// A stable id per internal topic (Metadata v10+ carries topic ids): derived from the name,
    /// so it is the same after every restart without being stored.
    static func internalTopicId(_ name: String) -> Uuid {
        var seed = SplitMix64(seed: name.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 })
        return Uuid.random(using: &seed)
    }

    /// The internal topic's settings for DescribeConfigs: what its logs run with, each marked as
    /// a topic setting where it differs from the user-topic default.
    func internalConfigEntries(_ name: String) -> [(name: String, value: String, source: Int8)] {
        guard let log = logManager.log(topic: name, partition: 0) else { return [] }
        let defaults = Dictionary(uniqueKeysWithValues: topicDefaults().entries.map { ($0.name, $0.value) })
        return log.currentConfig.entries.map { e in
            (name: e.name, value: e.value,
             source: defaults[e.name] == e.value ? ConfigSource.defaultConfig.rawValue : ConfigSource.topic.rawValue)
        }.sorted { $0.name < $1.name }
    }
}
