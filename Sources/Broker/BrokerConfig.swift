import Coordination
import Foundation
import Logging
import LogStorage

/// The broker's settings from `server.properties` and `--override`s, Kafka's names and defaults
/// where the meaning matches.
public struct BrokerConfig: Sendable {
    public var nodeId: Int32 = 1
    /// `listeners` and `advertised.listeners` as given (Listeners.swift resolves them).
    public var listenerAddresses = [ListenerAddress(name: "PLAINTEXT", host: "127.0.0.1", port: 9092)]
    public var advertisedAddresses: [ListenerAddress] = []
    /// `listener.security.protocol.map`
    public var securityProtocolMap = BrokerConfig.defaultProtocolMap
    /// SASL settings, broker-wide or `listener.name.<name>.`-scoped: `sasl.enabled.mechanisms`,
    /// `<mechanism>.sasl.jaas.config`, `sasl.jaas.config`.
    public var listenerProperties: [String: String] = [:]
    /// `sasl.server.max.receive.size`: the largest frame a connection may send before it has
    /// authenticated.
    public var saslServerMaxReceiveSize = 524_288
    /// The first listener's bind address (the metrics endpoint binds there too).
    public var listenerHost: String { listenerAddresses[0].host.isEmpty ? "0.0.0.0" : listenerAddresses[0].host }
    public var listenerPort: Int { listenerAddresses[0].port }
    public var logDir = "/tmp/sluice-logs"
    public var numPartitions: Int32 = 1
    public var autoCreateTopics = true
    public var deleteTopicEnable = true
    /// socket.request.max.bytes
    public var requestBytesMax = 100 * 1024 * 1024
    public var maxConnections = Int.max
    public var maxConnectionsPerIp = Int.max
    /// queued.max.requests: requests in flight per connection before reading pauses.
    public var queuedMaxRequests = 500
    /// queued.max.request.bytes: request bytes in memory over all connections (nil: unbounded,
    /// Kafka's -1 and its default). Sluice bounds it by default; it must hold the largest request.
    public var queuedMaxRequestBytes: Int? = 512 * 1024 * 1024
    /// connections.max.idle.ms
    public var connectionsMaxIdleMs: Int64 = 600_000
    /// log.retention.check.interval.ms
    public var retentionCheckIntervalMs: Int64 = 300_000
    /// `log.flush.offset.checkpoint.interval.ms`: how often the recovery points are written.
    public var recoveryPointCheckpointIntervalMs: Int64 = 1_000
    /// Our cap on a batch's decompressed size when validating produced batches.
    public var decompressedBytesMax = 64 << 20
    /// Prometheus metrics endpoint port (0: off).
    public var metricsPort = 0
    /// `sluice.storage.threads`: group-commit threads, each with an io_uring, for the
    /// fdatasyncs of durability `ack` and `interval` (every partition waiting is synced in one
    /// submission, and waiters of one partition share its fdatasync); also the threads for
    /// blocking storage work off the event loops (offset and transaction-state writes).
    public var storageThreads = 2
    /// `sluice.storage.commit.backend`: `io_uring` (falls back to syscalls where the kernel
    /// refuses it) or `syscalls` (one fdatasync after another on the commit thread).
    public var commitBackend = "io_uring"
    /// `sluice.segments.open.max`: sealed segments whose files (a descriptor and two index
    /// mappings each) stay open; the least recently used beyond it are closed and reopened on
    /// access. Active segments are always open and not counted.
    public var openSegmentsMax = LogManager.defaultOpenSegmentsLimit
    /// `sluice.socket.receive`: `frames` (a large request body is read from the socket into a
    /// buffer of its own, never copied in user space) or `cumulation` (NIO's ByteToMessageHandler:
    /// every frame that spans reads is copied into one growing buffer).
    public var socketReceive = "frames"
    /// `sluice.socket.receive.pool.bytes`: memory kept for recycling those body buffers (process-wide).
    public var socketReceivePoolBytes = 64 << 20
    public var logLevel: Logger.Level = .info
    /// Defaults for every topic (log.* names map onto topic config names).
    public var logDefaults = LogConfig()
    /// group.min/max.session.timeout.ms, group.initial.rebalance.delay.ms, group.max.size.
    public var groupLimits = ConsumerGroup.Limits()
    /// producer.id.expiration.ms: idempotent-producer state is dropped after this long idle.
    public var producerIdExpirationMs: Int64 = 86_400_000
    /// offsets.topic.num.partitions (Kafka's default).
    public var offsetsTopicPartitions: Int32 = 50
    /// offsets.topic.segment.bytes (Kafka's default, 100 MiB; the broker's segment.bytes does
    /// not apply to this compacted, small topic).
    public var offsetsTopicSegmentBytes = 104_857_600
    /// transaction.state.log.segment.bytes (Kafka's default, 100 MiB).
    public var transactionStateSegmentBytes = 104_857_600
    /// offsets.retention.minutes (Kafka's default: 7 days).
    public var offsetsRetentionMs: Int64 = 7 * 24 * 3_600_000
    /// transaction.state.log.num.partitions (Kafka's default; fixed once the topic exists).
    public var transactionStatePartitions: Int32 = 50
    /// transaction.max.timeout.ms: the longest transaction.timeout.ms a producer may ask for.
    public var transactionMaxTimeoutMs: Int64 = 900_000
    /// transaction.abort.timed.out.transaction.cleanup.interval.ms
    public var transactionAbortIntervalMs: Int64 = 10_000
    /// transactional.id.expiration.ms: an idle transactional id (no open transaction) is forgotten.
    public var transactionalIdExpirationMs: Int64 = 604_800_000
    /// sluice.partitions.max: partitions this broker hosts at most (user topics); CreateTopics and
    /// CreatePartitions beyond it get POLICY_VIOLATION. Each partition costs open files and
    /// mappings, so one request must not be able to ask for millions.
    public var partitionsMax = 100_000
    /// log.cleaner.enable, .threads, .io.max.bytes.per.second, .backoff.ms, .dedupe.buffer.size
    public var cleaner = LogCleaner.Config()
    /// `authorizer.class.name`: empty (Kafka's default) runs without an authorizer, and the ACL
    /// APIs answer SECURITY_DISABLED; Kafka's standard authorizer class names turn on Sluice's.
    public var authorizerClassName = ""
    /// `super.users`: principals (`User:alice;User:bob`) every ACL check allows.
    public var superUsers = ""
    /// `allow.everyone.if.no.acl.found`: whether a resource no ACL applies to is open to all.
    public var allowEveryoneIfNoAclFound = false
    /// The class names that mean the standard ACL authorizer (KRaft's, and ZooKeeper-era Kafka's).
    public static let standardAuthorizers: Set<String> = [
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer",
    ]
    public var authorizerEnabled: Bool { !authorizerClassName.isEmpty }
    /// Properties we did not recognise, warned about once at start.
    public var unknown: [String] = []

    public init() {}

    public enum ConfigError: Error, CustomStringConvertible {
        case invalid(String)
        public var description: String { switch self { case .invalid(let s): s } }
    }

    /// Broker property -> topic config name, for the log.* defaults.
    static let topicDefaults: [String: String] = [
        "log.segment.bytes": "segment.bytes", "log.roll.ms": "segment.ms",
        "log.index.size.max.bytes": "segment.index.bytes", "log.index.interval.bytes": "index.interval.bytes",
        "log.retention.ms": "retention.ms", "log.retention.bytes": "retention.bytes",
        "log.segment.delete.delay.ms": "file.delete.delay.ms", "log.flush.interval.messages": "flush.messages",
        "log.flush.interval.ms": "flush.ms", "log.preallocate": "preallocate",
        "log.message.timestamp.type": "message.timestamp.type", "message.max.bytes": "max.message.bytes",
        "log.cleanup.policy": "cleanup.policy",
        "sluice.io.mode": "sluice.io.mode", "sluice.io.buffered.submit": "sluice.io.buffered.submit",
        "sluice.durability": "sluice.durability",
        "sluice.preallocate.step.bytes": "sluice.preallocate.step.bytes",
        "sluice.zero.ahead.bytes": "sluice.zero.ahead.bytes",
        "sluice.cache.drop.behind.bytes": "sluice.cache.drop.behind.bytes",
    ]

    /// Broker configs Kafka lets AlterConfigs change at run time besides the topic defaults above
    /// (its DynamicBrokerConfig set: TLS stores, SASL login, thread pools, connection limits,
    /// cleaner I/O, producer-state expiry, metric reporters). Sluice stores them in the metadata log
    /// and reports them in DescribeConfigs; what each does here is in docs/configuration.md.
    static let dynamicBrokerConfigs: Set<String> = [
        "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
        "ssl.keystore.key", "ssl.keystore.certificate.chain", "ssl.truststore.type", "ssl.truststore.location",
        "ssl.truststore.password", "ssl.truststore.certificates", "ssl.protocol", "ssl.provider", "ssl.cipher.suites",
        "ssl.enabled.protocols", "ssl.keymanager.algorithm", "ssl.trustmanager.algorithm",
        "ssl.endpoint.identification.algorithm", "ssl.secure.random.implementation", "ssl.client.auth",
        "ssl.engine.factory.class", "principal.builder.class",
        "sasl.mechanism.inter.broker.protocol", "sasl.jaas.config", "sasl.enabled.mechanisms", "sasl.kerberos.service.name",
        "sasl.kerberos.kinit.cmd", "sasl.kerberos.ticket.renew.window.factor", "sasl.kerberos.ticket.renew.jitter",
        "sasl.kerberos.min.time.before.relogin", "sasl.kerberos.principal.to.local.rules",
        "sasl.login.refresh.window.factor", "sasl.login.refresh.window.jitter", "sasl.login.refresh.min.period.seconds",
        "sasl.login.refresh.buffer.seconds",
        "log.cleaner.threads", "log.cleaner.dedupe.buffer.size", "log.cleaner.io.buffer.load.factor",
        "log.cleaner.io.buffer.size", "log.cleaner.io.max.bytes.per.second", "log.cleaner.backoff.ms",
        "num.io.threads", "num.replica.fetchers", "num.recovery.threads.per.data.dir", "background.threads",
        "num.network.threads", "metric.reporters", "max.connections", "max.connection.creation.rate",
        "max.connections.per.ip", "max.connections.per.ip.overrides", "producer.id.expiration.ms",
        "transaction.partition.verification.enable", "leader.replication.throttled.rate",
        "follower.replication.throttled.rate", "replica.alter.log.dirs.io.max.bytes.per.second", "config.providers",
    ]

    /// Of those, the ones Sluice applies at run time (the rest are stored and reported).
    static let appliedDynamicConfigs: Set<String> = ["max.connections", "max.connections.per.ip", "producer.id.expiration.ms"]

    /// Of those, the ones Kafka takes only for one broker (a listener's TLS and SASL settings),
    /// never as the cluster-wide default (resource name "").
    static let perBrokerConfigs: Set<String> = dynamicBrokerConfigs.filter {
        ($0.hasPrefix("ssl.") || $0.hasPrefix("sasl.") || $0 == "principal.builder.class")
    }

    /// Group configs (config resource type 32, KIP-848) with Kafka 4.0's defaults and ranges. They
    /// belong to the new consumer and share group protocols, which Sluice does not serve yet: they
    /// are validated, stored and described, and change nothing for classic groups.
    static let groupConfigs: [String: (defaultValue: String, range: ClosedRange<Int64>?)] = [
        "consumer.session.timeout.ms": ("45000", 45_000...60_000),
        "consumer.heartbeat.interval.ms": ("5000", 5_000...15_000),
        "share.session.timeout.ms": ("45000", 45_000...60_000),
        "share.heartbeat.interval.ms": ("5000", 5_000...15_000),
        "share.record.lock.duration.ms": ("30000", 15_000...60_000),
        "share.auto.offset.reset": ("latest", nil),
    ]

    /// List-typed configs: IncrementalAlterConfigs may APPEND to and SUBTRACT from them.
    static let listConfigs: Set<String> = [
        "cleanup.policy", "log.cleanup.policy", "follower.replication.throttled.replicas",
        "leader.replication.throttled.replicas", "ssl.cipher.suites", "ssl.enabled.protocols", "sasl.enabled.mechanisms",
        "metric.reporters", "config.providers", "sasl.kerberos.principal.to.local.rules",
    ]

    public static let knownBrokerProperties: Set<String> = [
        "node.id", "broker.id", "listeners", "advertised.listeners", "log.dirs", "log.dir", "num.partitions",
        "auto.create.topics.enable", "delete.topic.enable", "socket.request.max.bytes", "max.connections",
        "max.connections.per.ip", "queued.max.requests", "connections.max.idle.ms", "log.retention.check.interval.ms",
        "log.retention.hours", "log.retention.minutes", "log.roll.hours", "sluice.decompressed.bytes.max",
        "sluice.metrics.port", "sluice.log.level", "process.roles", "controller.quorum.voters",
        "controller.listener.names", "inter.broker.listener.name",
        "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr", "num.network.threads",
        "num.io.threads", "socket.send.buffer.bytes", "socket.receive.buffer.bytes", "num.recovery.threads.per.data.dir",
        "default.replication.factor", "min.insync.replicas",
    ]

    /// Parses `key=value` lines (# and ! comments), then applies overrides in order.
    public static func parse(properties text: String, overrides: [String]) throws(ConfigError) -> BrokerConfig {
        var pairs: [(String, String)] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(raw).trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            guard let eq = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw .invalid("server.properties: no '=' in line: \(line)")
            }
            pairs.append((String(line[..<eq]).trimmingCharacters(in: " \t"), String(line[line.index(after: eq)...]).trimmingCharacters(in: " \t")))
        }
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw .invalid("--override needs key=value, got \(o)") }
            pairs.append((String(o[..<eq]), String(o[o.index(after: eq)...])))
        }
        var config = BrokerConfig()
        for (k, v) in pairs { try config.apply(k, v) }
        _ = try config.resolveListeners()
        return config
    }

    mutating func apply(_ key: String, _ value: String) throws(ConfigError) {
        func int(_ min: Int64 = 0) throws(ConfigError) -> Int64 {
            guard let n = Int64(value), n >= min else { throw .invalid("\(key): expected an integer ≥ \(min), got \(value)") }
            return n
        }
        func bool() throws(ConfigError) -> Bool {
            guard let b = Bool(value.lowercased()) else { throw .invalid("\(key): expected true or false, got \(value)") }
            return b
        }
        switch key {
        case "node.id", "broker.id": nodeId = Int32(try int())
        case "listeners": listenerAddresses = try Self.listenerAddresses(value, key)
        case "advertised.listeners": advertisedAddresses = try Self.listenerAddresses(value, key)
        case "listener.security.protocol.map": securityProtocolMap = try Self.protocolMap(value)
        case "sasl.server.max.receive.size": saslServerMaxReceiveSize = Int(try int(1))
        case _ where key.hasPrefix("listener.name.") || key == "sasl.enabled.mechanisms" || key == "sasl.jaas.config":
            listenerProperties[key] = value
        case "log.dirs", "log.dir": logDir = value.split(separator: ",").first.map(String.init) ?? value
        case "num.partitions": numPartitions = Int32(try int(1))
        case "auto.create.topics.enable": autoCreateTopics = try bool()
        case "delete.topic.enable": deleteTopicEnable = try bool()
        case "socket.request.max.bytes": requestBytesMax = Int(try int(1024))
        case "max.connections": maxConnections = Int(try int(1))
        case "max.connections.per.ip": maxConnectionsPerIp = Int(try int(1))
        case "queued.max.requests": queuedMaxRequests = Int(try int(1))
        case "queued.max.request.bytes":
            let n = try int(-1)
            guard n == -1 || n > 0 else { throw .invalid("\(key): -1 (unbounded) or a positive number of bytes, got \(value)") }
            queuedMaxRequestBytes = n == -1 ? nil : Int(n)
        case "connections.max.idle.ms": connectionsMaxIdleMs = try int(-1)
        case "log.retention.check.interval.ms": retentionCheckIntervalMs = try int(1)
        case "log.flush.offset.checkpoint.interval.ms": recoveryPointCheckpointIntervalMs = try int(0)
        case "log.retention.hours": try setTopicDefault("retention.ms", String(try int(-1) * 3_600_000))
        case "log.retention.minutes": try setTopicDefault("retention.ms", String(try int(-1) * 60_000))
        case "log.roll.hours": try setTopicDefault("segment.ms", String(try int(1) * 3_600_000))
        case "producer.id.expiration.ms": producerIdExpirationMs = try int(1)
        case "offsets.topic.num.partitions": offsetsTopicPartitions = Int32(try int(1))
        case "offsets.topic.segment.bytes": offsetsTopicSegmentBytes = Int(try int(14))
        case "transaction.state.log.segment.bytes": transactionStateSegmentBytes = Int(try int(14))
        case "offsets.retention.minutes": offsetsRetentionMs = try int(1) * 60_000
        case "offsets.retention.ms": offsetsRetentionMs = try int(1)
        case "transaction.state.log.num.partitions": transactionStatePartitions = Int32(try int(1))
        case "transaction.max.timeout.ms": transactionMaxTimeoutMs = try int(1)
        case "transaction.abort.timed.out.transaction.cleanup.interval.ms": transactionAbortIntervalMs = try int(1)
        case "transactional.id.expiration.ms": transactionalIdExpirationMs = try int(1)
        case "group.min.session.timeout.ms": groupLimits.sessionTimeoutMsMin = Int32(try int())
        case "group.max.session.timeout.ms": groupLimits.sessionTimeoutMsMax = Int32(try int())
        case "group.initial.rebalance.delay.ms": groupLimits.initialRebalanceDelayMs = try int()
        case "group.max.size": groupLimits.membersMax = Int(try int(1))
        case "sluice.decompressed.bytes.max": decompressedBytesMax = Int(try int(1024))
        case "log.cleaner.enable": cleaner.enabled = try bool()
        case "log.cleaner.threads": cleaner.threads = Int(try int(1))
        case "log.cleaner.io.max.bytes.per.second":
            guard let v = Double(value), v > 0 else { throw .invalid("\(key): expected a positive number") }
            cleaner.ioBytesPerSecond = v
        case "log.cleaner.backoff.ms": cleaner.backoffMs = try int(0)
        case "log.cleaner.dedupe.buffer.size": cleaner.dedupeBufferBytes = Int(try int(1 << 20))
        case "sluice.partitions.max": partitionsMax = Int(try int(1))
        case "sluice.metrics.port": metricsPort = Int(try int())
        case "sluice.storage.threads": storageThreads = Int(try int(1))
        case "sluice.segments.open.max": openSegmentsMax = Int(try int(1))
        case "sluice.storage.commit.backend":
            guard value == "io_uring" || value == "syscalls" else { throw .invalid("\(key): io_uring or syscalls, not \(value)") }
            commitBackend = value
        case "sluice.socket.receive.pool.bytes": socketReceivePoolBytes = Int(try int(0))
        case "sluice.socket.receive":
            guard value == "frames" || value == "cumulation" else { throw .invalid("\(key): frames or cumulation, not \(value)") }
            socketReceive = value
        case "authorizer.class.name":
            let name = value.trimmingCharacters(in: " ")
            guard name.isEmpty || Self.standardAuthorizers.contains(name) else {
                throw .invalid("\(key): Sluice has the standard ACL authorizer only (\(Self.standardAuthorizers.sorted().joined(separator: " or "))), not \(value)")
            }
            authorizerClassName = name
        case "super.users": superUsers = value
        case "allow.everyone.if.no.acl.found": allowEveryoneIfNoAclFound = try bool()
        case "sluice.log.level":
            guard let level = Logger.Level(rawValue: value.lowercased()) else { throw .invalid("\(key): unknown level \(value)") }
            logLevel = level
        default:
            if let topicName = Self.topicDefaults[key] {
                try setTopicDefault(topicName, value)
            } else if !Self.knownBrokerProperties.contains(key) {
                unknown.append(key)
            }
        }
    }

    private mutating func setTopicDefault(_ name: String, _ value: String) throws(ConfigError) {
        do { try logDefaults.set(name, value) } catch { throw .invalid("\(error)") }
    }

    /// The first listener's advertised address.
    public var advertised: (host: String, port: Int) {
        let first = listenerAddresses[0]
        let a = advertisedAddresses.first { $0.name == first.name }
        return (a?.host ?? (listenerHost == "0.0.0.0" ? "127.0.0.1" : listenerHost), a?.port ?? first.port)
    }
}

extension String {
    func trimmingCharacters(in set: Swift.String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
