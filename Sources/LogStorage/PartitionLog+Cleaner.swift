import Logging
import NIOCore
import Records
import SystemIO

/// What one cleaning did (for metrics, logs and the benchmark).
public struct CleanerStats: Sendable, Equatable {
    public var log: String = ""
    public var bytesRead = 0
    public var bytesWritten = 0
    public var keys = 0
    /// Bytes the key → offset map held (keys themselves plus per-entry overhead).
    public var mapBytes = 0
    public var recordsKept = 0
    public var recordsRemoved = 0
    public var segmentsBefore = 0
    public var segmentsAfter = 0
    /// The log is clean below this offset afterwards.
    public var cleanedUpTo: Int64 = 0
    public init() {}
}

/// The log cleaner's work on one partition (`cleanup.policy=compact`).
///
/// One cleaning: find the cleanable range (whole segments, never the active one, never at or
/// above the last stable offset or younger than `min.compaction.lag.ms`); if its dirty part
/// (above the cleaner checkpoint) is at least `min.cleanable.dirty.ratio` of it, or older than
/// `max.compaction.lag.ms`, map every key of the dirty part to its last offset (full key bytes,
/// bounded by the map budget: equal hashes can never merge two keys, so no live key is dropped
/// for a collision); then recopy the range from the log start, keeping a record only if no later
/// record has its key, merging small segments up to `segment.bytes`.
///
/// Crash safety: new segments are written to `cleaner-staging/`; the commit point is renaming it
/// to `cleaner-swap/` (with a `range` file). Then the replaced segments are deleted, a `deleted`
/// mark is written, and the new files are moved into place. At open, `cleaner-staging/` is
/// discarded and `cleaner-swap/` finished from wherever it stopped.
extension PartitionLog {
    static let stagingName = "cleaner-staging"
    static let swapName = "cleaner-swap"
    /// Per-entry overhead counted against the map budget besides the key bytes.
    static let mapEntryOverhead = 64

    public var cleanedUpTo: Int64 { lock.withLock { _cleanedUpTo } }

    /// Dirty bytes / cleanable bytes now (0 when nothing is cleanable), for choosing the dirtiest log.
    public func dirtyRatio(nowMs: Int64, lastStableOffset: Int64) -> (ratio: Double, mustClean: Bool) {
        lock.withLock {
            guard config.compacts else { return (0, false) }
            let (candidates, _) = cleanableSegments(nowMs: nowMs, lastStableOffset: lastStableOffset)
            let total = candidates.reduce(0) { $0 + $1.size }
            let dirty = candidates.filter { $0.nextOffset > _cleanedUpTo }
            let dirtyBytes = dirty.reduce(0) { $0 + $1.size }
            guard total > 0, dirtyBytes > 0 else { return (0, false) }
            let oldestDirty = dirty.first.map { $0.maxTimestamp >= 0 ? $0.maxTimestamp : $0.lastAppendMs } ?? nowMs
            let overdue = config.maxCompactionLagMs < Int64.max && nowMs - oldestDirty > config.maxCompactionLagMs
            return (Double(dirtyBytes) / Double(total), overdue)
        }
    }

    /// Whole segments below the first uncleanable offset. Caller holds the lock.
    private func cleanableSegments(nowMs: Int64, lastStableOffset: Int64) -> ([LogSegment], Int64) {
        var limit = min(segments.last!.baseOffset, lastStableOffset)
        for s in segments.dropLast() where config.minCompactionLagMs > 0 {
            let newest = s.maxTimestamp >= 0 ? s.maxTimestamp : s.lastAppendMs
            if nowMs - newest < config.minCompactionLagMs { limit = min(limit, s.baseOffset); break }
        }
        return (segments.dropLast().filter { $0.nextOffset <= limit }, limit)
    }

    /// One cleaning if the log is dirty enough (or `force`); nil when there was nothing to do.
    /// `throttle` is called with the bytes read or written so far, and may sleep; when it
    /// returns false the cleaning stops (`StorageError.closed`), leaving only staging files.
    public func clean(nowMs: Int64, lastStableOffset: Int64, mapBytesMax: Int, force: Bool = false,
                      throttle: (Int) -> Bool = { _ in true }) throws(StorageError) -> CleanerStats? {
        let (segs, cleanedFrom, cfg) = lock.withLock { () -> ([LogSegment], Int64, LogConfig) in
            (cleanableSegments(nowMs: nowMs, lastStableOffset: lastStableOffset).0, _cleanedUpTo, config)
        }
        guard cfg.compacts, !segs.isEmpty else { return nil }
        let dirty = segs.filter { $0.nextOffset > cleanedFrom }
        // Nothing dirty: only a forced pass recopies (dropping tombstones past their horizon).
        guard !dirty.isEmpty || force else { return nil }
        if !force {
            let (ratio, overdue) = dirtyRatio(nowMs: nowMs, lastStableOffset: lastStableOffset)
            guard ratio >= cfg.minCleanableDirtyRatio || overdue else { return nil }
        }
        var stats = CleanerStats()
        stats.log = name

        // 1. The key map over the dirty segments (whole segments while the budget lasts).
        var map: [ByteBuffer: Int64] = [:]
        var mapBytes = 0
        var cleanEnd = dirty.first?.baseOffset ?? segs.last!.nextOffset
        mapping: for segment in dirty {
            var segmentMap: [(ByteBuffer, Int64)] = []
            var segmentBytes = 0
            try forEachBatch(in: segment) { batch in
                stats.bytesRead += batch.byteCount
                guard throttle(stats.bytesRead + stats.bytesWritten) else { throw StorageError.closed }
                guard !batch.isControl else { return }
                for record in try records(batch) {
                    guard let key = record.key else { continue }
                    segmentMap.append((key, batch.baseOffset + Int64(record.offsetDelta)))
                    segmentBytes += key.readableBytes + Self.mapEntryOverhead
                }
            }
            // Kafka's rule: at least one segment per cleaning, then only whole segments that fit.
            if segment !== dirty[0] && mapBytes + segmentBytes > mapBytesMax { break mapping }
            for (key, offset) in segmentMap {
                if map.updateValue(offset, forKey: key) == nil { mapBytes += key.readableBytes + Self.mapEntryOverhead }
            }
            cleanEnd = segment.nextOffset
            if mapBytes >= mapBytesMax { break mapping }
        }
        stats.keys = map.count
        stats.mapBytes = mapBytes
        let aborted = try abortedTransactions(from: 0, upTo: cleanEnd)

        // 2. Recopy from the log start to cleanEnd into staging, merging small segments.
        let replaced = segs.filter { $0.baseOffset < cleanEnd }
        stats.segmentsBefore = replaced.count
        var groups: [[LogSegment]] = []
        for s in replaced {
            if var last = groups.last, last.reduce(0, { $0 + $1.size }) + s.size <= cfg.segmentBytes,
               s.nextOffset - last[0].baseOffset < Int64(Int32.max) {
                last.append(s)
                groups[groups.count - 1] = last
            } else {
                groups.append([s])
            }
        }
        // The last batch of each producer in the range is kept even if emptied (its sequence).
        var lastBatchOf: [Int64: Int64] = [:]
        for s in replaced {
            try forEachBatch(in: s) { batch in if batch.producerId >= 0 && !batch.isControl { lastBatchOf[batch.producerId] = batch.baseOffset } }
        }
        let staging = "\(directory)/\(Self.stagingName)"
        try? Directory.removeTree(staging)
        do { try Directory.create(staging) } catch { throw error.at(staging) }
        var txnHasData: [Int64: Bool] = [:]
        var stagingConfig = cfg
        stagingConfig.preallocate = false
        var outputs: [Int64] = []
        for group in groups {
            let out = try LogSegment(directory: staging, baseOffset: group[0].baseOffset, config: stagingConfig, fileCache: fileCache, nowMs: nowMs)
            for s in group {
                try forEachBatch(in: s) { batch in
                    if let kept = try retain(batch, map: map, aborted: aborted, lastBatchOf: lastBatchOf, txnHasData: &txnHasData,
                                             nowMs: nowMs, deleteRetentionMs: cfg.deleteRetentionMs, stats: &stats) {
                        try out.append([PlacedBatch(final: kept)], nowMs: nowMs)
                        stats.bytesWritten += kept.byteCount
                        guard throttle(stats.bytesRead + stats.bytesWritten) else { throw StorageError.closed }
                    }
                }
                for e in try s.txnIndex.entries() { try out.txnIndex.append(e) }
            }
            try out.seal()
            try out.flush()
            if out.size == 0 && !outputs.isEmpty {
                for f in out.paths { try? FileSystem.remove(f) }  // everything in it was removed
            } else {
                // The first output stays even when empty, as in Kafka (the cleaned segment keeps
                // its group's base offset): the log's first segment names the log start offset
                // at the next open, and compaction must not move it (a consumer reading from 0
                // would be told OFFSET_OUT_OF_RANGE). The next cleaning merges it with what follows.
                outputs.append(group[0].baseOffset)
            }
        }
        stats.segmentsAfter = outputs.count

        // 3. Commit and swap, under the log lock, if nothing changed the replaced segments meanwhile.
        let committed = try lock.withStorageLock { () throws(StorageError) -> Bool in
            guard !closed, segments.count > replaced.count,
                  zip(segments, replaced).allSatisfy({ $0 === $1 }) else { return false }
            do {
                let range = "\(replaced[0].baseOffset) \(cleanEnd)\n"
                let f = try FileHandle.open("\(staging)/range", [.writeOnly, .create, .truncate])
                try f.writeAll(Array(range.utf8), at: 0)
                try f.sync()
                try f.close()
                try FileSystem.syncDirectory(staging)
                try FileSystem.rename(staging, to: "\(directory)/\(Self.swapName)")
                try FileSystem.syncDirectory(directory)
            } catch { throw error.at(staging) }
            try Self.finishSwap(directory)
            var fresh: [LogSegment] = []
            for base in outputs {
                let s = try LogSegment(directory: directory, baseOffset: base, config: config, fileCache: fileCache, nowMs: nowMs)
                try s.loadClean()
                try s.seal()  // never active: its files join the bounded cache
                fresh.append(s)
            }
            segments.replaceSubrange(0..<replaced.count, with: fresh)
            _cleanedUpTo = max(_cleanedUpTo, cleanEnd)
            return true
        }
        if !committed {
            try? Directory.removeTree(staging)
            return nil
        }
        stats.cleanedUpTo = cleanEnd
        return stats
    }

    /// Decides one batch's fate: itself (unchanged), a rewritten copy, or nil (dropped).
    private func retain(_ batch: RecordBatch, map: [ByteBuffer: Int64], aborted: [AbortedTransaction], lastBatchOf: [Int64: Int64],
                        txnHasData: inout [Int64: Bool], nowMs: Int64, deleteRetentionMs: Int64,
                        stats: inout CleanerStats) throws -> RecordBatch? {
        let horizonPassed = batch.hasDeleteHorizon && batch.baseTimestamp <= nowMs
        if batch.isControl {
            // A marker goes once its transaction has no data left here and its horizon passed;
            // it gets a horizon the first time it is found without data.
            let hadData = txnHasData.removeValue(forKey: batch.producerId) ?? false
            if hadData { return batch }
            if horizonPassed { stats.recordsRemoved += 1; return nil }
            if batch.hasDeleteHorizon { return batch }
            return try RecordBatch(batch.rewritten(keeping: try records(batch), deleteHorizonMs: nowMs + deleteRetentionMs))
        }
        let all = try records(batch)
        let inAborted = batch.isTransactional && aborted.contains {
            $0.producerId == batch.producerId && $0.firstOffset <= batch.baseOffset && batch.baseOffset <= $0.lastOffset
        }
        var kept: [Record] = []
        var tombstones = false
        for r in all {
            let offset = batch.baseOffset + Int64(r.offsetDelta)
            if inAborted { continue }
            if let key = r.key, let latest = map[key], latest > offset { continue }
            if r.value == nil && r.key != nil {
                if horizonPassed { continue }
                tombstones = true
            }
            kept.append(r)
        }
        stats.recordsKept += kept.count
        stats.recordsRemoved += all.count - kept.count
        if batch.isTransactional && !kept.isEmpty { txnHasData[batch.producerId] = true }
        let needsHorizon = tombstones && !batch.hasDeleteHorizon
        if kept.count == all.count && !needsHorizon { return batch }
        if kept.isEmpty && !(batch.producerId >= 0 && lastBatchOf[batch.producerId] == batch.baseOffset) { return nil }
        let horizon: Int64? = needsHorizon ? nowMs + deleteRetentionMs : nil
        return try RecordBatch(batch.rewritten(keeping: kept, deleteHorizonMs: horizon))
    }

    private func records(_ batch: RecordBatch) throws(StorageError) -> [Record] {
        do { return try batch.records(decompressedBytesMax: 1 << 30) } catch { throw .corrupt("\(name) at offset \(batch.baseOffset): \(error)") }
    }

    /// Every batch of a sealed segment, read one at a time from its file.
    private func forEachBatch(in segment: LogSegment, _ body: (RecordBatch) throws -> Void) throws(StorageError) {
        var position = 0
        while true {
            let h: LogSegment.BatchHeader?
            let bytes: ByteBuffer
            do {
                h = try lock.withStorageLock { () throws(StorageError) -> LogSegment.BatchHeader? in try segment.header(at: position) }
                guard let h else { return }
                bytes = try segment.readBytes(position: position, length: h.bytes)
            }
            do {
                let batch = try RecordBatch(bytes)
                try body(batch)
            } catch let e as StorageError {
                throw e
            } catch {
                throw .corrupt("\(name) segment \(segment.baseOffset) at byte \(position): \(error)")
            }
            position += h!.bytes
        }
    }

    // MARK: - crash recovery of a cleaning

    /// At open: drop an unfinished staging directory; finish a committed swap.
    static func resolveInterruptedCleaning(_ directory: String, logger: Logger) throws(StorageError) {
        let staging = "\(directory)/\(stagingName)"
        if Directory.exists(staging) {
            logger.warning("discarding an unfinished compaction in \(directory)")
            try? Directory.removeTree(staging)
        }
        if Directory.exists("\(directory)/\(swapName)") {
            logger.warning("completing an interrupted compaction swap in \(directory)")
            try finishSwap(directory)
        }
    }

    /// Deletes the replaced segments (once: a `deleted` mark records it), moves the new files
    /// into place, removes the swap directory. Safe to repeat after a crash at any step.
    static func finishSwap(_ directory: String) throws(StorageError) {
        let swap = "\(directory)/\(swapName)"
        do {
            let rangeText = String(decoding: try FileHandle.open("\(swap)/range", [.readOnly]).read(count: 64, at: 0), as: UTF8.self)
            let parts = rangeText.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int64($0) }
            guard parts.count == 2 else { throw StorageError.corrupt("bad compaction range in \(swap)") }
            if !Directory.fileExists("\(swap)/deleted") {
                for name in try Directory.list(directory) {
                    guard let dot = name.firstIndex(of: "."), let base = Int64(name[..<dot]),
                          [".log", ".index", ".timeindex", ".txnindex"].contains(String(name[dot...])),
                          base >= parts[0] && base < parts[1] else { continue }
                    try FileSystem.remove("\(directory)/\(name)")
                }
                try FileSystem.syncDirectory(directory)
                let mark = try FileHandle.open("\(swap)/deleted", [.writeOnly, .create])
                try mark.sync()
                try mark.close()
                try FileSystem.syncDirectory(swap)
            }
            for name in try Directory.list(swap) where name != "range" && name != "deleted" {
                try FileSystem.rename("\(swap)/\(name)", to: "\(directory)/\(name)")
            }
            try FileSystem.syncDirectory(directory)
            try Directory.removeTree(swap)
            try FileSystem.syncDirectory(directory)
        } catch let e as StorageError {
            throw e
        } catch let e as Errno {
            throw e.at(swap)
        } catch {
            throw .corrupt("\(swap): \(error)")
        }
    }
}
