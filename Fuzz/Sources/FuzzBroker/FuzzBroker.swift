import Broker
import Foundation
import KafkaProtocol
import Logging
import NIOCore
import NIOPosix

/// The whole request path: frames → header → decode → handler → storage, on one in-process
/// broker with a scratch log directory that lives for the whole run (state carries over between
/// inputs, as on a long-lived connection). No input may crash the broker, hang it, or make it
/// allocate without bound. Each input is a stream of frames (int32 size + request); the first
/// ones usually go in as given, so the corpus can hold real client traffic.
enum Harness {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    static let pool: NIOThreadPool = {
        let p = NIOThreadPool(numberOfThreads: 1)
        p.start()
        return p
    }()
    static let broker: Broker = {
        let dir = "/tmp/sluice-fuzz-broker-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        let config = try! BrokerConfig.parse(properties: "", overrides: [
            "log.dirs=\(dir)", "offsets.topic.num.partitions=1", "transaction.state.log.num.partitions=1",
            "group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=1", "log.segment.bytes=65536",
            "log.index.size.max.bytes=4096", "sluice.partitions.max=64", "sluice.log.level=critical",
        ])
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        return try! Broker(config: config, logger: logger, threadPool: pool)
    }()
    static let loop = group.next()

    /// Requests that park (Fetch long-poll, JoinGroup/SyncGroup rebalances) get their waits cut
    /// to milliseconds so one input cannot hold the fuzzer for minutes.
    static func tame(_ frame: ByteBuffer) -> ByteBuffer {
        var body = frame
        guard let header = try? KafkaHeaders.decodeRequestHeader(from: &body),
              let key = ApiKey(rawValue: header.requestApiKey), key.schemaVersions.contains(header.requestApiVersion) else { return frame }
        let version = header.requestApiVersion
        switch key {
        case .fetch:
            guard var r = try? FetchRequest.decode(from: &body, version: version) else { return frame }
            r.maxWaitMs = min(r.maxWaitMs, 20)
            return reencode(frame, body: body) { r.encode(into: &$0, version: version) }
        case .joinGroup:
            guard var r = try? JoinGroupRequest.decode(from: &body, version: version) else { return frame }
            r.sessionTimeoutMs = min(max(r.sessionTimeoutMs, 1), 50)
            r.rebalanceTimeoutMs = min(r.rebalanceTimeoutMs, 50)
            return reencode(frame, body: body) { r.encode(into: &$0, version: version) }
        default:
            return frame
        }
    }

    /// The frame's header bytes followed by a re-encoded body.
    static func reencode(_ frame: ByteBuffer, body: ByteBuffer, _ encode: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var probe = frame
        _ = try? KafkaHeaders.decodeRequestHeader(from: &probe)
        let headerBytes = frame.readableBytes - probe.readableBytes
        var out = ByteBuffer()
        out.writeBytes(frame.readableBytesView.prefix(headerBytes))
        encode(&out)
        return out
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBroker(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var stream = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    let frames = FrameDecoder(frameBytesMax: 1 << 20)
    var pending: [EventLoopFuture<Int?>] = []
    while let frame = try? frames.nextFrame(from: &stream), pending.count < 16 {
        pending.append(Harness.broker.respondSize(to: Harness.tame(frame), eventLoop: Harness.loop))
    }
    _ = try? EventLoopFuture.whenAllComplete(pending, on: Harness.loop).wait()
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("FuzzBroker_main")
public func FuzzBrokerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzBroker(data, size) }
}
