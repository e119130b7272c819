import Foundation
import Logging
import NIOPosix
import Testing
@testable import Broker

@Suite("Internal topics")
struct InternalTopicTests {
    static func open(_ dir: String) throws -> (Broker, NIOThreadPool) {
        var config = BrokerConfig()
        config.logDir = dir
        config.offsetsTopicPartitions = 3
        config.transactionStatePartitions = 2
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return (try Broker(config: config, logger: Logger(label: "test"), threadPool: pool), pool)
    }

    @Test("a user-topic record named __consumer_offsets, as older versions' Metadata auto-create wrote, is dropped at start and the offsets logs stay")
    func legacyRecordIsDropped() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-internal-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (broker, pool) = try Self.open(dir)
            _ = try broker.metadata.createTopic(GroupCoordinator.offsetsTopic, partitions: 1, configs: [:], nowMs: currentTimeMs())
            #expect(broker.metadata.topic(GroupCoordinator.offsetsTopic) != nil)
            try broker.shutdown()
            try pool.syncShutdownGracefully()
        }
        let (broker, pool) = try Self.open(dir)
        #expect(broker.metadata.topic(GroupCoordinator.offsetsTopic) == nil)
        #expect(broker.internalTopic(GroupCoordinator.offsetsTopic)?.partitionCount == 3)
        #expect(broker.logManager.allLogs.filter { $0.topic == GroupCoordinator.offsetsTopic }.count == 3)
        try broker.shutdown()
        try pool.syncShutdownGracefully()
    }

    @Test("internal topic ids are fixed, distinct and not zero")
    func ids() {
        let a = Broker.internalTopicId(GroupCoordinator.offsetsTopic)
        let b = Broker.internalTopicId(TransactionCoordinator.stateTopic)
        #expect(a == Broker.internalTopicId(GroupCoordinator.offsetsTopic))
        #expect(a != b && a != .zero && b != .zero)
    }
}
