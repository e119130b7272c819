/// Idempotent-producer bookkeeping for one partition: per producer id, its epoch and the last
/// five batches (sequence ranges and the offsets they got). Pure: the broker asks `check` before
/// appending and calls `record` after; no I/O, no clock.
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

    public init() {}

    /// The sequence after `s`, wrapping at Int32.max as Kafka does.
    public static func next(_ s: Int32) -> Int32 { s == Int32.max ? 0 : s + 1 }

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

    /// Records an appended batch (also used to rebuild state from the log).
    public mutating func record(producerId: Int64, epoch: Int16, firstSequence: Int32, lastSequence: Int32,
                                firstOffset: Int64, lastOffset: Int64, timestampMs: Int64) {
        guard producerId >= 0 else { return }
        var p = producers[producerId] ?? Producer(epoch: epoch, batches: [], lastTimestampMs: timestampMs)
        if epoch != p.epoch { p = Producer(epoch: epoch, batches: [], lastTimestampMs: timestampMs) }
        p.batches.append(BatchEntry(firstSequence: firstSequence, lastSequence: lastSequence, firstOffset: firstOffset, lastOffset: lastOffset))
        if p.batches.count > Self.batchesRetained { p.batches.removeFirst(p.batches.count - Self.batchesRetained) }
        p.lastTimestampMs = max(p.lastTimestampMs, timestampMs)
        producers[producerId] = p
    }

    /// producer.id.expiration.ms: forgets producers idle for longer.
    public mutating func expire(olderThanMs cutoff: Int64) {
        producers = producers.filter { $0.value.lastTimestampMs >= cutoff }
    }
}
