import Logging
import NIOConcurrencyHelpers
import NIOCore
import Records
import SystemIO
#if canImport(Glibc)
import Glibc
#endif

/// One partition's log: its segments, offsets and durability. Thread-safe; appends are
/// serialised, and fsyncs happen outside the append lock so that one fdatasync covers every
/// append that arrived while the previous one ran (group commit).
public final class PartitionLog: @unchecked Sendable {
    public let topic: String
    /// The log manager's bound on open sealed-segment files, shared by all its logs.
    let fileCache: SegmentFileCache
    let rollFlusher: RollFlusher
    public let partition: Int32
    public let directory: String
    public var name: String { "\(topic)-\(partition)" }

    let lock = NIOLock()
    private let flushLock = NIOLock()
    var config: LogConfig
    var segments: [LogSegment]
    var _logStartOffset: Int64
    private var _durableOffset: Int64
    /// Entries made in the partition directory (a new segment's files, a `.txnindex`), counted;
    /// a flush fsyncs the directory before it calls data in them durable (Kafka's flushDir).
    private var directoryChanges = 0
    private var directorySynced = 0
    /// Base offsets of rolled segments whose log and indexes the roll flush has not synced yet:
    /// the recovery point stays below them.
    private var rollsUnflushed: Set<Int64> = []
    private var unflushedMessages: Int64 = 0
    private var lastFlushMs: Int64
    var closed = false
    /// Why the log went offline (see `StorageError.offline`), nil while it is healthy.
    private var offlineReason: String?
    var pendingDeletes: [(files: [String], dueMs: Int64)] = []
    /// The log cleaner's checkpoint: everything below has been compacted at least once.
    var _cleanedUpTo: Int64 = 0
    let logger: Logger

    public struct AppendResult: Sendable, Equatable {
        public var baseOffset: Int64
        public var lastOffset: Int64
        /// The broker time stamped on LogAppendTime topics, else -1.
        public var logAppendTime: Int64
        public var logStartOffset: Int64
        /// The durability policy wants a flush up to `lastOffset + 1` before acknowledging.
        public var needsFlush: Bool = false
        /// Direct mode with `deferWrite`: the batches are staged, not yet in the file; the caller
        /// waits for the write (`GroupCommitter.sync` with `durable: needsFlush`) before acknowledging.
        public var needsWrite: Bool = false
    }

    public struct ReadResult: Sendable {
        /// Whole batches (possibly empty when nothing is at or after the offset yet).
        public var records: ByteBuffer
        public var logStartOffset: Int64
        public var logEndOffset: Int64
    }

    init(topic: String, partition: Int32, directory: String, config: LogConfig, logStartOffset: Int64,
         recoveryPoint: Int64, clean: Bool, nowMs: Int64, logger: Logger, fileCache: SegmentFileCache,
         rollFlusher: RollFlusher = .background) throws(StorageError) {
        self.fileCache = fileCache
        self.rollFlusher = rollFlusher
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.config = config
        self.logger = logger
        lastFlushMs = nowMs
        // A compaction interrupted by a crash: unfinished output is dropped, a committed swap
        // is completed (see PartitionLog+Cleaner.swift).
        try Self.resolveInterruptedCleaning(directory, logger: logger)
        let names: [String]
        do { names = try Directory.list(directory) } catch { throw error.at(directory) }
        // Leftovers of an interrupted delete are finished now.
        for n in names where n.hasSuffix(".deleted") { try? FileSystem.remove("\(directory)/\(n)") }
        let bases = names.filter { $0.hasSuffix(".log") }.compactMap { Int64($0.dropLast(4)) }.sorted()
        var loaded: [LogSegment] = []
        for base in bases {
            loaded.append(try LogSegment(directory: directory, baseOffset: base, config: config, fileCache: fileCache, nowMs: nowMs))
        }
        if loaded.isEmpty {
            loaded.append(try LogSegment(directory: directory, baseOffset: max(0, logStartOffset), config: config, fileCache: fileCache, nowMs: nowMs))
        }
        // A log that went offline after a failed writeback left this marker: its recovery
        // reads from the disk, not from pages the kernel may hold but never wrote. (Reading
        // from the disk every time would be safe too, but costs the disk's read speed on every
        // crash recovery: 2.5 s per GiB here against 0.8 from the page cache.)
        let writebackFailed = Directory.fileExists("\(directory)/\(Self.writebackFailedFile)")
        let (keep, recovering) = try Self.validate(loaded, clean: clean, recoveryPoint: recoveryPoint,
                                                   fromDisk: writebackFailed, contiguous: !config.compacts, logger: logger)
        // Rolled segments are sealed again: a seal whose truncation did not reach the disk
        // before a crash leaves preallocated space or direct I/O padding behind the last batch.
        for segment in keep.dropLast() { try segment.seal() }
        if writebackFailed {
            logger.warning("\(directory): recovered from the disk after a failed writeback")
            try? FileSystem.remove("\(directory)/\(Self.writebackFailedFile)")
        }
        segments = keep
        _logStartOffset = max(logStartOffset, keep[0].baseOffset)
        // Clean: everything was flushed at shutdown; else recovery synced what survived.
        _durableOffset = keep.last!.nextOffset
        // A log opened on an empty directory made its first segment's files there.
        if bases.isEmpty { directoryChanges = 1 }
        // Recovery synced the files it kept; their entries (made before the crash, perhaps never
        // synced) must be durable too before anything in them is called durable.
        if recovering {
            do { try FileSystem.syncDirectory(directory) } catch { throw error.at(directory) }
        }
        warnIfDirectUnavailable(keep.last!)
    }

    /// Recovery's walk over the segments found: those wholly below the recovery point (or all,
    /// after a clean shutdown) are trusted; every later one is re-validated batch by batch and
    /// synced. Returns the segments kept and whether any was re-validated.
    private static func validate(_ loaded: [LogSegment], clean: Bool, recoveryPoint: Int64, fromDisk: Bool, contiguous: Bool,
                                 logger: Logger) throws(StorageError) -> (keep: [LogSegment], recovering: Bool) {
        func drop(_ later: ArraySlice<LogSegment>, _ why: String) {
            for segment in later {
                logger.warning("recovery drops \(segment.logPath), \(why)")
                for f in segment.paths { try? FileSystem.remove(f) }
            }
        }
        var expected = loaded[0].baseOffset
        var keep: [LogSegment] = []
        var recovering = false
        for (i, segment) in loaded.enumerated() {
            let nextBase = i + 1 < loaded.count ? loaded[i + 1].baseOffset : Int64.max
            // Segments of a log that is never compacted are contiguous by construction (a roll
            // starts the next one at the active one's end). A gap after a re-validated segment
            // means that segment lost its tail (e.g. writes whose writeback failed before a
            // restart): whatever follows the gap goes too, or the log would serve a hole.
            if recovering && contiguous, let previous = keep.last, segment.baseOffset != previous.nextOffset {
                drop(loaded[i...], "as the log before it ends at offset \(previous.nextOffset)")
                break
            }
            if clean || nextBase <= recoveryPoint {
                try segment.loadClean()
            } else {
                recovering = true
                let truncated = try segment.recover(expectedFirstOffset: expected, fromDisk: fromDisk)
                // What recovery read may still be only in the page cache (after a process
                // crash): it is synced before the log calls it durable.
                try segment.flush()
                if truncated > 0 {
                    if segment.truncatedOnlyZeros {
                        logger.info("recovery cut \(truncated) bytes of zeros past the last batch of \(segment.logPath) (zeros written ahead or block padding; no records)")
                    } else {
                        logger.warning("recovery truncated \(truncated) bytes of \(segment.logPath) at offset \(segment.nextOffset)")
                    }
                    // Zeros past a rolled segment's last batch (its seal's truncation lost) are
                    // no hole when the next segment starts where its batches end; any other cut is.
                    let hole = !segment.truncatedOnlyZeros || (nextBase != Int64.max && nextBase != segment.nextOffset)
                    if hole {
                        keep.append(segment)
                        drop(loaded[(i + 1)...], "which follows a truncated segment")
                        break
                    }
                }
            }
            keep.append(segment)
            expected = segment.nextOffset
        }
        return (keep, recovering)
    }

    // MARK: - offsets

    public var logStartOffset: Int64 { lock.withLock { _logStartOffset } }
    /// The offset the next append gets.
    public var logEndOffset: Int64 { lock.withLock { segments.last!.nextOffset } }
    /// Everything below this offset is in the segment files, where reads find it: the log end
    /// offset, except in direct mode while staged batches wait for their write. The high
    /// watermark never passes it.
    public var writtenOffset: Int64 { lock.withLock { segments.last!.readableNextOffset } }
    /// Everything below this offset has been fdatasync'd.
    public var durableOffset: Int64 { lock.withLock { _durableOffset } }
    public var currentConfig: LogConfig { lock.withLock { config } }
    public var sizeBytes: Int64 { lock.withLock { segments.reduce(0) { $0 + Int64($1.size) } } }
    public var segmentCount: Int { lock.withLock { segments.count } }
    public var activeSegmentBaseOffset: Int64 { lock.withLock { segments.last!.baseOffset } }

    public func updateConfig(_ newConfig: LogConfig) { lock.withLock { config = newConfig } }

    // MARK: - append

    /// Appends validated batches (views into the request buffer): assigns offsets by patching
    /// baseOffset (and the leader epoch, and LogAppendTime where configured), writes them, and
    /// with durability `ack` returns only after they are on disk.
    ///
    /// With `deferFlush` the caller takes over the flush that durability `ack` (or a due
    /// `interval`) needs, reported by `AppendResult.needsFlush`, e.g. to run it off an event loop.
    /// With `deferWrite` it also takes over direct mode's write (`AppendResult.needsWrite`), which
    /// then runs with other logs' writes on a group-commit thread; without it the batches are in
    /// the file when `append` returns.
    public func append(_ batches: [RecordBatch], leaderEpoch: Int32 = 0, nowMs: Int64, deferFlush: Bool = false,
                       deferWrite: Bool = false) throws(StorageError) -> AppendResult {
        let total = batches.reduce(0) { $0 + $1.byteCount }
        let result: AppendResult
        let durability: LogConfig.Durability
        let mustFlush: Bool
        do {
            lock.lock()
            defer { lock.unlock() }
            guard !closed else { throw StorageError.closed }
            if let offlineReason { throw StorageError.offline(offlineReason) }
            if let tooBig = batches.first(where: { $0.byteCount > config.maxMessageBytes }) {
                throw StorageError.recordTooLarge(tooBig.byteCount)
            }
            // The received bytes are written as they are; offsets and epoch go in a prefix
            // (PlacedBatch). Only LogAppendTime, which changes CRC-covered fields, copies.
            var patched: [PlacedBatch] = []
            patched.reserveCapacity(batches.count)
            var next = segments.last!.nextOffset
            let first = next
            let appendTime = config.timestampType == .logAppendTime ? nowMs : -1
            for var batch in batches {
                if appendTime >= 0 { batch.setLogAppendTime(appendTime) }
                let placed = PlacedBatch(batch, baseOffset: next, leaderEpoch: leaderEpoch)
                next = placed.nextOffset
                patched.append(placed)
            }
            do {
                try rollIfNeeded(incomingBytes: total, lastOffset: next - 1, nowMs: nowMs)
                try segments.last!.append(patched, nowMs: nowMs)
                if !deferWrite { try segments.last!.drainWrites() }
            } catch {
                // A full disk leaves a buffered log as it was (the segment's size did not move,
                // so the next append overwrites any partial bytes); anything else is not trusted.
                // Nor is a direct writer's failure: staged batches that already had offsets may
                // never reach the file.
                if case .io(let e, _) = error, e == .noSpace, segments.last!.writer == nil {} else { goOffline("\(error)") }
                throw error
            }
            unflushedMessages += next - first
            durability = config.durability
            mustFlush = durability == .ack ||
                (durability == .interval && (unflushedMessages >= config.flushMessages || nowMs - lastFlushMs >= config.flushMs))
            result = AppendResult(baseOffset: first, lastOffset: next - 1, logAppendTime: appendTime, logStartOffset: _logStartOffset,
                                  needsFlush: mustFlush, needsWrite: deferWrite && segments.last!.readableNextOffset < next)
        }
        if mustFlush && !deferFlush { try flush(upTo: result.lastOffset + 1, nowMs: nowMs) }
        return result
    }

    private func rollIfNeeded(incomingBytes: Int, lastOffset: Int64, nowMs: Int64) throws(StorageError) {
        let active = segments.last!
        let full = active.size > 0 && active.size + incomingBytes > config.segmentBytes
        let old = active.firstAppendMs.map { nowMs - $0 >= config.segmentMs } ?? false
        let overflow = lastOffset - active.baseOffset > Int64(Int32.max)
        guard full || old || active.indexesFull || overflow else { return }
        try roll(nowMs: nowMs)
    }

    private func roll(nowMs: Int64) throws(StorageError) {
        let active = segments.last!
        guard active.size > 0 else { return }
        try active.seal()
        segments.append(try LogSegment(directory: directory, baseOffset: active.nextOffset, config: config, fileCache: fileCache, nowMs: nowMs))
        directoryChanges += 1
        warnIfDirectUnavailable(segments.last!)
        // Kafka flushes a segment when it rolls, off the append path: the rolled segment's log
        // and indexes, and the directory holding the new one, are synced on the roll-flush
        // queue. An acknowledgement under `ack` does not wait for it: its own flush syncs every
        // dirty segment and the directory.
        rollsUnflushed.insert(active.baseOffset)
        rollFlusher.submit { [self, base = active.baseOffset] in flushRolled(base: base) }
    }

    private func flushRolled(base: Int64) {
        flushLock.withLock {
            let (found, changes) = lock.withLock {
                (closed || offlineReason != nil ? nil : segments.first { $0.baseOffset == base }, directoryChanges)
            }
            if let segment = found {
                do throws(StorageError) {
                    try segment.flush()
                    try syncDirectory(changes)
                } catch {
                    // A segment deleted meanwhile (retention, truncation) is no loss.
                    lock.withLock { if segments.contains(where: { $0 === segment }) { goOffline("fdatasync after roll failed: \(error)") } }
                }
            }
            lock.withLock { _ = rollsUnflushed.remove(base) }
        }
    }

    /// fsyncs the partition directory if entries were made since it last was (`changes`: the
    /// count read with the data to be synced).
    private func syncDirectory(_ changes: Int) throws(StorageError) {
        guard lock.withLock({ directorySynced < changes }) else { return }
        do { try FileSystem.syncDirectory(directory) } catch { throw error.at(directory) }
        lock.withLock { directorySynced = max(directorySynced, changes) }
    }

    /// Everything below this offset is durable with its indexes and directory entries: what the
    /// recovery-point checkpoint records (segments below it are not re-validated after a crash).
    public var recoveryPoint: Int64 {
        lock.withLock {
            // Unsynced entries belong to the newest segment (or its .txnindex), which recovery
            // re-validates anyway once the point is at its base.
            let entries = directorySynced == directoryChanges ? Int64.max : segments.last!.baseOffset
            return min(_durableOffset, entries, rollsUnflushed.min() ?? .max)
        }
    }

    /// Left in the partition directory when the log goes offline (see `init`).
    static let writebackFailedFile = "sluice-writeback-failed"

    /// Marks the log offline and leaves the marker that makes the next recovery read from the
    /// disk (best effort: the disk may be failing); the caller holds `lock`.
    private func goOffline(_ reason: String) {
        guard offlineReason == nil else { return }
        offlineReason = reason
        let marker = "\(directory)/\(Self.writebackFailedFile)"
        if let f = try? FileHandle.open(marker, [.writeOnly, .create, .truncate]) {
            try? f.writeAll(Array((reason + "\n").utf8), at: 0)
            try? f.sync()
            try? FileSystem.syncDirectory(directory)
        }
        logger.critical("\(name) is offline: \(reason); appends fail with KAFKA_STORAGE_ERROR until a restart recovers it")
    }

    /// Why the log is offline, nil while it is healthy.
    public var offline: String? { lock.withLock { offlineReason } }

    private func warnIfDirectUnavailable(_ segment: LogSegment) {
        if let reason = segment.directUnavailable {
            logger.warning("\(segment.logPath): the file system refuses O_DIRECT (\(reason)); sluice.io.mode=direct falls back to buffered writes")
        }
    }

    /// Makes everything below `offset` durable with one fdatasync per dirty segment. Concurrent
    /// callers queue on the flush lock, and whoever gets it next usually finds its offset
    /// already covered by the flush that just ran.
    public func flush(upTo offset: Int64? = nil, nowMs: Int64) throws(StorageError) {
        do {
            try flushLock.withStorageLock { () throws(StorageError) in
                let (target, dirty, changes): (Int64, [LogSegment], Int) = try lock.withStorageLock { () throws(StorageError) in
                    // A write-behind's staged batches go to the file first (a failed write takes the log offline).
                    if offlineReason == nil {
                        do throws(StorageError) { try segments.last!.drainWrites() } catch {
                            goOffline("write-behind write failed: \(error)")
                            throw error
                        }
                    }
                    let end = segments.last!.nextOffset
                    return (end, segments.filter { $0.nextOffset > _durableOffset }, directoryChanges)
                }
                if let reason = lock.withLock({ offlineReason }) { throw StorageError.offline(reason) }
                if let offset, lock.withLock({ _durableOffset }) >= offset { return }
                do throws(StorageError) {
                    for segment in dirty { try segment.flush() }
                    try syncDirectory(changes)
                } catch {
                    // After a failed fdatasync the kernel may have dropped the pages it could not
                    // write and report success the next time: nothing since the last good flush
                    // can be called durable again (the "fsyncgate" lesson).
                    lock.withLock { goOffline("fdatasync failed: \(error)") }
                    throw error
                }
                lock.withLock {
                    _durableOffset = max(_durableOffset, target)
                    unflushedMessages = 0
                    lastFlushMs = nowMs
                }
            }
        }
    }

    /// What a group-commit round (`GroupCommitter`) must sync for this log: every segment
    /// holding data past the durable offset, and the offset that becomes durable when they are.
    struct SyncPlan {
        let target: Int64
        /// The dirty segments' open files (held open until the syncs complete) and paths.
        let segments: [(files: SegmentFiles, path: String)]
        /// The partition directory, when entries made in it are not yet durable, and how many
        /// changes its sync covers.
        var directory: String? = nil
        var directoryChanges = 0
    }

    enum SyncStep {
        case durable
        case failed(StorageError)
        case sync(SyncPlan)
    }

    func planSync(upTo offset: Int64) -> SyncStep {
        lock.withLock {
            if let offlineReason { return .failed(.offline(offlineReason)) }
            if _durableOffset >= offset { return .durable }
            if closed { return .failed(.closed) }
            do {
                let dirty = try segments.filter { $0.nextOffset > _durableOffset }.map { (try $0.files(), $0.logPath) }
                // What the files hold; staged direct-mode batches wait for their write.
                let unsyncedEntries = directorySynced < directoryChanges
                return .sync(SyncPlan(target: segments.last!.readableNextOffset, segments: dirty,
                                      directory: unsyncedEntries ? directory : nil, directoryChanges: directoryChanges))
            } catch {
                return .failed(error.at(directory))  // could not reopen a file: nothing was synced, nothing is lost
            }
        }
    }

    enum WriteStep {
        case written
        case failed(StorageError)
        case write(any WriteBehind, path: String)
    }

    /// What a group-commit round must write so that the files hold everything below `offset`:
    /// nothing, or the active segment's staged direct-mode batches.
    func planWrite(upTo offset: Int64) -> WriteStep {
        lock.withLock {
            if let offlineReason { return .failed(.offline(offlineReason)) }
            let active = segments.last!
            if active.readableNextOffset >= offset { return .written }
            guard let writer = active.writer else { return .written }
            return .write(writer, path: active.logPath)
        }
    }

    /// A write-behind write of this log failed: its staged batches may never reach the file, so the
    /// log goes offline (its restart recovers what the file holds). Returns the error to report.
    func writeFailed(_ error: Errno, path: String) -> StorageError {
        lock.withLock { goOffline("write-behind write to \(path) failed: \(error)") }
        return .io(error, path: path)
    }

    /// Records the outcome of a plan's syncs: the offset becomes durable, or (after a failed
    /// fdatasync, see `flush`) the log goes offline. Returns the error to report.
    func finishSync(_ plan: SyncPlan, error: StorageError?, nowMs: Int64) -> StorageError? {
        lock.withLock {
            if let error {
                goOffline("fdatasync failed: \(error)")
                return error
            }
            if let offlineReason { return .offline(offlineReason) }
            if plan.directory != nil { directorySynced = max(directorySynced, plan.directoryChanges) }
            _durableOffset = max(_durableOffset, plan.target)
            unflushedMessages = 0
            lastFlushMs = nowMs
            return nil
        }
    }

    // MARK: - read

    /// Whole batches from the one holding `offset`, at most `maxBytes` (but at least one batch
    /// when `minOneBatch`), none at or above `upperBound` (the high watermark or LSO).
    public func read(from offset: Int64, maxBytes: Int, upperBound: Int64? = nil, minOneBatch: Bool = true) throws(StorageError) -> ReadResult {
        do {
            return try lock.withStorageLock { () throws(StorageError) -> ReadResult in
                let end = segments.last!.nextOffset
                guard offset >= _logStartOffset && offset <= end else {
                    throw StorageError.offsetOutOfRange(requested: offset, logStart: _logStartOffset, logEnd: end)
                }
                let written = segments.last!.readableNextOffset
                let bound = min(upperBound ?? written, written)
                var records = ByteBuffer()
                guard offset < bound else { return ReadResult(records: records, logStartOffset: _logStartOffset, logEndOffset: end) }
                let index = segmentIndex(for: offset)
                for segment in segments[index...] {
                    let room = maxBytes - records.readableBytes
                    if room <= 0 && !(minOneBatch && records.readableBytes == 0) { break }
                    let allowance = records.readableBytes == 0 && minOneBatch ? max(room, 1) : room
                    guard let (position, length) = try segment.slice(from: offset, maxBytes: allowance, upperBound: bound) else { continue }
                    if (records.readableBytes > 0 || !minOneBatch) && length > room { break }
                    var bytes = try segment.readBytes(position: position, length: length)
                    records.writeBuffer(&bytes)
                    if records.readableBytes >= maxBytes { break }
                    // A slice cut short by `maxBytes` ends the read: the next segment's batches
                    // come after the ones it left out, and a read never skips offsets.
                    if position + length < segment.readableSize { break }
                }
                return ReadResult(records: records, logStartOffset: _logStartOffset, logEndOffset: end)
            }
        }
    }

    /// Calls `body` with every batch from `start` (default: the log start) to the end (for
    /// replaying internal logs such as the metadata log and `__consumer_offsets` at start, and
    /// producer state after its snapshot).
    public func forEachBatch(from start: Int64? = nil, _ body: (RecordBatch) throws -> Void) throws {
        var offset = max(start ?? 0, logStartOffset)
        while offset < logEndOffset {
            var batches = RecordBatchSequence(try read(from: offset, maxBytes: 4 << 20).records)
            var progressed = false
            while let batch = batches.next() {
                try body(batch)
                offset = batch.nextOffset
                progressed = true
            }
            if !progressed { break }
        }
    }

    // MARK: - aborted transactions

    /// Records an aborted transaction in the `.txnindex` of the segment holding its marker.
    public func appendAbortedTransaction(_ entry: AbortedTransaction) throws(StorageError) {
        try lock.withStorageLock { () throws(StorageError) in
            guard let segment = segments.last(where: { $0.baseOffset <= entry.lastOffset }) else { return }
            if try segment.txnIndex.entries().contains(where: { $0.lastOffset == entry.lastOffset }) { return }
            try segment.txnIndex.append(entry)
            directoryChanges += 1  // the first entry creates the file
        }
    }

    /// Writes `.txnindex` entries whose first write failed; throws while any cannot be written
    /// (a producer snapshot must not be taken then: it would skip the replay that re-adds them).
    public func persistTransactionIndexes() throws(StorageError) {
        try lock.withStorageLock { () throws(StorageError) in
            for segment in segments { try segment.txnIndex.persist() }
        }
    }

    /// The aborted transactions that overlap `[from, upTo)`: marker at or after `from`, data
    /// starting before `upTo` (what a read_committed fetch of that range must be told).
    public func abortedTransactions(from: Int64, upTo: Int64) throws(StorageError) -> [AbortedTransaction] {
        try lock.withStorageLock { () throws(StorageError) -> [AbortedTransaction] in
            var found: [AbortedTransaction] = []
            for segment in segments where segment.nextOffset > from || segment === segments.last {
                for e in try segment.txnIndex.entries() where e.lastOffset >= from && e.firstOffset < upTo {
                    found.append(e)
                }
            }
            return found
        }
    }

    /// A range of a segment file for sendfile. `descriptor` is a dup of the segment's, owned by
    /// the receiver (it keeps the data readable even if retention deletes the segment meanwhile).
    public struct FileSlice: Sendable {
        public let descriptor: Int32
        public let position: Int64
        public let length: Int
    }

    /// As `read`, but returns file ranges instead of copying the bytes into memory: the fetch
    /// path sends them with sendfile, so record bytes never pass through user space.
    public func readSlices(from offset: Int64, maxBytes: Int, upperBound: Int64? = nil,
                           minOneBatch: Bool = true) throws(StorageError) -> (slices: [FileSlice], bytes: Int) {
        try lock.withStorageLock { () throws(StorageError) -> ([FileSlice], Int) in
            let end = segments.last!.nextOffset
            guard offset >= _logStartOffset && offset <= end else {
                throw StorageError.offsetOutOfRange(requested: offset, logStart: _logStartOffset, logEnd: end)
            }
            let written = segments.last!.readableNextOffset
            let bound = min(upperBound ?? written, written)
            var slices: [FileSlice] = []
            var total = 0
            guard offset < bound else { return (slices, 0) }
            for segment in segments[segmentIndex(for: offset)...] {
                let room = maxBytes - total
                if room <= 0 && !(minOneBatch && total == 0) { break }
                let allowance = total == 0 && minOneBatch ? max(room, 1) : room
                guard let (position, length) = try segment.slice(from: offset, maxBytes: allowance, upperBound: bound) else { continue }
                // Only the first batch of a read that may exceed its budget is let past it.
                if (total > 0 || !minOneBatch) && length > room { break }
                let fd = dup(try segment.files().log.descriptor)
                if fd < 0 {
                    for s in slices { Glibc.close(s.descriptor) }
                    throw StorageError.io(Errno.current, path: segment.logPath)
                }
                slices.append(FileSlice(descriptor: fd, position: Int64(position), length: length))
                total += length
                if total >= maxBytes { break }
                if position + length < segment.readableSize { break }  // cut short: never skip to the next segment
            }
            return (slices, total)
        }
    }

    /// Where the batch holding `offset` starts: its segment's base offset and file position, found
    /// as every read begins (the offset index, then a bounded scan of batch headers).
    public func locate(_ offset: Int64) throws(StorageError) -> (segmentBaseOffset: Int64, position: Int)? {
        try lock.withStorageLock { () throws(StorageError) -> (Int64, Int)? in
            guard offset >= _logStartOffset && offset < segments.last!.readableNextOffset else { return nil }
            let segment = segments[segmentIndex(for: offset)]
            return try segment.position(of: offset).map { (segment.baseOffset, $0.position) }
        }
    }

    private func segmentIndex(for offset: Int64) -> Int {
        var low = 0, high = segments.count - 1, found = 0
        while low <= high {
            let mid = (low + high) / 2
            if segments[mid].baseOffset <= offset { found = mid; low = mid + 1 } else { high = mid - 1 }
        }
        return found
    }

    /// The first offset whose record timestamp is at or after `timestamp`, with that timestamp.
    public func offset(forTimestamp timestamp: Int64) throws(StorageError) -> (offset: Int64, timestamp: Int64)? {
        do {
            return try lock.withStorageLock { () throws(StorageError) -> (Int64, Int64)? in
                for segment in segments where segment.maxTimestamp >= timestamp {
                    var position = try segment.position(of: max(try segment.files().timeIndex.lookup(timestamp), _logStartOffset))?.position ?? 0
                    while let h = try segment.header(at: position) {
                        defer { position += h.bytes }
                        guard h.maxTimestamp >= timestamp else { continue }
                        guard let batch = try? RecordBatch(try segment.readBytes(position: position, length: h.bytes), verifyCRC: false) else {
                            throw StorageError.corrupt("unreadable batch at \(position) in \(segment.logPath)")
                        }
                        if batch.isLogAppendTime {
                            return (max(batch.baseOffset, _logStartOffset), batch.maxTimestamp)
                        }
                        guard let records = try? batch.records() else { return (batch.baseOffset, batch.maxTimestamp) }
                        for r in records {
                            let ts = batch.baseTimestamp + r.timestampDelta
                            let offset = batch.baseOffset + Int64(r.offsetDelta)
                            if ts >= timestamp && offset >= _logStartOffset { return (offset, ts) }
                        }
                    }
                }
                return nil
            }
        }
    }

    /// The offset and timestamp of the record with the largest timestamp (ListOffsets -3).
    public var maxTimestampAndOffset: (offset: Int64, timestamp: Int64)? {
        lock.withLock {
            var best: (Int64, Int64)? = nil
            for s in segments where s.maxTimestamp >= 0 && (best == nil || s.maxTimestamp > best!.1) {
                best = (s.offsetOfMaxTimestamp, s.maxTimestamp)
            }
            return best
        }
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the first record carrying the log's largest
    /// timestamp, found inside its batch (the segment tracks only the batch's last offset). A
    /// LogAppendTime batch stamps every record alike, so its first record is the answer.
    public func recordWithMaxTimestamp() throws(StorageError) -> (offset: Int64, timestamp: Int64)? {
        guard let (batchOffset, timestamp) = maxTimestampAndOffset else { return nil }
        var batches = RecordBatchSequence(try read(from: batchOffset, maxBytes: 1).records)
        guard let batch = batches.next(), batch.baseOffset <= batchOffset, batchOffset <= batch.lastOffset else {
            return (batchOffset, timestamp)
        }
        if batch.isLogAppendTime { return (batch.baseOffset, timestamp) }
        guard let records = try? batch.records() else { return (batchOffset, timestamp) }
        for r in records where batch.baseTimestamp + r.timestampDelta == timestamp {
            return (batch.baseOffset + Int64(r.offsetDelta), timestamp)
        }
        return (batchOffset, timestamp)
    }

    // MARK: - deletion, retention, truncation

    /// Moves the log start offset forward (DeleteRecords); whole segments below it are deleted.
    public func deleteRecords(before offset: Int64, nowMs: Int64) throws(StorageError) -> Int64 {
        try lock.withStorageLock { () throws(StorageError) -> Int64 in
            let end = segments.last!.nextOffset
            guard offset <= end else {
                throw StorageError.offsetOutOfRange(requested: offset, logStart: _logStartOffset, logEnd: end)
            }
            if offset > _logStartOffset { _logStartOffset = offset }
            while segments.count > 1 && segments[1].baseOffset <= _logStartOffset {
                scheduleDelete(segments.removeFirst(), nowMs: nowMs)
            }
            return _logStartOffset
        }
    }

    /// Applies `retention.ms` and `retention.bytes`; never touches the active segment.
    /// Returns how many segments were deleted. Also unlinks deletions whose delay has passed.
    @discardableResult
    public func applyRetention(nowMs: Int64) -> Int {
        lock.withLock {
            var deleted = 0
            while segments.count > 1 && config.deletesByRetention {
                let oldest = segments[0]
                let expired = config.retentionMs >= 0 && oldest.maxTimestamp >= 0 && nowMs - oldest.maxTimestamp > config.retentionMs
                let emptyOld = config.retentionMs >= 0 && oldest.maxTimestamp < 0 && nowMs - oldest.lastAppendMs > config.retentionMs
                let total = segments.reduce(0) { $0 + Int64($1.size) }
                let oversize = config.retentionBytes >= 0 && total - Int64(oldest.size) >= config.retentionBytes
                guard expired || emptyOld || oversize else { break }
                segments.removeFirst()
                _logStartOffset = max(_logStartOffset, segments[0].baseOffset)
                scheduleDelete(oldest, nowMs: nowMs)
                deleted += 1
            }
            pendingDeletes.removeAll { entry in
                guard entry.dueMs <= nowMs else { return false }
                for f in entry.files { try? FileSystem.remove(f) }
                return true
            }
            return deleted
        }
    }

    /// Renames a segment's files to `.deleted`; they are unlinked after file.delete.delay.ms.
    func scheduleDelete(_ segment: LogSegment, nowMs: Int64) {
        var renamed: [String] = []
        for f in segment.paths {
            if (try? FileSystem.rename(f, to: f + ".deleted")) != nil { renamed.append(f + ".deleted") }
        }
        pendingDeletes.append((renamed, nowMs + config.fileDeleteDelayMs))
        logger.info("deleting segment \(segment.logPath) (offsets \(segment.baseOffset)..<\(segment.nextOffset))")
    }

    /// Drops everything at or after `offset` (for replication's truncation).
    public func truncate(to offset: Int64, nowMs: Int64) throws(StorageError) {
        try lock.withStorageLock { () throws(StorageError) in
            try segments.last!.drainWrites()
            while segments.count > 1 && segments.last!.baseOffset >= offset {
                let s = segments.removeLast()
                for f in s.paths { try? FileSystem.remove(f) }
            }
            try segments.last!.truncate(to: offset)
            _durableOffset = min(_durableOffset, segments.last!.nextOffset)
        }
    }

    // MARK: - close

    /// Flushes and seals the active segment; the log cannot be used afterwards.
    public func close(nowMs: Int64) throws(StorageError) {
        do { try flush(nowMs: nowMs) } catch {
            lock.withLock { closed = true }
            throw error
        }
        try lock.withStorageLock { () throws(StorageError) in
            guard !closed else { return }
            closed = true
            for s in segments { try s.seal() }
            for entry in pendingDeletes { for f in entry.files { try? FileSystem.remove(f) } }
            pendingDeletes.removeAll()
        }
    }

    /// Closes and removes every file (topic deletion).
    public func delete() {
        lock.withLock {
            closed = true
            for s in segments { for f in s.paths { try? FileSystem.remove(f) } }
            for entry in pendingDeletes { for f in entry.files { try? FileSystem.remove(f) } }
        }
        try? Directory.removeTree(directory)
    }
}
