import Logging
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// Chooses the dirtiest compacted log and cleans it, with Kafka's broker knobs. The caller runs
/// `log.cleaner.threads` loops of `runOnce` (the broker uses its own thread pool), backing off
/// `log.cleaner.backoff.ms` when a pass finds nothing to do.
public final class LogCleaner: @unchecked Sendable {
    public struct Config: Sendable {
        /// `log.cleaner.enable`
        public var enabled = true
        /// `log.cleaner.threads`
        public var threads = 1
        /// `log.cleaner.io.max.bytes.per.second`: read + write throttle across all threads.
        public var ioBytesPerSecond = Double.greatestFiniteMagnitude
        /// `log.cleaner.backoff.ms`: the idle sleep between passes that found nothing.
        public var backoffMs: Int64 = 15_000
        /// `log.cleaner.dedupe.buffer.size`: key-map budget, shared by the threads.
        public var dedupeBufferBytes = 128 << 20
        public init() {}
    }

    /// Running totals (a metric view of the cleaner's progress).
    public struct Totals: Sendable, Equatable {
        public var cleanings = 0
        public var bytesRead = 0
        public var bytesWritten = 0
        public var recordsRemoved = 0
        public var lastLog = ""
        public var lastSeconds = 0.0
        public var maxSeconds = 0.0
        /// Bytes written / bytes read of the last cleaning (Kafka's cleaner-recopy-percent / 100).
        public var lastRecopyRatio = 0.0
    }

    public let config: Config
    let logger: Logger
    private let lock = NIOLock()
    private var busy: Set<String> = []
    private var _totals = Totals()
    private var stopping = false
    /// The throttle's window: bytes moved since it started.
    private var throttleStart = 0.0
    private var throttleBytes = 0

    public init(config: Config, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    public var totals: Totals { lock.withLock { _totals } }

    /// Makes running and future cleanings stop at their next batch (shutdown).
    public func stop() { lock.withLock { stopping = true } }
    public var isStopping: Bool { lock.withLock { stopping } }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// One pass: the log with the highest dirty ratio over its `min.cleanable.dirty.ratio` (or
    /// overdue by `max.compaction.lag.ms`), not being cleaned by another thread. Nil: nothing to do.
    public func runOnce(logs: [PartitionLog], nowMs: Int64, lastStableOffset: (PartitionLog) -> Int64) -> CleanerStats? {
        guard config.enabled, !isStopping else { return nil }
        var best: (PartitionLog, Double)?
        let taken = lock.withLock { busy }
        for log in logs where !taken.contains(log.name) && log.currentConfig.compacts {
            let (ratio, overdue) = log.dirtyRatio(nowMs: nowMs, lastStableOffset: lastStableOffset(log))
            // Strictly above the ratio, as Kafka: min.cleanable.dirty.ratio=1 never cleans unless overdue.
            guard ratio > 0, overdue || ratio > log.currentConfig.minCleanableDirtyRatio else { continue }
            let score = overdue ? 2 + ratio : ratio
            if best == nil || score > best!.1 { best = (log, score) }
        }
        guard let (log, _) = best, lock.withLock({ busy.insert(log.name).inserted }) else { return nil }
        defer { lock.withLock { _ = busy.remove(log.name) } }
        let started = Self.monotonicSeconds()
        var moved = 0
        do {
            let budget = max(1 << 20, config.dedupeBufferBytes / max(1, config.threads))
            guard let stats = try log.clean(nowMs: nowMs, lastStableOffset: lastStableOffset(log), mapBytesMax: budget,
                                            force: true, throttle: { [self] total in
                                                throttle(total - moved)
                                                moved = total
                                                return !isStopping
                                            })
            else { return nil }
            let seconds = Self.monotonicSeconds() - started
            lock.withLock {
                _totals.cleanings += 1
                _totals.bytesRead += stats.bytesRead
                _totals.bytesWritten += stats.bytesWritten
                _totals.recordsRemoved += stats.recordsRemoved
                _totals.lastLog = stats.log
                _totals.lastSeconds = seconds
                _totals.maxSeconds = max(_totals.maxSeconds, seconds)
                _totals.lastRecopyRatio = stats.bytesRead > 0 ? Double(stats.bytesWritten) / Double(stats.bytesRead) : 0
            }
            let mb = Double(stats.bytesRead) / 1e6
            logger.info("cleaned \(stats.log): \(stats.segmentsBefore) segments → \(stats.segmentsAfter), read \(Int(mb)) MB, wrote \(stats.bytesWritten / 1_000_000) MB, \(stats.keys) keys, removed \(stats.recordsRemoved) records, \(Int(seconds * 1000)) ms (\(Int(mb / max(seconds, 1e-6))) MB/s)")
            return stats
        } catch StorageError.closed {
            return nil
        } catch {
            logger.error("cleaning \(log.name) failed: \(error)")
            return nil
        }
    }

    /// Sleeps as long as the bytes moved are ahead of `log.cleaner.io.max.bytes.per.second`
    /// (shared by all threads).
    private func throttle(_ delta: Int) {
        guard config.ioBytesPerSecond < Double.greatestFiniteMagnitude, delta > 0 else { return }
        let wait: Double = lock.withLock {
            let now = Self.monotonicSeconds()
            if throttleStart == 0 || now - throttleStart > 1 { throttleStart = now; throttleBytes = 0 }
            throttleBytes += delta
            let due = Double(throttleBytes) / config.ioBytesPerSecond
            return max(0, due - (now - throttleStart))
        }
        if wait > 0 { usleep(useconds_t(min(wait, 1) * 1e6)) }
    }
}
