import NIOConcurrencyHelpers
import NIOCore

/// Fetches parked until data arrives or their max wait passes (Kafka's fetch purgatory, in its
/// simplest form): every append wakes every waiter, which re-checks its own condition.
final class FetchWaiters: @unchecked Sendable {
    private let lock = NIOLock()
    private var waiters: [Int: (EventLoop, @Sendable () -> Void)] = [:]
    private var nextId = 0

    func add(on loop: EventLoop, _ wake: @escaping @Sendable () -> Void) -> Int {
        lock.withLock {
            nextId += 1
            waiters[nextId] = (loop, wake)
            return nextId
        }
    }

    func remove(_ id: Int) { _ = lock.withLock { waiters.removeValue(forKey: id) } }

    func wakeAll() {
        let all = lock.withLock { Array(waiters.values) }
        for (loop, wake) in all { loop.execute(wake) }
    }

    var count: Int { lock.withLock { waiters.count } }
}
