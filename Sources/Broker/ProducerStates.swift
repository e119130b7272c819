import Coordination
import LogStorage
import NIOConcurrencyHelpers
import Records

/// One `ProducerStateMachine` per partition, built on first use by replaying the partition's
/// batches (their producer id, epoch and sequence range), then kept current by the produce path.
/// Check, append and record happen under the partition's lock, so two connections producing to
/// the same partition cannot both pass the same sequence check.
final class ProducerStates: @unchecked Sendable {
    final class Partition: @unchecked Sendable {
        let lock = NIOLock()
        var machine = ProducerStateMachine()
    }

    private let lock = NIOLock()
    private var partitions: [String: Partition] = [:]

    func state(for log: PartitionLog) throws -> Partition {
        if let existing = lock.withLock({ partitions[log.name] }) { return existing }
        let fresh = Partition()
        try log.forEachBatch { batch in
            guard batch.producerId >= 0, !batch.isControl else { return }
            fresh.machine.record(producerId: batch.producerId, epoch: batch.producerEpoch, firstSequence: batch.baseSequence,
                                 lastSequence: batch.lastSequence, firstOffset: batch.baseOffset, lastOffset: batch.lastOffset,
                                 timestampMs: batch.maxTimestamp)
        }
        return lock.withLock {
            if let raced = partitions[log.name] { return raced }
            partitions[log.name] = fresh
            return fresh
        }
    }

    /// producer.id.expiration.ms: forgets producers idle for longer, in every partition.
    func expire(idleMs: Int64, nowMs: Int64) {
        for partition in lock.withLock({ Array(partitions.values) }) {
            partition.lock.withLock { partition.machine.expire(olderThanMs: nowMs - idleMs) }
        }
    }

    func forget(topic: String) {
        lock.withLock { partitions = partitions.filter { !$0.key.hasPrefix(topic + "-") || Int32($0.key.dropFirst(topic.count + 1)) == nil } }
    }
}
