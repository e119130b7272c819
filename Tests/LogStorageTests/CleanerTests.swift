#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Records
import SystemIO
import Testing
@testable import LogStorage


@Suite("Log cleaner")
struct CleanerTests {
    static func config() -> LogConfig {
        var c = LogConfig()
        c.segmentBytes = 8 << 10
        c.indexIntervalBytes = 512
        c.segmentIndexBytes = 4096
        c.retentionMs = -1
        try! c.set("cleanup.policy", "compact")
        try! c.set("min.cleanable.dirty.ratio", "0")
        try! c.set("delete.retention.ms", "1000")
        return c
    }

    /// Every record read from offset 0: (offset, key, value or nil).
    static func scan(_ log: PartitionLog) throws -> [(Int64, String, String?)] {
        var out: [(Int64, String, String?)] = []
        try log.forEachBatch { b in
            for r in try b.records() {
                out.append((b.baseOffset + Int64(r.offsetDelta), r.key.map { String(buffer: $0) } ?? "",
                            r.value.map { String(buffer: $0) }))
            }
        }
        return out
    }

    @Test("randomised puts, overwrites and tombstones: after cleaning every key reads as its latest value, with original offsets",
          arguments: 0..<24)
    func model(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &* 7919 &+ 1)
        let dir = TempDir()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.config() }
        let log = try manager.createLog(topic: "c", partition: 0, config: Self.config(), nowMs: 0)
        var latest: [String: (offset: Int64, value: String?)] = [:]
        var offset: Int64 = 0
        let keys = Int.random(in: 5...60, using: &rng)
        let codecs: [CompressionCodec] = [.none, .gzip, .snappy, .lz4, .zstd]
        for b in 0..<Int.random(in: 60...200, using: &rng) {
            var builder = RecordBatchBuilder()
            builder.compression = codecs[Int.random(in: 0..<codecs.count, using: &rng)]
            var inputs: [RecordBatchBuilder.Input] = []
            for i in 0..<Int.random(in: 1...8, using: &rng) {
                let key = "k\(Int.random(in: 0..<keys, using: &rng))"
                let tombstone = Int.random(in: 0..<10, using: &rng) == 0
                let value: String? = tombstone ? nil : "\(key)=\(b).\(i)" + String(repeating: "x", count: Int.random(in: 0...200, using: &rng))
                inputs.append(.init(key: ByteBuffer(string: key), value: value.map { ByteBuffer(string: $0) }, timestamp: 1_000 + Int64(b)))
                latest[key] = (offset + Int64(i), value)
            }
            _ = try log.append([try RecordBatch(try builder.build(inputs))], nowMs: 1_000 + Int64(b))
            offset += Int64(inputs.count)
            // Clean now and then while writing, as the background cleaner would.
            if Int.random(in: 0..<25, using: &rng) == 0 {
                _ = try log.clean(nowMs: 2_000, lastStableOffset: Int64.max, mapBytesMax: 1 << 20)
            }
        }
        let before = log.sizeBytes
        _ = try log.clean(nowMs: 2_000, lastStableOffset: Int64.max, mapBytesMax: 1 << 20)
        let active = log.activeSegmentBaseOffset
        var seen: [String: (Int64, String?)] = [:]
        var last: Int64 = -1
        for (o, k, v) in try Self.scan(log) {
            #expect(o > last, "offsets must increase (seed \(seed))")
            last = o
            if o < active {
                // In the cleaned part a key appears only at its latest offset.
                #expect(latest[k]!.offset == o || (seen[k] == nil && latest[k]!.offset >= active),
                        "key \(k) at \(o) is not its latest (\(latest[k]!.offset)), seed \(seed)")
            }
            seen[k] = (o, v)
        }
        for (k, l) in latest {
            let got = seen[k]
            #expect(got?.0 == l.offset && got?.1 == l.value, "key \(k): expected \(l), got \(String(describing: got)), seed \(seed)")
        }
        #expect(log.sizeBytes <= before)
        // Past the tombstone horizon (delete.retention.ms after the first cleaning) tombstones
        // in the cleaned part go; every live key keeps its latest value.
        _ = try log.clean(nowMs: 2_000 + 1_001, lastStableOffset: Int64.max, mapBytesMax: 1 << 20, force: true)
        var after: [String: (Int64, String?)] = [:]
        for (o, k, v) in try Self.scan(log) {
            if o < log.activeSegmentBaseOffset { #expect(v != nil, "tombstone \(k) survived its horizon, seed \(seed)") }
            after[k] = (o, v)
        }
        for (k, l) in latest where l.value != nil {
            #expect(after[k]?.0 == l.offset && after[k]?.1 == l.value)
        }
        // And the result survives a restart (indexes and files consistent).
        try manager.shutdown(nowMs: 5_000)
        let reopened = try LogManager(logDir: dir.path, nowMs: 5_000) { _ in Self.config() }
        let again = try Self.scan(reopened.log(topic: "c", partition: 0)!)
        #expect(again.count == (try Self.scan(log)).count)
    }

    @Test("a cleaning that empties the first segment keeps the log start offset, across a clean restart and a crash",
          arguments: [true, false])
    func logStartSurvivesAnEmptiedFirstSegment(cleanShutdown: Bool) throws {
        let dir = TempDir()
        var survivors: [(Int64, String, String?)] = []
        let directory: String
        do {
            let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.config() }
            let log = try manager.createLog(topic: "c", partition: 0, config: Self.config(), nowMs: 0)
            directory = log.directory
            // Five keys overwritten 100 times: every record of the first segments is superseded.
            for b in 0..<100 {
                let inputs = (0..<5).map { i in
                    RecordBatchBuilder.Input(key: ByteBuffer(string: "k\(i)"), value: ByteBuffer(string: "v\(b)-\(i)" + String(repeating: "x", count: 100)), timestamp: 1)
                }
                _ = try log.append([try RecordBatch(try RecordBatchBuilder().build(inputs))], nowMs: 1)
            }
            #expect(log.segmentCount > 3)
            _ = try #require(try log.clean(nowMs: 10, lastStableOffset: Int64.max, mapBytesMax: 1 << 20))
            #expect(log.logStartOffset == 0)
            survivors = try Self.scan(log)
            #expect(survivors.first!.0 > 0, "the first records were superseded")
            if cleanShutdown { try manager.shutdown(nowMs: 20) } else { try log.flush(nowMs: 20) }
            // Without shutdown the process "dies" here: no clean-shutdown marker.
        }
        #expect(Directory.fileExists("\(directory)/00000000000000000000.log"), "the first segment keeps base offset 0")
        let reopened = try LogManager(logDir: dir.path, nowMs: 30) { _ in Self.config() }
        #expect(reopened.hadCleanShutdown == cleanShutdown)
        let log = try #require(reopened.log(topic: "c", partition: 0))
        #expect(log.logStartOffset == 0, "compaction moved the log start offset")
        // A consumer reading from offset 0 gets the first surviving batch, not OFFSET_OUT_OF_RANGE.
        let first = try log.read(from: 0, maxBytes: 1 << 20)
        var batches = RecordBatchSequence(first.records)
        #expect(batches.next()?.baseOffset == survivors.first!.0)
        #expect(try Self.scan(log).map(\.0) == survivors.map(\.0))
        // The next cleaning merges the empty head into what follows, still at base offset 0.
        _ = try log.clean(nowMs: 40, lastStableOffset: Int64.max, mapBytesMax: 1 << 20, force: true)
        #expect(log.logStartOffset == 0)
        #expect(try Self.scan(log).map(\.0) == survivors.map(\.0))
    }

    @Test("an interrupted swap is completed at open, an unfinished staging directory is discarded")
    func crashSafety() throws {
        let dir = TempDir()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.config() }
        let log = try manager.createLog(topic: "c", partition: 0, config: Self.config(), nowMs: 0)
        for b in 0..<100 {
            let inputs = (0..<5).map { i in RecordBatchBuilder.Input(key: ByteBuffer(string: "k\(i)"), value: ByteBuffer(string: "v\(b)-\(i)" + String(repeating: "x", count: 100)), timestamp: 1) }
            _ = try log.append([try RecordBatch(try RecordBatchBuilder().build(inputs))], nowMs: 1)
        }
        let expected = try Self.scan(log).filter { $0.0 >= log.activeSegmentBaseOffset }
        // A staging directory left by a crash before the commit point: discarded.
        try Directory.create("\(log.directory)/\(PartitionLog.stagingName)")
        _ = system("touch '\(log.directory)/\(PartitionLog.stagingName)/00000000000000000000.log'")
        _ = try log.clean(nowMs: 10, lastStableOffset: Int64.max, mapBytesMax: 1 << 20)
        try manager.shutdown(nowMs: 20)
        // Simulate a crash after the commit rename but before the move: build a swap by hand
        // from the cleaned segment files, then put the (pre-clean) layout back around it.
        let cleaned = try Directory.list(log.directory).filter { $0.hasSuffix(".log") }.sorted()
        let swap = "\(log.directory)/\(PartitionLog.swapName)"
        try Directory.create(swap)
        let first = cleaned.first!
        _ = system("cp '\(log.directory)/\(first)' '\(swap)/\(first)'")
        let range = "0 \(Int64(cleaned.dropFirst().first?.dropLast(4) ?? "0") ?? 0)\n"
        let f = try FileHandle.open("\(swap)/range", [.writeOnly, .create])
        try f.writeAll(Array(range.utf8), at: 0)
        try f.close()
        let reopened = try LogManager(logDir: dir.path, nowMs: 30) { _ in Self.config() }
        let l2 = reopened.log(topic: "c", partition: 0)!
        #expect(!Directory.exists(swap))
        #expect(!Directory.exists("\(l2.directory)/\(PartitionLog.stagingName)"))
        let latestKeys = Dictionary(try Self.scan(l2).map { ($0.1, $0.2) }, uniquingKeysWith: { $1 })
        #expect(latestKeys.count == 5)
        #expect(try Self.scan(l2).filter { $0.0 >= l2.activeSegmentBaseOffset }.map(\.0) == expected.map(\.0))
    }

    @Test("transactional data of aborted transactions is removed; the producer's last batch keeps its sequence")
    func abortedData() throws {
        let dir = TempDir()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in Self.config() }
        let log = try manager.createLog(topic: "c", partition: 0, config: Self.config(), nowMs: 0)
        var b = RecordBatchBuilder()
        b.transactional = true
        b.producerId = 7
        b.producerEpoch = 0
        b.baseSequence = 0
        let data = try RecordBatch(try b.build([.init(key: ByteBuffer(string: "a"), value: ByteBuffer(string: "aborted"), timestamp: 1)]))
        let r = try log.append([data], nowMs: 1)
        let marker = try RecordBatch(RecordBatchBuilder.controlBatch(.abort, producerId: 7, producerEpoch: 0, coordinatorEpoch: 0, timestamp: 1))
        let m = try log.append([marker], nowMs: 1)
        try log.appendAbortedTransaction(.init(producerId: 7, firstOffset: r.baseOffset, lastOffset: m.baseOffset, lastStableOffset: m.baseOffset + 1))
        for i in 0..<200 {
            _ = try log.append([makeBatch(3, tag: "f\(i % 10)", valueBytes: 100)], nowMs: 1)
        }
        _ = try log.clean(nowMs: 10, lastStableOffset: Int64.max, mapBytesMax: 1 << 20)
        let values = try Self.scan(log).compactMap(\.2)
        #expect(!values.contains("aborted"))
        var found = false
        try log.forEachBatch { batch in if batch.producerId == 7 && !batch.isControl { found = true; #expect(batch.recordCount == 0) } }
        #expect(found, "the producer's last data batch is kept, emptied, for its sequence")
    }
}
