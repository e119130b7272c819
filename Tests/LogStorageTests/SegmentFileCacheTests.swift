import Foundation
import Testing
@testable import LogStorage
import NIOCore
import Records

@Suite("Open segment files are bounded")
struct SegmentFileCacheTests {
    /// Descriptors and mappings of this process that point into `dir`.
    func openInto(_ dir: String) -> (descriptors: Int, mappings: Int) {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        let descriptors = fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)"))?.hasPrefix(dir) ?? false }.count
        let maps = (try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)) ?? ""
        return (descriptors, maps.split(separator: "\n").filter { $0.contains(dir) }.count)
    }

    @Test("many partitions × many segments: files beyond sluice.segments.open.max are closed and reopened on read")
    func bounded() throws {
        let dir = TempDir()
        var config = LogConfig()
        config.segmentBytes = 2048
        config.indexIntervalBytes = 256
        let limit = 24
        let manager = try LogManager(logDir: dir.path, nowMs: 0, openSegmentsLimit: limit) { _ in config }
        let before = manager.openSegmentCounts.evictions
        let partitions = 12
        var logs: [PartitionLog] = []
        for p in 0..<partitions {
            let log = try manager.createLog(topic: "many", partition: Int32(p), config: config, nowMs: 0)
            for n in 0..<120 { _ = try log.append([makeBatch(2, tag: "p\(p)n\(n)", valueBytes: 150)], nowMs: 0) }
            logs.append(log)
        }
        let sealed = logs.reduce(0) { $0 + $1.segmentCount - 1 }
        #expect(sealed > 4 * limit, "the test needs many more sealed segments (\(sealed)) than the limit")
        // Every record reads back, from segments whose files were closed and reopened.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3 {
            for log in logs.shuffled(using: &rng) {
                var offset: Int64 = 0
                while offset < log.logEndOffset {
                    let r = try log.read(from: offset, maxBytes: 1)
                    var batches = RecordBatchSequence(r.records)
                    guard let batch = batches.next() else { Issue.record("\(log.name): nothing at \(offset)"); break }
                    #expect(batch.baseOffset <= offset && offset <= batch.lastOffset)
                    let values = try batch.records().map { String(buffer: $0.value!) }
                    let p = log.partition, n = batch.baseOffset / 2
                    #expect(values.last?.hasSuffix("p\(p)n\(n)-1") == true, "\(log.name) offset \(offset): \(values)")
                    // sendfile slices dup the descriptor: they stay valid after eviction.
                    let slices = try log.readSlices(from: offset, maxBytes: 1)
                    for s in slices.slices { close(s.descriptor) }
                    offset = batch.nextOffset
                }
            }
        }
        let counts = manager.openSegmentCounts
        #expect(counts.evictions > before, "nothing was ever closed")
        let slack = limit / 8 + 1
        #expect(counts.open <= limit + slack)
        // What the process really holds: per open sealed segment one descriptor and up to two
        // index mappings; per active segment its descriptor and two mapped indexes (plus index
        // descriptors kept by the mappings' files).
        let (descriptors, mappings) = openInto(dir.path)
        #expect(descriptors <= (limit + slack + partitions) * 3, "\(descriptors) descriptors into the log directory")
        #expect(mappings <= (limit + slack + partitions) * 2, "\(mappings) mappings into the log directory")
        #expect(descriptors < sealed, "as many descriptors (\(descriptors)) as sealed segments (\(sealed)): nothing is bounded")
        // Retention and a clean restart work on segments whose files are closed.
        try manager.shutdown(nowMs: 0)
        let again = try LogManager(logDir: dir.path, nowMs: 0, openSegmentsLimit: limit) { _ in config }
        #expect(again.hadCleanShutdown)
        for p in 0..<partitions {
            let log = again.log(topic: "many", partition: Int32(p))!
            #expect(log.logEndOffset == 240)
            #expect(try log.offset(forTimestamp: 1_000)?.offset == 0)
            _ = try log.deleteRecords(before: 200, nowMs: 0)
            #expect(log.logStartOffset == 200)
            let r = try log.read(from: 200, maxBytes: 1)
            #expect(RecordBatchSequence(r.records).map(\.baseOffset).first == 200)
        }
        try again.shutdown(nowMs: 0)
    }
}
