import Foundation
import NIOCore
import Records
import SystemIO
import Testing
@testable import LogStorage

@Suite("Buffered write-behind (sluice.io.buffered.submit=ring)")
struct BufferedWriteBehindTests {
    static func config() -> LogConfig {
        var c = LogConfig()
        c.segmentBytes = 256 << 10
        c.indexIntervalBytes = 1024
        c.segmentIndexBytes = 8192
        c.bufferedSubmit = .ring
        return c
    }

    @Test("a deferred append is staged: invisible to readers and the written offset until a commit round writes it on its ring")
    func stagedUntilWritten() throws {
        let dir = TempDir()
        let config = Self.config()
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "ring", partition: 0, config: config, nowMs: 0)
        let committer = GroupCommitter(threads: 1)
        defer { committer.shutdown() }
        // Not deferred: written before `append` returns, as with inline writes.
        _ = try log.append([makeBatch(2, tag: "first")], nowMs: 0)
        #expect(log.writtenOffset == 2)
        // Deferred, however small (unlike direct mode, nothing is written on the appending thread).
        let r = try log.append([makeBatch(3, tag: "staged", valueBytes: 10)], nowMs: 0, deferFlush: true, deferWrite: true)
        #expect(r.needsWrite && !r.needsFlush)
        #expect(log.logEndOffset == 5)
        #expect(log.writtenOffset == 2)
        #expect(try readAll(log).map(\.0) == [0, 1])
        #expect(try log.readSlices(from: 2, maxBytes: 1 << 20).bytes == 0)
        let writesBehind = StorageStatistics.writesBehind
        try committer.syncAndWait(log, upTo: 5, durable: false)
        #expect(StorageStatistics.writesBehind > writesBehind, "the commit thread did not write the staged batch")
        #expect(log.writtenOffset == 5)
        #expect(log.durableOffset == 0)
        #expect(try readAll(log).map(\.1).last?.hasSuffix("staged-2") == true)
        // Durability `ack` through the committer: the write and the fdatasync in one round.
        let synced = try log.append([makeBatch(1, tag: "synced")], nowMs: 0, deferFlush: true, deferWrite: true)
        try committer.syncAndWait(log, upTo: synced.lastOffset + 1)
        #expect(log.writtenOffset == 6 && log.durableOffset == 6)
        // A crash with a batch staged: it never reached the file, and the file is intact.
        _ = try log.append([makeBatch(1, tag: "lost")], nowMs: 0, deferFlush: true, deferWrite: true)
        #expect(log.writtenOffset == 6)
        let crashed = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let reopened = try #require(crashed.log(topic: "ring", partition: 0))
        #expect(reopened.logEndOffset == 6)
        #expect(SegmentChecker.check(directory: reopened.directory, startOffset: 0).problems.isEmpty)
        try crashed.shutdown(nowMs: 0)
    }

    @Test("a write points at the received bytes: only the 16-byte prefix of each batch is built, the rest is not copied")
    func writesFromTheReceivedBuffer() throws {
        let dir = TempDir()
        let path = "\(dir.path)/00000000000000000000.log"
        do { _ = try SystemIO.FileHandle.open(path, [.writeOnly, .create]) }
        let writer = try BufferedWriteBehind(path: path)
        let log = try SystemIO.FileHandle.open(path, [.readOnly])
        let batches = [makeBatch(2, tag: "a", valueBytes: 300), makeBatch(1, tag: "b", valueBytes: 40)]
        let placed = [PlacedBatch(batches[0], baseOffset: 7, leaderEpoch: 3), PlacedBatch(batches[1], baseOffset: 9, leaderEpoch: 3)]
        try writer.stage(placed, at: 0, nextOffset: 7, reading: log)
        #expect(writer.written?.bytes == 0)
        let write = try #require(writer.beginWrite())
        #expect(writer.beginWrite() == nil, "a second write while one is in flight")
        #expect(write.parts.count == 1 && write.parts[0].offset == 0)
        let vectors = write.parts[0].vectors
        #expect(vectors.count == 4)
        for (i, batch) in batches.enumerated() {
            let received = batch.buffer.withUnsafeReadableBytes { $0.baseAddress! + PlacedBatch.prefixBytes }
            #expect(vectors[2 * i].iov_len == PlacedBatch.prefixBytes)
            #expect(UnsafeRawPointer(vectors[2 * i + 1].iov_base!) == received, "batch \(i) was copied")
            #expect(vectors[2 * i + 1].iov_len == batch.byteCount - PlacedBatch.prefixBytes)
        }
        writer.finishWrite(write, error: writer.perform(write))
        #expect(writer.written?.bytes == batches.reduce(0) { $0 + $1.byteCount })
        #expect(writer.written?.nextOffset == 10)
        // The file holds the batches with their assigned offsets and epoch, CRCs intact.
        let bytes = try log.read(count: 1 << 16, at: 0)
        var sequence = RecordBatchSequence(ByteBuffer(bytes: bytes))
        var seen: [(Int64, Int32)] = []
        while let b = sequence.next() { seen.append((b.baseOffset, b.partitionLeaderEpoch)) }
        #expect(sequence.error == nil)
        #expect(seen.map(\.0) == [7, 9] && seen.map(\.1) == [3, 3])
    }

    @Test("a short page-cache write is finished from where it stopped; a short O_DIRECT one is not")
    func shortWriteIsFinished() throws {
        let dir = TempDir()
        let path = "\(dir.path)/short"
        let box = FileBox(try SystemIO.FileHandle.open(path, [.readWrite, .create]))
        let pieces: [[UInt8]] = [Array("0123".utf8), Array("456789".utf8), [], Array("abcdefghij".utf8)]
        let whole = pieces.flatMap { $0 }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: whole.count, alignment: 8)
        defer { storage.deallocate() }
        storage.copyBytes(from: whole)
        var buffers: [UnsafeRawBufferPointer] = []
        var at = 0
        for p in pieces {
            buffers.append(UnsafeRawBufferPointer(rebasing: storage[at..<(at + p.count)]))
            at += p.count
        }
        for done in [0, 3, 4, 7, 10, 19] {
            let write = StagedWrite(vectors: pieces.count, end: 0)
            write.add(box, at: 100, buffers)
            try box.handle.truncate(to: 0)
            // What a short write of `done` bytes would have put in the file.
            try box.handle.writeAll(UnsafeRawBufferPointer(rebasing: storage[0..<done]), at: 100)
            try write.parts[0].finish(after: done)
            #expect(try box.handle.read(count: 200, at: 100) == whole, "after a short write of \(done) bytes")
        }
        let direct = StagedWrite(vectors: pieces.count, end: 0)
        direct.add(box, at: 0, buffers, resumable: false)
        #expect(throws: Errno.ioError) { try direct.parts[0].finish(after: 3) }
    }

    @Test("more batches staged than one write takes: the round writes them in several passes, in order")
    func manyBatchesInOneRound() throws {
        let dir = TempDir(), reference = TempDir()
        var config = Self.config()
        config.segmentBytes = 64 << 20
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "many", partition: 0, config: config, nowMs: 0)
        var inline = config
        inline.bufferedSubmit = .inline
        let refManager = try LogManager(logDir: reference.path, nowMs: 0) { _ in inline }
        let expected = try refManager.createLog(topic: "many", partition: 0, config: inline, nowMs: 0)
        let committer = GroupCommitter(threads: 1)
        defer { committer.shutdown() }
        let count = 3 * BufferedWriteBehind.batchesPerWrite + 17
        var last: Int64 = 0
        for i in 0..<count {
            let batch = makeBatch(1 + i % 3, tag: "m\(i)", valueBytes: i % 50)
            last = try log.append([batch], nowMs: 0, deferFlush: true, deferWrite: true).lastOffset
            _ = try expected.append([batch], nowMs: 0)
        }
        #expect(log.writtenOffset == 0)
        try committer.syncAndWait(log, upTo: last + 1)
        #expect(log.writtenOffset == last + 1 && log.durableOffset == last + 1)
        #expect(try log.read(from: 0, maxBytes: 64 << 20).records == expected.read(from: 0, maxBytes: 64 << 20).records)
        try manager.shutdown(nowMs: 0)
        try refManager.shutdown(nowMs: 0)
        let report = SegmentChecker.check(directory: log.directory, startOffset: 0)
        #expect(report.problems.isEmpty, "\(report.problems)")
    }

    @Test("staged bytes are bounded: past the limit an append writes what is staged itself (acks=0 producers never wait)")
    func stagingIsBounded() throws {
        let dir = TempDir()
        var config = Self.config()
        config.segmentBytes = 1 << 30
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "bound", partition: 0, config: config, nowMs: 0)
        let batch = makeBatch(1, tag: "big", valueBytes: 1_000_000)
        var appended = 0
        // No committer runs: only the bound can write these.
        while appended <= BufferedWriteBehind.stagedBytesMax {
            _ = try log.append([batch], nowMs: 0, deferFlush: true, deferWrite: true)
            appended += batch.byteCount
        }
        #expect(log.writtenOffset == log.logEndOffset, "\(appended) bytes staged and none written")
        #expect(try readAll(log).count == Int(log.logEndOffset))
        try manager.shutdown(nowMs: 0)
    }

    @Test("a roll writes what is staged before the segment is sealed")
    func rollDrainsStagedBatches() throws {
        let dir = TempDir()
        var config = Self.config()
        config.segmentBytes = 4096
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "roll", partition: 0, config: config, nowMs: 0)
        for i in 0..<40 { _ = try log.append([makeBatch(2, tag: "r\(i)", valueBytes: 200)], nowMs: 0, deferFlush: true, deferWrite: true) }
        // Every segment but the active one was sealed, so written whole; the active one waits.
        #expect(log.segmentCount > 1)
        #expect(log.writtenOffset < 80)
        try log.flush(nowMs: 0)
        #expect(log.writtenOffset == 80)
        #expect(try readAll(log).map(\.0) == Array(0..<80))
        try manager.shutdown(nowMs: 0)
        #expect(SegmentChecker.check(directory: log.directory, startOffset: 0).problems.isEmpty)
    }
}
