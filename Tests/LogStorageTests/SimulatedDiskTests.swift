#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Records
import SystemIO
import Testing
@testable import LogStorage

/// Many seeds of: append under random settings while the simulated disk fails writes and syncs,
/// then crash (the process, or the power), recover, check, and go on; three such rounds per seed.
@Suite("Simulated disk: torn and lost writes, ENOSPC, EIO, power loss")
struct SimulatedDiskTests {
    enum Crash: String { case process, power }

    /// 64 seeds in the normal test run; `SLUICE_SIM_SEEDS=N` (or `make sim SIM_SEEDS=N`) runs N,
    /// `SLUICE_SIM_SEED=S` only seed S (to replay a failure).
    static let seeds: [UInt64] = {
        if let one = getenv("SLUICE_SIM_SEED").flatMap({ UInt64(String(cString: $0)) }) { return [one] }
        let count = getenv("SLUICE_SIM_SEEDS").flatMap { UInt64(String(cString: $0)) } ?? 64
        return Array(0..<count)
    }()

    @Test("recovery never serves a corrupt batch and never loses an offset reported durable", arguments: seeds)
    func crashes(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9 &+ 17)
        let dir = TempDir()
        var config = LogConfig()
        config.segmentBytes = [2048, 8192, 1 << 20][Int(rng.next() % 3)]
        config.indexIntervalBytes = 256
        config.segmentIndexBytes = 4096
        // Buffered written inline, buffered written behind (sluice.io.buffered.submit=ring), direct.
        let mode = rng.next() % 3
        config.ioMode = mode == 2 ? .direct : .buffered
        config.bufferedSubmit = mode == 1 ? .ring : .inline
        config.durability = [.none, .interval, .ack][Int(rng.next() % 3)]
        config.flushMessages = 4
        config.preallocate = rng.next() % 4 == 0
        let disk = SimulatedDisk(root: dir.path, seed: rng.next())
        FileObservers.install(disk)
        defer { FileObservers.uninstall(disk) }
        // Odd seeds wait for `ack` through the group committer (the broker's path), even ones flush inline.
        let committer: GroupCommitter? = seed % 2 == 1 ? GroupCommitter(threads: 1) : nil
        defer { committer?.shutdown() }
        let context = "seed \(seed): segment.bytes \(config.segmentBytes), \(config.ioMode) (\(config.bufferedSubmit)), durability \(config.durability), preallocate \(config.preallocate), committer \(committer != nil)"

        var expected: [Int64: String] = [:]  // the value acknowledged at each offset
        var durable: Int64 = 0               // the highest durable offset the engine reported
        var history: [String] = []
        var attempted: Set<String> = []      // every value sent, acknowledged or not
        for round in 0..<3 {
            disk.setFaults(SimulatedDisk.Faults())  // recovery itself runs on a healthy disk
            // Roll flushes run when the seed says (before a crash, or never), not on a queue.
            let rollFlusher = RollFlusher.manual()
            let manager = try LogManager(logDir: dir.path, nowMs: 0, rollFlusher: rollFlusher) { _ in config }
            let log = try manager.log(topic: "sim", partition: 0) ?? manager.createLog(topic: "sim", partition: 0, config: config, nowMs: 0)

            // What survived: nothing reported durable is missing, every batch is intact, and
            // every offset holds the value acknowledged for it.
            let end = log.logEndOffset
            #expect(end >= durable, "\(context), round \(round): log end \(end) below the reported durable offset \(durable); \(disk.injected) \(history)")
            let back = try readAll(log)
            #expect(back.map(\.0) == Array(log.logStartOffset..<end), "\(context): offsets are not contiguous")
            // An append that failed may still have reached the log (as in Kafka, an error is
            // not a promise of absence), but only as one of the values that were sent.
            for (offset, value) in back where expected[offset].map({ $0 != value }) ?? !attempted.contains(value) {
                Issue.record("\(context), round \(round): offset \(offset) reads \(value), acknowledged as \(expected[offset] ?? "nothing")")
                break
            }
            let report = SegmentChecker.check(directory: log.directory, startOffset: 0)
            #expect(report.problems.isEmpty, "\(context), round \(round): \(report.problems) \(disk.injected) \(history)")
            expected = expected.filter { $0.key < end }
            durable = max(durable, log.durableOffset)

            // Appends, flushes and checkpoints while the disk misbehaves.
            disk.setFaults(SimulatedDisk.Faults(writeEIO: Double(rng.next() % 3) / 100, writeENOSPC: Double(rng.next() % 4) / 100,
                                                syncEIO: Double(rng.next() % 3) / 100))
            for step in 0..<(40 + Int(rng.next() % 80)) {
                let records = 1 + Int(rng.next() % 5)
                let tag = "r\(round)s\(step)"
                let valueBytes = Int(rng.next() % 600)
                for i in 0..<records { attempted.insert(String(repeating: "v", count: valueBytes) + "\(tag)-\(i)") }
                do {
                    // Through the committer, write-behind's writes run there too, and
                    // some appends are not waited for: their batches may be only staged at a crash.
                    let r = try log.append([makeBatch(records, tag: tag, valueBytes: valueBytes)], nowMs: Int64(step),
                                           deferFlush: committer != nil, deferWrite: committer != nil)
                    if committer != nil && rng.next() % 8 == 0 { continue }  // sent, never acknowledged
                    if let committer, r.needsFlush || r.needsWrite {
                        try committer.syncAndWait(log, upTo: r.lastOffset + 1, durable: r.needsFlush)
                    }
                    #expect(log.writtenOffset > r.lastOffset, "\(context): an acknowledged append is not in the file")
                    for i in 0..<records {
                        expected[r.baseOffset + Int64(i)] = String(repeating: "v", count: valueBytes) + "\(tag)-\(i)"
                    }
                    if config.durability == .ack {
                        #expect(log.durableOffset > r.lastOffset, "\(context): ack append returned before it was durable")
                    }
                } catch {
                    // A failed append is not acknowledged; the log may have gone offline.
                }
                if rng.next() % 4 == 0 { rollFlusher.runPending() }
                if rng.next() % 10 == 0 { try? log.flush(nowMs: Int64(step)) }
                if rng.next() % 15 == 0 { try? manager.checkpoint() }
                durable = max(durable, log.durableOffset)
                if log.offline != nil { break }
            }
            let crash: Crash = rng.next() % 3 == 0 ? .process : .power
            if rng.next() % 2 == 0 { rollFlusher.runPending() }
            rollFlusher.dropPending()
            history.append("round \(round): end \(log.logEndOffset) durable \(log.durableOffset) offline \(log.offline ?? "-") crash \(crash)")
            if crash == .power { history += disk.powerLoss() }
            // .process: the files stay as the page cache has them; unsynced writes can still be
            // lost by a power cut in a later round, which is what the durable offset promises against.
        }
    }

    @Test("a failed fdatasync takes the log offline: no later flush may call the lost writes durable")
    func fsyncFailureTakesTheLogOffline() throws {
        let dir = TempDir()
        var config = LogConfig()
        config.durability = .ack
        let disk = SimulatedDisk(root: dir.path, seed: 1)
        FileObservers.install(disk)
        defer { FileObservers.uninstall(disk) }
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let log = try manager.createLog(topic: "f", partition: 0, config: config, nowMs: 0)
        _ = try log.append([makeBatch(2, tag: "before")], nowMs: 0)
        #expect(log.durableOffset == 2)
        disk.setFaults(SimulatedDisk.Faults(syncEIO: 1))
        #expect(throws: StorageError.self) { _ = try log.append([makeBatch(2, tag: "lost")], nowMs: 0) }
        #expect(log.offline != nil)
        #expect(log.durableOffset == 2)
        // The next recovery will read from the disk, not from pages the kernel never wrote.
        let marker = "\(log.directory)/\(PartitionLog.writebackFailedFile)"
        #expect(Directory.fileExists(marker))
        disk.setFaults(SimulatedDisk.Faults())
        // The disk works again, but the log stays offline until a restart recovers it.
        #expect(throws: StorageError.offline(log.offline!)) { _ = try log.append([makeBatch(1, tag: "after")], nowMs: 0) }
        #expect(throws: StorageError.self) { try log.flush(nowMs: 0) }
        #expect(log.durableOffset == 2)
        #expect(throws: StorageError.self) { try manager.shutdown(nowMs: 0) }
        #expect(!Directory.fileExists("\(dir.path)/\(LogManager.cleanShutdownFile)"))
        disk.powerLoss()
        let reopened = try LogManager(logDir: dir.path, nowMs: 0) { _ in config }
        let again = try #require(reopened.log(topic: "f", partition: 0))
        #expect(!Directory.fileExists(marker))
        #expect(again.logEndOffset >= 2)
        #expect(try readAll(again).prefix(2).map(\.1).allSatisfy { $0.contains("before") })
        #expect(try again.append([makeBatch(1, tag: "recovered")], nowMs: 0).baseOffset == again.logEndOffset - 1)
    }

    @Test("ENOSPC fails the append but not the log: appends succeed again once there is room")
    func noSpaceIsNotFatal() throws {
        let dir = TempDir()
        let disk = SimulatedDisk(root: dir.path, seed: 2)
        FileObservers.install(disk)
        defer { FileObservers.uninstall(disk) }
        let manager = try LogManager(logDir: dir.path, nowMs: 0) { _ in LogConfig() }
        let log = try manager.createLog(topic: "n", partition: 0, config: LogConfig(), nowMs: 0)
        _ = try log.append([makeBatch(1, tag: "a")], nowMs: 0)
        disk.setFaults(SimulatedDisk.Faults(writeENOSPC: 1))
        #expect(throws: StorageError.io(.noSpace, path: "\(log.directory)/00000000000000000000.log")) {
            _ = try log.append([makeBatch(1, tag: "b")], nowMs: 0)
        }
        #expect(log.offline == nil)
        disk.setFaults(SimulatedDisk.Faults())
        #expect(try log.append([makeBatch(1, tag: "c")], nowMs: 0).baseOffset == 1)
        #expect(try readAll(log).map(\.1).map { $0.suffix(3) } == ["a-0", "c-0"])
    }
}
