import Testing
@testable import Coordination

@Suite("Transactions: producer-side partition state and coordinator state")
struct TransactionTests {
    @Test("an open transaction holds the LSO at its first offset until its marker; aborts report their range")
    func lastStableOffset() {
        var s = ProducerStateMachine()
        #expect(s.firstUnstableOffset == nil)
        s.record(producerId: 1, epoch: 0, firstSequence: 0, lastSequence: 1, firstOffset: 10, lastOffset: 11, timestampMs: 0, transactional: true)
        s.record(producerId: 2, epoch: 0, firstSequence: 0, lastSequence: 0, firstOffset: 12, lastOffset: 12, timestampMs: 0, transactional: true)
        s.record(producerId: 1, epoch: 0, firstSequence: 2, lastSequence: 2, firstOffset: 13, lastOffset: 13, timestampMs: 0, transactional: true)
        #expect(s.firstUnstableOffset == 10)
        let aborted = s.complete(producerId: 1, epoch: 0, markerOffset: 14, committed: false, coordinatorEpoch: 0, timestampMs: 1)
        #expect(aborted == .init(producerId: 1, firstOffset: 10, lastOffset: 14, committed: false))
        #expect(s.firstUnstableOffset == 12)
        #expect(s.complete(producerId: 2, epoch: 0, markerOffset: 15, committed: true, coordinatorEpoch: 0, timestampMs: 1)?.committed == true)
        #expect(s.firstUnstableOffset == nil)
        // A second marker (a restart re-completing a transaction) ends nothing.
        #expect(s.complete(producerId: 2, epoch: 0, markerOffset: 16, committed: true, coordinatorEpoch: 0, timestampMs: 1) == nil)
    }

    @Test("a fencing marker with a newer epoch fences the old epoch's writes")
    func fencingMarker() {
        var s = ProducerStateMachine()
        s.record(producerId: 5, epoch: 3, firstSequence: 0, lastSequence: 0, firstOffset: 0, lastOffset: 0, timestampMs: 0, transactional: true)
        s.complete(producerId: 5, epoch: 4, markerOffset: 1, committed: false, coordinatorEpoch: 0, timestampMs: 0)
        #expect(s.check(producerId: 5, epoch: 3, firstSequence: 1, lastSequence: 1) == .invalidEpoch(current: 4, got: 3))
    }

    @Test("producers with an open transaction are never expired")
    func expiry() {
        var s = ProducerStateMachine()
        s.record(producerId: 1, epoch: 0, firstSequence: 0, lastSequence: 0, firstOffset: 0, lastOffset: 0, timestampMs: 0, transactional: true)
        s.record(producerId: 2, epoch: 0, firstSequence: 0, lastSequence: 0, firstOffset: 1, lastOffset: 1, timestampMs: 0)
        s.expire(olderThanMs: 100)
        #expect(s.producers.keys.sorted() == [1])
    }

    @Test("snapshots round-trip (last batch, epoch, open transaction) and reject corruption")
    func snapshots() throws {
        var s = ProducerStateMachine()
        s.record(producerId: 1, epoch: 2, firstSequence: 0, lastSequence: 4, firstOffset: 0, lastOffset: 4, timestampMs: 7)
        s.record(producerId: 1, epoch: 2, firstSequence: 5, lastSequence: 9, firstOffset: 5, lastOffset: 9, timestampMs: 8)
        s.record(producerId: 9, epoch: 0, firstSequence: Int32.max, lastSequence: Int32.max, firstOffset: 10, lastOffset: 10,
                 timestampMs: 9, transactional: true)
        s.record(producerId: 9, epoch: 0, firstSequence: 0, lastSequence: 2, firstOffset: 11, lastOffset: 13, timestampMs: 9, transactional: true)
        let bytes = s.snapshot()
        #expect(bytes.count == 2 + 4 + 4 + 2 * 46)
        let back = try ProducerStateMachine(snapshot: bytes)
        #expect(back.check(producerId: 1, epoch: 2, firstSequence: 5, lastSequence: 9) == .duplicate(firstOffset: 5, lastOffset: 9))
        #expect(back.check(producerId: 1, epoch: 2, firstSequence: 10, lastSequence: 10) == .append)
        #expect(back.check(producerId: 9, epoch: 0, firstSequence: 0, lastSequence: 2) == .duplicate(firstOffset: 11, lastOffset: 13))
        #expect(back.firstUnstableOffset == 10)
        #expect(back.producers[1]?.lastTimestampMs == 8)
        var flipped = bytes
        flipped[20] ^= 1
        #expect(throws: ProducerStateMachine.SnapshotError.crcMismatch) { try ProducerStateMachine(snapshot: flipped) }
        #expect(throws: ProducerStateMachine.SnapshotError.self) { try ProducerStateMachine(snapshot: Array(bytes.dropLast(3))) }
    }

    typealias Meta = TransactionMetadata

    func fresh() -> Meta { Meta(transactionalId: "t", producerId: 100, producerEpoch: 0, timeoutMs: 60_000, status: .empty, lastUpdateMs: 0) }
    let a = Meta.Partition(topic: "a", partition: 0)
    let b = Meta.Partition(topic: "b", partition: 1)

    @Test("add, end, complete; a retried end is idempotent; the wrong end is refused")
    func lifecycle() throws {
        var m = fresh()
        #expect(throws: Meta.Failure.invalidTxnState) { try m.end(commit: true, producerId: 100, epoch: 0, nowMs: 1) }
        try m.add([a], producerId: 100, epoch: 0, nowMs: 5)
        try m.add([b, a], producerId: 100, epoch: 0, nowMs: 6)
        #expect(m.status == .ongoing && m.partitions == [a, b] && m.startTimestampMs == 5)
        #expect(throws: Meta.Failure.producerFenced) { try m.add([a], producerId: 100, epoch: 1, nowMs: 7) }
        #expect(throws: Meta.Failure.invalidProducerIdMapping) { try m.add([a], producerId: 101, epoch: 0, nowMs: 7) }
        let markers = try m.end(commit: true, producerId: 100, epoch: 0, nowMs: 8)
        #expect(markers == .init(producerId: 100, producerEpoch: 0, committed: true, partitions: [a, b]))
        #expect(m.status == .prepareCommit)
        #expect(throws: Meta.Failure.concurrentTransactions) { try m.add([a], producerId: 100, epoch: 0, nowMs: 9) }
        m.completed(nowMs: 9)
        #expect(m.status == .completeCommit && m.partitions.isEmpty)
        #expect(try m.end(commit: true, producerId: 100, epoch: 0, nowMs: 10) == nil)
        #expect(throws: Meta.Failure.invalidTxnState) { try m.end(commit: false, producerId: 100, epoch: 0, nowMs: 10) }
    }

    @Test("InitProducerId bumps the epoch, aborts an open transaction with the new epoch, and rolls the producer id at the limit")
    func initProducer() throws {
        var m = fresh()
        try m.add([a], producerId: 100, epoch: 0, nowMs: 1)
        let markers = try m.initProducer(timeoutMs: 1000, requested: nil, nowMs: 2, newProducerId: { 200 })
        #expect(markers == .init(producerId: 100, producerEpoch: 1, committed: false, partitions: [a]))
        #expect(m.producerEpoch == 1 && m.status == .empty && m.partitions.isEmpty && m.timeoutMs == 1000)
        // KIP-360: the current (id, epoch) may ask for a bump; a stale one is fenced; a retry is answered alike.
        #expect(try m.initProducer(timeoutMs: 1000, requested: (100, 1), nowMs: 3, newProducerId: { 200 }) == nil)
        #expect(m.producerEpoch == 2)
        #expect(try m.initProducer(timeoutMs: 1000, requested: (100, 1), nowMs: 4, newProducerId: { 200 }) == nil)
        #expect(m.producerEpoch == 2)
        #expect(throws: Meta.Failure.producerFenced) { try m.initProducer(timeoutMs: 1000, requested: (100, 0), nowMs: 5, newProducerId: { 200 }) }
        m.producerEpoch = Int16.max - 1
        _ = try m.initProducer(timeoutMs: 1000, requested: nil, nowMs: 6, newProducerId: { 200 })
        #expect(m.producerId == 200 && m.producerEpoch == 0 && m.previousProducerId == 100)
    }

    @Test("a transaction past its timeout is aborted with a bumped epoch; writes must belong to the open transaction")
    func timeoutAndVerification() throws {
        var m = fresh()
        #expect(throws: Meta.Failure.invalidTxnState) { try m.verifyWrite(producerId: 100, epoch: 0, partition: a) }
        try m.add([a], producerId: 100, epoch: 0, nowMs: 1000)
        try m.verifyWrite(producerId: 100, epoch: 0, partition: a)
        #expect(throws: Meta.Failure.invalidTxnState) { try m.verifyWrite(producerId: 100, epoch: 0, partition: b) }
        #expect(m.abortForTimeout(nowMs: 1000 + 60_000) == nil)
        let markers = m.abortForTimeout(nowMs: 1001 + 60_000)
        #expect(markers == .init(producerId: 100, producerEpoch: 1, committed: false, partitions: [a]))
        m.completed(nowMs: 61_002)
        #expect(m.status == .completeAbort)
        #expect(throws: Meta.Failure.producerFenced) { try m.end(commit: true, producerId: 100, epoch: 0, nowMs: 61_003) }
    }
}
