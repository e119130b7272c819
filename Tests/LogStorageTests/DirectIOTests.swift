import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Records
import SystemIO
import Synchronization
import Testing
@testable import LogStorage

@Suite("Direct I/O (sluice.io.mode=direct)")
struct DirectIOTests {
    static func config(_ mode: LogConfig.IOMode) -> LogConfig {
        var c = LogConfig()
        c.segmentBytes = 256 << 10
        c.indexIntervalBytes = 1024
        c.segmentIndexBytes = 8192
        c.ioMode = mode
        return c
    }

    /// Batches of sizes that straddle block boundaries in every way: tiny, a few KiB, larger than
    /// a block, exact multiples.
    static func workload(seed: UInt64) -> [RecordBatch] {
        var rng = SplitMix64(seed: seed)
        return (0..<300).map { i in
            let values = [1, 7, 100, 1000, 4000, 5000, 9000][Int(rng.next() % 7)]
            return makeBatch(1 + Int(rng.next() % 4), tag: "d\(i)", valueBytes: values)
        }
    }

    @Test("direct appends read back byte for byte like buffered ones, across rolls and restarts", arguments: [1, 2, 3] as [UInt64])
    func sameBytesAsBuffered(seed: UInt64) throws {
        var logs: [String: PartitionLog] = [:]
        var dirs: [TempDir] = []
        for mode in [LogConfig.IOMode.buffered, .direct] {
            let dir = TempDir()
            dirs.append(dir)
            let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.config(mode) }
            let log = try manager.createLog(topic: "t", partition: 0, config: Self.config(mode), nowMs: 0)
            for batch in Self.workload(seed: seed) { _ = try log.append([batch], nowMs: 0) }
            logs[mode.rawValue] = log
            if mode == .direct {
                // The active segment is padded to whole blocks until it is sealed.
                let active = "\(log.directory)/\(LogSegment.name(log.activeSegmentBaseOffset, ".log"))"
                let size = try FileHandle.open(active, [.readOnly]).size()
                #expect(size % Int64(AlignedBuffer.alignment) == 0)
            }
        }
        let buffered = try #require(logs["buffered"]), direct = try #require(logs["direct"])
        #expect(direct.segmentCount > 3)
        #expect(direct.logEndOffset == buffered.logEndOffset)
        let a = try buffered.read(from: 0, maxBytes: 64 << 20).records
        let b = try direct.read(from: 0, maxBytes: 64 << 20).records
        #expect(a == b)
        #expect(try readAll(direct).map(\.1) == readAll(buffered).map(\.1))

        // A crash (no shutdown): recovery stops at the zero padding and keeps every batch.
        let end = direct.logEndOffset
        let crashed = try LogManager(logDir: dirs[1].path, nowMs: 0) { _ in Self.config(.direct) }
        let reopened = try #require(crashed.log(topic: "t", partition: 0))
        #expect(reopened.logEndOffset == end)
        #expect(try reopened.read(from: 0, maxBytes: 64 << 20).records == a)
        // Appends continue after the recovered tail, and a clean shutdown trims the padding.
        for batch in Self.workload(seed: seed + 100).prefix(20) { _ = try reopened.append([batch], nowMs: 0) }
        try crashed.shutdown(nowMs: 0)
        let report = SegmentChecker.check(directory: reopened.directory, startOffset: 0)
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.records == reopened.logEndOffset)
        let clean = try LogManager(logDir: dirs[1].path, nowMs: 0) { _ in Self.config(.direct) }
        let again = try #require(clean.log(topic: "t", partition: 0))
        #expect(again.logEndOffset == reopened.logEndOffset)
        _ = try again.append([makeBatch(2, tag: "after-clean")], nowMs: 0)
        #expect(try readAll(again).last?.1.hasSuffix("after-clean-1") == true)
        try clean.shutdown(nowMs: 0)
        #expect(SegmentChecker.check(directory: again.directory, startOffset: 0).problems.isEmpty)
    }

    @Test("direct mode with ack durability: the durable offset covers every append")
    func directWithAck() throws {
        let dir = TempDir()
        var config = Self.config(.direct)
        config.durability = .ack
        config.preallocate = true
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "a", partition: 0, config: config, nowMs: 0)
        for batch in Self.workload(seed: 9).prefix(50) {
            let r = try log.append([batch], nowMs: 0)
            #expect(log.durableOffset == r.lastOffset + 1)
        }
        try manager.shutdown(nowMs: 0)
        #expect(SegmentChecker.check(directory: log.directory, startOffset: 0).problems.isEmpty)
    }

    @Test("appends larger than the staging buffer are written in pieces and read back intact")
    func largeAppendsInPieces() throws {
        var logs: [PartitionLog] = []
        var managers: [LogManager] = []
        var dirs: [TempDir] = []
        for mode in [LogConfig.IOMode.buffered, .direct] {
            var config = Self.config(mode)
            config.segmentBytes = 128 << 20
            config.maxMessageBytes = 16 << 20
            let dir = TempDir()
            dirs.append(dir)
            let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
            managers.append(manager)
            let log = try manager.createLog(topic: "big", partition: 0, config: config, nowMs: 0)
            // An unaligned tail first, then single batches of 1.2x and 3x the staging buffer, and
            // one call carrying several batches whose total crosses it twice.
            _ = try log.append([makeBatch(1, tag: "lead", valueBytes: 777)], nowMs: 0)
            let staging = DirectWriter.stagingBytes
            _ = try log.append([makeBatch(3, tag: "one", valueBytes: staging * 2 / 5)], nowMs: 0)
            _ = try log.append([makeBatch(6, tag: "two", valueBytes: staging / 2)], nowMs: 0)
            _ = try log.append((0..<9).map { makeBatch(2, tag: "many\($0)", valueBytes: staging / 7 + $0) }, nowMs: 0)
            _ = try log.append([makeBatch(1, tag: "tail", valueBytes: 5)], nowMs: 0)
            logs.append(log)
        }
        #expect(logs[1].logEndOffset == logs[0].logEndOffset)
        #expect(try logs[1].read(from: 0, maxBytes: 64 << 20).records == logs[0].read(from: 0, maxBytes: 64 << 20).records)
        #expect(try readAll(logs[1]).map(\.1) == readAll(logs[0]).map(\.1))
        for (manager, log) in zip(managers, logs) {
            try manager.shutdown(nowMs: 0)
            let report = SegmentChecker.check(directory: log.directory, startOffset: 0)
            #expect(report.problems.isEmpty, "\(report.problems)")
            #expect(report.records == log.logEndOffset)
        }
    }

    @Test("write-behind: staged batches are invisible to readers and the written offset until a commit round writes them")
    func stagedUntilWritten() throws {
        let dir = TempDir()
        let config = Self.config(.direct)
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "wb", partition: 0, config: config, nowMs: 0)
        let committer = GroupCommitter(threads: 1)
        defer { committer.shutdown() }
        _ = try log.append([makeBatch(2, tag: "first", valueBytes: 5000)], nowMs: 0)
        #expect(log.writtenOffset == 2)
        // Larger than a block, so it needs an O_DIRECT write: staged, not written.
        let r = try log.append([makeBatch(3, tag: "staged", valueBytes: 3000)], nowMs: 0, deferFlush: true, deferWrite: true)
        #expect(r.needsWrite && !r.needsFlush)  // durability none: a write, no fsync
        #expect(log.logEndOffset == 5)
        #expect(log.writtenOffset == 2)
        #expect(try readAll(log).map(\.0) == [0, 1])
        #expect(try log.readSlices(from: 2, maxBytes: 1 << 20).bytes == 0)
        #expect(try log.locate(3) == nil)
        try committer.syncAndWait(log, upTo: 5, durable: false)
        #expect(log.writtenOffset == 5)
        #expect(log.durableOffset == 0)  // written, not synced
        #expect(committer.latencies.count == 0)  // a write's wait is not a flush latency
        #expect(try readAll(log).map(\.1).last?.hasSuffix("staged-2") == true)
        try committer.syncAndWait(log, upTo: 5)
        #expect(log.durableOffset == 5)
        #expect(committer.latencies.count == 1)
        // One that fits in the rest of the block holding the written end is a page-cache copy,
        // done at once when no write is in flight.
        let small = try log.append([makeBatch(1, tag: "small", valueBytes: 10)], nowMs: 0, deferFlush: true, deferWrite: true)
        #expect(!small.needsWrite)
        #expect(log.writtenOffset == 6)
        // A crash with a batch staged: recovery keeps what the file holds, intact.
        _ = try log.append([makeBatch(1, tag: "lost", valueBytes: 6000)], nowMs: 0, deferFlush: true, deferWrite: true)
        #expect(log.writtenOffset == 6)
        let crashed = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let reopened = try #require(crashed.log(topic: "wb", partition: 0))
        #expect(reopened.logEndOffset == 6)
        #expect(SegmentChecker.check(directory: reopened.directory, startOffset: 0).problems.isEmpty)
        try crashed.shutdown(nowMs: 0)
    }

    @Test("write-behind under load: a reader never sees past the written offset, and every byte lands as buffered mode writes it",
          arguments: [(4, LogConfig.IOMode.direct), (5, .direct), (6, .buffered), (7, .buffered)] as [(UInt64, LogConfig.IOMode)])
    func concurrentWriteBehind(seed: UInt64, mode: LogConfig.IOMode) throws {
        // Direct mode, or buffered mode written behind on the commit threads' ring.
        var config = Self.config(mode)
        config.bufferedSubmit = .ring
        config.segmentBytes = 12 << 20
        config.maxMessageBytes = 8 << 20
        var rng = SplitMix64(seed: seed)
        // Small batches fill the staging buffer while a write is in flight; a few are larger than it.
        let sizes = [1, 300, 4000, 9000, 70_000, 300_000]
        let workload: [RecordBatch] = (0..<400).map { i in
            if i % 130 == 65 { return makeBatch(1, tag: "huge\(i)", valueBytes: DirectWriter.stagingBytes + 5000) }
            return makeBatch(1 + Int(rng.next() % 3), tag: "w\(i)", valueBytes: sizes[Int(rng.next() % UInt64(sizes.count))])
        }
        let reference = TempDir(), dir = TempDir()
        var buffered = config
        buffered.ioMode = .buffered
        buffered.bufferedSubmit = .inline
        let refManager = try LogManager(logDir: reference.path, nowMs: 0) { _ in buffered }
        let expected = try refManager.createLog(topic: "c", partition: 0, config: buffered, nowMs: 0)
        for batch in workload { _ = try expected.append([batch], nowMs: 0) }

        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "c", partition: 0, config: config, nowMs: 0)
        let committer = GroupCommitter(threads: 2)
        defer { committer.shutdown() }
        let done = Mutex(false)
        let problems = Mutex<[String]>([])
        let readerFinished = DispatchSemaphore(value: 0)
        let reader = Thread {
            defer { readerFinished.signal() }
            // Everything below the written offset reads back whole, CRC-checked and contiguous.
            while !done.withLock({ $0 }) {
                let written = log.writtenOffset
                var next: Int64 = 0
                while next < written {
                    guard let result = try? log.read(from: next, maxBytes: 1 << 20) else { problems.withLock { $0.append("read at \(next) failed") }; return }
                    var batches = RecordBatchSequence(result.records)
                    var advanced = false
                    while let b = batches.next() {
                        if b.baseOffset != next { problems.withLock { $0.append("offset \(b.baseOffset) where \(next) was due") }; return }
                        next = b.nextOffset
                        advanced = true
                    }
                    if batches.error != nil { problems.withLock { $0.append("bad batch after \(next)") }; return }
                    if !advanced { problems.withLock { $0.append("nothing at \(next) below written \(written)") }; return }
                }
            }
        }
        reader.start()
        let pending = DispatchGroup()
        let failures = Mutex<[String]>([])
        for batch in workload {
            let r = try log.append([batch], nowMs: 0, deferFlush: true, deferWrite: true)
            if r.needsWrite {
                pending.enter()
                committer.sync(log, upTo: r.lastOffset + 1, durable: false) { result in
                    if case .failure(let e) = result { failures.withLock { $0.append("\(e)") } }
                    pending.leave()
                }
            }
        }
        pending.wait()
        done.withLock { $0 = true }
        #expect(readerFinished.wait(timeout: .now() + 120) == .success, "the reader did not finish")
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0 })")
        #expect(log.writtenOffset == expected.logEndOffset)
        #expect(try log.read(from: 0, maxBytes: 256 << 20).records == expected.read(from: 0, maxBytes: 256 << 20).records)
        try manager.shutdown(nowMs: 0)
        try refManager.shutdown(nowMs: 0)
        let report = SegmentChecker.check(directory: log.directory, startOffset: 0)
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.records == expected.logEndOffset)
    }
}
