import NIOConcurrencyHelpers
import NIOCore

/// Fetches parked until data arrives or their max wait passes (Kafka's fetch purgatory, in its
/// simplest form): a waiter registers the partitions it reads, and an append (or a move of the
/// high watermark) wakes only the waiters of that partition, which re-check their condition.
final class FetchWaiters: @unchecked Sendable {
    private struct Waiter {
        var loop: EventLoop
        var partitions: Set<String>
        var wake: @Sendable () -> Void
    }

    private let lock = NIOLock()
    private var waiters: [Int: Waiter] = [:]
    private var byPartition: [String: Set<Int>] = [:]
    private var nextId = 0

    func add(on loop: EventLoop, partitions: Set<String>, _ wake: @escaping @Sendable () -> Void) -> Int {
        lock.withLock {
            nextId += 1
            waiters[nextId] = Waiter(loop: loop, partitions: partitions, wake: wake)
            for p in partitions { byPartition[p, default: []].insert(nextId) }
            return nextId
        }
    }

    func remove(_ id: Int) {
        lock.withLock {
            guard let w = waiters.removeValue(forKey: id) else { return }
            for p in w.partitions {
                byPartition[p]?.remove(id)
                if byPartition[p]?.isEmpty == true { byPartition.removeValue(forKey: p) }
            }
        }
    }

    /// Wakes the waiters reading any of `partitions` ("topic-partition" names).
    func wake(_ partitions: [String]) {
        let woken: [Waiter] = lock.withLock {
            var ids: Set<Int> = []
            for p in partitions { ids.formUnion(byPartition[p] ?? []) }
            return ids.compactMap { waiters[$0] }
        }
        for w in woken { w.loop.execute(w.wake) }
    }

    func wakeAll() {
        let all = lock.withLock { Array(waiters.values) }
        for w in all { w.loop.execute(w.wake) }
    }

    var count: Int { lock.withLock { waiters.count } }
}
