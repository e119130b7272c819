import ArgumentParser
import Dispatch
import Foundation
import KafkaClient
import NIOCore
import Records

/// `sluice perf produce|consume`, with the flags and output of Kafka's
/// kafka-producer-perf-test / kafka-consumer-perf-test.
struct Perf: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Producer and consumer performance tests.",
                                                    subcommands: [PerfProduce.self, PerfConsume.self])
}

func keyValues(_ list: [String]) throws -> [String: String] {
    var out: [String: String] = [:]
    for item in list.flatMap({ $0.split(separator: " ").map(String.init) }) {
        guard let eq = item.firstIndex(of: "=") else { throw ValidationError("expected key=value, got \(item)") }
        out[String(item[..<eq])] = String(item[item.index(after: eq)...])
    }
    return out
}

struct PerfProduce: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "produce", abstract: "Like kafka-producer-perf-test.")

    @Option var topic: String
    @Option(name: .customLong("num-records")) var numRecords: Int
    @Option(name: .customLong("record-size")) var recordSize: Int
    @Option(help: "Records per second; -1 for no limit.") var throughput: Double = -1
    @Option(name: .customLong("producer-props"), parsing: .upToNextOption,
            help: "bootstrap.servers=… (required), acks, compression.type, batch.size (bytes)") var producerProps: [String]

    func run() throws {
        let props = try keyValues(producerProps)
        guard let bootstrap = props["bootstrap.servers"] else { throw ValidationError("--producer-props bootstrap.servers=host:port is required") }
        let acks: Int16 = props["acks"] == "all" ? -1 : Int16(props["acks"] ?? "-1") ?? -1
        let codec = CompressionCodec.allCases.first { $0.description == (props["compression.type"] ?? "none") } ?? .none
        let batchBytes = Int(props["batch.size"] ?? "16384") ?? 16384
        let perBatch = max(1, batchBytes / max(1, recordSize + 16))
        let client = try KafkaClient(bootstrap: bootstrap, clientId: "producer-perf")
        var partitions: Int32 = 1
        for _ in 0..<50 {
            if let t = try? client.topicsAllowingCreate([topic]).first, !t.partitions.isEmpty { partitions = Int32(t.partitions.count); break }
            usleep(100_000)
        }
        let payload = ByteBuffer(bytes: (0..<recordSize).map { _ in UInt8.random(in: 65...90) })
        var latenciesMs: [Double] = []
        latenciesMs.reserveCapacity(numRecords)
        var sent = 0, windowSent = 0
        var windowLatency = 0.0, windowMax = 0.0
        let start = DispatchTime.now().uptimeNanoseconds
        var windowStart = start
        var partition: Int32 = 0
        while sent < numRecords {
            let n = min(perBatch, numRecords - sent)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let records = (0..<n).map { _ in RecordBatchBuilder.Input(value: payload, timestamp: now) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            try client.produce(topic: topic, partition: partition, records: records, acks: acks, compression: codec)
            let latency = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            for _ in 0..<n { latenciesMs.append(latency) }
            sent += n
            windowSent += n
            windowLatency += latency * Double(n)
            windowMax = max(windowMax, latency)
            partition = (partition + 1) % partitions
            let t = DispatchTime.now().uptimeNanoseconds
            if throughput > 0 {
                let ahead = Double(sent) / throughput - Double(t - start) / 1e9
                if ahead > 0 { usleep(useconds_t(ahead * 1e6)) }
            }
            if t - windowStart >= 5_000_000_000 {
                let secs = Double(t - windowStart) / 1e9
                print(String(format: "%d records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, %.1f ms max latency.",
                             windowSent, Double(windowSent) / secs, Double(windowSent * recordSize) / secs / 1_048_576,
                             windowLatency / Double(max(1, windowSent)), windowMax))
                windowStart = t
                windowSent = 0
                windowLatency = 0
                windowMax = 0
            }
        }
        let secs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        latenciesMs.sort()
        func pct(_ p: Double) -> Int { Int(latenciesMs[min(latenciesMs.count - 1, Int(Double(latenciesMs.count) * p))]) }
        let avg = latenciesMs.reduce(0, +) / Double(max(1, latenciesMs.count))
        print(String(format: "%d records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.",
                     sent, Double(sent) / secs, Double(sent * recordSize) / secs / 1_048_576, avg, latenciesMs.last ?? 0,
                     pct(0.5), pct(0.95), pct(0.99), pct(0.999)))
    }
}

struct PerfConsume: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consume", abstract: "Like kafka-consumer-perf-test.")

    @Option(name: .customLong("bootstrap-server")) var bootstrap: String
    @Option var topic: String
    @Option var messages: Int
    @Option(name: .customLong("timeout"), help: "Give up after this many ms without data.") var timeoutMs = 10_000
    @Option(name: .customLong("fetch-size")) var fetchSize: Int32 = 1_048_576

    func run() throws {
        let client = try KafkaClient(bootstrap: bootstrap, clientId: "consumer-perf")
        guard let info = try client.topics([topic]).first else { throw ValidationError("unknown topic \(topic)") }
        var positions: [Int32: Int64] = [:]
        for p in info.partitions.map(\.partition) { positions[p] = try client.offset(topic: topic, partition: p, timestamp: -2) }
        let startDate = Date()
        let start = DispatchTime.now().uptimeNanoseconds
        var count = 0, bytes = 0
        var idleSince = DispatchTime.now().uptimeNanoseconds
        while count < messages {
            let records = try client.fetch(topic: topic, offsets: positions, maxWaitMs: 100, maxBytes: fetchSize)
            if records.isEmpty {
                if (DispatchTime.now().uptimeNanoseconds - idleSince) / 1_000_000 > UInt64(timeoutMs) { break }
                continue
            }
            idleSince = DispatchTime.now().uptimeNanoseconds
            for r in records {
                positions[r.partition] = r.offset + 1
                count += 1
                bytes += (r.value?.readableBytes ?? 0) + (r.key?.readableBytes ?? 0)
            }
        }
        let secs = max(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, 1e-9)
        let mb = Double(bytes) / 1_048_576
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss:SSS"
        print("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
        print(String(format: "%@, %@, %.4f, %.4f, %d, %.4f, 0, %d, %.4f, %.4f", f.string(from: startDate), f.string(from: Date()), mb, mb / secs,
                     count, Double(count) / secs, Int(secs * 1000), mb / secs, Double(count) / secs))
    }
}
