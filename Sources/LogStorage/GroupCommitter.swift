import Dispatch
import Foundation
import Logging
import Synchronization
import SystemIO

/// Group commit across partitions: the fdatasyncs that durability `ack` (and a due `interval`)
/// owes before acknowledging are handed to one of `sluice.storage.threads` commit threads, each
/// owning an io_uring. A thread takes every request that arrived since its last round, merges
/// them per log (the highest offset wins), and submits one fdatasync per dirty segment of every
/// log in one `io_uring_enter`: the disk sees them together instead of one after another, and a
/// request that arrives while a round is in flight rides on the next one. A log always goes to
/// the same thread, so its rounds never overlap.
///
/// With a write-behind (`sluice.io.mode=direct`, or `sluice.io.buffered.submit=ring`) a round
/// first writes what the waiting logs' active segments have staged (`WriteBehind`): per log one
/// vectored page-cache write of the received batches (`BufferedWriteBehind`), or the block
/// holding the written end through the page cache and the blocks after it with O_DIRECT
/// (`DirectWriter`), every log's parts in one `io_uring_enter`; it syncs afterwards only for the
/// requests that asked for durability.
///
/// Waiters are called on the commit thread; they must not block.
///
/// Under a simulated disk (`FileObservers` installed) the syncs run through `FileHandle` so the
/// simulation sees them; the ring is the only thing that changes.
public final class GroupCommitter: Sendable {
    public typealias Completion = @Sendable (Result<Void, StorageError>) -> Void

    struct Request {
        let log: PartitionLog
        let upTo: Int64
        let durable: Bool
        let startedNs: UInt64
        let done: Completion
    }

    private final class Worker: Sendable {
        let queue = Mutex<(requests: [Request], stopping: Bool)>(([], false))
        let wake = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
    }

    private let workers: [Worker]
    private let latency: LatencyRecorder
    private let onCommit: (@Sendable (_ nanoseconds: UInt64) -> Void)?
    public let backend: String

    /// `threads` commit threads (at least one). `onCommit` sees each request's latency, from
    /// `sync` to its completion.
    public init(threads: Int, preference: DiskRing.Preference = .automatic, logger: Logger = Logger(label: "sluice.storage.commit"),
                onCommit: (@Sendable (_ nanoseconds: UInt64) -> Void)? = nil) {
        let count = max(1, threads)
        workers = (0..<count).map { _ in Worker() }
        latency = LatencyRecorder()
        self.onCommit = onCommit
        let probe: DiskRing.Backend = (try? DiskRing(entries: 8, preference: preference, logger: logger).backend) ?? .syscalls(reason: "io_uring setup failed")
        switch probe {
        case .ioUring: backend = "io_uring"
        case .syscalls(let reason): backend = "syscalls (\(reason))"
        }
        for (i, worker) in workers.enumerated() {
            let thread = Thread { [latency, onCommit] in
                Self.run(worker, preference: preference, latency: latency, onCommit: onCommit, logger: logger)
                worker.finished.signal()
            }
            thread.name = "sluice-commit-\(i)"
            thread.start()
        }
    }

    /// Calls `done` once everything below `offset` in `log` is in its files and, when `durable`,
    /// on disk; or with the error that took the log offline.
    public func sync(_ log: PartitionLog, upTo offset: Int64, durable: Bool = true, done: @escaping Completion) {
        let worker = workers[Int(UInt(bitPattern: log.name.hashValue) % UInt(workers.count))]
        let request = Request(log: log, upTo: offset, durable: durable, startedNs: DispatchTime.now().uptimeNanoseconds, done: done)
        let accepted = worker.queue.withLock { q -> Bool in
            guard !q.stopping else { return false }
            q.requests.append(request)
            return true
        }
        if accepted { worker.wake.signal() } else { done(.failure(.closed)) }
    }

    /// Blocking convenience: returns once the sync completed.
    public func syncAndWait(_ log: PartitionLog, upTo offset: Int64, durable: Bool = true) throws(StorageError) {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<Void, StorageError>>(.success(()))
        sync(log, upTo: offset, durable: durable) { result in
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        try outcome.withLock { $0 }.get()
    }

    /// Request latencies since the start (or the last `resetLatencies`).
    public var latencies: LatencySummary { latency.summary() }
    public func resetLatencies() { latency.reset() }

    /// Finishes every queued request, then stops the threads; later `sync` calls fail with
    /// `StorageError.closed`.
    public func shutdown() {
        for worker in workers {
            let first = worker.queue.withLock { q -> Bool in
                defer { q.stopping = true }
                return !q.stopping
            }
            guard first else { continue }
            worker.wake.signal()
            worker.finished.wait()
        }
    }

    // MARK: - the commit thread

    private static func run(_ worker: Worker, preference: DiskRing.Preference, latency: LatencyRecorder, onCommit: (@Sendable (UInt64) -> Void)?, logger: Logger) {
        var ring: DiskRing
        do { ring = try DiskRing(entries: DiskRing.entriesDefault, preference: preference, logger: logger) } catch {
            ring = try! DiskRing(preference: .syscalls, logger: logger)
        }
        var completions: [DiskCompletion] = []
        while true {
            worker.wake.wait()
            let (requests, stopping) = worker.queue.withLock { q in
                defer { q.requests.removeAll(keepingCapacity: true) }
                return (q.requests, q.stopping)
            }
            if !requests.isEmpty { round(requests, ring: &ring, completions: &completions, latency: latency, onCommit: onCommit) }
            if stopping {
                // Whatever raced in before `stopping` was set is drained; later calls are refused.
                let rest = worker.queue.withLock { q in defer { q.requests.removeAll() }; return q.requests }
                if !rest.isEmpty { round(rest, ring: &ring, completions: &completions, latency: latency, onCommit: onCommit) }
                return
            }
        }
    }

    /// Write-behind (direct mode, or `sluice.io.buffered.submit=ring`): writes the staged batches
    /// below each log's offset, one write per log, all in flight at once; repeats for a log whose
    /// writer was busy with a synchronous write or had more staged than one write takes.
    private static func writeStaged(_ logs: [(id: ObjectIdentifier, log: PartitionLog, upTo: Int64)], ring: inout DiskRing,
                                    completions: inout [DiskCompletion], outcome: inout [ObjectIdentifier: StorageError]) {
        var waiting = logs
        while !waiting.isEmpty {
            var writes: [(entry: (id: ObjectIdentifier, log: PartitionLog, upTo: Int64), writer: any WriteBehind, path: String, write: StagedWrite)] = []
            var operations = 0
            var again: [(id: ObjectIdentifier, log: PartitionLog, upTo: Int64)] = []
            for entry in waiting {
                switch entry.log.planWrite(upTo: entry.upTo) {
                case .written: break
                case .failed(let error): outcome[entry.id] = error
                case .write(let writer, let path):
                    // A write has at most two parts (DirectWriter), each one operation.
                    if operations + 2 <= ring.submissionCapacity, let write = writer.beginWrite() {
                        writes.append((entry, writer, path, write))
                        operations += write.parts.count
                    } else if operations + 2 > ring.submissionCapacity {
                        again.append(entry)  // the next pass
                    } else {
                        // Written, failed or busy meanwhile (an appender that needed room writes
                        // synchronously): the next pass sees which.
                        do { try writer.drain() } catch { outcome[entry.id] = entry.log.writeFailed(error, path: path); continue }
                        again.append(entry)
                    }
                }
            }
            guard !writes.isEmpty else {
                waiting = again
                continue
            }
            // Each part of a write is one vectored write (for a DirectWriter: the partial block
            // through the page cache, the whole blocks with O_DIRECT). A part that fails fails the
            // write; one that comes up short is finished or fails (below).
            var errors = [Errno?](repeating: nil, count: writes.count)
            StorageStatistics.countWritesBehind(writes.count)
            if FileObservers.isActive {
                for (i, w) in writes.enumerated() { errors[i] = w.writer.perform(w.write) }
            } else {
                // Per operation: its write, its part, and the byte count it must transfer.
                var owner: [Int] = []
                var partOf: [StagedWrite.Part] = []
                var expected: [Int] = []
                for (i, w) in writes.enumerated() {
                    for part in w.write.parts {
                        let operation: DiskOperation = part.vectors.count == 1
                            ? .write(.descriptor(part.descriptor), UnsafeRawBufferPointer(start: part.vectors[0].iov_base, count: part.bytes), offset: part.offset)
                            : .writev(.descriptor(part.descriptor), part.vectors, offset: part.offset)
                        let accepted = ring.enqueue(operation, tag: UInt64(owner.count))
                        precondition(accepted, "the ring has room for every part of this pass")
                        owner.append(i)
                        partOf.append(part)
                        expected.append(part.bytes)
                    }
                }
                completions.removeAll(keepingCapacity: true)
                do {
                    try ring.submit(waitingFor: owner.count)
                    while completions.count < owner.count { try ring.reap(into: &completions, minimum: owner.count - completions.count) }
                    for c in completions {
                        let i = owner[Int(c.tag)]
                        switch c.result {
                        case .failure(let e): errors[i] = errors[i] ?? e
                        case .success(let n) where n != expected[Int(c.tag)]:
                            // A short page-cache write is finished here (the next write reports
                            // a real error: a full disk, a failing one); a short O_DIRECT one fails.
                            do { try partOf[Int(c.tag)].finish(after: n) } catch { errors[i] = errors[i] ?? error }
                        case .success: break
                        }
                    }
                } catch {
                    for i in errors.indices { errors[i] = errors[i] ?? error }
                    ring = try! DiskRing(preference: .syscalls)
                }
            }
            for (i, w) in writes.enumerated() {
                w.writer.finishWrite(w.write, error: errors[i])
                if let error = errors[i] {
                    outcome[w.entry.id] = w.entry.log.writeFailed(error, path: w.path)
                } else {
                    again.append(w.entry)
                }
            }
            waiting = again
        }
    }

    private static func round(_ requests: [Request], ring: inout DiskRing, completions: inout [DiskCompletion],
                              latency: LatencyRecorder, onCommit: (@Sendable (UInt64) -> Void)?) {
        // One plan per log, covering the highest offset any request asked for.
        var order: [ObjectIdentifier] = []
        var byLog: [ObjectIdentifier: (log: PartitionLog, upTo: Int64, durable: Bool)] = [:]
        for r in requests {
            let id = ObjectIdentifier(r.log)
            if let seen = byLog[id] {
                byLog[id] = (r.log, max(seen.upTo, r.upTo), seen.durable || r.durable)
            } else {
                byLog[id] = (r.log, r.upTo, r.durable)
                order.append(id)
            }
        }
        var outcome: [ObjectIdentifier: StorageError] = [:]
        var waiting: [ObjectIdentifier: [Request]] = [:]
        for r in requests { waiting[ObjectIdentifier(r.log), default: []].append(r) }
        // A log's requests are answered as soon as its own work is done, not at the end of the
        // round: one partition's answer (and its consumers' wake-up) never waits for another
        // partition's fdatasync.
        func complete(_ id: ObjectIdentifier) {
            let end = DispatchTime.now().uptimeNanoseconds
            for r in waiting.removeValue(forKey: id) ?? [] {
                // Only fsync waits are flush latencies (the broker's LogFlushRateAndTimeMs); a
                // direct write's wait is part of the produce time.
                if r.durable {
                    let took = end &- r.startedNs
                    latency.record(took)
                    onCommit?(took)
                }
                if let error = outcome[id] { r.done(.failure(error)) } else { r.done(.success(())) }
            }
        }
        writeStaged(order.map { ($0, byLog[$0]!.log, byLog[$0]!.upTo) }, ring: &ring, completions: &completions, outcome: &outcome)
        var plans: [(id: ObjectIdentifier, log: PartitionLog, plan: PartitionLog.SyncPlan)] = []
        for id in order {
            if outcome[id] == nil && byLog[id]!.durable {
                let (log, upTo, _) = byLog[id]!
                switch log.planSync(upTo: upTo) {
                case .durable: break
                case .failed(let error): outcome[id] = error
                case .sync(let plan) where plan.segments.isEmpty:
                    // No dirty file (nothing past the durable offset, e.g. a request beyond a
                    // truncated end): finished at once, since no completion would ever come.
                    if let error = log.finishSync(plan, error: Self.syncDirectory(of: plan), nowMs: Int64(Date().timeIntervalSince1970 * 1000)) {
                        outcome[id] = error
                    }
                case .sync(let plan):
                    plans.append((id, log, plan))
                    continue
                }
            }
            complete(id)  // written (or failed) and owing no fdatasync
        }
        // Every dirty segment file of every planned log: one fdatasync each, all in flight at once.
        var files: [(plan: Int, segment: (files: SegmentFiles, path: String))] = []
        for (i, p) in plans.enumerated() { for s in p.plan.segments { files.append((i, s)) } }
        // New directory entries first (a rolled or new segment's files): rare, one fsync each.
        var errors = plans.map { Self.syncDirectory(of: $0.plan) }
        var unsynced = plans.map(\.plan.segments.count)
        // One segment file's fdatasync ended; the log is finished when its last one has.
        func synced(_ file: Int, _ error: StorageError?) {
            let i = files[file].plan
            if let error, errors[i] == nil { errors[i] = error }
            unsynced[i] -= 1
            guard unsynced[i] == 0 else { return }
            let p = plans[i]
            if let error = p.log.finishSync(p.plan, error: errors[i], nowMs: Int64(Date().timeIntervalSince1970 * 1000)) {
                outcome[p.id] = error
            }
            complete(p.id)
        }
        if FileObservers.isActive {
            for (k, (_, segment)) in files.enumerated() {
                StorageStatistics.countFsync()
                do { try segment.files.log.dataSync(); synced(k, nil) } catch { synced(k, .io(error, path: segment.path)) }
            }
        } else {
            var next = 0
            while next < files.count {
                let chunk = min(files.count - next, ring.submissionCapacity)
                for k in 0..<chunk {
                    StorageStatistics.countFsync()
                    let accepted = ring.enqueue(.fdatasync(.descriptor(files[next + k].segment.files.log.descriptor)), tag: UInt64(next + k))
                    precondition(accepted, "the ring has room for a chunk of its capacity")
                }
                var pending = Set(next..<(next + chunk))
                do {
                    try ring.submit()
                    while !pending.isEmpty {
                        completions.removeAll(keepingCapacity: true)
                        try ring.reap(into: &completions, minimum: 1)
                        for c in completions {
                            let k = Int(c.tag)
                            pending.remove(k)
                            if case .failure(let e) = c.result { synced(k, .io(e, path: files[k].segment.path)) } else { synced(k, nil) }
                        }
                    }
                } catch {
                    // The ring itself failed: nothing still pending can be called durable.
                    for k in pending.sorted() { synced(k, .io(error, path: files[k].segment.path)) }
                    ring = try! DiskRing(preference: .syscalls)
                }
                next += chunk
            }
        }
    }
}

extension GroupCommitter {
    /// fsyncs the plan's partition directory if it has entries not yet durable.
    static func syncDirectory(of plan: PartitionLog.SyncPlan) -> StorageError? {
        guard let directory = plan.directory else { return nil }
        do { try FileSystem.syncDirectory(directory) } catch { return .io(error, path: directory) }
        return nil
    }
}

/// p50/p99/max of recorded latencies, in microseconds.
public struct LatencySummary: Sendable, CustomStringConvertible {
    public var count: Int
    public var p50Us: Double
    public var p99Us: Double
    public var p999Us: Double
    public var maxUs: Double
    public var description: String {
        String(format: "n=%d p50=%.0fus p99=%.0fus p99.9=%.0fus max=%.0fus", count, p50Us, p99Us, p999Us, maxUs)
    }
}

/// A log-linear latency histogram (8 sub-buckets per power of two: within 12.5%), cheap enough
/// to record every request under a mutex.
final class LatencyRecorder: Sendable {
    private static let subBuckets = 8
    private let buckets = Mutex<(counts: [Int], count: Int, max: UInt64)>(([Int](repeating: 0, count: 64 * 8), 0, 0))

    static func bucket(_ ns: UInt64) -> Int {
        guard ns >= UInt64(subBuckets) else { return Int(ns) }
        let power = 63 - ns.leadingZeroBitCount              // ≥ 3
        let sub = Int((ns >> UInt64(power - 3)) & 7)
        return (power - 2) * subBuckets + sub
    }

    static func lowerBound(_ bucket: Int) -> UInt64 {
        guard bucket >= subBuckets else { return UInt64(bucket) }
        let power = bucket / subBuckets + 2
        let sub = UInt64(bucket % subBuckets)
        return (8 + sub) << UInt64(power - 3)
    }

    func record(_ ns: UInt64) {
        let b = Self.bucket(ns)
        buckets.withLock { h in
            h.counts[min(b, h.counts.count - 1)] += 1
            h.count += 1
            h.max = max(h.max, ns)
        }
    }

    func reset() { buckets.withLock { h in h = ([Int](repeating: 0, count: h.counts.count), 0, 0) } }

    func summary() -> LatencySummary {
        let (counts, count, maxNs) = buckets.withLock { ($0.counts, $0.count, $0.max) }
        func percentile(_ p: Double) -> Double {
            guard count > 0 else { return 0 }
            let rank = Int((Double(count) * p).rounded(.up))
            var seen = 0
            for (b, c) in counts.enumerated() where c > 0 {
                seen += c
                if seen >= rank { return Double(min(Self.lowerBound(b + 1), maxNs)) / 1000 }
            }
            return Double(maxNs) / 1000
        }
        return LatencySummary(count: count, p50Us: percentile(0.5), p99Us: percentile(0.99), p999Us: percentile(0.999),
                              maxUs: Double(maxNs) / 1000)
    }
}
