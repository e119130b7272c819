#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Records
import SystemIO
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
        var rng = SplitMix(state: seed)
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
            config.segmentBytes = 32 << 20
            config.maxMessageBytes = 8 << 20
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
}
