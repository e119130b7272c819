import Testing
@testable import Coordination

@Suite("Idempotent producer state")
struct ProducerStateTests {
    @Test("sequences continue, duplicates answer with their first offsets, gaps and old epochs are refused")
    func rules() {
        var s = ProducerStateMachine()
        #expect(s.check(producerId: -1, epoch: -1, firstSequence: -1, lastSequence: -1) == .append)
        #expect(s.check(producerId: 7, epoch: 0, firstSequence: 5, lastSequence: 9) == .unknownProducer)
        #expect(s.check(producerId: 7, epoch: 0, firstSequence: 0, lastSequence: 4) == .append)
        s.record(producerId: 7, epoch: 0, firstSequence: 0, lastSequence: 4, firstOffset: 100, lastOffset: 104, timestampMs: 1)
        #expect(s.check(producerId: 7, epoch: 0, firstSequence: 5, lastSequence: 9) == .append)
        s.record(producerId: 7, epoch: 0, firstSequence: 5, lastSequence: 9, firstOffset: 105, lastOffset: 109, timestampMs: 2)
        #expect(s.check(producerId: 7, epoch: 0, firstSequence: 0, lastSequence: 4) == .duplicate(firstOffset: 100, lastOffset: 104))
        #expect(s.check(producerId: 7, epoch: 0, firstSequence: 12, lastSequence: 13) == .outOfOrderSequence(expected: 10, got: 12))
        #expect(s.check(producerId: 7, epoch: 1, firstSequence: 3, lastSequence: 3) == .outOfOrderSequence(expected: 0, got: 3))
        #expect(s.check(producerId: 7, epoch: 1, firstSequence: 0, lastSequence: 0) == .append)
        s.record(producerId: 7, epoch: 1, firstSequence: 0, lastSequence: 0, firstOffset: 110, lastOffset: 110, timestampMs: 3)
        #expect(s.check(producerId: 7, epoch: 0, firstSequence: 10, lastSequence: 10) == .invalidEpoch(current: 1, got: 0))
    }

    @Test("only the last five batches are remembered, and sequences wrap at Int32.max")
    func windowAndWrap() {
        var s = ProducerStateMachine()
        var seq: Int32 = Int32.max - 3
        s.record(producerId: 1, epoch: 0, firstSequence: seq - 1, lastSequence: seq - 1, firstOffset: 0, lastOffset: 0, timestampMs: 0)
        for i in 0..<6 {
            #expect(s.check(producerId: 1, epoch: 0, firstSequence: seq, lastSequence: seq) == .append)
            s.record(producerId: 1, epoch: 0, firstSequence: seq, lastSequence: seq, firstOffset: Int64(i + 1), lastOffset: Int64(i + 1), timestampMs: 0)
            seq = ProducerStateMachine.next(seq)
        }
        #expect(seq == 2)  // wrapped past Int32.max
        #expect(s.producers[1]!.batches.count == 5)
        // The oldest retained batch is still a duplicate; one older than the window is not.
        #expect(s.check(producerId: 1, epoch: 0, firstSequence: s.producers[1]!.batches[0].firstSequence,
                        lastSequence: s.producers[1]!.batches[0].lastSequence) != .append)
        s.expire(olderThanMs: 1)
        #expect(s.producers.isEmpty)
    }
}
