import Coordination
import Logging
import LogStorage
import NIOConcurrencyHelpers
import Records
import SystemIO

/// One `ProducerStateMachine` per partition, rebuilt at start from the newest producer snapshot
/// (`<offset>.snapshot`, Kafka's format) plus a replay of the batches after it, then kept current
/// by the produce path and the transaction markers. Check, append and record happen under the
/// partition's lock, so two connections producing to the same partition cannot both pass the
/// same sequence check.
final class ProducerStates: @unchecked Sendable {
    final class Partition: @unchecked Sendable {
        let lock = NIOLock()
        var machine = ProducerStateMachine()
        /// The active segment's base offset when the last snapshot was written (a roll since
        /// then makes the next housekeeping pass write one).
        var snapshotSegmentBase: Int64 = -1
    }

    private let lock = NIOLock()
    private var partitions: [String: Partition] = [:]
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    static func snapshotName(_ offset: Int64) -> String {
        let digits = String(offset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".snapshot"
    }

    /// Snapshot offsets in a partition directory, newest first.
    static func snapshotOffsets(in directory: String) -> [Int64] {
        ((try? Directory.list(directory)) ?? []).filter { $0.hasSuffix(".snapshot") }
            .compactMap { Int64($0.dropLast(".snapshot".count)) }.sorted(by: >)
    }

    func state(for log: PartitionLog) throws -> Partition {
        if let existing = lock.withLock({ partitions[log.name] }) { return existing }
        let fresh = try load(log)
        return lock.withLock {
            if let raced = partitions[log.name] { return raced }
            partitions[log.name] = fresh
            return fresh
        }
    }

    /// A log that was just created is empty: its producer state is known without replaying it
    /// (otherwise the first fetch of a topic written only by non-idempotent producers would
    /// replay the whole log to find no producers).
    func created(_ log: PartitionLog) {
        let fresh = Partition()
        fresh.snapshotSegmentBase = log.activeSegmentBaseOffset  // empty: nothing a snapshot would spare
        lock.withLock { if partitions[log.name] == nil { partitions[log.name] = fresh } }
    }

    /// The last stable offset: the first offset of the oldest open transaction, else `highWatermark`.
    func lastStableOffset(_ log: PartitionLog, highWatermark: Int64) -> Int64 {
        guard let p = try? state(for: log) else { return highWatermark }
        let unstable = p.lock.withLock { p.machine.firstUnstableOffset }
        return min(unstable ?? highWatermark, highWatermark)
    }

    /// Newest usable snapshot, then the batches after it. A snapshot beyond the log end (its
    /// data was lost in a crash) or one that fails its CRC is deleted and an older one tried.
    private func load(_ log: PartitionLog) throws -> Partition {
        let fresh = Partition()
        let end = log.logEndOffset
        var from: Int64 = 0
        for offset in Self.snapshotOffsets(in: log.directory) {
            let path = "\(log.directory)/\(Self.snapshotName(offset))"
            if offset <= end, let bytes = try? Self.readFile(path), let machine = try? ProducerStateMachine(snapshot: bytes) {
                fresh.machine = machine
                from = offset
                break
            }
            logger.warning("ignoring producer snapshot \(path) (beyond the log end \(end), or unreadable)")
            try? FileSystem.remove(path)
        }
        var replayed = 0
        try log.forEachBatch(from: from) { batch in
            replayed += 1
            try Self.apply(batch, to: &fresh.machine, log: log)
        }
        if replayed > 0 && from > 0 { logger.debug("\(log.name): producer state from snapshot \(from) + \(replayed) batches") }
        // A snapshot is due only where the next load would replay more than the active segment
        // (as after a roll); an empty log, or one whose snapshot reaches the active segment,
        // needs none, so a start does not rewrite and fsync one file per partition.
        let activeBase = log.activeSegmentBaseOffset
        if from >= activeBase { fresh.snapshotSegmentBase = activeBase }
        return fresh
    }

    /// Replays one batch: data batches update sequences, markers end transactions (re-adding an
    /// abort to the `.txnindex` if a crash lost it).
    static func apply(_ batch: RecordBatch, to machine: inout ProducerStateMachine, log: PartitionLog) throws {
        guard batch.producerId >= 0 else { return }
        if batch.isControl {
            guard let type = try controlType(of: batch) else { return }
            let done = machine.complete(producerId: batch.producerId, epoch: batch.producerEpoch, markerOffset: batch.baseOffset,
                                        committed: type == .commit, coordinatorEpoch: 0, timestampMs: batch.maxTimestamp)
            if let done, !done.committed {
                try log.appendAbortedTransaction(AbortedTransaction(
                    producerId: done.producerId, firstOffset: done.firstOffset, lastOffset: done.lastOffset,
                    lastStableOffset: machine.firstUnstableOffset ?? batch.nextOffset))
            }
        } else {
            machine.record(producerId: batch.producerId, epoch: batch.producerEpoch, firstSequence: batch.baseSequence,
                           lastSequence: batch.lastSequence, firstOffset: batch.baseOffset, lastOffset: batch.lastOffset,
                           timestampMs: batch.maxTimestamp, transactional: batch.isTransactional)
        }
    }

    /// The marker type of a control batch (its one record's key: int16 version, int16 type).
    static func controlType(of batch: RecordBatch) throws -> RecordBatchBuilder.ControlType? {
        guard var key = try batch.records().first?.key, key.readInteger(as: Int16.self) != nil,
              let raw = key.readInteger(as: Int16.self) else { return nil }
        return RecordBatchBuilder.ControlType(rawValue: raw)
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let f = try FileHandle.open(path, [.readOnly])
        return try f.read(count: Int(try f.size()), at: 0)
    }

    /// Writes `<logEnd>.snapshot` (tmp + fsync + rename) for every loaded partition whose log
    /// rolled since its last snapshot (or all with `force`, at shutdown), keeping the newest two.
    /// Runs off the append path: the machine is copied under its lock, the file written outside.
    func writeSnapshots(_ logs: [PartitionLog], force: Bool) {
        let loaded = lock.withLock { partitions }
        for log in logs {
            guard let p = loaded[log.name] else { continue }
            let (machine, end, base) = p.lock.withLock { (p.machine, log.logEndOffset, log.activeSegmentBaseOffset) }
            guard force || base != p.snapshotSegmentBase else { continue }
            let path = "\(log.directory)/\(Self.snapshotName(end))"
            do {
                try log.persistTransactionIndexes()
                let tmp = path + ".tmp"
                let f = try FileHandle.open(tmp, [.writeOnly, .create, .truncate])
                try f.writeAll(machine.snapshot(), at: 0)
                try f.sync()
                try f.close()
                try FileSystem.rename(tmp, to: path)
                try FileSystem.syncDirectory(log.directory)
                p.lock.withLock { p.snapshotSegmentBase = base }
                for old in Self.snapshotOffsets(in: log.directory).dropFirst(2) {
                    try? FileSystem.remove("\(log.directory)/\(Self.snapshotName(old))")
                }
            } catch {
                logger.warning("could not write producer snapshot \(path): \(error)")
            }
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
