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

    @Test("a sync past the end of a log that is durable to its end is answered, not left waiting")
    func syncPastTheEndCompletes() throws {
        let dir = TempDir()
        var config = LogConfig()
        config.durability = .ack
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "past", partition: 0, config: config, nowMs: 0)
        let committer = GroupCommitter(threads: 1)
        let end = try log.append([makeBatch(3, tag: "p")], nowMs: 0, deferFlush: true).lastOffset + 1
        try committer.syncAndWait(log, upTo: end)
        #expect(log.durableOffset == end)
        // Nothing is dirty, yet the offset asked for lies beyond the end (as after a truncation).
        let told = DispatchSemaphore(value: 0)
        committer.sync(log, upTo: end + 10) { _ in told.signal() }
        #expect(told.wait(timeout: .now() + 10) == .success, "the sync was never answered")
        committer.shutdown()
        try manager.shutdown(nowMs: 0)
    }

    /// Holds the fdatasyncs of the logs it follows: `gate-0` until released, `held-0` until the
    /// waiter of `quick-0` (synced just before it in the same round) has been told.
    final class SyncGate: FileObserver, @unchecked Sendable {
        let lock = NSLock()
        var roles: [Int32: String] = [:]
        let release = DispatchSemaphore(value: 0)
        let quickTold = DispatchSemaphore(value: 0)
        var heldSawQuickTold: Bool?

        func opened(_ descriptor: Int32, path: String) -> Bool {
            for role in ["gate-0", "held-0"] where path.contains("/\(role)/") && path.hasSuffix(".log") {
                lock.withLock { roles[descriptor] = role }
                return true
            }
            return false
        }
        func willSync(_ descriptor: Int32) -> Errno? {
            switch lock.withLock({ roles[descriptor] }) {
            case "gate-0": _ = release.wait(timeout: .now() + 10)
            case "held-0":
                let told = quickTold.wait(timeout: .now() + 5) == .success
                lock.withLock { heldSawQuickTold = told }
            default: break
            }
            return nil
        }
        func closed(_ descriptor: Int32) { lock.withLock { _ = roles.removeValue(forKey: descriptor) } }
        func willWrite(_ descriptor: Int32, offset: Int64, count: Int) -> Errno? { nil }
        func wrote(_ descriptor: Int32, offset: Int64, bytes: UnsafeRawBufferPointer) {}
        func synced(_ descriptor: Int32) {}
        func truncated(_ descriptor: Int32, to size: Int64) {}
        func droppedCleanCache(_ descriptor: Int32) {}
        func renamed(_ from: String, to: String) {}
        func removed(_ path: String) {}
    }

    @Test("in one round, a log's waiters are told once its own fdatasync is done, before the next log's runs")
    func eachLogIsToldWhenItsOwnSyncEnds() throws {
        let dir = TempDir()
        var config = LogConfig()
        config.durability = .ack
        let gate = SyncGate()
        FileObservers.install(gate)
        defer { FileObservers.uninstall(gate) }
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let (first, quick, held) = (try manager.createLog(topic: "gate", partition: 0, config: config, nowMs: 0),
                                    try manager.createLog(topic: "quick", partition: 0, config: config, nowMs: 0),
                                    try manager.createLog(topic: "held", partition: 0, config: config, nowMs: 0))
        let committer = GroupCommitter(threads: 1)
        let done = DispatchSemaphore(value: 0)
        func append(_ log: PartitionLog) throws -> Int64 {
            try log.append([makeBatch(2, tag: log.topic)], nowMs: 0, deferFlush: true).lastOffset + 1
        }
        // The first round waits at the gate, so the next two requests share the second round.
        committer.sync(first, upTo: try append(first)) { _ in done.signal() }
        committer.sync(quick, upTo: try append(quick)) { result in
            if case .success = result { gate.quickTold.signal() }
            done.signal()
        }
        committer.sync(held, upTo: try append(held)) { _ in done.signal() }
        gate.release.signal()
        for _ in 0..<3 { #expect(done.wait(timeout: .now() + 30) == .success, "a sync never completed") }
        #expect(gate.lock.withLock { gate.heldSawQuickTold } == true,
                "the quick log's waiter was told only after the held log's fdatasync")
        #expect(held.durableOffset == held.logEndOffset && quick.durableOffset == quick.logEndOffset)
        committer.shutdown()
        try manager.shutdown(nowMs: 0)
    }
}
