/// One transactional id's state at the transaction coordinator, and the rules for moving it.
/// Pure: the broker persists each new state to `__transaction_state` and writes the markers
/// that `end` and a fencing `initProducer` call for; no I/O, no clock.
public struct TransactionMetadata: Sendable, Equatable {
    /// Kafka's transaction states, with the int8 codes `__transaction_state` stores.
    public enum Status: Int8, Sendable, CaseIterable {
        case empty = 0, ongoing, prepareCommit, prepareAbort, completeCommit, completeAbort, dead, prepareEpochFence

        /// The names ListTransactions and DescribeTransactions use.
        public var name: String {
            switch self {
            case .empty: "Empty"
            case .ongoing: "Ongoing"
            case .prepareCommit: "PrepareCommit"
            case .prepareAbort: "PrepareAbort"
            case .completeCommit: "CompleteCommit"
            case .completeAbort: "CompleteAbort"
            case .dead: "Dead"
            case .prepareEpochFence: "PrepareEpochFence"
            }
        }

        var isPreparing: Bool { self == .prepareCommit || self == .prepareAbort || self == .prepareEpochFence }
    }

    public struct Partition: Hashable, Sendable, Comparable {
        public var topic: String
        public var partition: Int32
        public init(topic: String, partition: Int32) { self.topic = topic; self.partition = partition }
        public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    }

    public enum Failure: Error, Sendable, Equatable {
        case concurrentTransactions, invalidTxnState, invalidProducerIdMapping, producerFenced
    }

    /// Markers to write: every partition of the transaction gets a COMMIT or ABORT control batch.
    public struct Markers: Sendable, Equatable {
        public var producerId: Int64
        public var producerEpoch: Int16
        public var committed: Bool
        public var partitions: [Partition]
        public init(producerId: Int64, producerEpoch: Int16, committed: Bool, partitions: [Partition]) {
            self.producerId = producerId
            self.producerEpoch = producerEpoch
            self.committed = committed
            self.partitions = partitions
        }
    }

    public var transactionalId: String
    public var producerId: Int64
    public var previousProducerId: Int64 = -1
    public var producerEpoch: Int16
    /// The epoch before the last bump, so a retried InitProducerId gets the same answer.
    public var lastProducerEpoch: Int16 = -1
    public var timeoutMs: Int32
    public var status: Status
    public var partitions: Set<Partition> = []
    public var startTimestampMs: Int64 = -1
    public var lastUpdateMs: Int64

    public init(transactionalId: String, producerId: Int64, producerEpoch: Int16, timeoutMs: Int32, status: Status,
                partitions: Set<Partition> = [], startTimestampMs: Int64 = -1, lastUpdateMs: Int64) {
        self.transactionalId = transactionalId
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.timeoutMs = timeoutMs
        self.status = status
        self.partitions = partitions
        self.startTimestampMs = startTimestampMs
        self.lastUpdateMs = lastUpdateMs
    }

    // MARK: - transitions

    /// InitProducerId for an existing id: bumps the epoch (a new producer id once the epoch is
    /// exhausted). An open transaction is aborted with the bumped epoch first, which fences its
    /// producer. `requested` is the (producer id, epoch) a KIP-360 client sends, or nil.
    /// Returns the markers to write before the new state may be answered.
    public mutating func initProducer(timeoutMs: Int32, requested: (producerId: Int64, epoch: Int16)?, nowMs: Int64,
                                      newProducerId: () throws -> Int64) throws -> Markers? {
        if status.isPreparing { throw Failure.concurrentTransactions }
        if let requested {
            // A retry of the call that made the current epoch gets the same answer.
            if requested.producerId == producerId && requested.epoch == lastProducerEpoch && status == .empty { return nil }
            guard requested.producerId == producerId && requested.epoch == producerEpoch else { throw Failure.producerFenced }
        }
        var markers: Markers?
        if status == .ongoing {
            markers = Markers(producerId: producerId, producerEpoch: producerEpoch == Int16.max ? Int16.max : producerEpoch + 1,
                              committed: false, partitions: partitions.sorted())
        }
        if producerEpoch >= Int16.max - 1 {
            previousProducerId = producerId
            producerId = try newProducerId()
            producerEpoch = 0
            lastProducerEpoch = -1
        } else {
            lastProducerEpoch = producerEpoch
            producerEpoch += 1
        }
        self.timeoutMs = timeoutMs
        status = .empty
        partitions = []
        startTimestampMs = -1
        lastUpdateMs = nowMs
        return markers
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the partitions join the (possibly new) transaction.
    public mutating func add(_ new: [Partition], producerId: Int64, epoch: Int16, nowMs: Int64) throws(Failure) {
        try checkProducer(producerId, epoch)
        switch status {
        case .ongoing:
            partitions.formUnion(new)
        case .empty, .completeCommit, .completeAbort:
            status = .ongoing
            partitions = Set(new)
            startTimestampMs = nowMs
        case .prepareCommit, .prepareAbort, .prepareEpochFence:
            throw .concurrentTransactions
        case .dead:
            throw .invalidTxnState
        }
        lastUpdateMs = nowMs
    }

    /// EndTxn: moves to PrepareCommit/PrepareAbort and returns the markers to write (then call
    /// `completed`), or nil when this is a retry of an end that already completed.
    public mutating func end(commit: Bool, producerId: Int64, epoch: Int16, nowMs: Int64) throws(Failure) -> Markers? {
        try checkProducer(producerId, epoch)
        switch status {
        case .ongoing:
            status = commit ? .prepareCommit : .prepareAbort
            lastUpdateMs = nowMs
            return Markers(producerId: producerId, producerEpoch: epoch, committed: commit, partitions: partitions.sorted())
        case .completeCommit where commit, .completeAbort where !commit:
            return nil
        case .prepareCommit, .prepareAbort, .prepareEpochFence:
            throw .concurrentTransactions
        default:
            throw .invalidTxnState
        }
    }

    /// The markers of a PrepareCommit/PrepareAbort are all written.
    public mutating func completed(nowMs: Int64) {
        switch status {
        case .prepareCommit: status = .completeCommit
        case .prepareAbort: status = .completeAbort
        default: return
        }
        partitions = []
        lastUpdateMs = nowMs
    }

    /// transaction.timeout.ms passed with the transaction still open: abort it with a bumped
    /// epoch, so the producer that let it time out is fenced.
    public mutating func abortForTimeout(nowMs: Int64) -> Markers? {
        guard status == .ongoing, startTimestampMs >= 0, nowMs - startTimestampMs > Int64(timeoutMs),
              producerEpoch < Int16.max - 1 else { return nil }
        lastProducerEpoch = producerEpoch
        producerEpoch += 1
        status = .prepareAbort
        lastUpdateMs = nowMs
        return Markers(producerId: producerId, producerEpoch: producerEpoch, committed: false, partitions: partitions.sorted())
    }

    /// Whether a transactional write by this producer to `partition` belongs to the open
    /// transaction (it must have been added first: no late write can start a hanging one).
    public func verifyWrite(producerId: Int64, epoch: Int16, partition: Partition) throws(Failure) {
        try checkProducer(producerId, epoch)
        guard status == .ongoing, partitions.contains(partition) else { throw .invalidTxnState }
    }

    private func checkProducer(_ id: Int64, _ epoch: Int16) throws(Failure) {
        guard id == producerId else { throw .invalidProducerIdMapping }
        guard epoch == producerEpoch else { throw .producerFenced }
    }
}
