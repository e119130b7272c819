import Synchronization

/// Process-wide storage counters (exported by the server's metrics endpoint).
public enum StorageStatistics {
    private static let fsyncCount = Atomic<Int>(0)

    /// fdatasync calls on segment files since the process started.
    public static var fsyncs: Int { fsyncCount.load(ordering: .relaxed) }

    static func countFsync() { fsyncCount.add(1, ordering: .relaxed) }

    private static let ringWriteCount = Atomic<Int>(0)

    /// Writes of staged batches (direct mode, `sluice.io.buffered.submit=ring`) that a group-commit
    /// thread submitted on its io_uring, since the process started.
    public static var ringWrites: Int { ringWriteCount.load(ordering: .relaxed) }

    static func countRingWrites(_ n: Int) { ringWriteCount.add(n, ordering: .relaxed) }
}
