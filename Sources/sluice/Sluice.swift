import ArgumentParser
import Broker
import Dispatch
import Foundation
import Logging
import LogStorage
import NIOCore
import NIOPosix
import Records
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A Kafka-compatible log server.",
        subcommands: [Server.self, Storage.self, Topics.self, Acls.self, Configs.self, ConsoleProducer.self, ConsoleConsumer.self,
                      ConsumerGroups.self, Perf.self, DumpLog.self]
    )
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the broker.")

    @Argument(help: "A server.properties file (Kafka's property names).")
    var properties: String?

    @Option(name: .customLong("override"), help: "A property as key=value; may repeat, applied after the file.")
    var overrides: [String] = []

    func run() async throws {
        let text = try properties.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? ""
        let config: BrokerConfig
        do { config = try BrokerConfig.parse(properties: text, overrides: overrides) } catch {
            throw ValidationError("\(error)")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = config.logLevel
            return handler
        }
        let logger = Logger(label: "sluice")
        // Every segment keeps its log and two index files open: raise the soft open-file limit
        // to the hard one (as Kafka's docs ask operators to), so many partitions do not hit EMFILE.
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let wanted = min(limit.rlim_max, 1 << 20)
            limit.rlim_cur = wanted
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { logger.info("raised the open-file limit to \(wanted)") }
        }
        // Metrics go to a Prometheus registry, served when sluice.metrics.port is set.
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        for label in BrokerMetrics.millisecondHistograms { factory.valueHistogramBuckets[label] = BrokerMetrics.millisecondBuckets }
        MetricsSystem.bootstrap(factory)
        for key in config.unknown { logger.warning("unknown property \(key) ignored") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(2, System.coreCount)))
        let pool = NIOThreadPool(numberOfThreads: min(config.storageThreads, 64))
        pool.start()
        // Descriptors first (every partition's active segment holds three), then the check of
        // what the hosted partitions need against what the process may have.
        let limits = ResourceLimits.raiseAndRead()
        let broker = try Broker(config: config, logger: logger, threadPool: pool)
        for line in limits.shortfalls(partitions: broker.openLogCount, openSegments: config.openSegmentsMax,
                                      connections: min(config.maxConnections, 1000)) {
            logger.warning("\(line)")
        }
        let server = KafkaServer(broker: broker, group: group, logger: logger)
        let port = try server.start()
        let metricsServer = MetricsServer {
            registry.emitToString() + "# TYPE sluice_log_fsyncs_total counter\nsluice_log_fsyncs_total \(StorageStatistics.fsyncs)\n"
                + "# TYPE sluice_log_write_behind_writes_total counter\nsluice_log_write_behind_writes_total \(StorageStatistics.writesBehind)\n"
                + "# TYPE sluice_log_drop_behind_passes_total counter\nsluice_log_drop_behind_passes_total \(StorageStatistics.dropBehindPasses)\n"
        }
        if config.metricsPort > 0 {
            let bound = try metricsServer.start(group: group, host: config.listenerHost, port: config.metricsPort)
            logger.info("metrics on http://\(config.listenerHost):\(bound)/metrics")
        }
        let (host, advertisedPort) = config.advertised
        for l in try config.resolveListeners() {
            logger.info("sluice \(sluiceVersion) listening on \(l.name)://\(l.host):\(server.boundPorts[l.name] ?? port) (\(l.securityProtocol.rawValue), advertised \(l.advertisedHost):\(l.advertisedPort))")
        }
        logger.info("log.dirs=\(config.logDir), cluster.id=\(broker.clusterId)")

        // SIGTERM / SIGINT (swift-service-lifecycle): stop accepting, let in-flight requests be
        // answered, flush, checkpoint and write the clean-shutdown marker.
        // The ready line is printed by the service, once the signal handlers are in place: a
        // SIGTERM sent right after it is a clean shutdown, not a kill.
        let ready = "Sluice is ready: bootstrap servers \(host):\(advertisedPort)  (log.dirs=\(config.logDir))"
        let service = BrokerService(server: server, metricsServer: metricsServer, broker: broker, group: group, pool: pool,
                                    logger: logger, readyLine: ready)
        let services = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await services.run()
    }
}

/// The broker as a lifecycle service: it runs until graceful shutdown is signalled, then stops
/// everything in order.
struct BrokerService: Service {
    let server: KafkaServer
    let metricsServer: MetricsServer
    let broker: Broker
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool
    let logger: Logger
    let readyLine: String

    func run() async throws {
        print(readyLine)
        fflush(nil)
        try? await gracefulShutdown()
        logger.info("shutting down")
        await server.stop()
        await metricsServer.stop()
        try? await group.shutdownGracefully()
        do { try broker.shutdown() } catch { logger.error("shutdown: \(error)") }
        try? await pool.shutdownGracefully()
        logger.info("stopped cleanly")
    }
}

let sluiceVersion = "0.1.0"

struct Storage: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Format, inspect, check or stress a log directory.",
                                                    subcommands: [Format.self, Info.self, Check.self, Stress.self, Compact.self])

    /// Opens a log directory as the broker would (running recovery if it was not shut down
    /// cleanly) and prints each partition's offsets.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recover a log directory and print each partition's offsets.")
        @Option(name: .customLong("log-dir")) var logDir: String
        func run() throws {
            let manager = try LogManager(logDir: logDir, nowMs: Int64(Date().timeIntervalSince1970 * 1000)) { _ in LogConfig() }
            print("clean-shutdown: \(manager.hadCleanShutdown)")
            for log in manager.allLogs.sorted(by: { $0.name < $1.name }) {
                print("\(log.name) logStartOffset=\(log.logStartOffset) logEndOffset=\(log.logEndOffset)")
            }
            try manager.shutdown(nowMs: Int64(Date().timeIntervalSince1970 * 1000))
        }
    }

    /// Appends numbered records to `stress-0` as fast as it can and prints the last offset of
    /// every append once it returns (with durability `ack`: once it is on disk). Crash tests kill
    /// it at random points and check that every printed offset survived.
    struct Stress: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Append to a log directory, printing acknowledged offsets.")
        @Option(name: .customLong("log-dir")) var logDir: String
        @Option var durability: String = "ack"
        @Option(name: .customLong("records-per-batch")) var recordsPerBatch = 10
        @Option(name: .customLong("segment-bytes")) var segmentBytes = 1 << 20
        @Option var batches = 1_000_000
        @Option(name: .customLong("record-bytes"), help: "Value size of each record.") var recordBytes = 0
        @Option(name: .customLong("io-mode"), help: "sluice.io.mode: buffered or direct.") var ioMode = "buffered"
        @Option(name: .customLong("buffered-submit"), help: "sluice.io.buffered.submit: inline (the appender writes) or ring (written behind on the commit threads' io_uring).")
        var bufferedSubmit = "inline"
        @Flag(help: "Preallocate segments (preallocate=true).") var preallocate = false
        @Option(name: .customLong("preallocate-step"), help: "sluice.preallocate.step.bytes: reserve blocks up to this far ahead of the active segment's end (0: off).")
        var preallocateStep = LogConfig().preallocateStepBytes
        @Flag(help: "Print one JSON summary line (throughput, latency) instead of each acknowledged offset; batches are built before the clock starts.")
        var summary = false
        @Option(help: "Partitions appended to concurrently, one appender thread each (with --summary).") var partitions = 1
        @Option(name: .customLong("storage-threads"), help: "sluice.storage.threads: group-commit threads.") var storageThreads = 2
        @Option(name: .customLong("commit-backend"), help: "How group commits issue fdatasync: io_uring (falls back to syscalls where unavailable) or syscalls.")
        var commitBackend = "io_uring"
        @Option(name: .customLong("in-flight"), help: "Appends per partition awaiting their commit (or, in direct mode, their write) at once (a producer's max.in.flight; with --summary).")
        var inFlight = 1
        @Option(name: .customLong("index-lookups"), help: "Random offset lookups timed after the appends (with --summary).")
        var indexLookups = 20_000

        func run() throws {
            var config = LogConfig()
            try config.set("sluice.durability", durability)
            try config.set("sluice.io.mode", ioMode)
            try config.set("sluice.io.buffered.submit", bufferedSubmit)
            config.preallocate = preallocate
            config.preallocateStepBytes = preallocateStep
            config.segmentBytes = segmentBytes
            let now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
            let manager = try LogManager(logDir: logDir, nowMs: now()) { _ in config }
            if summary {
                try runSummary(manager, config: config, now: now)
                return
            }
            let log = try manager.createLog(topic: "stress", partition: 0, config: config, nowMs: now())
            var next = log.logEndOffset
            let filler = String(repeating: "x", count: recordBytes)
            for _ in 0..<batches {
                let inputs = (0..<recordsPerBatch).map { i in
                    RecordBatchBuilder.Input(value: ByteBuffer(string: "value-\(next + Int64(i))" + filler), timestamp: now())
                }
                let result = try log.append([try RecordBatch(try RecordBatchBuilder().build(inputs))], nowMs: now())
                next = result.lastOffset + 1
                print("acked \(result.lastOffset)")
                fflush(nil)
            }
            try log.flush(nowMs: now())
            try manager.shutdown(nowMs: now())
        }

        /// The engine alone: `partitions` threads append a pool of prebuilt batches (appending
        /// never modifies a batch) to their own partition; with durability `ack` each waits for
        /// its group commit, and in direct mode for its write, as a producer waits for its
        /// acknowledgement.
        private func runSummary(_ manager: LogManager, config: LogConfig, now: @escaping @Sendable () -> Int64) throws {
            guard partitions >= 1 && partitions <= 1024 else { throw ValidationError("--partitions must be 1...1024") }
            guard inFlight >= 1 && inFlight <= 1024 else { throw ValidationError("--in-flight must be 1...1024") }
            let logs = try (0..<partitions).map { try manager.createLog(topic: "stress", partition: Int32($0), config: config, nowMs: now()) }
            let filler = String(repeating: "x", count: recordBytes)
            let pool = try (0..<64).map { n in
                try RecordBatch(try RecordBatchBuilder().build((0..<recordsPerBatch).map { i in
                    RecordBatchBuilder.Input(value: ByteBuffer(string: "value-\(n)-\(i)" + filler), timestamp: now())
                }))
            }
            guard ["io_uring", "syscalls"].contains(commitBackend) else { throw ValidationError("--commit-backend is io_uring or syscalls") }
            let committer = GroupCommitter(threads: storageThreads, preference: commitBackend == "syscalls" ? .syscalls : .automatic)
            let perPartition = max(1, batches / partitions)
            let latencies = Mutex<[Double]>([])
            let failure = Mutex<String?>(nil)
            let fsyncsBefore = StorageStatistics.fsyncs
            let started = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: partitions) { p in
                // Up to `inFlight` appends wait for their commit while the next ones are written,
                // as a producer pipelines requests; their syncs then share fdatasyncs.
                let permits = DispatchSemaphore(value: inFlight)
                let mine = Mutex<[Double]>([])
                do {
                    for n in 0..<perPartition {
                        permits.wait()
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let r = try logs[p].append([pool[(n + p) % pool.count]], nowMs: now(), deferFlush: true, deferWrite: true)
                        guard r.needsFlush || r.needsWrite else {
                            mine.withLock { $0.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000) }
                            permits.signal()
                            continue
                        }
                        committer.sync(logs[p], upTo: r.lastOffset + 1, durable: r.needsFlush) { result in
                            if case .failure(let error) = result { failure.withLock { $0 = "\(error)" } }
                            mine.withLock { $0.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000) }
                            permits.signal()
                        }
                    }
                } catch { failure.withLock { $0 = "\(error)" } }
                for _ in 0..<inFlight { permits.wait() }
                for _ in 0..<inFlight { permits.signal() }  // libdispatch traps on freeing a semaphore below its start value
                latencies.withLock { $0 += mine.withLock { $0 } }
            }
            for log in logs { try log.flush(nowMs: now()) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            if let failure = failure.withLock({ $0 }) { throw ValidationError("append failed: \(failure)") }
            let commits = committer.latencies
            committer.shutdown()
            let fsyncs = StorageStatistics.fsyncs - fsyncsBefore
            // Index lookups: random offsets of the first partition, each resolved to a file position.
            var lookupNs: [Double] = []
            let log = logs[0]
            let (start, end) = (log.logStartOffset, log.logEndOffset)
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<(end > start ? indexLookups : 0) {
                let offset = Int64.random(in: start..<end, using: &rng)
                let t0 = DispatchTime.now().uptimeNanoseconds
                guard try log.locate(offset) != nil else { throw ValidationError("offset \(offset) not found") }
                lookupNs.append(Double(DispatchTime.now().uptimeNanoseconds - t0))
            }
            try manager.shutdown(nowMs: now())
            var all = latencies.withLock { $0 }
            all.sort()
            lookupNs.sort()
            func pct(_ values: [Double], _ p: Double) -> Double { values.isEmpty ? 0 : values[min(values.count - 1, Int(Double(values.count) * p))] }
            let bytes = pool[0].byteCount * perPartition * partitions
            let fields: [(String, String)] = [
                ("durability", "\"\(durability)\""), ("io_mode", "\"\(ioMode)\""), ("buffered_submit", "\"\(bufferedSubmit)\""), ("partitions", "\(partitions)"),
                ("in_flight", "\(inFlight)"),
                ("batch_bytes", "\(pool[0].byteCount)"), ("batches", "\(perPartition * partitions)"),
                ("MBps", String(format: "%.1f", Double(bytes) / seconds / 1e6)),
                ("append_p50_us", String(format: "%.1f", pct(all, 0.5))), ("append_p99_us", String(format: "%.1f", pct(all, 0.99))),
                ("commits", "\(commits.count)"), ("commit_p50_us", String(format: "%.1f", commits.p50Us)),
                ("commit_p99_us", String(format: "%.1f", commits.p99Us)), ("fsyncs", "\(fsyncs)"),
                ("commit_backend", "\"\(committer.backend)\""),
                ("index_lookup_p50_ns", String(format: "%.0f", pct(lookupNs, 0.5))),
                ("index_lookup_p99_ns", String(format: "%.0f", pct(lookupNs, 0.99))),
            ]
            print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
        }
    }

    struct Compact: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compaction benchmark: write keyed overwrites into a fresh log, clean it once, print one JSON line.")
        @Option(name: .customLong("log-dir")) var logDir: String
        @Option var keys = 100_000
        @Option(help: "Records written per key.") var overwrites = 10
        @Option(name: .customLong("record-bytes")) var recordBytes = 100
        @Option(name: .customLong("segment-bytes")) var segmentBytes = 64 << 20
        @Option(name: .customLong("codec")) var codec = "none"

        func run() throws {
            var config = LogConfig()
            config.segmentBytes = segmentBytes
            try config.set("cleanup.policy", "compact")
            guard let compression = CompressionCodec.allCases.first(where: { $0.description == codec }) else { throw ValidationError("unknown codec \(codec)") }
            let now = { Int64(Date().timeIntervalSince1970 * 1000) }
            let manager = try LogManager(logDir: logDir, nowMs: now()) { _ in config }
            let log = try manager.createLog(topic: "compact", partition: 0, config: config, nowMs: now())
            let filler = String(repeating: "x", count: recordBytes)
            var builder = RecordBatchBuilder()
            builder.compression = compression
            var inputs: [RecordBatchBuilder.Input] = []
            for round in 0..<overwrites {
                for k in 0..<keys {
                    inputs.append(.init(key: ByteBuffer(string: String(format: "key-%09d", k)), value: ByteBuffer(string: "\(round)" + filler), timestamp: now()))
                    if inputs.count == 500 {
                        _ = try log.append([try RecordBatch(try builder.build(inputs))], nowMs: now())
                        inputs.removeAll(keepingCapacity: true)
                    }
                }
            }
            if !inputs.isEmpty { _ = try log.append([try RecordBatch(try builder.build(inputs))], nowMs: now()) }
            // Roll so everything written is cleanable.
            var roll = config
            roll.segmentBytes = 14
            log.updateConfig(roll)
            _ = try log.append([try RecordBatch(try RecordBatchBuilder().build([.init(key: ByteBuffer(string: "~"), value: nil, timestamp: now())]))], nowMs: now())
            log.updateConfig(config)
            let before = log.sizeBytes
            let started = Date()
            guard let stats = try log.clean(nowMs: now(), lastStableOffset: Int64.max, mapBytesMax: 1 << 30, force: true) else {
                throw ValidationError("nothing to clean")
            }
            let seconds = Date().timeIntervalSince(started)
            try manager.shutdown(nowMs: now())
            print("{\"keys\":\(stats.keys),\"records_read\":\(stats.recordsKept + stats.recordsRemoved),\"codec\":\"\(codec)\","
                  + "\"bytes_before\":\(before),\"bytes_read\":\(stats.bytesRead),\"bytes_written\":\(stats.bytesWritten),"
                  + "\"seconds\":\(String(format: "%.3f", seconds)),\"read_MBps\":\(String(format: "%.1f", Double(stats.bytesRead) / seconds / 1e6)),"
                  + "\"map_bytes_per_key\":\(String(format: "%.1f", Double(stats.mapBytes) / Double(max(1, stats.keys))))}")
        }
    }

    struct Format: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write meta.properties into an empty log directory.")
        @Option(name: .customLong("log-dir"), help: "The log directory.") var logDir: String
        @Option(name: .customLong("node-id")) var nodeId: Int32 = 1
        @Option(name: [.customShort("t"), .customLong("cluster-id")]) var clusterId: String?
        func run() throws {
            let info = try StorageFormat.format(logDir: logDir, nodeId: nodeId, clusterId: clusterId)
            print("Formatted \(logDir): cluster.id=\(info.clusterId) node.id=\(info.nodeId) directory.id=\(info.directoryId)")
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a log directory's meta.properties.")
        @Option(name: .customLong("log-dir")) var logDir: String
        func run() throws {
            guard let info = StorageFormat.read(logDir: logDir) else { throw ValidationError("\(logDir) is not formatted") }
            print("cluster.id=\(info.clusterId)\nnode.id=\(info.nodeId)\ndirectory.id=\(info.directoryId)")
        }
    }
}
