import Synchronization

/// Process-wide storage counters (exported by the server's metrics endpoint).
public enum StorageStatistics {
    private static let fsyncCount = Atomic<Int>(0)

    /// fdatasync calls on segment files since the process started.
    public static var fsyncs: Int { fsyncCount.load(ordering: .relaxed) }

    static func countFsync() { fsyncCount.add(1, ordering: .relaxed) }

    private static let writeBehindCount = Atomic<Int>(0)

    /// Writes of staged batches (direct mode, `sluice.io.buffered.submit=ring`) done by a
    /// group-commit thread (on its io_uring, or as syscalls under a simulated disk), since the
    /// process started.
    public static var writesBehind: Int { writeBehindCount.load(ordering: .relaxed) }

    static func countWritesBehind(_ n: Int) { writeBehindCount.add(n, ordering: .relaxed) }

    private static let dropBehindPassCount = Atomic<Int>(0)

    /// Drop-behind passes (`sluice.cache.drop.behind.bytes`) since the process started.
    public static var dropBehindPasses: Int { dropBehindPassCount.load(ordering: .relaxed) }

    static func countDropBehindPass() { dropBehindPassCount.add(1, ordering: .relaxed) }
}
