import Coordination
import KafkaProtocol
import Logging
import LogStorage
import NIOConcurrencyHelpers
import NIOCore
import Records

/// The transaction coordinator's state: `TransactionMetadata` per transactional id, kept in
/// `__transaction_state` (Kafka's key/value formats) and replayed at start. The flows that write
/// markers live in `Broker+Transactions.swift`; this type only stores and indexes.
final class TransactionCoordinator: @unchecked Sendable {
    static let stateTopic = "__transaction_state"
    let statePartitions: Int32
    private let lock = NIOLock()
    private var transactions: [String: TransactionMetadata] = [:]
    private var byProducerId: [Int64: String] = [:]
    private var stateLogs: [PartitionLog] = []
    let logger: Logger

    init(logManager: LogManager, config: LogConfig, partitions requested: Int32, logger: Logger) throws {
        self.logger = logger
        stateLogs = try GroupCoordinator.openInternalTopic(Self.stateTopic, partitions: requested, logManager: logManager, config: config)
        statePartitions = Int32(stateLogs.count)
        for log in stateLogs {
            try log.forEachBatch { batch in
                for record in try batch.records() { apply(key: record.key, value: record.value) }
            }
        }
        if !transactions.isEmpty { logger.info("loaded \(transactions.count) transactional ids") }
    }

    // MARK: - records

    private func apply(key: ByteBuffer?, value: ByteBuffer?) {
        guard var k = key, k.readInteger(as: Int16.self) == 0, let tk = try? TransactionLogKey.decode(from: &k, version: 0) else { return }
        guard var v = value else {
            if let old = transactions.removeValue(forKey: tk.transactionalId) { byProducerId.removeValue(forKey: old.producerId) }
            return
        }
        guard let version = v.readInteger(as: Int16.self), version <= 1,
              let tv = try? TransactionLogValue.decode(from: &v, version: version),
              let status = TransactionMetadata.Status(rawValue: tv.transactionStatus) else { return }
        var m = TransactionMetadata(transactionalId: tk.transactionalId, producerId: tv.producerId, producerEpoch: tv.producerEpoch,
                                    timeoutMs: tv.transactionTimeoutMs, status: status,
                                    startTimestampMs: tv.transactionStartTimestampMs, lastUpdateMs: tv.transactionLastUpdateTimestampMs)
        m.previousProducerId = tv.previousProducerId
        for t in tv.transactionPartitions ?? [] {
            for p in t.partitionIds { m.partitions.insert(.init(topic: t.topic, partition: p)) }
        }
        index(m)
    }

    private func index(_ m: TransactionMetadata) {
        if let old = transactions[m.transactionalId], old.producerId != m.producerId { byProducerId.removeValue(forKey: old.producerId) }
        transactions[m.transactionalId] = m
        byProducerId[m.producerId] = m.transactionalId
    }

    static func record(_ m: TransactionMetadata?, id: String, nowMs: Int64) -> RecordBatchBuilder.Input {
        var key = ByteBuffer()
        key.writeInteger(Int16(0))
        TransactionLogKey(transactionalId: id).encode(into: &key, version: 0)
        guard let m else { return RecordBatchBuilder.Input(key: key, value: nil, timestamp: nowMs) }
        var grouped: [String: [Int32]] = [:]
        for p in m.partitions { grouped[p.topic, default: []].append(p.partition) }
        let partitions = grouped.keys.sorted().map { TransactionLogValue.PartitionsSchema(topic: $0, partitionIds: grouped[$0]!.sorted()) }
        var value = ByteBuffer()
        value.writeInteger(Int16(0))
        TransactionLogValue(producerId: m.producerId, producerEpoch: m.producerEpoch, transactionTimeoutMs: m.timeoutMs,
                            transactionStatus: m.status.rawValue, transactionPartitions: partitions,
                            transactionLastUpdateTimestampMs: m.lastUpdateMs, transactionStartTimestampMs: m.startTimestampMs)
            .encode(into: &value, version: 0)
        return RecordBatchBuilder.Input(key: key, value: value, timestamp: nowMs)
    }

    /// Kafka's choice, as for groups: abs(id.hashCode) % partitions.
    func partition(for id: String) -> Int32 { GroupCoordinator.partition(for: id, partitions: statePartitions) }

    // MARK: - access

    /// Runs `body` on the id's state under the lock; a new state it leaves (or nil: delete) is
    /// appended to `__transaction_state` (fsync'd under durability `ack`) before it is applied,
    /// so what a client is told was decided is on disk first.
    func update<T>(_ id: String, _ body: (inout TransactionMetadata?) throws -> T) throws -> T {
        try lock.withLock {
            let before = transactions[id]
            var m = before
            let result = try body(&m)
            if m != before {
                let now = currentTimeMs()
                let log = stateLogs[Int(partition(for: id))]
                let batch = try RecordBatch(try RecordBatchBuilder().build([Self.record(m, id: id, nowMs: now)]))
                _ = try log.append([batch], nowMs: now)
                if let m { index(m) } else if let before {
                    transactions.removeValue(forKey: id)
                    byProducerId.removeValue(forKey: before.producerId)
                }
            }
            return result
        }
    }

    func get(_ id: String) -> TransactionMetadata? { lock.withLock { transactions[id] } }
    func get(producerId: Int64) -> TransactionMetadata? { lock.withLock { byProducerId[producerId].flatMap { transactions[$0] } } }
    var all: [TransactionMetadata] { lock.withLock { Array(transactions.values) } }
}
