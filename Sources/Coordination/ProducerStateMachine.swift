import Records

/// Idempotent and transactional producer bookkeeping for one partition: per producer id, its
/// epoch, the last five batches (sequence ranges and the offsets they got) and the first offset
/// of its open transaction. Pure: the broker asks `check` before appending, calls `record` after
/// and `complete` when it writes a transaction marker; no I/O, no clock.
public struct ProducerStateMachine: Sendable {
    /// Kafka keeps the last five batches per producer (max.in.flight.requests.per.connection).
    public static let batchesRetained = 5

    public struct BatchEntry: Sendable, Equatable {
        public var firstSequence: Int32
        public var lastSequence: Int32
        public var firstOffset: Int64
        public var lastOffset: Int64
    }

    public struct Producer: Sendable, Equatable {
        public var epoch: Int16
        public var batches: [BatchEntry]
        public var lastTimestampMs: Int64
        /// The coordinator epoch of the last marker written for this producer.
        public var coordinatorEpoch: Int32 = -1
        /// First offset of the producer's open transaction in this partition, if one is open.
        public var currentTxnFirstOffset: Int64?
    }

    /// A transaction ended by a marker: its data spans `firstOffset...lastOffset` (the marker).
    public struct CompletedTransaction: Sendable, Equatable {
        public var producerId: Int64
        public var firstOffset: Int64
        public var lastOffset: Int64
        public var committed: Bool
    }

    public enum Verdict: Sendable, Equatable {
        /// Append it.
        case append
        /// The same batch was appended before: answer with its offsets, append nothing.
        case duplicate(firstOffset: Int64, lastOffset: Int64)
        case outOfOrderSequence(expected: Int32, got: Int32)
        case invalidEpoch(current: Int16, got: Int16)
        case unknownProducer
    }

    public private(set) var producers: [Int64: Producer] = [:]
    /// Producer id → first offset of its open transaction (kept apart so the LSO is cheap).
    public private(set) var openTransactions: [Int64: Int64] = [:]

    public init() {}

    /// The sequence after `s`, wrapping at Int32.max as Kafka does.
    public static func next(_ s: Int32) -> Int32 { s == Int32.max ? 0 : s + 1 }

    /// The first offset of the oldest open transaction: the last stable offset when one is open.
    public var firstUnstableOffset: Int64? { openTransactions.values.min() }

    public func check(producerId: Int64, epoch: Int16, firstSequence: Int32, lastSequence: Int32) -> Verdict {
        guard producerId >= 0 else { return .append }
        guard let p = producers[producerId] else {
            // A producer we have no state for must start at sequence 0.
            return firstSequence == 0 ? .append : .unknownProducer
        }
        if epoch < p.epoch { return .invalidEpoch(current: p.epoch, got: epoch) }
        if epoch > p.epoch {
            return firstSequence == 0 ? .append : .outOfOrderSequence(expected: 0, got: firstSequence)
        }
        if let dup = p.batches.first(where: { $0.firstSequence == firstSequence && $0.lastSequence == lastSequence }) {
            return .duplicate(firstOffset: dup.firstOffset, lastOffset: dup.lastOffset)
        }
        guard let last = p.batches.last else { return firstSequence == 0 ? .append : .unknownProducer }
        let expected = Self.next(last.lastSequence)
        return firstSequence == expected ? .append : .outOfOrderSequence(expected: expected, got: firstSequence)
    }

    /// Records an appended batch (also used to rebuild state from the log). A transactional
    /// batch opens the producer's transaction in this partition if none is open.
    public mutating func record(producerId: Int64, epoch: Int16, firstSequence: Int32, lastSequence: Int32,
                                firstOffset: Int64, lastOffset: Int64, timestampMs: Int64, transactional: Bool = false) {
        guard producerId >= 0 else { return }
        var p = producers[producerId] ?? Producer(epoch: epoch, batches: [], lastTimestampMs: timestampMs)
        if epoch != p.epoch {
            p.epoch = epoch
            p.batches = []
            p.lastTimestampMs = timestampMs
        }
        p.batches.append(BatchEntry(firstSequence: firstSequence, lastSequence: lastSequence, firstOffset: firstOffset, lastOffset: lastOffset))
        if p.batches.count > Self.batchesRetained { p.batches.removeFirst(p.batches.count - Self.batchesRetained) }
        p.lastTimestampMs = max(p.lastTimestampMs, timestampMs)
        if transactional && p.currentTxnFirstOffset == nil {
            p.currentTxnFirstOffset = firstOffset
            openTransactions[producerId] = firstOffset
        }
        producers[producerId] = p
    }

    /// Records a transaction marker written at `markerOffset`. Returns the transaction it ended,
    /// or nil if the producer had none open here (a marker for a partition that got no data).
    /// A marker may carry a newer epoch than the data (the coordinator fenced the producer).
    @discardableResult
    public mutating func complete(producerId: Int64, epoch: Int16, markerOffset: Int64, committed: Bool,
                                  coordinatorEpoch: Int32, timestampMs: Int64) -> CompletedTransaction? {
        var p = producers[producerId] ?? Producer(epoch: epoch, batches: [], lastTimestampMs: timestampMs)
        if epoch > p.epoch {
            p.epoch = epoch
            p.batches = []
        }
        p.coordinatorEpoch = coordinatorEpoch
        p.lastTimestampMs = max(p.lastTimestampMs, timestampMs)
        let first = p.currentTxnFirstOffset
        p.currentTxnFirstOffset = nil
        openTransactions.removeValue(forKey: producerId)
        producers[producerId] = p
        return first.map { CompletedTransaction(producerId: producerId, firstOffset: $0, lastOffset: markerOffset, committed: committed) }
    }

    /// producer.id.expiration.ms: forgets producers idle for longer (never one with an open
    /// transaction: its data would never become stable).
    public mutating func expire(olderThanMs cutoff: Int64) {
        producers = producers.filter { $0.value.lastTimestampMs >= cutoff || $0.value.currentTxnFirstOffset != nil }
    }

    // MARK: - snapshots

    /// Kafka's producer snapshot (`<offset>.snapshot`, version 1): int16 version, uint32
    /// CRC-32C of everything after it, then an int32 count of 46-byte entries (producer id,
    /// epoch, last sequence, last offset, offset delta, timestamp, coordinator epoch, current
    /// transaction first offset or -1). Like Kafka's, it keeps only each producer's last batch;
    /// the batches after the snapshot come back from replaying the log.
    public static let snapshotVersion: Int16 = 1
    static let snapshotEntryBytes = 46

    public func snapshot() -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(4 + producers.count * Self.snapshotEntryBytes)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.bigEndian) { body.append(contentsOf: $0) } }
        put(Int32(producers.count))
        for (id, p) in producers.sorted(by: { $0.key < $1.key }) {
            let last = p.batches.last
            put(id)
            put(p.epoch)
            put(last?.lastSequence ?? -1)
            put(last?.lastOffset ?? -1)
            put(Int32(last.map { $0.lastOffset - $0.firstOffset } ?? 0))
            put(p.lastTimestampMs)
            put(p.coordinatorEpoch)
            put(p.currentTxnFirstOffset ?? -1)
        }
        var out: [UInt8] = []
        out.reserveCapacity(6 + body.count)
        withUnsafeBytes(of: Self.snapshotVersion.bigEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32C.checksum(of: body).bigEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: body)
        return out
    }

    public enum SnapshotError: Error, Equatable { case truncated, unsupportedVersion(Int16), crcMismatch, badCount(Int32) }

    public init(snapshot bytes: [UInt8]) throws(SnapshotError) {
        var at = 0
        func get<T: FixedWidthInteger>(_: T.Type) throws(SnapshotError) -> T {
            let n = MemoryLayout<T>.size
            guard at + n <= bytes.count else { throw .truncated }
            defer { at += n }
            return bytes[at..<(at + n)].reduce(T(0)) { $0 << 8 | T($1) }
        }
        let version = try get(Int16.self)
        guard version == Self.snapshotVersion else { throw .unsupportedVersion(version) }
        let crc = try get(UInt32.self)
        guard CRC32C.checksum(of: Array(bytes[at...])) == crc else { throw .crcMismatch }
        let count = try get(Int32.self)
        guard count >= 0, Int(count) * Self.snapshotEntryBytes == bytes.count - at else { throw .badCount(count) }
        for _ in 0..<count {
            let id = try get(Int64.self)
            let epoch = try get(Int16.self)
            let lastSequence = try get(Int32.self)
            let lastOffset = try get(Int64.self)
            let delta = try get(Int32.self)
            let timestamp = try get(Int64.self)
            let coordinatorEpoch = try get(Int32.self)
            let txnFirst = try get(Int64.self)
            var p = Producer(epoch: epoch, batches: [], lastTimestampMs: timestamp, coordinatorEpoch: coordinatorEpoch,
                             currentTxnFirstOffset: txnFirst >= 0 ? txnFirst : nil)
            if lastOffset >= 0 && lastSequence >= 0 {
                let count = Int64(delta)
                // The first sequence of the last batch, wrapping as sequences do.
                let first = Int32((Int64(lastSequence) - count + (Int64(Int32.max) + 1)) % (Int64(Int32.max) + 1))
                p.batches = [BatchEntry(firstSequence: first, lastSequence: lastSequence, firstOffset: lastOffset - count, lastOffset: lastOffset)]
            }
            producers[id] = p
            if let f = p.currentTxnFirstOffset { openTransactions[id] = f }
        }
    }
}
