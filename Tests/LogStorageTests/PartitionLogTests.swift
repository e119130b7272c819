#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Records
import SystemIO
import Testing
@testable import LogStorage

@Suite("Partition log")
struct PartitionLogTests {
    static func smallConfig() -> LogConfig {
        var c = LogConfig()
        c.segmentBytes = 16 << 10
        c.indexIntervalBytes = 1024
        c.segmentIndexBytes = 4096
        return c
    }

    @Test("a read cut short by maxBytes never continues in the next segment (no skipped offsets)")
    func cutReadStopsAtTheSegment() throws {
        let dir = TempDir()
        // Segment 0: three batches of about 3 KB; the fourth append rolls to a small one.
        let big = (0..<3).map { makeBatch(1, tag: "big\($0)", valueBytes: 3000) }
        var config = Self.smallConfig()
        config.segmentBytes = big.reduce(0) { $0 + $1.byteCount } + 1
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "t", partition: 0, config: config, nowMs: 0)
        for batch in big { _ = try log.append([batch], nowMs: 0) }
        _ = try log.append([makeBatch(1, tag: "small", valueBytes: 10)], nowMs: 0)
        #expect(log.segmentCount == 2)
        // 7,000 bytes hold the first two batches; the room left would fit the next segment's
        // small batch, but offset 2 comes first.
        var read = RecordBatchSequence(try log.read(from: 0, maxBytes: 7000).records)
        var offsets: [Int64] = []
        while let b = read.next() { offsets.append(b.baseOffset) }
        #expect(offsets == [0, 1])
        let slices = try log.readSlices(from: 0, maxBytes: 7000)
        defer { for s in slices.slices { close(s.descriptor) } }
        #expect(slices.slices.count == 1)
        #expect(slices.bytes < 7000 && slices.bytes > 6000)
        // A read that reaches the segment's end goes on into the next one.
        var all = RecordBatchSequence(try log.read(from: 0, maxBytes: 1 << 20).records)
        offsets = []
        while let b = all.next() { offsets.append(b.baseOffset) }
        #expect(offsets == [0, 1, 2, 3])
    }

    @Test("a read that may not exceed its budget returns nothing when the next batch is larger (fetch.max.bytes)")
    func budgetIsHardWithoutMinOneBatch() throws {
        let dir = TempDir()
        let config = Self.smallConfig()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "t", partition: 0, config: config, nowMs: 0)
        _ = try log.append([makeBatch(1, tag: "big", valueBytes: 3000)], nowMs: 0)
        // A later partition of a fetch whose budget is nearly spent: nothing, not the batch.
        let slices = try log.readSlices(from: 0, maxBytes: 1000, minOneBatch: false)
        #expect(slices.slices.isEmpty && slices.bytes == 0)
        #expect(try log.read(from: 0, maxBytes: 1000, minOneBatch: false).records.readableBytes == 0)
        // The first partition of a fetch may exceed it by its first batch (KIP-74).
        let first = try log.readSlices(from: 0, maxBytes: 1000, minOneBatch: true)
        defer { for s in first.slices { close(s.descriptor) } }
        #expect(first.bytes > 3000)
        #expect(try log.read(from: 0, maxBytes: 1000).records.readableBytes > 3000)
    }

    @Test("appends get contiguous offsets across rolls, and every record reads back")
    func appendRollRead() throws {
        let dir = TempDir()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
        let log = try manager.createLog(topic: "t", partition: 0, config: Self.smallConfig(), nowMs: 0)
        var expected: [(Int64, String)] = []
        var next: Int64 = 0
        for i in 0..<200 {
            let n = 1 + i % 7
            let result = try log.append([makeBatch(n, tag: "b\(i)")], nowMs: Int64(i))
            #expect(result.baseOffset == next && result.lastOffset == next + Int64(n) - 1)
            for j in 0..<n { expected.append((next + Int64(j), String(repeating: "v", count: 20) + "b\(i)-\(j)")) }
            next += Int64(n)
        }
        #expect(log.logEndOffset == next)
        #expect(log.segmentCount >= 3)
        let back = try readAll(log)
        #expect(back.map(\.0) == expected.map(\.0))
        #expect(back.map(\.1) == expected.map(\.1))
        // Reads from arbitrary offsets start at the batch holding them.
        for target: Int64 in [0, 1, 17, next / 2, next - 1] {
            let r = try log.read(from: target, maxBytes: 1)
            let first = RecordBatchSequence(r.records).first { _ in true }!
            #expect(first.baseOffset <= target && first.lastOffset >= target)
        }
        #expect(throws: StorageError.self) { _ = try log.read(from: next + 1, maxBytes: 100) }
        try manager.shutdown(nowMs: 1)
        let report = SegmentChecker.check(directory: log.directory, startOffset: 0)
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.records == next)
        #expect(report.indexEntries > 0)
    }

    @Test("a clean restart restores offsets and data without re-validating")
    func cleanRestart() throws {
        let dir = TempDir()
        do {
            let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
            let log = try manager.createLog(topic: "orders", partition: 2, config: Self.smallConfig(), nowMs: 0)
            for i in 0..<50 { _ = try log.append([makeBatch(3, tag: "x\(i)")], nowMs: 0) }
            try manager.shutdown(nowMs: 0)
        }
        #expect(Directory.fileExists("\(dir.path)/.kafka_cleanshutdown"))
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
        #expect(manager.hadCleanShutdown)
        #expect(!Directory.fileExists("\(dir.path)/.kafka_cleanshutdown"))
        let log = try #require(manager.log(topic: "orders", partition: 2))
        #expect(log.logEndOffset == 150)
        #expect(try readAll(log).count == 150)
        let r = try log.append([makeBatch(1, tag: "after")], nowMs: 0)
        #expect(r.baseOffset == 150)
    }

    @Test("deferred logs open later with the config known then, and keep their checkpoint entries until they do")
    func deferredOpening() throws {
        let dir = TempDir()
        do {
            let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
            for topic in ["meta", "user"] {
                let log = try manager.createLog(topic: topic, partition: 0, config: Self.smallConfig(), nowMs: 0)
                _ = try log.append([makeBatch(4, tag: topic)], nowMs: 0)
            }
            try manager.shutdown(nowMs: 0)
        }
        let path = "\(dir.path)/\(LogManager.recoveryPointFile)"
        #expect(LogManager.readCheckpoint(path)["user-0"] == 4)
        let manager = try LogManager(logDir: dir.path, nowMs: 0, deferring: { $0 == "user" }) { _ in Self.smallConfig() }
        #expect(manager.log(topic: "meta", partition: 0) != nil)
        #expect(manager.log(topic: "user", partition: 0) == nil)
        // A checkpoint before the deferred log opens must not forget where it was durable.
        let meta = try #require(manager.log(topic: "meta", partition: 0))
        _ = try meta.append([makeBatch(1, tag: "more")], nowMs: 0)
        try meta.flush(nowMs: 0)
        try manager.checkpoint()
        #expect(LogManager.readCheckpoint(path)["user-0"] == 4)
        #expect(LogManager.readCheckpoint(path)["meta-0"] == 5)
        var direct = Self.smallConfig()
        direct.bufferedSubmit = .ring
        try manager.openDeferred(nowMs: 0) { topic in topic == "user" ? direct : Self.smallConfig() }
        let user = try #require(manager.log(topic: "user", partition: 0))
        #expect(user.currentConfig.bufferedSubmit == .ring)
        #expect(user.logEndOffset == 4)
        #expect(try readAll(user).count == 4)
        try manager.shutdown(nowMs: 0)
    }

    @Test("checkpoint files are rewritten only when what they record changed")
    func checkpointsSkipUnchangedWrites() throws {
        let dir = TempDir()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
        let log = try manager.createLog(topic: "t", partition: 0, config: Self.smallConfig(), nowMs: 0)
        _ = try log.append([makeBatch(2, tag: "a")], nowMs: 0)
        try log.flush(nowMs: 0)
        let path = "\(dir.path)/\(LogManager.recoveryPointFile)"
        func inode() throws -> UInt64 {
            var st = stat()
            guard stat(path, &st) == 0 else { throw Errno.current }
            return UInt64(st.st_ino)
        }
        try manager.checkpoint()
        let first = try inode()
        #expect(LogManager.readCheckpoint(path)["t-0"] == 2)
        // Nothing changed: no new file (each write is a new file renamed over the old one).
        try manager.checkpoint()
        #expect(try inode() == first)
        _ = try log.append([makeBatch(1, tag: "b")], nowMs: 0)
        try log.flush(nowMs: 0)
        try manager.checkpoint()
        #expect(try inode() != first)
        #expect(LogManager.readCheckpoint(path)["t-0"] == 3)
        // Between recovery-point checkpoints (log.flush.offset.checkpoint.interval.ms) the file
        // stays as it is; the next one that includes them catches up.
        let second = try inode()
        _ = try log.append([makeBatch(1, tag: "c")], nowMs: 0)
        try log.flush(nowMs: 0)
        try manager.checkpoint(recoveryPoints: false)
        #expect(try inode() == second)
        #expect(LogManager.readCheckpoint(path)["t-0"] == 3)
        try manager.checkpoint()
        #expect(LogManager.readCheckpoint(path)["t-0"] == 4)
        try manager.shutdown(nowMs: 0)
    }

    @Test("after a crash, a torn or corrupt tail is cut at the first invalid batch", arguments: ["torn", "flipped", "garbage"])
    func crashRecovery(damage: String) throws {
        let dir = TempDir()
        let path: String
        do {
            let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
            let log = try manager.createLog(topic: "t", partition: 0, config: Self.smallConfig(), nowMs: 0)
            for i in 0..<10 { _ = try log.append([makeBatch(2, tag: "ok\(i)")], nowMs: 0) }
            try log.flush(nowMs: 0)
            try manager.checkpoint()
            _ = try log.append([makeBatch(2, tag: "last")], nowMs: 0)
            path = "\(log.directory)/00000000000000000000.log"
            // No shutdown: the process "dies" here.
        }
        let f = try FileHandle.open(path, [.readWrite])
        let size = try f.size()
        switch damage {
        case "torn": try f.truncate(to: size - 7)
        case "flipped": try f.writeAll([0xFF], at: size - 3)
        default: try f.writeAll(Array(repeating: 0xAB, count: 40), at: size)
        }
        try f.close()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
        #expect(!manager.hadCleanShutdown)
        let log = try #require(manager.log(topic: "t", partition: 0))
        let expectedEnd: Int64 = damage == "garbage" ? 22 : 20
        #expect(log.logEndOffset == expectedEnd)
        #expect(try readAll(log).count == Int(expectedEnd))
        let report = SegmentChecker.check(directory: log.directory, startOffset: 0)
        #expect(report.problems.isEmpty, "\(report.problems)")
        // The log accepts appends right after the cut, and reads them back (no stale bytes from
        // before the cut are served).
        #expect(try log.append([makeBatch(1, tag: "new")], nowMs: 0).baseOffset == expectedEnd)
        let back = try readAll(log)
        #expect(back.count == Int(expectedEnd) + 1)
        #expect(back.last?.1.hasSuffix("new-0") == true)
    }

    @Test("retention by size and by time deletes whole old segments, never the active one")
    func retention() throws {
        let dir = TempDir()
        var config = Self.smallConfig()
        config.retentionBytes = 40 << 10
        config.fileDeleteDelayMs = 0
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "r", partition: 0, config: config, nowMs: 0)
        for i in 0..<400 { _ = try log.append([makeBatch(4, tag: "r\(i)", timestamp: 1000)], nowMs: 1000) }
        let before = log.segmentCount
        let deleted = log.applyRetention(nowMs: 2000)
        #expect(deleted > 0 && log.segmentCount == before - deleted)
        #expect(log.sizeBytes <= 40 << 10 + 16 << 10)
        #expect(log.logStartOffset > 0)
        #expect(throws: StorageError.self) { _ = try log.read(from: 0, maxBytes: 10) }
        #expect(try readAll(log).first?.0 == log.logStartOffset)

        var timed = config
        timed.retentionBytes = -1
        timed.retentionMs = 500
        log.updateConfig(timed)
        _ = log.applyRetention(nowMs: 1_000_000)
        #expect(log.segmentCount == 1)  // only the active segment is left
        let report = SegmentChecker.check(directory: log.directory)
        #expect(report.problems.isEmpty, "\(report.problems)")
    }

    @Test("DeleteRecords moves the log start; truncation drops the tail")
    func deleteRecordsAndTruncate() throws {
        let dir = TempDir()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
        let log = try manager.createLog(topic: "d", partition: 0, config: Self.smallConfig(), nowMs: 0)
        for i in 0..<100 { _ = try log.append([makeBatch(5, tag: "d\(i)")], nowMs: 0) }
        #expect(try log.deleteRecords(before: 123, nowMs: 0) == 123)
        #expect(try readAll(log).first?.0 == 123)
        try log.truncate(to: 300, nowMs: 0)
        #expect(log.logEndOffset == 300)
        #expect(try readAll(log).last?.0 == 299)
        #expect(try log.append([makeBatch(1, tag: "t")], nowMs: 0).baseOffset == 300)
        // The start offset survives a restart through its checkpoint.
        try manager.shutdown(nowMs: 0)
        let again = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
        #expect(again.log(topic: "d", partition: 0)?.logStartOffset == 123)
    }

    @Test("drop-behind (sluice.cache.drop.behind.bytes) loses nothing through truncation and a restart")
    func dropBehindKeepsEveryRecord() throws {
        let dir = TempDir()
        var config = LogConfig()
        config.segmentBytes = 64 << 20
        config.dropBehindBytes = Int(LogConfig.dropBehindBytesMin)
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "db", partition: 0, config: config, nowMs: 0)
        let passes = StorageStatistics.dropBehindPasses
        // About 12 MiB: many passes (one per MiB), most of the file dropped from the page cache.
        for i in 0..<200 { _ = try log.append([makeBatch(8, tag: "a\(i)", valueBytes: 8000)], nowMs: 0) }
        #expect(StorageStatistics.dropBehindPasses >= passes + 10)
        #expect(log.segmentCount == 1)
        try log.truncate(to: 800, nowMs: 0)
        for i in 0..<100 { _ = try log.append([makeBatch(8, tag: "b\(i)", valueBytes: 8000)], nowMs: 0) }
        func check(_ log: PartitionLog) throws {
            let all = try readAll(log)
            #expect(all.count == 1600 && all.map(\.0) == Array(0..<1600))
            #expect(all[799].1.hasSuffix("a99-7") && all[800].1.hasSuffix("b0-0") && all[1599].1.hasSuffix("b99-7"))
        }
        try check(log)
        try manager.shutdown(nowMs: 0)
        let again = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let reopened = try #require(again.log(topic: "db", partition: 0))
        try check(reopened)
        #expect(try reopened.append([makeBatch(1, tag: "c", valueBytes: 10)], nowMs: 0).baseOffset == 1600)
    }

    @Test("offset for timestamp finds the first record at or after it; max timestamp is tracked")
    func timestamps() throws {
        let dir = TempDir()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.smallConfig() }
        let log = try manager.createLog(topic: "ts", partition: 0, config: Self.smallConfig(), nowMs: 0)
        for i in 0..<100 { _ = try log.append([makeBatch(10, tag: "t\(i)", timestamp: Int64(i) * 100)], nowMs: 0) }
        // Batch i holds timestamps i*100 ... i*100+9, offsets 10i ... 10i+9.
        #expect(try log.offset(forTimestamp: 0)?.offset == 0)
        #expect(try log.offset(forTimestamp: 505)?.offset == 55)
        #expect(try log.offset(forTimestamp: 550)?.offset == 60)
        #expect(try log.offset(forTimestamp: 99_999) == nil)
        #expect(log.maxTimestampAndOffset?.timestamp == 9909)
        #expect(log.maxTimestampAndOffset?.offset == 999)
    }

    @Test("LogAppendTime topics stamp the broker time and keep the CRC valid")
    func logAppendTime() throws {
        let dir = TempDir()
        var config = Self.smallConfig()
        config.timestampType = .logAppendTime
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "lat", partition: 0, config: config, nowMs: 0)
        let r = try log.append([makeBatch(3, tag: "l")], nowMs: 777)
        #expect(r.logAppendTime == 777)
        let batch = try #require(RecordBatchSequence(try log.read(from: 0, maxBytes: 1000).records).first { _ in true })
        #expect(batch.isLogAppendTime && batch.maxTimestamp == 777)
    }

    @Test("durability ack makes every acknowledged offset durable before append returns")
    func ackDurability() throws {
        let dir = TempDir()
        var config = Self.smallConfig()
        config.durability = .ack
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "a", partition: 0, config: config, nowMs: 0)
        for i in 0..<20 {
            let r = try log.append([makeBatch(2, tag: "a\(i)")], nowMs: 0)
            #expect(log.durableOffset > r.lastOffset)
        }
        var none = Self.smallConfig()
        none.durability = .none
        let lazy = try manager.createLog(topic: "n", partition: 0, config: none, nowMs: 0)
        _ = try lazy.append([makeBatch(2, tag: "n")], nowMs: 0)
        #expect(lazy.durableOffset == 0)
    }

    @Test("configs keep Kafka's names and refuse bad values")
    func configNames() throws {
        var c = LogConfig()
        #expect(try c.set("segment.bytes", "1048576"))
        #expect(c.segmentBytes == 1 << 20)
        #expect(try c.set("retention.ms", "-1"))
        #expect(try c.set("unknown.thing", "1") == false)
        #expect(throws: LogConfig.ConfigError.self) { try c.set("segment.bytes", "abc") }
        #expect(throws: LogConfig.ConfigError.self) { try c.set("sluice.io.mode", "sideways") }
        #expect(try c.set("sluice.io.mode", "direct") && c.ioMode == .direct)
        #expect(try c.set("sluice.durability", "ack") && c.durability == .ack)
        #expect(LogConfig.knownNames.contains("index.interval.bytes"))
    }

    /// Bytes of disk the file holds (st_blocks), whatever its size says.
    static func allocatedBytes(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_blocks) * 512 : -1
    }

    @Test("preallocation: stepped reservations stay a step ahead of the end, and sealing returns what was not used",
          arguments: ["step", "whole"])
    func preallocationIsReturnedOnSeal(mode: String) throws {
        let dir = TempDir()
        var config = LogConfig()
        config.segmentBytes = 4 << 20
        if mode == "step" { config.preallocateStepBytes = 1 << 20 } else { config.preallocate = true }
        #expect(try config.set("sluice.preallocate.step.bytes", "\(config.preallocateStepBytes)"))
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "p", partition: 0, config: config, nowMs: 0)
        let first = "\(log.directory)/00000000000000000000.log"
        let batch = makeBatch(10, tag: "b", valueBytes: 1_000)  // ~10 KB
        _ = try log.append([batch], nowMs: 0)
        let size = batch.byteCount
        var st = stat()
        #expect(stat(first, &st) == 0 && Int(st.st_size) == size, "the file size is the data's")
        let reserved = Self.allocatedBytes(first)
        if mode == "step" {
            // Reserved ahead: as much as the segment holds (64 KiB at least), at most a step. A
            // small segment reserves little; past a step's worth of data, a whole step.
            var reservedEnd = 0, largestStep = 0
            func expectReservation(_ what: String) {
                let end = Int(log.sizeBytes)
                if end > reservedEnd {
                    reservedEnd = min(4 << 20, end + min(1 << 20, max(end, 64 << 10)))
                    largestStep = max(largestStep, reservedEnd - end)
                }
                let held = Self.allocatedBytes(first)
                #expect(abs(held - reservedEnd) <= 8192, "\(what): \(held) bytes held for \(end) of data, \(reservedEnd) expected")
            }
            expectReservation("one small batch")
            #expect(reserved < 1 << 20, "a small segment reserved a whole step: \(reserved)")
            while log.sizeBytes < (2 << 20) + 100_000 {
                _ = try log.append([batch], nowMs: 0)
                expectReservation("at \(log.sizeBytes) bytes")
            }
            #expect(largestStep == 1 << 20, "never a whole step ahead: at most \(largestStep)")
        } else {
            #expect(reserved >= 4 << 20, "the whole segment reserved: \(reserved)")
        }
        // A roll seals the segment: the blocks past its data go back.
        var rolling = config
        rolling.segmentBytes = 14
        log.updateConfig(rolling)
        _ = try log.append([batch], nowMs: 0)
        #expect(log.segmentCount == 2)
        #expect(stat(first, &st) == 0)
        let kept = Self.allocatedBytes(first)
        #expect(kept <= (Int(st.st_size) + 4095) / 4096 * 4096 + 65536, "sealed segment still holds \(kept) bytes for \(st.st_size)")
        #expect(try readAll(log).count == Int(log.logEndOffset))
        try manager.shutdown(nowMs: 1)
    }
}
