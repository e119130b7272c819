import Synchronization

/// Process-wide storage counters (exported by the server's metrics endpoint).
public enum StorageStatistics {
    private static let fsyncCount = Atomic<Int>(0)

    /// fdatasync calls on segment files since the process started.
    public static var fsyncs: Int { fsyncCount.load(ordering: .relaxed) }

    static func countFsync() { fsyncCount.add(1, ordering: .relaxed) }
}
