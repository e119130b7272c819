import ArgumentParser
import Dispatch
import Foundation
import KafkaClient
import KafkaProtocol
import NIOCore
import Records

/// `sluice perf produce|consume`, with the flags and output of Kafka's
/// kafka-producer-perf-test / kafka-consumer-perf-test.
struct Perf: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Producer and consumer performance tests.",
                                                    subcommands: [PerfProduce.self, PerfConsume.self])
}

/// `k=v` arguments (one or several per argument, separated by spaces) into a dictionary.
func keyValues(_ list: [String]) throws -> [String: String] {
    var out: [String: String] = [:]
    for item in list.flatMap({ $0.split(separator: " ").map(String.init) }) {
        guard let eq = item.firstIndex(of: "=") else { throw ValidationError("expected key=value, got \(item)") }
        out[String(item[..<eq])] = String(item[item.index(after: eq)...])
    }
    return out
}

/// A Java properties file as the Kafka tools read one: `key=value` or `key: value` per line,
/// `#` and `!` start comments. (Line continuations and escapes are not supported.)
func propertiesFile(_ path: String) throws -> [String: String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ValidationError("cannot read the properties file \(path)")
    }
    var out: [String: String] = [:]
    for raw in text.split(whereSeparator: \.isNewline) {
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
        guard let sep = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else { out[line] = ""; continue }
        out[line[..<sep].trimmingCharacters(in: .whitespaces)] = line[line.index(after: sep)...].trimmingCharacters(in: .whitespaces)
    }
    return out
}

func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
func nowUs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

/// A whole-number property, `fallback` when absent; a value that is not one is an error, as
/// Kafka's clients reject it (ConfigException) rather than run with a default.
func intProperty(_ props: [String: String], _ name: String, _ fallback: Int, minimum: Int = 0) throws -> Int {
    guard let text = props[name] else { return fallback }
    guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= minimum else {
        throw ValidationError("\(name) must be a whole number of at least \(minimum), got \(text)")
    }
    return value
}

/// The next sequence number after `count` more records, wrapping to 0 past Int32.max as
/// Kafka's producer does.
func sequence(after base: Int32, count: Int32) -> Int32 {
    base > Int32.max - count ? count - (Int32.max - base) - 1 : base + count
}

/// The producer perf test's statistics, as Kafka's tool keeps them: latencies in whole
/// milliseconds from send to acknowledgement, at most about 500,000 of them sampled for the
/// percentiles, and a window line every 5 s.
final class ProducerStats {
    private let start = nowMs()
    private var windowStart = nowMs()
    private let sampling: Int
    private var samples: [Int32] = []
    private let steadyState: Bool
    var printing = true
    private(set) var count = 0
    private var iteration = 0, bytes = 0, totalLatency = 0, maxLatency = 0
    private var windowCount = 0, windowBytes = 0, windowLatency = 0, windowMax = 0

    init(records: Int, steadyState: Bool = false) {
        sampling = max(1, records / max(1, min(records, 500_000)))
        samples.reserveCapacity(records / sampling + 1)
        self.steadyState = steadyState
    }

    func record(latencyMs: Int, bytes n: Int, at now: Int64) {
        count += 1
        bytes += n
        totalLatency += latencyMs
        maxLatency = max(maxLatency, latencyMs)
        windowCount += 1
        windowBytes += n
        windowLatency += latencyMs
        windowMax = max(windowMax, latencyMs)
        if iteration % sampling == 0 { samples.append(Int32(clamping: latencyMs)) }
        iteration += 1
        if now - windowStart >= 5000 {
            if steadyState && count == windowCount { print("In steady state.") }
            if printing {
                let elapsed = Double(max(1, now - windowStart))
                print(String(format: "%d records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, %.1f ms max latency.",
                             windowCount, 1000 * Double(windowCount) / elapsed, 1000 * Double(windowBytes) / elapsed / 1_048_576,
                             Double(windowLatency) / Double(windowCount), Double(windowMax)))
            }
            windowStart = now
            windowCount = 0
            windowBytes = 0
            windowLatency = 0
            windowMax = 0
        }
    }

    func printTotal() {
        let elapsed = Double(max(1, nowMs() - start))
        let sorted = samples.sorted()
        func pct(_ p: Double) -> Int32 { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(p * Double(sorted.count)))] }
        print(String(format: "%d%@ records sent, %f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.",
                     count, steadyState ? " steady state" : "", 1000 * Double(count) / elapsed,
                     1000 * Double(bytes) / elapsed / 1_048_576, Double(totalLatency) / Double(max(1, count)), Double(maxLatency),
                     pct(0.5), pct(0.95), pct(0.99), pct(0.999)))
    }
}

/// Kafka's tools print client metrics as a table of `group:name:{tags}` and a value.
func printMetrics(_ metrics: [(String, Double)], group: String, clientId: String) {
    let names = metrics.map { "\(group):\($0.0):{client-id=\(clientId)}" }
    let width = names.map(\.count).max() ?? 0
    print("")
    print("Metric Name".padding(toLength: width, withPad: " ", startingAt: 0) + "   Value")
    for (name, metric) in zip(names, metrics) {
        print(name.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + String(format: "%.3f", metric.1))
    }
}

struct PerfProduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce", abstract: "Like kafka-producer-perf-test.",
        discussion: """
        Records are batched per partition (sticky, as Kafka's producer does for records without keys) up to \
        batch.size or linger.ms and sent with up to max.in.flight.requests.per.connection requests in flight. \
        Properties understood: bootstrap.servers, acks (default all), batch.size (16384), linger.ms (5), \
        compression.type, max.in.flight.requests.per.connection (5), enable.idempotence (on unless acks is not \
        all), transactional.id, transaction.timeout.ms, client.id; others are ignored. Latency is measured per \
        record from the send to the acknowledgement, as Kafka's tool does.
        """)

    @Option(help: "Produce messages to this topic.") var topic: String
    @Option(name: .customLong("num-records"), help: "Number of messages to produce.") var numRecords: Int
    @Option(name: .customLong("record-size"), help: "Message size in bytes (random upper-case letters).") var recordSize: Int?
    @Option(name: .customLong("payload-file"), help: "A UTF-8 text file of payloads; each message takes one at random.") var payloadFile: String?
    @Option(name: .customLong("payload-delimiter"), help: "Separates the payloads in --payload-file.") var payloadDelimiter = "\\n"
    @Flag(name: .customLong("payload-monotonic"), help: "Payloads are the record's number, counting from 0.") var payloadMonotonic = false
    @Option(parsing: .unconditional, help: "Throttle to about this many messages/s; -1 for no limit.") var throughput: Double = -1
    @Option(name: .customLong("producer-props"), parsing: .upToNextOption,
            help: "Producer properties, k=v (win over the config file).") var producerProps: [String] = []
    @Option(name: .customLong("command-property"), parsing: .upToNextOption,
            help: "The same as --producer-props (Kafka 4.2's name).") var commandProperty: [String] = []
    @Option(name: [.customLong("producer.config"), .customLong("command-config")], help: "Producer properties file.") var producerConfig: String?
    @Option(name: .customLong("bootstrap-server"), help: "host:port; wins over bootstrap.servers.") var bootstrapServer: String?
    @Option(name: .customLong("transactional-id"), help: "Produce in transactions with this id.") var transactionalId: String?
    @Option(name: .customLong("transaction-duration-ms"), help: "Commit a transaction after this long (default 3000 when transactional).")
    var transactionDurationMs: Int?
    @Option(name: .customLong("warmup-records"), help: "Records left out of a second, steady-state summary.") var warmupRecords = 0
    @Flag(name: .customLong("print-metrics"), help: "Print the client's metrics at the end.") var printMetricsFlag = false

    func validate() throws {
        guard numRecords > 0 else { throw ValidationError("--num-records should be greater than zero") }
        let payloads = [recordSize != nil, payloadFile != nil, payloadMonotonic].filter { $0 }.count
        guard payloads == 1 else { throw ValidationError("exactly one of --record-size, --payload-file or --payload-monotonic is required") }
        if let size = recordSize, size <= 0 { throw ValidationError("--record-size should be greater than zero") }
        guard warmupRecords < numRecords else {
            throw ValidationError("--warmup-records must be fewer than --num-records")
        }
        if let d = transactionDurationMs, d <= 0 { throw ValidationError("--transaction-duration-ms should be greater than zero") }
        guard !producerProps.isEmpty || !commandProperty.isEmpty || producerConfig != nil || bootstrapServer != nil else {
            throw ValidationError("either --producer-props (--command-property), --producer.config (--command-config) or --bootstrap-server is required")
        }
    }

    func run() throws {
        var props = try producerConfig.map(propertiesFile) ?? [:]
        props.merge(try keyValues(producerProps + commandProperty)) { $1 }
        if let b = bootstrapServer { props["bootstrap.servers"] = b }
        if let t = transactionalId { props["transactional.id"] = t }
        let payloads = try readPayloads()
        let producer = try PerfProducer(topic: topic, props: props,
                                        transactionMs: transactionDurationMs ?? (props["transactional.id"] != nil ? 3000 : nil))
        if warmupRecords > 0 {
            print("Warmup first \(warmupRecords) records. Steady state results will print after the complete test summary.")
        }
        var payload = Payloads(kind: payloads, recordSize: recordSize ?? 0)
        producer.stats = ProducerStats(records: numRecords)
        let throttleStart = DispatchTime.now().uptimeNanoseconds
        for i in 0..<numRecords {
            if warmupRecords > 0 && i == warmupRecords {
                producer.steadyStats = ProducerStats(records: numRecords - warmupRecords, steadyState: true)
                producer.steadyFrom = warmupRecords
                producer.stats.printing = false
            }
            try producer.send(value: payload.next(i))
            if throughput > 0 {
                let ahead = Double(i + 1) / throughput - Double(DispatchTime.now().uptimeNanoseconds - throttleStart) / 1e9
                if ahead > 0 { try producer.idle(seconds: ahead) }
            }
        }
        try producer.close()
        producer.stats.printTotal()
        producer.steadyStats?.printTotal()
        if printMetricsFlag { printMetrics(producer.metrics(), group: "producer-metrics", clientId: producer.clientId) }
    }

    private func readPayloads() throws -> Payloads.Kind {
        if let path = payloadFile {
            let url = URL(fileURLWithPath: path)
            print("Reading payloads from: \(url.standardizedFileURL.path)")
            guard let text = try? String(contentsOf: url, encoding: .utf8), !text.isEmpty else {
                throw ValidationError("File does not exist or empty file provided.")
            }
            let delimiter = payloadDelimiter == "\\n" ? "\n" : payloadDelimiter
            let list = text.components(separatedBy: delimiter).filter { !$0.isEmpty }.map { ByteBuffer(string: $0) }
            guard !list.isEmpty else { throw ValidationError("no payloads in \(path)") }
            print("Number of messages read: \(list.count)")
            return .list(list)
        }
        return payloadMonotonic ? .monotonic : .random
    }
}


/// Where record values come from: random upper-case letters (as Kafka's tool; here slices of a
/// pool of random letters, so the values differ without a random number per byte), one of a
/// file's payloads at random, or the record's number.
struct Payloads {
    enum Kind { case random, list([ByteBuffer]), monotonic }
    let kind: Kind
    let recordSize: Int
    private var pool = ByteBuffer()
    private var rng = SplitMix64(seed: UInt64.random(in: .min ... .max))  // cheap per pick; the system generator costs a getrandom each time

    init(kind: Kind, recordSize: Int) {
        self.kind = kind
        self.recordSize = recordSize
        if case .random = kind {
            var bytes = [UInt8](repeating: 0, count: recordSize + (1 << 20) + 8)
            for i in stride(from: 0, to: bytes.count - 8, by: 8) {
                var word = rng.next()
                for j in 0..<8 {
                    bytes[i + j] = 65 + UInt8(truncatingIfNeeded: word % 26)
                    word /= 26
                }
            }
            pool = ByteBuffer(bytes: bytes[0..<(recordSize + (1 << 20))])
        }
    }

    mutating func next(_ i: Int) -> ByteBuffer {
        switch kind {
        case .random: pool.getSlice(at: Int.random(in: 0...(1 << 20), using: &rng), length: recordSize)!
        case .list(let list): list[Int.random(in: 0..<list.count, using: &rng)]
        case .monotonic: ByteBuffer(string: String(i))
        }
    }
}

/// The perf test's producer: one connection, batches per partition, several requests in flight,
/// idempotent or transactional as the properties say.
final class PerfProducer {
    let client: KafkaClient
    let clientId: String
    let topic: String
    let acks: Int16
    let codec: CompressionCodec
    let batchBytes: Int
    let lingerMs: Int64
    let maxInFlight: Int
    let transactionalId: String?
    let transactionNs: UInt64?
    let producer: (id: Int64, epoch: Int16)?
    let partitions: Int32
    var stats = ProducerStats(records: 1)
    var steadyStats: ProducerStats?

    private var partition: Int32
    private var rng = SplitMix64(seed: UInt64.random(in: .min ... .max))  // cheap per pick; the system generator costs a getrandom each time
    private var open: [RecordBatchBuilder.Input] = []
    private var openBytes = 0
    /// Records handed to `send` so far; those numbered `steadyFrom` and on count in `steadyStats`.
    private var sent = 0
    var steadyFrom = Int.max
    private var sequences: [Int32: Int32] = [:]
    /// A request in flight: the send time of each record is its timestamp, the first record's number `first`.
    private struct InFlight {
        var correlationId: Int32, version: Int16, records: [RecordBatchBuilder.Input], first: Int, started: UInt64
    }
    private var inFlight: [InFlight] = []
    private var transactionStart: UInt64?
    private var partitionsInTransaction: Set<Int32> = []
    private var errors: [String: Int] = [:]
    // metrics
    private var batches = 0, batchBytesTotal = 0, batchBytesMax = 0, plainBytes = 0, requests = 0, recordsSent = 0
    private var requestLatencyNs: UInt64 = 0, requestLatencyMaxNs: UInt64 = 0
    private let started = DispatchTime.now().uptimeNanoseconds

    init(topic: String, props: [String: String], transactionMs: Int?) throws {
        guard let bootstrap = props["bootstrap.servers"] else {
            throw ValidationError("bootstrap.servers is required (--producer-props bootstrap.servers=host:port or --bootstrap-server)")
        }
        self.topic = topic
        clientId = props["client.id"] ?? "perf-producer-client"
        switch props["acks"] ?? "all" {
        case "all", "-1": acks = -1
        case "0": acks = 0
        case "1": acks = 1
        case let other: throw ValidationError("acks must be all, -1, 0 or 1, got \(other)")
        }
        let name = props["compression.type"] ?? "none"
        guard let c = CompressionCodec.allCases.first(where: { $0.description == name }) else {
            throw ValidationError("compression.type must be none, gzip, snappy, lz4 or zstd, got \(name)")
        }
        codec = c
        batchBytes = max(1, try intProperty(props, "batch.size", 16384))
        lingerMs = Int64(try intProperty(props, "linger.ms", 5))
        maxInFlight = try intProperty(props, "max.in.flight.requests.per.connection", 5, minimum: 1)
        transactionalId = props["transactional.id"]
        transactionNs = transactionMs.map { UInt64($0) * 1_000_000 }
        let idempotence = props["enable.idempotence"]
        if transactionalId != nil || idempotence == "true" {
            guard acks == -1 else { throw ValidationError("idempotence and transactions need acks=all") }
            guard maxInFlight <= 5 else { throw ValidationError("idempotence needs max.in.flight.requests.per.connection <= 5") }
        }
        client = try KafkaClient(bootstrap: bootstrap, clientId: clientId)
        var count: Int32 = 0
        for _ in 0..<50 {
            if let t = try? client.topicsAllowingCreate([topic]).first, !t.partitions.isEmpty { count = Int32(t.partitions.count); break }
            usleep(100_000)
        }
        guard count > 0 else { throw ValidationError("topic \(topic) has no partitions (and was not created)") }
        partitions = count
        partition = Int32.random(in: 0..<count)
        // Kafka's producer is idempotent by default when acks=all and at most 5 requests are in flight.
        let idempotent = transactionalId != nil || idempotence == "true" || (idempotence == nil && acks == -1 && maxInFlight <= 5)
        producer = idempotent ? try client.initProducerId(
            transactionalId: transactionalId,
            transactionTimeoutMs: Int32(clamping: try intProperty(props, "transaction.timeout.ms", 60_000, minimum: 1))) : nil
    }

    /// Adds a record to the open batch. Its timestamp is the send time its latency counts from,
    /// and the batch's first timestamp says when its linger ends (one clock read per record).
    func send(value: ByteBuffer) throws {
        let ms = nowMs()
        open.append(RecordBatchBuilder.Input(value: value, timestamp: ms))
        sent += 1
        openBytes += value.readableBytes + 12
        if openBytes + 61 >= batchBytes || ms - open[0].timestamp >= lingerMs { try flushOpen() }
    }

    /// Waits `seconds` for the throttle, answering responses and sending a batch whose linger ends meanwhile.
    func idle(seconds: Double) throws {
        let until = nowUs() + Int64(seconds * 1e6)
        while !inFlight.isEmpty { try receiveOne() }
        while true {
            let now = nowUs()
            if now >= until { return }
            if let first = open.first, (first.timestamp + lingerMs) * 1000 <= until {
                let lingerEnd = (first.timestamp + lingerMs) * 1000
                if lingerEnd > now { usleep(useconds_t(lingerEnd - now)) }
                try flushOpen()
                while !inFlight.isEmpty { try receiveOne() }
                continue
            }
            usleep(useconds_t(until - now))
        }
    }

    func close() throws {
        try flushOpen()
        while !inFlight.isEmpty { try receiveOne() }
        if let id = transactionalId, let p = producer, transactionStart != nil { try client.endTxn(transactionalId: id, producer: p, commit: true) }
        for (message, count) in errors.sorted(by: { $0.key < $1.key }) {
            FileHandle.standardError.write("\(count) records failed: \(message)\n".data(using: .utf8)!)
        }
    }

    private func flushOpen() throws {
        guard !open.isEmpty else { return }
        if let id = transactionalId, let p = producer {
            let now = DispatchTime.now().uptimeNanoseconds
            if let start = transactionStart, let limit = transactionNs, now - start >= limit {
                while !inFlight.isEmpty { try receiveOne() }
                try client.endTxn(transactionalId: id, producer: p, commit: true)
                transactionStart = nil
            }
            if transactionStart == nil {
                transactionStart = now
                partitionsInTransaction = []
            }
            if !partitionsInTransaction.contains(partition) {
                // A request sent and answered on its own: the connection's responses come in order.
                while !inFlight.isEmpty { try receiveOne() }
                try client.addPartitionsToTxn(transactionalId: id, producer: p, topic: topic, partitions: [partition])
                partitionsInTransaction.insert(partition)
            }
        }
        var builder = RecordBatchBuilder()
        builder.compression = codec
        if let p = producer {
            builder.producerId = p.id
            builder.producerEpoch = p.epoch
            builder.baseSequence = sequences[partition, default: 0]
            builder.transactional = transactionalId != nil
            sequences[partition] = sequence(after: builder.baseSequence, count: Int32(open.count))
        }
        let batch = try builder.build(open)
        batches += 1
        batchBytesTotal += batch.readableBytes
        batchBytesMax = max(batchBytesMax, batch.readableBytes)
        plainBytes += openBytes - 12 * open.count
        recordsSent += open.count
        while inFlight.count >= maxInFlight { try receiveOne() }
        let (request, version) = try client.produceRequest(topic: topic, partition: partition, batch: batch, acks: acks,
                                                           transactionalId: transactionalId)
        let id = try client.connection.submit(request, version: version)
        requests += 1
        let entry = InFlight(correlationId: id, version: version, records: open, first: sent - open.count,
                             started: DispatchTime.now().uptimeNanoseconds)
        open.removeAll(keepingCapacity: true)
        openBytes = 0
        // Sticky partitioning: the next batch goes to another partition.
        if partitions > 1 { partition = (partition + Int32.random(in: 1..<partitions, using: &rng)) % partitions }
        if acks == 0 { complete(entry, error: nil) } else { inFlight.append(entry) }
    }

    private func receiveOne() throws {
        let entry = inFlight.removeFirst()
        let response = try client.connection.receive(ProduceRequest.self, correlationId: entry.correlationId, version: entry.version,
                                                     as: ProduceResponse.self)
        let p = response.responses.first?.partitionResponses.first
        let code = p?.errorCode ?? ErrorCode.unknownServerError.rawValue
        complete(entry, error: code == 0 ? nil : "\(ErrorCode(rawValue: code).name)\(p?.errorMessage.map { ": \($0)" } ?? "")")
    }

    private func complete(_ entry: InFlight, error: String?) {
        let elapsed = DispatchTime.now().uptimeNanoseconds - entry.started
        requestLatencyNs += elapsed
        requestLatencyMaxNs = max(requestLatencyMaxNs, elapsed)
        if let error {
            errors[error, default: 0] += entry.records.count
            return
        }
        let now = nowMs()
        for (i, record) in entry.records.enumerated() {
            let latency = Int(now - record.timestamp), bytes = record.value?.readableBytes ?? 0
            stats.record(latencyMs: latency, bytes: bytes, at: now)
            if entry.first + i >= steadyFrom { steadyStats?.record(latencyMs: latency, bytes: bytes, at: now) }
        }
    }

    func metrics() -> [(String, Double)] {
        let secs = max(1e-9, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        return [
            ("batch-size-avg", Double(batchBytesTotal) / Double(max(1, batches))),
            ("batch-size-max", Double(batchBytesMax)),
            ("compression-rate-avg", plainBytes == 0 ? 0 : Double(batchBytesTotal) / Double(plainBytes)),
            ("record-send-total", Double(recordsSent)),
            ("record-send-rate", Double(recordsSent) / secs),
            ("record-error-total", Double(errors.values.reduce(0, +))),
            ("records-per-request-avg", Double(recordsSent) / Double(max(1, requests))),
            ("request-total", Double(requests)),
            ("request-latency-avg", Double(requestLatencyNs) / 1e6 / Double(max(1, requests))),
            ("request-latency-max", Double(requestLatencyMaxNs) / 1e6),
            ("outgoing-byte-total", Double(batchBytesTotal)),
        ]
    }
}

struct PerfConsume: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume", abstract: "Like kafka-consumer-perf-test.",
        discussion: """
        Reads every partition of the topic from one connection. With --group it starts from the group's \
        committed offsets (else from the earliest, or with --from-latest the latest, offset) and commits \
        its position at the end, as a consumer that does not join the group (the group must have no \
        active members); without --group nothing is committed.
        """)

    @Option(name: .customLong("bootstrap-server"), help: "host:port of the broker.") var bootstrap: String
    @Option(help: "The topic to consume from.") var topic: String
    @Option(name: [.customLong("messages"), .customLong("num-records")], help: "The number of messages to consume.") var messages: Int
    @Option(help: "Commit the position to this group, and start from its committed offsets.") var group: String?
    @Flag(name: .customLong("from-latest"), help: "Without committed offsets, start at the end of the log.") var fromLatest = false
    @Option(name: .customLong("timeout"), help: "Give up after this many ms without data.") var timeoutMs = 10_000
    @Option(name: .customLong("fetch-size"), help: "Bytes per partition per fetch.") var fetchSize: Int32 = 1_048_576
    @Flag(name: .customLong("show-detailed-stats"), help: "A line of stats every --reporting-interval.") var detailed = false
    @Option(name: .customLong("reporting-interval"), help: "Milliseconds between detailed stats lines.") var reportingIntervalMs = 5000
    @Flag(name: .customLong("hide-header"), help: "Skip the header line.") var hideHeader = false
    @Option(name: .customLong("date-format"), help: "Format of the time fields.") var dateFormat = "yyyy-MM-dd HH:mm:ss:SSS"
    @Option(name: [.customLong("consumer.config"), .customLong("command-config")], help: "Consumer properties file (client.id).")
    var consumerConfig: String?
    @Option(name: .customLong("command-property"), parsing: .upToNextOption, help: "Consumer properties, k=v (client.id).")
    var commandProperty: [String] = []
    @Flag(name: .customLong("print-metrics"), help: "Print the client's metrics at the end.") var printMetricsFlag = false

    func validate() throws {
        guard messages > 0 else { throw ValidationError("--messages should be greater than zero") }
        guard reportingIntervalMs > 0 else { throw ValidationError("Reporting interval must be greater than 0.") }
        guard fetchSize > 0 else { throw ValidationError("--fetch-size should be greater than zero") }
    }

    func run() throws {
        var props = try consumerConfig.map(propertiesFile) ?? [:]
        props.merge(try keyValues(commandProperty)) { $1 }
        let clientId = props["client.id"] ?? "perf-consumer-client"
        let formatter = DateFormatter()
        formatter.dateFormat = dateFormat
        let tail = ", rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
        if !hideHeader {
            print(detailed ? "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec" + tail
                : "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec" + tail)
        }
        let client = try KafkaClient(bootstrap: bootstrap, clientId: clientId)
        guard let info = try client.topics([topic]).first else { throw ValidationError("unknown topic \(topic)") }
        var committed: [Int32: Int64] = [:]
        if let g = group {
            for o in try client.committedOffsets(group: g) where o.topic == topic && o.offset >= 0 { committed[o.partition] = o.offset }
        }
        // Where a committed offset is missing or outside the log (retention moved past it), the
        // position resets to the earliest offset, or with --from-latest the latest (auto.offset.reset).
        var positions: [Int32: Int64] = [:]
        for p in info.partitions.map(\.partition) {
            let earliest = try client.offset(topic: topic, partition: p, timestamp: -2)
            let latest = try client.offset(topic: topic, partition: p, timestamp: -1)
            if let c = committed[p], c >= earliest && c <= latest { positions[p] = c } else { positions[p] = fromLatest ? latest : earliest }
        }
        let startMs = nowMs()
        var count = 0, bytes = 0, fetches = 0
        var lastReport = startMs, lastCount = 0, lastBytes = 0
        var lastConsumed = startMs
        while count < messages {
            let records = try client.fetch(topic: topic, offsets: positions, maxWaitMs: 100, maxBytes: fetchSize)
            fetches += 1
            let now = nowMs()
            if records.isEmpty {
                if now - lastConsumed > timeoutMs { break }
                continue
            }
            lastConsumed = now
            for r in records where count < messages {
                positions[r.partition] = r.offset + 1
                count += 1
                bytes += (r.value?.readableBytes ?? 0) + (r.key?.readableBytes ?? 0)
                if now - lastReport >= reportingIntervalMs {
                    if detailed {
                        let ms = Double(max(1, now - lastReport))
                        let mb = Double(bytes) / 1_048_576, intervalMb = Double(bytes - lastBytes) / 1_048_576
                        print(String(format: "%@, 0, %.4f, %.4f, %d, %.4f, 0, %d, %.4f, %.4f",
                                     formatter.string(from: Date(timeIntervalSince1970: Double(now) / 1000)), mb, 1000 * intervalMb / ms,
                                     count, 1000 * Double(count - lastCount) / ms, Int(ms), 1000 * intervalMb / ms,
                                     1000 * Double(count - lastCount) / ms))
                    }
                    lastReport = now
                    lastCount = count
                    lastBytes = bytes
                }
            }
        }
        if count < messages {
            print("WARNING: Exiting before consuming the expected number of messages: timeout (\(timeoutMs) ms) exceeded. "
                + "You can use the --timeout option to increase the timeout.")
        }
        if let g = group { try client.commit(group: g, offsets: positions.map { (topic, $0.key, $0.value) }) }
        let endMs = nowMs()
        let secs = Double(max(1, endMs - startMs)) / 1000
        let mb = Double(bytes) / 1_048_576
        if !detailed {
            print(String(format: "%@, %@, %.4f, %.4f, %d, %.4f, 0, %d, %.4f, %.4f",
                         formatter.string(from: Date(timeIntervalSince1970: Double(startMs) / 1000)),
                         formatter.string(from: Date(timeIntervalSince1970: Double(endMs) / 1000)),
                         mb, mb / secs, count, Double(count) / secs, endMs - startMs, mb / secs, Double(count) / secs))
        }
        if printMetricsFlag {
            printMetrics([("bytes-consumed-total", Double(bytes)), ("bytes-consumed-rate", Double(bytes) / secs),
                          ("records-consumed-total", Double(count)), ("records-consumed-rate", Double(count) / secs),
                          ("fetch-total", Double(fetches)), ("fetch-rate", Double(fetches) / secs)],
                         group: "consumer-fetch-manager-metrics", clientId: clientId)
        }
    }
}
