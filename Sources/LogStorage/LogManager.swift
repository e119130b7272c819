import Logging
import NIOConcurrencyHelpers
import SystemIO

/// All partition logs under one log directory: loading and recovery at start, creation and
/// deletion, checkpoints, retention, and the clean-shutdown marker.
///
/// Files at the log directory root (Kafka's names and text formats):
/// - `recovery-point-offset-checkpoint`: per partition, the offset below which data was flushed;
/// - `log-start-offset-checkpoint`: per partition, the log start offset (DeleteRecords);
/// - `.kafka_cleanshutdown`: present only after a clean shutdown; when it is missing at start,
///   every segment beyond the recovery point is re-validated.
public final class LogManager: @unchecked Sendable {
    public static let cleanShutdownFile = ".kafka_cleanshutdown"
    public static let recoveryPointFile = "recovery-point-offset-checkpoint"
    public static let logStartFile = "log-start-offset-checkpoint"
    /// The log cleaner's progress per log (Kafka's name and format).
    public static let cleanerFile = "cleaner-offset-checkpoint"

    public let logDir: String
    public let hadCleanShutdown: Bool
    private let lock = NIOLock()
    private var logs: [String: PartitionLog] = [:]
    /// What this process last wrote to each checkpoint file (guarded by `checkpointLock`).
    private let checkpointLock = NIOLock()
    private var checkpointed: [String: String] = [:]
    private let logger: Logger
    /// Bounds the open files of this manager's sealed segments (`sluice.segments.open.max`).
    let fileCache: SegmentFileCache
    let rollFlusher: RollFlusher
    /// Partition directories found at start whose opening waits for `openDeferred`.
    private var deferred: [(name: String, topic: String, partition: Int32)] = []
    private var recoveryPoints: [String: Int64] = [:]
    private var logStarts: [String: Int64] = [:]
    private var cleanedUpTo: [String: Int64] = [:]

    /// Opens the directory, recovering what a crash left. `configFor` gives each topic's config.
    /// Topics for which `deferring` is true are found but opened only by `openDeferred`: an
    /// active segment keeps the I/O settings it opens with, so topics whose configs live in the
    /// metadata log wait until it is read.
    public init(logDir: String, nowMs: Int64, logger: Logger = Logger(label: "sluice.storage"),
                openSegmentsLimit: Int = LogManager.defaultOpenSegmentsLimit,
                rollFlusher: RollFlusher = .background,
                deferring: (String) -> Bool = { _ in false },
                configFor: (String) -> LogConfig) throws(StorageError) {
        self.logDir = logDir
        self.rollFlusher = rollFlusher
        fileCache = SegmentFileCache(limit: openSegmentsLimit)
        self.logger = logger
        do { try Directory.create(logDir) } catch { throw error.at(logDir) }
        let marker = "\(logDir)/\(Self.cleanShutdownFile)"
        hadCleanShutdown = Directory.fileExists(marker)
        if hadCleanShutdown {
            try? FileSystem.remove(marker)
            try? FileSystem.syncDirectory(logDir)
        }
        recoveryPoints = Self.readCheckpoint("\(logDir)/\(Self.recoveryPointFile)")
        logStarts = Self.readCheckpoint("\(logDir)/\(Self.logStartFile)")
        cleanedUpTo = Self.readCheckpoint("\(logDir)/\(Self.cleanerFile)")
        let names: [String]
        do { names = try Directory.list(logDir) } catch { throw error.at(logDir) }
        for name in names.sorted() where Directory.exists("\(logDir)/\(name)") {
            if name.hasSuffix("-delete") {
                try? Directory.removeTree("\(logDir)/\(name)")
                continue
            }
            guard let (topic, partition) = Self.parse(name) else { continue }
            if deferring(topic) {
                deferred.append((name, topic, partition))
                continue
            }
            try open(name, topic: topic, partition: partition, config: configFor(topic), nowMs: nowMs)
        }
        if deferred.isEmpty { recoveryPoints = [:]; logStarts = [:]; cleanedUpTo = [:] }
        if !hadCleanShutdown && !logs.isEmpty {
            logger.warning("no clean-shutdown marker in \(logDir): recovered \(logs.count) logs past their recovery points")
        }
    }

    private func open(_ name: String, topic: String, partition: Int32, config: LogConfig, nowMs: Int64) throws(StorageError) {
        let log = try PartitionLog(
            topic: topic, partition: partition, directory: "\(logDir)/\(name)", config: config,
            logStartOffset: logStarts[name] ?? 0, recoveryPoint: recoveryPoints[name] ?? 0, clean: hadCleanShutdown,
            nowMs: nowMs, logger: logger, fileCache: fileCache, rollFlusher: rollFlusher)
        log.lock.withLock { log._cleanedUpTo = cleanedUpTo[name] ?? 0 }
        lock.withLock { logs[name] = log }
    }

    /// Opens (and where needed recovers) the logs `init` deferred, each with its config now.
    public func openDeferred(nowMs: Int64, configFor: (String) -> LogConfig) throws(StorageError) {
        let waiting = lock.withLock { () -> [(name: String, topic: String, partition: Int32)] in
            defer { deferred = [] }
            return deferred
        }
        for d in waiting { try open(d.name, topic: d.topic, partition: d.partition, config: configFor(d.topic), nowMs: nowMs) }
        if !hadCleanShutdown && !waiting.isEmpty {
            logger.warning("no clean-shutdown marker in \(logDir): recovered \(waiting.count) more logs past their recovery points")
        }
        lock.withLock { (recoveryPoints, logStarts, cleanedUpTo) = ([:], [:], [:]) }
    }

    /// "topic-3" -> ("topic", 3); topic names may contain "-".
    static func parse(_ directoryName: String) -> (String, Int32)? {
        guard let dash = directoryName.lastIndex(of: "-"),
              let partition = Int32(directoryName[directoryName.index(after: dash)...]), partition >= 0
        else { return nil }
        let topic = String(directoryName[..<dash])
        return topic.isEmpty ? nil : (topic, partition)
    }

    public func log(topic: String, partition: Int32) -> PartitionLog? {
        lock.withLock { logs["\(topic)-\(partition)"] }
    }

    public var allLogs: [PartitionLog] { lock.withLock { Array(logs.values) } }

    /// Creates the log, or returns the existing one.
    public func createLog(topic: String, partition: Int32, config: LogConfig, nowMs: Int64) throws(StorageError) -> PartitionLog {
        try lock.withStorageLock { () throws(StorageError) -> PartitionLog in
            let name = "\(topic)-\(partition)"
            if let existing = logs[name] { return existing }
            let dir = "\(logDir)/\(name)"
            do {
                try Directory.create(dir)
                try FileSystem.syncDirectory(logDir)
            } catch { throw error.at(dir) }
            let log = try PartitionLog(topic: topic, partition: partition, directory: dir, config: config,
                                       logStartOffset: 0, recoveryPoint: 0, clean: true, nowMs: nowMs, logger: logger, fileCache: fileCache, rollFlusher: rollFlusher)
            logs[name] = log
            return log
        }
    }

    /// Deletes every partition of a topic: renamed to `<name>-delete` first, so a crash midway
    /// finishes the deletion at the next start.
    public func deleteLogs(topic: String) {
        let victims: [PartitionLog] = lock.withLock {
            let v = logs.values.filter { $0.topic == topic }
            for l in v { logs.removeValue(forKey: l.name) }
            return v
        }
        for log in victims {
            let doomed = "\(log.directory).\(UInt64.random(in: 0...UInt64.max))-delete"
            if (try? FileSystem.rename(log.directory, to: doomed)) != nil {
                try? FileSystem.syncDirectory(logDir)
                try? Directory.removeTree(doomed)
            } else {
                log.delete()
            }
        }
    }

    public func applyRetention(nowMs: Int64) {
        for log in allLogs { log.applyRetention(nowMs: nowMs) }
    }

    /// Flushes every log (the `interval` policy's timer and shutdown use this).
    public func flushAll(nowMs: Int64) {
        for log in allLogs {
            do { try log.flush(nowMs: nowMs) } catch { logger.error("flush of \(log.name) failed: \(error)") }
        }
    }

    /// Writes the log start offsets and the cleaner's progress where they changed, and with
    /// `recoveryPoints` the recovery points too (the broker: every
    /// `log.flush.offset.checkpoint.interval.ms`). A stale recovery point only means more to
    /// re-validate after a crash; the active segment is re-validated in any case.
    public func checkpoint(recoveryPoints writeRecoveryPoints: Bool = true) throws(StorageError) {
        let all = allLogs
        // Logs not opened yet keep the entries they had.
        let (waiting, points, starts, cleaned) = lock.withLock { (deferred, recoveryPoints, logStarts, cleanedUpTo) }
        func kept(_ values: [String: Int64]) -> [(String, Int32, Int64)] {
            waiting.compactMap { d in values[d.name].map { (d.topic, d.partition, $0) } }
        }
        try checkpointLock.withStorageLock { () throws(StorageError) in
            if writeRecoveryPoints {
                try writeIfChanged("\(logDir)/\(Self.recoveryPointFile)",
                                   all.map { ($0.topic, $0.partition, $0.recoveryPoint) } + kept(points))
            }
            try writeIfChanged("\(logDir)/\(Self.logStartFile)", all.map { ($0.topic, $0.partition, $0.logStartOffset) } + kept(starts))
            let cleaner = (all.map { ($0.topic, $0.partition, $0.cleanedUpTo) } + kept(cleaned)).filter { $0.2 > 0 }
            if !cleaner.isEmpty { try writeIfChanged("\(logDir)/\(Self.cleanerFile)", cleaner) }
        }
    }

    /// Writes a checkpoint file unless it already holds exactly this text (written by this
    /// process): the housekeeping pass runs every second, and each write creates, fsyncs and
    /// renames a file and fsyncs the directory, for nothing when no offset moved (Kafka writes
    /// these every 60 s). The caller holds `checkpointLock`.
    private func writeIfChanged(_ path: String, _ entries: [(String, Int32, Int64)]) throws(StorageError) {
        let text = Self.checkpointText(entries)
        guard checkpointed[path] != text else { return }
        checkpointed[path] = nil  // unknown until the write succeeds
        try Self.writeAtomically(path, text)
        checkpointed[path] = text
    }

    /// Flushes and closes every log, checkpoints, and leaves the clean-shutdown marker.
    public func shutdown(nowMs: Int64) throws(StorageError) {
        // Every log is closed even if one fails; a failure (an offline log) leaves no marker, so
        // the next start recovers.
        var failure: StorageError?
        for log in allLogs {
            do { try log.close(nowMs: nowMs) } catch { failure = failure ?? error }
        }
        try checkpoint()
        if let failure { throw failure }
        let marker = "\(logDir)/\(Self.cleanShutdownFile)"
        do {
            let f = try FileHandle.open(marker, [.writeOnly, .create, .truncate])
            try f.sync()
            try f.close()
            try FileSystem.syncDirectory(logDir)
        } catch { throw error.at(marker) }
    }

    // MARK: - checkpoint files: "0\n<count>\n<topic> <partition> <offset>\n..."

    static func readCheckpoint(_ path: String) -> [String: Int64] {
        guard let file = try? FileHandle.open(path, [.readOnly]), let size = try? file.size(), size < 64 << 20 else { return [:] }
        guard let bytes = try? file.read(count: Int(size), at: 0) else { return [:] }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        guard lines.count >= 2, lines[0] == "0", let count = Int(lines[1]), lines.count >= 2 + count else { return [:] }
        var out: [String: Int64] = [:]
        for line in lines[2..<(2 + count)] {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let offset = Int64(parts[2]) else { continue }
            out["\(parts[0])-\(parts[1])"] = offset
        }
        return out
    }

    static func checkpointText(_ entries: [(String, Int32, Int64)]) -> String {
        var text = "0\n\(entries.count)\n"
        for (topic, partition, offset) in entries.sorted(by: { ($0.0, $0.1) < ($1.0, $1.1) }) {
            text += "\(topic) \(partition) \(offset)\n"
        }
        return text
    }

    /// tmp + fsync + rename + directory fsync: the file is either the old or the new one.
    static func writeAtomically(_ path: String, _ text: String) throws(StorageError) {
        let tmp = path + ".tmp"
        do {
            let f = try FileHandle.open(tmp, [.writeOnly, .create, .truncate])
            try f.writeAll(Array(text.utf8), at: 0)
            try f.sync()
            try f.close()
            try FileSystem.rename(tmp, to: path)
            let dir = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
            try FileSystem.syncDirectory(dir.isEmpty ? "." : dir)
        } catch { throw error.at(path) }
    }
}
