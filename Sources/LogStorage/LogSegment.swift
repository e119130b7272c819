import Dispatch
import NIOCore
import Records
import Synchronization
import SystemIO

/// A batch on its way into a segment: the bytes as received plus the two header fields the log
/// assigns, the base offset and the leader epoch. Neither is covered by the CRC, and they are
/// written from a 16-byte prefix in front of the received bytes (bytes 16 onwards), so appending
/// never modifies, and therefore never copies, the request's buffer.
struct PlacedBatch {
    static let prefixBytes = 16
    let batch: RecordBatch
    let baseOffset: Int64
    let leaderEpoch: Int32

    init(_ batch: RecordBatch, baseOffset: Int64, leaderEpoch: Int32) {
        self.batch = batch
        self.baseOffset = baseOffset
        self.leaderEpoch = leaderEpoch
    }

    /// A batch that already carries its final header (the cleaner's output).
    init(final batch: RecordBatch) {
        self.init(batch, baseOffset: batch.baseOffset, leaderEpoch: batch.partitionLeaderEpoch)
    }

    var byteCount: Int { batch.byteCount }
    var lastOffset: Int64 { baseOffset + Int64(batch.lastOffsetDelta) }
    var nextOffset: Int64 { lastOffset + 1 }
    var maxTimestamp: Int64 { batch.maxTimestamp }

    /// Calls `body` with the 16-byte prefix (baseOffset, batchLength, partitionLeaderEpoch,
    /// big-endian) and the received bytes after it.
    func withParts<T, E: Error>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(E) -> T) throws(E) -> T {
        var prefix = (baseOffset.bigEndian, Int32(batch.byteCount - RecordBatch.lengthFieldEnd).bigEndian, leaderEpoch.bigEndian)
        let result: Result<T, E> = withUnsafeBytes(of: &prefix) { head in
            batch.buffer.withUnsafeReadableBytes { raw in
                do throws(E) {
                    return .success(try body(UnsafeRawBufferPointer(rebasing: head[0..<Self.prefixBytes]),
                                             UnsafeRawBufferPointer(rebasing: raw[Self.prefixBytes...])))
                } catch { return .failure(error) }
            }
        }
        return try result.get()
    }
}

/// One segment: `<baseOffset>.log` (record batches exactly as appended), its `.index` and
/// `.timeindex`. Not thread-safe: its `PartitionLog` serialises access.
///
/// Once sealed, a segment's open files (descriptor and index mappings) belong to the bounded
/// `SegmentFileCache`, which may close them; the next access reopens them.
final class LogSegment {
    let baseOffset: Int64
    let directory: String
    /// Closes this segment's files while sealed and idle (its log manager's).
    let fileCache: SegmentFileCache
    let logPath: String
    private let openFiles: Mutex<SegmentFiles?>
    /// Sealed (rolled or closed): takes no more appends, and its files may be closed when idle.
    private(set) var sealed = false
    /// Aborted transactions whose markers are in this segment (`.txnindex`).
    let txnIndex: TransactionIndex
    /// Bytes of valid batches; the file may be longer when preallocated.
    private(set) var size: Int
    private(set) var nextOffset: Int64
    private(set) var maxTimestamp: Int64 = -1
    private(set) var offsetOfMaxTimestamp: Int64 = -1
    private var bytesSinceIndexEntry = 0
    /// Wall-clock time of the first append (for segment.ms); nil while empty.
    private(set) var firstAppendMs: Int64?
    private(set) var lastAppendMs: Int64 = 0
    let indexIntervalBytes: Int
    /// The write-behind of an active segment created with `sluice.io.mode=direct` (when the file
    /// system supports O_DIRECT) or `sluice.io.buffered.submit=ring`; nil when appends write
    /// the file themselves. Reads always use `log`, the buffered descriptor.
    private(set) var writer: (any WriteBehind)?
    /// Why `direct` is nil although the config asked for it (e.g. tmpfs without O_DIRECT).
    private(set) var directUnavailable: Errno?
    /// Blocks may be reserved past `size` (`preallocate`, `sluice.preallocate.step.bytes`):
    /// sealing truncates the file to `size` to return them.
    private let reserves: Bool
    /// `sluice.preallocate.step.bytes` (0: no stepping), and how far the file's blocks are
    /// reserved; stepping stops for good at the first fallocate that fails (e.g. a file system
    /// without it, or a full disk, where the write itself then reports the error).
    private var reserveStep: Int
    private var reservedEnd = 0
    private let segmentBytes: Int
    /// `sluice.zero.ahead.bytes` where it applies (durability `ack`, inline buffered writes;
    /// else 0), where zeroing resumes (the file holds zeros up to it, or data, or a gap a fast
    /// segment skipped), and the size and time of the last look at the rate.
    private var zeroAhead: Int
    private var zeroedEnd = 0
    private var zeroCheck: (size: Int, ns: UInt64)?
    /// `sluice.cache.drop.behind.bytes` where it applies (inline buffered writes; else 0), the
    /// step between passes, where writeback was last started up to and pages last dropped up to,
    /// and the size at which the next pass runs.
    private let dropBehind: Int
    private let dropBehindStep: Int
    private var writebackStarted = 0
    private var droppedThrough = 0
    private var dropBehindNext = Int.max
    /// Reads from the disk (`readAheadFromDisk`): where the stretch requested ahead of the last
    /// one ends, and up to where drop-behind dropped the pages such reads brought in again.
    private var readAheadEnd = 0
    private var readDroppedThrough = 0
    /// Under direct I/O reads of data that is not cached are left to the kernel's read-ahead,
    /// which did better there (`readAheadFromDisk`).
    private let readsAheadOfKernel: Bool
    /// Whether the last `recover` cut nothing but zeros (zeros ahead, or direct I/O's padding).
    private(set) var truncatedOnlyZeros = false

    static func name(_ offset: Int64, _ suffix: String) -> String {
        let digits = String(offset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    init(directory: String, baseOffset: Int64, config: LogConfig, fileCache: SegmentFileCache, nowMs: Int64) throws(StorageError) {
        self.fileCache = fileCache
        self.baseOffset = baseOffset
        self.directory = directory
        logPath = "\(directory)/\(Self.name(baseOffset, ".log"))"
        indexIntervalBytes = config.indexIntervalBytes
        let files = try SegmentFiles(directory: directory, baseOffset: baseOffset, mappedIndexBytes: config.segmentIndexBytes)
        openFiles = Mutex(files)
        reserves = config.preallocate || config.preallocateStepBytes > 0
        reserveStep = config.preallocate ? 0 : config.preallocateStepBytes
        segmentBytes = config.segmentBytes
        zeroAhead = config.durability == .ack && config.ioMode == .buffered && config.bufferedSubmit == .inline ? config.zeroAheadBytes : 0
        dropBehind = config.ioMode == .buffered && config.bufferedSubmit == .inline ? config.dropBehindBytes : 0
        dropBehindStep = Self.dropBehindStep(dropBehind)
        readsAheadOfKernel = config.ioMode == .buffered
        do {
            size = Int(try files.log.size())
            reservedEnd = size
            zeroedEnd = size
            if dropBehind > 0 {  // as restartDropBehind(), which init cannot call yet
                writebackStarted = size
                droppedThrough = max(0, size - dropBehind)
                dropBehindNext = size + dropBehindStep
            }
            if config.preallocate && size == 0 {
                try files.log.allocate(offset: 0, length: Int64(config.segmentBytes), keepSize: true)
                reservedEnd = config.segmentBytes
            }
            if config.ioMode == .direct {
                do { writer = try DirectWriter(path: logPath) } catch let e where e == .invalidArgument { directUnavailable = e }
            } else if config.bufferedSubmit == .ring {
                writer = try BufferedWriteBehind(path: logPath)
            }
        } catch { throw error.at(logPath) }
        txnIndex = TransactionIndex(path: "\(directory)/\(Self.name(baseOffset, ".txnindex"))")
        nextOffset = baseOffset
        lastAppendMs = nowMs
    }

    // MARK: - batch headers on disk

    struct BatchHeader {
        var baseOffset: Int64
        var lastOffset: Int64
        var maxTimestamp: Int64
        var bytes: Int
    }

    /// Reads the fixed part of the batch at `position`, or nil past the end or on a malformed header.
    func header(at position: Int) throws(StorageError) -> BatchHeader? {
        let size = readableSize
        guard position + RecordBatch.headerBytes <= size else { return nil }
        // Scans walk headers batch after batch: read ahead once per window instead of one pread
        // per batch. Bytes below `readableSize` never change until truncation or recovery, which drop it.
        // A lookup far from the last window (a fetch at a random offset) needs only the span to
        // the next index entry, so it starts small; windows that follow each other grow to 64 KiB.
        if !(position >= headerWindowStart && position + RecordBatch.headerBytes <= headerWindowStart + headerWindow.count) {
            let windowEnd = headerWindowStart + headerWindow.count
            let continues = !headerWindow.isEmpty && position >= headerWindowStart && position <= windowEnd + Self.headerWindowBytes
            let wanted = continues ? min(Self.headerWindowBytes, 2 * max(headerWindow.count, Self.headerWindowFirstBytes)) : Self.headerWindowFirstBytes
            let count = min(wanted, size - position)
            let f = try files()
            do { headerWindow = try f.log.read(count: count, at: Int64(position)) } catch { throw error.at(logPath) }
            headerWindowStart = position
            guard headerWindow.count >= RecordBatch.headerBytes else { return nil }
        }
        let at = position - headerWindowStart
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            headerWindow[(at + offset)..<(at + offset + MemoryLayout<T>.size)].reduce(T(0)) { $0 << 8 | T($1) }
        }
        let base = load(0, Int64.self)
        let length = Int(load(8, Int32.self))
        let delta = load(23, Int32.self)
        let ts = load(35, Int64.self)
        let total = length + RecordBatch.lengthFieldEnd
        guard total >= RecordBatch.headerBytes, position + total <= size, delta >= 0 else { return nil }
        return BatchHeader(baseOffset: base, lastOffset: base + Int64(delta), maxTimestamp: ts, bytes: total)
    }

    /// Read-ahead for `header(at:)`.
    static let headerWindowBytes = 64 << 10
    /// The first window of a lookup: covers `index.interval.bytes` (4 KiB by default) past an
    /// index entry plus the batch header found there.
    static let headerWindowFirstBytes = 8 << 10
    private var headerWindow: [UInt8] = []
    private var headerWindowStart = 0

    private func dropHeaderWindow() {
        headerWindow = []
        headerWindowStart = 0
    }

    /// Position of the batch holding `offset` (or the first batch after it), nil if none.
    func position(of offset: Int64) throws(StorageError) -> (position: Int, header: BatchHeader)? {
        try position(of: offset, from: files().offsetIndex.lookup(offset).position)
    }

    /// As `position(of:)`, scanning from `indexed`, where the offset index put the offset.
    private func position(of offset: Int64, from indexed: Int) throws(StorageError) -> (position: Int, header: BatchHeader)? {
        var position = indexed
        while let h = try header(at: position) {
            if h.lastOffset >= offset { return (position, h) }
            position += h.bytes
        }
        return nil
    }

    // MARK: - append

    /// Writes batches at the end, each with its assigned base offset and leader epoch. With a
    /// write-behind they are staged for a later write and readers see them once written.
    func append(_ batches: [PlacedBatch], nowMs: Int64) throws(StorageError) {
        precondition(!sealed, "append to a sealed segment")
        var position = size
        let f = try files()
        if reserveStep > 0 {
            let end = size + batches.reduce(0) { $0 + $1.byteCount }
            if end > reservedEnd { reserve(through: end, f.log) }
        }
        if let writer {
            do { try writer.stage(batches, at: size, nextOffset: nextOffset, reading: f.log) } catch { throw error.at(logPath) }
        }
        for batch in batches {
            if writer == nil {
                do {
                    try batch.withParts { (prefix, rest) throws(Errno) in try f.log.writeAll(prefix, rest, at: Int64(position)) }
                } catch { throw error.at(logPath) }
            }
            index(batch, at: position, f)
            position += batch.byteCount
            nextOffset = batch.nextOffset
        }
        size = position
        if zeroAhead > 0 && writer == nil && size + zeroAheadNow / 2 > zeroedEnd { zeroAheadOf(f.log) }
        if size >= dropBehindNext { dropBehindOf(f.log) }
        if firstAppendMs == nil { firstAppendMs = nowMs }
        lastAppendMs = nowMs
    }

    /// Reserves the blocks up to `end` and ahead of it by a step, or by as much as the segment
    /// holds if that is less (64 KiB at least), never past the larger of `end` and segment.bytes;
    /// the file size stays. So a quiet segment reserves little (at most about its own size again)
    /// and a busy one a step at a time.
    static let reserveAheadMinimum = 64 << 10

    private func reserve(through end: Int, _ log: borrowing FileHandle) {
        let ahead = min(reserveStep, max(end, Self.reserveAheadMinimum))
        let target = max(end, min(segmentBytes, end + ahead))
        do {
            try log.allocate(offset: Int64(reservedEnd), length: Int64(target - reservedEnd), keepSize: true)
            reservedEnd = target
        } catch {
            reserveStep = 0
        }
    }

    // MARK: - drop-behind

    /// A pass every quarter of the setting, 1-8 MiB.
    static func dropBehindStep(_ dropBehind: Int) -> Int { min(8 << 20, max(1 << 20, dropBehind / 4)) }

    /// Drop-behind starts over from `size` (opened, recovered or truncated): what the file
    /// held before is on disk or under writeback already, or was cut.
    private func restartDropBehind() {
        guard dropBehind > 0 else { return }
        writebackStarted = size
        droppedThrough = max(0, size - dropBehind)
        dropBehindNext = size + dropBehindStep
    }

    /// One drop-behind pass: writeback starts for what was appended up to a step ago (the newest
    /// step stays dirty, where appends and zeros may still touch its last page), and the pages
    /// more than `dropBehind` behind the end are dropped, the step before that a second time for
    /// pages that were still under writeback at the last pass. Tail reads stay in memory.
    /// Advice only, on the appending thread: neither call waits for writes to finish, though
    /// sync_file_range waits for room in the device's queue when writeback is behind (appends
    /// faster than the disk then slow to its pace; Benchmarks/README.md, "Drop-behind").
    private func dropBehindOf(_ log: borrowing FileHandle) {
        let writeTo = size - dropBehindStep
        let dropTo = max(0, size - dropBehind)
        let dropFrom = max(0, droppedThrough - dropBehindStep)
        log.dropBehind(writeFrom: Int64(writebackStarted), writeTo: Int64(max(writebackStarted, writeTo)),
                       dropFrom: Int64(dropFrom), dropTo: Int64(max(dropFrom, dropTo)))
        writebackStarted = max(writebackStarted, writeTo)
        droppedThrough = max(droppedThrough, dropTo)
        dropBehindNext = size + dropBehindStep
        StorageStatistics.countDropBehindPass()
    }

    // MARK: - reads from the disk

    /// How far past a read from the disk the next bytes are requested, and (under drop-behind)
    /// how far behind it the pages it brought in are dropped again.
    static let diskReadAheadBytes = 8 << 20

    /// A fetch of data that is not in the page cache reads the disk: below what drop-behind
    /// dropped, or anywhere the kernel no longer holds (after a restart, or evicted). With the
    /// kernel's read-ahead alone such a catch-up ran at 0.6-1.7 GB/s here, unevenly, against
    /// 1.4-1.8 with the range requested up front (why, we have not pinned down: a separate open
    /// file for sendfile, away from the header reads, did not help), so it is: from where the
    /// offset index puts the offset to `diskReadAheadBytes` past the fetch, in stretches of a
    /// quarter of that at least while the reader moves forward (`POSIX_FADV_WILLNEED` queues
    /// the reads and does not wait for them). Outside what drop-behind dropped, a stretch is
    /// requested only when its first or last page is not cached (a one-byte `RWF_NOWAIT` probe
    /// each), and a reader within that distance of the end (a tail reader, whose data was just
    /// written) is left alone, as are segments opened under direct I/O, where the kernel's own
    /// read-ahead did better. Under drop-behind the pages the reader has passed, more than the
    /// distance back, are dropped again, so that the log's share of the page cache stays what
    /// the setting says. Benchmarks/README.md, "Catching up from the disk", has the figures.
    /// `start` is where the offset index puts the fetch's offset (the batch holding it starts at
    /// or after it).
    private func readAheadFromDisk(from start: Int, _ maxBytes: Int) {
        let ahead = Self.diskReadAheadBytes
        let dropped = dropBehind > 0 && start < droppedThrough
        let limit = dropped ? droppedThrough : readableSize
        guard dropped || (readsAheadOfKernel && limit - start > ahead), let f = try? files() else { return }
        let end = min(limit, start + max(maxBytes, 0) + ahead)
        // A reader moving forward continues where the last stretch ended; one elsewhere in the
        // file starts at its own position.
        let continuing = start <= readAheadEnd && start + ahead >= readAheadEnd
        let from = continuing ? readAheadEnd : start
        if end >= from + ahead / 4 || (!continuing && end > from) {
            if dropped || f.log.isCached(at: Int64(from)) == false || f.log.isCached(at: Int64(end - 1)) == false {
                f.log.willNeed(from: Int64(from), count: Int64(end - from))
            }
            readAheadEnd = end
        }
        guard dropped else { return }
        // Behind the reader: what it passed since the last drop, in steps of a quarter of the
        // distance at least, or for a reader elsewhere in the file the span just behind it.
        let window = 2 * ahead
        let dropTo = start - ahead
        let passed = dropTo - readDroppedThrough
        guard dropTo > 0, passed >= ahead / 4 || passed < -window else { return }
        let dropFrom = passed > 0 && passed <= window ? readDroppedThrough : max(0, dropTo - window)
        f.log.dropClean(from: Int64(dropFrom), count: Int64(dropTo - dropFrom))
        readDroppedThrough = dropTo
    }

    // MARK: - zero-ahead

    /// Where the background fdatasyncs of fresh zeros run (one at a time, process-wide).
    static let zeroSyncs = DispatchQueue(label: "sluice.zero-sync")
    /// Above this append rate (bytes/s) a segment zeroes nothing ahead: its commits cover many
    /// batches each, so the journal work an fdatasync does is already shared, and the zeros would
    /// double what reaches the page cache and the disk (1M x 1 KiB acks=all with durability `ack`
    /// measured 796 against 965 MB/s in an early build that zeroed at every rate).
    static let zeroAheadRateMax: Double = 32 * 1024 * 1024

    /// As the reservation: as much as the segment holds (64 KiB at least), up to the setting.
    private var zeroAheadNow: Int { min(zeroAhead, max(size, Self.reserveAheadMinimum)) }

    /// Writes zeros from where the last ones ended (or the end) to `zeroAheadNow` past the end,
    /// starts their writeback, and fdatasyncs them on `zeroSyncs`: once that sync has committed
    /// the blocks and the file size, an fdatasync after appends into them only writes data.
    /// Skipped (and tried again half a step later) while the segment grows faster than
    /// `zeroAheadRateMax`; stopped for good by a failed write (a full disk), where the appends
    /// then report the error themselves.
    private func zeroAheadOf(_ log: borrowing FileHandle) {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { zeroCheck = (size, now) }
        if let last = zeroCheck, now > last.ns,
           Double(size - last.size) * 1e9 / Double(now - last.ns) > Self.zeroAheadRateMax {
            zeroedEnd = size + zeroAheadNow
            return
        }
        let from = max(zeroedEnd, size)
        let to = min(max(segmentBytes, size), size + zeroAheadNow)
        guard to > from else { return }
        do { try log.writeZeros(to - from, at: Int64(from)) } catch {
            zeroAhead = 0
            return
        }
        zeroedEnd = to
        log.syncInBackground(path: logPath, offset: Int64(from), length: Int64(to - from), on: Self.zeroSyncs)
    }

    /// How far the file holds this segment's batches: `size`, less what a write-behind has
    /// staged but not yet written. Reads stop here.
    var readableSize: Int { writer?.written?.bytes ?? size }
    /// The offset after the last batch in the file (`nextOffset` less what is only staged).
    var readableNextOffset: Int64 { writer?.written?.nextOffset ?? nextOffset }

    /// Writes whatever the write-behind has staged (waiting for a write in flight first).
    func drainWrites() throws(StorageError) {
        guard let writer else { return }
        do { try writer.drain() } catch { throw error.at(logPath) }
    }

    /// Tracks the largest timestamp and adds index entries every `index.interval.bytes`.
    private func index(_ batch: RecordBatch, at position: Int, _ f: SegmentFiles) { index(PlacedBatch(final: batch), at: position, f) }

    private func index(_ batch: PlacedBatch, at position: Int, _ f: SegmentFiles) {
        if batch.maxTimestamp > maxTimestamp {
            maxTimestamp = batch.maxTimestamp
            offsetOfMaxTimestamp = batch.lastOffset
        }
        if bytesSinceIndexEntry > indexIntervalBytes {
            f.offsetIndex.append(offset: batch.baseOffset, position: position)
            f.timeIndex.append(timestamp: maxTimestamp, offset: offsetOfMaxTimestamp)
            bytesSinceIndexEntry = 0
        }
        bytesSinceIndexEntry += batch.byteCount
    }

    /// Whether an index of this (active, so open) segment has no room for another entry.
    var indexesFull: Bool {
        guard let f = openFiles.withLock({ $0 }) else { return true }
        return f.offsetIndex.isFull || f.timeIndex.isFull
    }

    // MARK: - read

    /// Whole batches from the one holding `offset`, up to `maxBytes` (at least one batch), stopping
    /// before any batch at or beyond `upperBound`. Returns (position, length) in the `.log`.
    func slice(from offset: Int64, maxBytes: Int, upperBound: Int64) throws(StorageError) -> (position: Int, length: Int)? {
        let indexed = try files().offsetIndex.lookup(offset).position
        readAheadFromDisk(from: indexed, maxBytes)
        guard let (start, first) = try position(of: offset, from: indexed), first.baseOffset < upperBound else { return nil }
        var length = first.bytes
        var position = start + first.bytes
        while length < maxBytes, let h = try header(at: position), h.baseOffset < upperBound, length + h.bytes <= maxBytes {
            length += h.bytes
            position += h.bytes
        }
        return (start, length)
    }

    func readBytes(position: Int, length: Int) throws(StorageError) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(length)
        let f = try files()
        do {
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { (raw) throws(Errno) -> Int in
                try f.log.readAll(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<length]), at: Int64(position))
            }
            _ = n
        } catch { throw error.at(logPath) }
        return buffer
    }

    // MARK: - recovery

    /// Re-reads every batch from the start, checking length, magic, CRC and increasing offsets;
    /// truncates at the first invalid batch and rebuilds both indexes. Returns bytes truncated.
    ///
    /// With `fromDisk` the clean cached pages are dropped first, so that the scan reads what is
    /// on the disk: after a failed writeback (EIO on an earlier fdatasync) Linux keeps the
    /// unwritten pages in the cache marked clean, and a restarted process would read, validate
    /// and call durable bytes that never reached the disk. Dirty pages (a crash's unflushed
    /// writes) stay and are synced by the caller.
    func recover(expectedFirstOffset: Int64, fromDisk: Bool = false) throws(StorageError) -> Int {
        // The scan reads past what survives; nothing it read ahead may outlive the cut. The
        // write-behind (nothing in flight: at open, or drained by `truncate`) forgets its tail
        // first, so that reads go by the file's size.
        writer?.invalidate()
        defer { dropHeaderWindow(); writer?.invalidate() }
        let f = try files()
        if fromDisk { f.log.dropCleanCache() }
        let fileSize: Int
        do { fileSize = Int(try f.log.size()) } catch { throw error.at(logPath) }
        size = fileSize
        try f.offsetIndex.storage.reset()
        try f.timeIndex.storage.reset()
        maxTimestamp = -1
        offsetOfMaxTimestamp = -1
        bytesSinceIndexEntry = 0
        nextOffset = max(baseOffset, expectedFirstOffset)
        var position = 0
        var valid = 0
        scan: while position < fileSize {
            guard let h = try header(at: position), h.baseOffset >= (position == 0 ? baseOffset : nextOffset) else { break }
            let bytes = try readBytes(position: position, length: h.bytes)
            guard let batch = try? RecordBatch(bytes) else { break scan }
            index(batch, at: position, f)
            position += h.bytes
            valid = position
            nextOffset = batch.nextOffset
        }
        size = valid
        zeroedEnd = valid  // the truncation below takes any zeros ahead with it
        restartDropBehind()
        let truncated = fileSize - valid
        truncatedOnlyZeros = truncated > 0 && truncated <= Int(LogConfig.zeroAheadBytesMax) + (64 << 10)
            && ((try? f.log.read(count: truncated, at: Int64(valid)))?.allSatisfy { $0 == 0 } ?? false)
        if truncated > 0 {
            do { try f.log.truncate(to: Int64(valid)) } catch { throw error.at(logPath) }
        }
        // Entries for markers that did not survive go too.
        try txnIndex.truncate(toOffsetBelow: nextOffset)
        return truncated
    }

    /// Loads the state of a segment known to be intact (after a clean shutdown): scans batch
    /// headers only, trusting the indexes on disk.
    func loadClean() throws(StorageError) {
        defer { dropHeaderWindow() }
        let f = try files()
        let offsetIndex = f.offsetIndex
        var position = offsetIndex.lastEntry?.position ?? 0
        nextOffset = offsetIndex.lastEntry?.offset ?? baseOffset
        if let last = f.timeIndex.lastEntry { maxTimestamp = last.timestamp; offsetOfMaxTimestamp = last.offset }
        while let h = try header(at: position) {
            if h.maxTimestamp > maxTimestamp { maxTimestamp = h.maxTimestamp; offsetOfMaxTimestamp = h.lastOffset }
            position += h.bytes
            nextOffset = h.lastOffset + 1
        }
        bytesSinceIndexEntry = position - (offsetIndex.lastEntry?.position ?? 0)
        size = position
        restartDropBehind()
    }

    /// Drops every batch at or after `offset`.
    func truncate(to offset: Int64) throws(StorageError) {
        try drainWrites()
        writer?.invalidate()
        defer { dropHeaderWindow(); writer?.invalidate() }
        // Replication's truncation may make a rolled segment the active one again.
        if sealed { fileCache.forget(self) }
        sealed = false
        let f = try files()
        guard let (position, _) = try position(of: offset) else { return }
        var cut = position
        // position(of:) returns the batch containing offset; keep it only if it starts before.
        if let h = try header(at: position), h.baseOffset < offset { cut = position + h.bytes }
        do { try f.log.truncate(to: Int64(cut)) } catch { throw error.at(logPath) }
        f.offsetIndex.truncate(toOffsetBelow: offset)
        f.timeIndex.truncate(toOffsetBelow: offset)
        _ = try recover(expectedFirstOffset: baseOffset)
    }

    /// Syncs the log and both indexes. A sealed segment whose files were closed meanwhile is
    /// reopened: fdatasync on any descriptor of a file writes all of its dirty pages. Covers what
    /// the file holds: a write-behind's staged bytes are written first (`drainWrites`, under the
    /// log's lock) if they must be included.
    func flush() throws(StorageError) {
        StorageStatistics.countFsync()
        let f = try files()
        do { try f.log.dataSync() } catch { throw error.at(logPath) }
        try f.offsetIndex.storage.flush()
        try f.timeIndex.storage.flush()
    }

    /// Trims indexes and drops preallocated space and direct I/O's block padding (on roll and
    /// close); a sealed segment takes no more appends, and from now on its files may be closed
    /// while idle (`SegmentFileCache`).
    func seal() throws(StorageError) {
        guard !sealed else { return }
        try drainWrites()
        writer = nil
        let f = try files()
        try f.offsetIndex.storage.trim()
        try f.timeIndex.storage.trim()
        do {
            // Truncating to the same size still frees blocks reserved past the end (ext4).
            if try reserves || f.log.size() != Int64(size) { try f.log.truncate(to: Int64(size)) }
        } catch { throw error.at(logPath) }
        sealed = true
        fileCache.touch(self)
    }

    // MARK: - open files

    /// The segment's open files, reopened if the cache closed them. Holding the returned object
    /// keeps them open (the cache only drops its reference).
    func files() throws(StorageError) -> SegmentFiles {
        if let f = openFiles.withLock({ $0 }) {
            if sealed { fileCache.touch(self) }
            return f
        }
        // Sealed, so its indexes are trimmed: map exactly the entries the files hold.
        let fresh = try SegmentFiles(directory: directory, baseOffset: baseOffset, mappedIndexBytes: 0)
        let f = openFiles.withLock { current in
            if current == nil { current = fresh }
            return current!
        }
        fileCache.touch(self)
        return f
    }

    /// The open files if they are open (never reopens).
    var filesIfOpen: SegmentFiles? { openFiles.withLock { $0 } }

    /// Drops the segment's reference to its files (the cache's eviction); they close once the
    /// last user lets go.
    func releaseFiles() { openFiles.withLock { $0 = nil } }

    var paths: [String] {
        [logPath, "\(directory)/\(Self.name(baseOffset, ".index"))", "\(directory)/\(Self.name(baseOffset, ".timeindex"))", txnIndex.path]
    }
}

/// A segment's open files: the `.log` descriptor (reads, sendfile, buffered writes) and the two
/// mapped indexes. Closing is dropping the last reference.
final class SegmentFiles: @unchecked Sendable {
    let log: FileHandle
    let offsetIndex: OffsetIndex
    let timeIndex: TimeIndex

    init(directory: String, baseOffset: Int64, mappedIndexBytes: Int) throws(StorageError) {
        let logPath = "\(directory)/\(LogSegment.name(baseOffset, ".log"))"
        do { log = try FileHandle.open(logPath, [.readWrite, .create]) } catch { throw error.at(logPath) }
        offsetIndex = try OffsetIndex(path: "\(directory)/\(LogSegment.name(baseOffset, ".index"))", baseOffset: baseOffset,
                                      mappedBytes: mappedIndexBytes)
        timeIndex = try TimeIndex(path: "\(directory)/\(LogSegment.name(baseOffset, ".timeindex"))", baseOffset: baseOffset,
                                  mappedBytes: mappedIndexBytes)
    }
}
