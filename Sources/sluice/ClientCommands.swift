import ArgumentParser
import Foundation
import KafkaClient
import KafkaProtocol
import NIOCore
import Records

/// `sluice topics`, shaped like kafka-topics.sh.
struct Topics: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create, list, describe, alter or delete topics.")

    @Option(name: .customLong("bootstrap-server")) var bootstrap: String
    @Flag var create = false
    @Flag var list = false
    @Flag var describe = false
    @Flag var delete = false
    @Flag var alter = false
    @Flag(name: .customLong("exclude-internal"), help: "Leave out internal topics (__consumer_offsets, __transaction_state) when listing or describing.")
    var excludeInternal = false
    @Option var topic: String?
    @Option var partitions: Int32?
    @Option(name: .customLong("replication-factor")) var replicationFactor: Int16 = -1
    @Option(name: .customLong("config"), help: "A topic config as name=value; may repeat.") var configs: [String] = []
    @Option(name: .customLong("delete-config")) var deleteConfigs: [String] = []

    func validate() throws {
        guard [create, list, describe, delete, alter].filter({ $0 }).count == 1 else {
            throw ValidationError("exactly one of --create, --list, --describe, --delete, --alter")
        }
        if (create || delete || alter) && topic == nil { throw ValidationError("--topic is required") }
    }

    func parsedConfigs() throws -> [String: String] {
        var out: [String: String] = [:]
        for c in configs {
            guard let eq = c.firstIndex(of: "=") else { throw ValidationError("--config needs name=value, got \(c)") }
            out[String(c[..<eq])] = String(c[c.index(after: eq)...])
        }
        return out
    }

    func run() throws {
        let client = try KafkaClient(bootstrap: bootstrap)
        if create {
            try client.createTopic(topic!, partitions: partitions ?? -1, replicationFactor: replicationFactor, configs: try parsedConfigs())
            print("Created topic \(topic!).")
        } else if list {
            for t in try client.topics() where !(excludeInternal && t.isInternal) { print(t.name) }
        } else if describe {
            for t in try client.topics(topic.map { [$0] }) where !(excludeInternal && t.isInternal) {
                let configs = try client.topicConfigs(t.name).filter { !$0.isDefault }
                    .map { "\($0.name)=\($0.value ?? "null")" }.joined(separator: ",")
                print("Topic: \(t.name)\tTopicId: \(t.id)\tPartitionCount: \(t.partitions.count)\tReplicationFactor: \(t.partitions.first?.replicas.count ?? 0)\tConfigs: \(configs)")
                for p in t.partitions {
                    print("\tTopic: \(t.name)\tPartition: \(p.partition)\tLeader: \(p.leader)\tReplicas: \(p.replicas.map(String.init).joined(separator: ","))\tIsr: \(p.isr.map(String.init).joined(separator: ","))")
                }
            }
        } else if delete {
            try client.deleteTopic(topic!)
            print("Deleted topic \(topic!).")
        } else if alter {
            if let partitions { try client.createPartitions(topic!, count: partitions) }
            let set = try parsedConfigs()
            if !set.isEmpty || !deleteConfigs.isEmpty { try client.alterTopicConfigs(topic!, set: set, delete: deleteConfigs) }
            print("Altered topic \(topic!).")
        }
    }
}

/// Parses repeated `--property name=value` options.
func properties(_ list: [String]) throws -> [String: String] {
    var out: [String: String] = [:]
    for p in list {
        guard let eq = p.firstIndex(of: "=") else { throw ValidationError("--property needs name=value, got \(p)") }
        out[String(p[..<eq])] = String(p[p.index(after: eq)...])
    }
    return out
}

/// `sluice console-producer`: one record per stdin line, keys with parse.key=true, partitioned
/// by Kafka's murmur2 (keyed) or round-robin per batch (unkeyed).
struct ConsoleProducer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "console-producer", abstract: "Produce stdin lines as records.")

    @Option(name: .customLong("bootstrap-server")) var bootstrap: String
    @Option var topic: String
    @Option(name: .customLong("property")) var propertyList: [String] = []
    @Option(name: .customLong("compression-codec")) var compression: String = "none"
    @Option(name: .customLong("request-required-acks")) var acks: Int16 = -1
    @Option(name: .customLong("batch-size"), help: "Lines per batch.") var batchSize = 200

    func run() throws {
        let props = try properties(propertyList)
        let parseKey = props["parse.key"] == "true"
        let separator = props["key.separator"] ?? "\t"
        guard let codec = CompressionCodec.allCases.first(where: { $0.description == compression }) else {
            throw ValidationError("unknown codec \(compression)")
        }
        let client = try KafkaClient(bootstrap: bootstrap, clientId: "console-producer")
        let partitionCount = try partitions(client)
        var pending: [Int32: [RecordBatchBuilder.Input]] = [:]
        var roundRobin: Int32 = 0
        var sent = 0
        func flush() throws {
            for (p, records) in pending.sorted(by: { $0.key < $1.key }) where !records.isEmpty {
                try client.produce(topic: topic, partition: p, records: records, acks: acks, compression: codec)
                sent += records.count
            }
            pending.removeAll()
        }
        while let line = readLine() {
            var key: [UInt8]? = nil
            var value = line
            if parseKey, let range = line.range(of: separator) {
                key = Array(line[..<range.lowerBound].utf8)
                value = String(line[range.upperBound...])
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let partition = key.map { Partitioner.partition(forKey: $0, partitions: partitionCount) } ?? roundRobin
            pending[partition, default: []].append(.init(key: key.map { ByteBuffer(bytes: $0) }, value: ByteBuffer(string: value), timestamp: now))
            if pending.values.reduce(0, { $0 + $1.count }) >= batchSize {
                try flush()
                roundRobin = (roundRobin + 1) % partitionCount
            }
        }
        try flush()
        FileHandle.standardError.write(Data("Produced \(sent) records to \(topic).\n".utf8))
    }

    /// Partition count, creating the topic through Metadata's auto-create as a producer does.
    func partitions(_ client: KafkaClient) throws -> Int32 {
        for _ in 0..<50 {
            if let t = try? client.topicsAllowingCreate([topic]).first, !t.partitions.isEmpty { return Int32(t.partitions.count) }
            usleep(100_000)
        }
        throw ValidationError("topic \(topic) does not exist and was not created")
    }
}

/// `sluice console-consumer`.
struct ConsoleConsumer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "console-consumer", abstract: "Print records of a topic.")

    @Option(name: .customLong("bootstrap-server")) var bootstrap: String
    @Option var topic: String
    @Flag(name: .customLong("from-beginning")) var fromBeginning = false
    @Option(name: .customLong("max-messages")) var maxMessages: Int?
    @Option(name: .customLong("timeout-ms"), help: "Exit after this long without a new record.") var timeoutMs: Int?
    @Option var partition: Int32?
    @Option var group: String?
    @Option(name: .customLong("property")) var propertyList: [String] = []

    func run() throws {
        let props = try properties(propertyList)
        let printKey = props["print.key"] == "true"
        let printOffset = props["print.offset"] == "true"
        let printPartition = props["print.partition"] == "true"
        let printTimestamp = props["print.timestamp"] == "true"
        let separator = props["key.separator"] ?? "\t"
        let client = try KafkaClient(bootstrap: bootstrap, clientId: "console-consumer")
        guard let info = try client.topics([topic]).first else { throw ValidationError("unknown topic \(topic)") }
        let parts = partition.map { [$0] } ?? info.partitions.map(\.partition)
        var positions: [Int32: Int64] = [:]
        var committed: [Int32: Int64] = [:]
        if let group {
            for c in try client.committedOffsets(group: group) where c.topic == topic && c.offset >= 0 { committed[c.partition] = c.offset }
        }
        for p in parts {
            positions[p] = try committed[p] ?? client.offset(topic: topic, partition: p, timestamp: fromBeginning ? -2 : -1)
        }
        var printed = 0
        var lastRecord = Date()
        loop: while true {
            let records = try client.fetch(topic: topic, offsets: positions, maxWaitMs: 200)
            for r in records.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
                var fields: [String] = []
                if printTimestamp { fields.append("CreateTime:\(r.timestamp)") }
                if printPartition { fields.append("Partition:\(r.partition)") }
                if printOffset { fields.append("Offset:\(r.offset)") }
                if printKey { fields.append(r.key.map { String(buffer: $0) } ?? "null") }
                fields.append(r.value.map { String(buffer: $0) } ?? "null")
                print(fields.joined(separator: separator))
                positions[r.partition] = r.offset + 1
                printed += 1
                lastRecord = Date()
                if let maxMessages, printed >= maxMessages { break loop }
            }
            if let timeoutMs, Date().timeIntervalSince(lastRecord) * 1000 > Double(timeoutMs) { break }
        }
        fflush(nil)
        if let group { try client.commit(group: group, offsets: positions.map { (topic, $0.key, $0.value) }) }
        FileHandle.standardError.write(Data("Processed a total of \(printed) messages\n".utf8))
    }
}

/// `sluice consumer-groups`, shaped like kafka-consumer-groups.sh.
struct ConsumerGroups: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consumer-groups", abstract: "List, describe, reset or delete consumer groups.")

    @Option(name: .customLong("bootstrap-server")) var bootstrap: String
    @Flag var list = false
    @Flag var describe = false
    @Flag var delete = false
    @Flag(name: .customLong("reset-offsets")) var resetOffsets = false
    @Option var group: String?
    @Option var topic: String?
    @Flag var members = false
    @Flag var state = false
    @Flag(name: .customLong("to-earliest")) var toEarliest = false
    @Flag(name: .customLong("to-latest")) var toLatest = false
    @Option(name: .customLong("to-offset")) var toOffset: Int64?
    @Option(name: .customLong("to-datetime"), help: "e.g. 2026-11-22T10:00:00.000") var toDatetime: String?
    @Option(name: .customLong("shift-by"), parsing: .unconditional) var shiftBy: Int64?
    @Flag(name: .customLong("dry-run")) var dryRun = false
    @Flag var execute = false

    func validate() throws {
        guard [list, describe, delete, resetOffsets].filter({ $0 }).count == 1 else {
            throw ValidationError("exactly one of --list, --describe, --reset-offsets, --delete")
        }
        if !list && group == nil { throw ValidationError("--group is required") }
        if resetOffsets {
            guard topic != nil else { throw ValidationError("--reset-offsets needs --topic") }
            let specs = [toEarliest, toLatest, toOffset != nil, toDatetime != nil, shiftBy != nil].filter { $0 }.count
            guard specs == 1 else { throw ValidationError("exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by") }
            guard dryRun != execute else { throw ValidationError("one of --dry-run or --execute") }
        }
    }

    static func pad(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in row.enumerated().map { $0.element.padding(toLength: widths[$0.offset] + 1, withPad: " ", startingAt: 0) }.joined(separator: " ") }
            .joined(separator: "\n")
    }

    func run() throws {
        let client = try KafkaClient(bootstrap: bootstrap, clientId: "consumer-groups")
        if list {
            for g in try client.listGroups() { print(g.groupId) }
            return
        }
        let g = group!
        if delete {
            try client.deleteGroup(g)
            print("Deletion of requested consumer groups ('\(g)') was successful.")
            return
        }
        if resetOffsets { return try reset(client, g) }
        let description = try client.describeGroup(g)
        if state {
            print(Self.pad([["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
                            [g, bootstrap, description.protocolData, description.groupState, String(description.members.count)]]))
            return
        }
        if members {
            var rows = [["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]]
            for m in description.members {
                rows.append([g, m.memberId, m.clientHost, m.clientId, String(Self.assignment(m.memberAssignment).count)])
            }
            print(Self.pad(rows))
            return
        }
        // The lag table.
        var owner: [String: (String, String, String)] = [:]
        for m in description.members {
            for (t, p) in Self.assignment(m.memberAssignment) { owner["\(t)-\(p)"] = (m.memberId, m.clientHost, m.clientId) }
        }
        var rows = [["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]]
        for c in try client.committedOffsets(group: g).sorted(by: { ($0.topic, $0.partition) < ($1.topic, $1.partition) }) {
            let end = try client.offset(topic: c.topic, partition: c.partition, timestamp: -1)
            let o = owner["\(c.topic)-\(c.partition)"]
            rows.append([g, c.topic, String(c.partition), c.offset >= 0 ? String(c.offset) : "-", String(end),
                         c.offset >= 0 ? String(end - c.offset) : "-", o?.0 ?? "-", o?.1 ?? "-", o?.2 ?? "-"])
        }
        print("\nConsumer group '\(g)' is \(description.groupState.lowercased()).\n")
        print(Self.pad(rows))
    }

    /// Partitions in a ConsumerProtocolAssignment.
    static func assignment(_ bytes: [UInt8]) -> [(String, Int32)] {
        var b = ByteBuffer(bytes: bytes)
        guard let version = b.readInteger(as: Int16.self),
              let a = try? ConsumerProtocolAssignment.decode(from: &b, version: min(version, ConsumerProtocolAssignment.validVersions.upperBound))
        else { return [] }
        return a.assignedPartitions.flatMap { t in t.partitions.map { (t.topic, $0) } }
    }

    func reset(_ client: KafkaClient, _ g: String) throws {
        let description = try client.describeGroup(g)
        guard description.members.isEmpty || dryRun else {
            throw ValidationError("Assignments can only be reset if the group '\(g)' is inactive, but the current state is \(description.groupState).")
        }
        guard let info = try client.topics([topic!]).first else { throw ValidationError("unknown topic \(topic!)") }
        let current = Dictionary(try client.committedOffsets(group: g).filter { $0.topic == topic! }.map { ($0.partition, $0.offset) },
                                 uniquingKeysWith: { a, _ in a })
        var targets: [(String, Int32, Int64)] = []
        for p in info.partitions.map(\.partition) {
            let earliest = try client.offset(topic: topic!, partition: p, timestamp: -2)
            let latest = try client.offset(topic: topic!, partition: p, timestamp: -1)
            var target: Int64
            if toEarliest { target = earliest }
            else if toLatest { target = latest }
            else if let toOffset { target = toOffset }
            else if let shiftBy { target = (current[p].flatMap { $0 >= 0 ? $0 : nil } ?? latest) + shiftBy }
            else {
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                let text = toDatetime!.contains("Z") || toDatetime!.contains("+") ? toDatetime! : toDatetime! + "Z"
                guard let date = formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text) else {
                    throw ValidationError("cannot parse --to-datetime \(toDatetime!)")
                }
                let found = try client.offset(topic: topic!, partition: p, timestamp: Int64(date.timeIntervalSince1970 * 1000))
                target = found >= 0 ? found : latest
            }
            targets.append((topic!, p, min(max(target, earliest), latest)))
        }
        print(Self.pad([["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]] + targets.map { [g, $0.0, String($0.1), String($0.2)] }))
        if execute { try client.commit(group: g, offsets: targets.map { (topic: $0.0, partition: $0.1, offset: $0.2) }) }
    }
}
