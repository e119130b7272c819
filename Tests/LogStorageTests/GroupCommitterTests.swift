import Dispatch
import Foundation
import Synchronization
import Testing
@testable import LogStorage
import SystemIO

@Suite("Group commit")
struct GroupCommitterTests {
    @Test("syncs requested from many threads and partitions all complete, each leaving its offset durable")
    func concurrentPartitions() throws {
        let dir = TempDir()
        var config = LogConfig()
        config.durability = .ack
        config.segmentBytes = 64 << 10  // rolls while syncs are in flight
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let logs = try (0..<8).map { try manager.createLog(topic: "gc", partition: Int32($0), config: config, nowMs: 0) }
        let committer = GroupCommitter(threads: 2)
        let appenders = 4, perAppender = 60
        let completed = Mutex<(ok: Int, failed: [String], early: [String])>((0, [], []))
        let allDone = DispatchSemaphore(value: 0)
        DispatchQueue.concurrentPerform(iterations: appenders) { a in
            for n in 0..<perAppender {
                let log = logs[(a * 3 + n) % logs.count]
                let r = try! log.append([makeBatch(3, tag: "a\(a)n\(n)", valueBytes: 300)], nowMs: 0, deferFlush: true)
                #expect(r.needsFlush)
                committer.sync(log, upTo: r.lastOffset + 1) { result in
                    // The promise: once told, the offset is durable.
                    let durable = log.durableOffset
                    completed.withLock { c in
                        switch result {
                        case .success: c.ok += 1
                        case .failure(let e): c.failed.append("\(e)")
                        }
                        if durable <= r.lastOffset { c.early.append("\(log.name) durable \(durable) <= \(r.lastOffset)") }
                    }
                    allDone.signal()
                }
            }
        }
        for _ in 0..<(appenders * perAppender) {
            #expect(allDone.wait(timeout: .now() + 30) == .success, "a sync never completed")
        }
        let c = completed.withLock { $0 }
        #expect(c.ok == appenders * perAppender)
        #expect(c.failed.isEmpty)
        #expect(c.early.isEmpty)
        for log in logs { #expect(log.durableOffset == log.logEndOffset) }
        let latencies = committer.latencies
        #expect(latencies.count == appenders * perAppender)
        #expect(latencies.p50Us > 0 && latencies.p50Us <= latencies.p99Us && latencies.p99Us <= latencies.maxUs + 0.001)
        committer.shutdown()
        try manager.shutdown(nowMs: 0)
    }

    @Test("after shutdown, and for a closed log, a sync fails instead of hanging")
    func refusals() throws {
        let dir = TempDir()
        var config = LogConfig()
        config.durability = .ack
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "gc", partition: 0, config: config, nowMs: 0)
        let committer = GroupCommitter(threads: 1)
        let r = try log.append([makeBatch(2, tag: "x")], nowMs: 0, deferFlush: true)
        try committer.syncAndWait(log, upTo: r.lastOffset + 1)
        #expect(log.durableOffset == 2)
        // Already durable: answered without a sync.
        try committer.syncAndWait(log, upTo: 1)
        let r2 = try log.append([makeBatch(1, tag: "y")], nowMs: 0, deferFlush: true)
        try manager.shutdown(nowMs: 0)  // closes (and flushes) the log
        try committer.syncAndWait(log, upTo: r2.lastOffset + 1)  // covered by the close's flush
        #expect(throws: StorageError.closed) { try committer.syncAndWait(log, upTo: r2.lastOffset + 2) }
        committer.shutdown()
        #expect(throws: StorageError.closed) { try committer.syncAndWait(log, upTo: 0) }
    }

    @Test("latency percentiles come from a log-linear histogram accurate to 12.5%")
    func histogram() {
        let recorder = LatencyRecorder()
        for us in 1...1000 { recorder.record(UInt64(us) * 1000) }
        let s = recorder.summary()
        #expect(s.count == 1000)
        #expect(abs(s.p50Us - 500) <= 500 * 0.125 + 1, "p50 \(s.p50Us)")
        #expect(abs(s.p99Us - 990) <= 990 * 0.125 + 1, "p99 \(s.p99Us)")
        #expect(s.maxUs == 1000)
        for ns: UInt64 in [0, 1, 7, 8, 9, 15, 16, 1000, 123_456_789, UInt64.max / 2] {
            let b = LatencyRecorder.bucket(ns)
            #expect(LatencyRecorder.lowerBound(b) <= ns && ns < LatencyRecorder.lowerBound(b + 1), "\(ns) in bucket \(b)")
        }
    }
}
