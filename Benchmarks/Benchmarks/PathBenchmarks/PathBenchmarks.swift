import Benchmark
import Broker
import Foundation
import KafkaProtocol
import Logging
import LogStorage
import NIOCore
import NIOPosix
import Records

/// The produce and fetch paths piece by piece, with time and malloc counts: batch parsing and
/// validation, frame splitting, request decoding, the append engine, offset lookups, and one
/// produce request through an in-process broker. Throughput is per benchmark iteration (one
/// batch, one buffer of frames, one request, one append, one lookup).
let benchmarks: @Sendable () -> Void = {
    let scratch = "/var/tmp/sluice-path-benchmarks-\(getpid())"
    try? FileManager.default.removeItem(atPath: scratch)
    try! FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    Benchmark.teardown = { try? FileManager.default.removeItem(atPath: scratch) }

    let metrics: [BenchmarkMetric] = [.throughput, .wallClock, .mallocCountTotal]
    let quick = Benchmark.Configuration(metrics: metrics, maxDuration: .seconds(2))

    // A 1 MiB batch of 100 B records, the shape librdkafka sends with default batching.
    func batch(records: Int, valueBytes: Int, timestamp: Int64 = 1_700_000_000_000) -> ByteBuffer {
        let value = ByteBuffer(repeating: 0x61, count: valueBytes)
        let inputs = (0..<records).map { i in RecordBatchBuilder.Input(value: value, timestamp: timestamp + Int64(i)) }
        return try! RecordBatchBuilder().build(inputs)
    }
    let big = batch(records: 9_000, valueBytes: 100)
    Benchmark("batch view + CRC + record scan, \(big.readableBytes / 1024) KiB of 100 B records", configuration: quick) { benchmark in
        for _ in benchmark.scaledIterations {
            let view = try! RecordBatch(big)
            try! view.validateForAppend(deep: true)
            blackHole(view.recordCount)
        }
    }

    // 1,000 frames of 1 KiB in one buffer, split without copying.
    var framed = ByteBuffer()
    for _ in 0..<1_000 {
        framed.writeInteger(Int32(1024))
        framed.writeRepeatingByte(7, count: 1024)
    }
    let decoder = FrameDecoder()
    Benchmark("frame splitting, 1000 x 1 KiB frames", configuration: quick) { benchmark in
        for _ in benchmark.scaledIterations {
            var input = framed
            var count = 0
            while let frame = try! decoder.nextFrame(from: &input) { count += frame.readableBytes }
            blackHole(count)
        }
    }

    // A Produce v3 request for 3 partitions, one 16 KiB batch each, as a frame body.
    func produceRequest(topic: String, batches: [ByteBuffer], correlation: Int32 = 1) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(Int16(0)); b.writeInteger(Int16(3)); b.writeInteger(correlation)
        b.writeInteger(Int16(5)); b.writeString("bench")
        b.writeInteger(Int16(-1)); b.writeInteger(Int16(1)); b.writeInteger(Int32(10_000))
        b.writeInteger(Int32(1)); b.writeInteger(Int16(topic.utf8.count)); b.writeString(topic)
        b.writeInteger(Int32(batches.count))
        for (i, var records) in batches.enumerated() {
            b.writeInteger(Int32(i)); b.writeInteger(Int32(records.readableBytes)); b.writeBuffer(&records)
        }
        return b
    }
    let small = batch(records: 160, valueBytes: 100)
    let request = produceRequest(topic: "bench", batches: [small, small, small])
    Benchmark("Produce request decode, 3 partitions x \(small.readableBytes / 1024) KiB", configuration: quick) { benchmark in
        for _ in benchmark.scaledIterations {
            var body = request
            let header = try! KafkaHeaders.decodeRequestHeader(from: &body)
            blackHole(try! ProduceRequest.decode(from: &body, version: header.requestApiVersion))
        }
    }

    // The append engine: 16 KiB batches into one buffered partition, durability none.
    let manager = try! LogManager(logDir: scratch + "/engine", nowMs: 0) { _ in LogConfig() }
    var config = LogConfig()
    config.segmentBytes = 256 << 20
    let appendLog = try! manager.createLog(topic: "append", partition: 0, config: config, nowMs: 0)
    let batch16k = try! RecordBatch(batch(records: 16, valueBytes: 1000))
    Benchmark("append engine, \(batch16k.buffer.readableBytes / 1024) KiB batches, buffered, durability none",
              configuration: .init(metrics: metrics, maxDuration: .seconds(2), maxIterations: 20_000)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! appendLog.append([batch16k], nowMs: 1))
        }
    }

    // Offset lookups: 100,000 one-record batches, then reads from random offsets (index + scan).
    let lookupLog = try! manager.createLog(topic: "lookup", partition: 0, config: LogConfig(), nowMs: 0)
    let one = try! RecordBatch(batch(records: 1, valueBytes: 100))
    for _ in 0..<100_000 { _ = try! lookupLog.append([one], nowMs: 1) }
    var rng = SystemRandomNumberGenerator()
    Benchmark("offset lookup into 100k batches (readSlices, one batch)", configuration: quick) { benchmark in
        for _ in benchmark.scaledIterations {
            let slices = try! lookupLog.readSlices(from: Int64.random(in: 0..<100_000, using: &rng), maxBytes: 1)
            for s in slices.slices { close(s.descriptor) }
            blackHole(slices.bytes)
        }
    }

    // One Produce request (3 partitions x 16 KiB) through an in-process broker: decode,
    // validate, append, encode the response.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let pool = NIOThreadPool(numberOfThreads: 1)
    pool.start()
    var logger = Logger(label: "bench")
    logger.logLevel = .critical
    let brokerConfig = try! BrokerConfig.parse(properties: "", overrides: [
        "log.dirs=\(scratch)/broker", "sluice.log.level=critical", "num.partitions=3", "log.segment.bytes=268435456",
    ])
    let broker = try! Broker(config: brokerConfig, logger: logger, threadPool: pool)
    let loop = group.next()
    // Create the topic through a Metadata request with auto-creation, like a client would.
    var metadata = ByteBuffer()
    metadata.writeInteger(Int16(3)); metadata.writeInteger(Int16(4)); metadata.writeInteger(Int32(1))
    metadata.writeInteger(Int16(5)); metadata.writeString("bench")
    metadata.writeInteger(Int32(1)); metadata.writeInteger(Int16(5)); metadata.writeString("bench")
    metadata.writeInteger(Int8(1))
    _ = try! broker.respondSize(to: metadata, eventLoop: loop).wait()
    Benchmark("Produce request through an in-process broker, 3 partitions x \(small.readableBytes / 1024) KiB",
              configuration: .init(metrics: metrics, maxDuration: .seconds(2), maxIterations: 20_000)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! broker.respondSize(to: request, eventLoop: loop).wait())
        }
    }
}
