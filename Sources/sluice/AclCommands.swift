import ArgumentParser
import KafkaClient
import KafkaProtocol
import Security

/// `sluice acls`, shaped like kafka-acls.sh: add, remove and list ACLs through the Admin API.
struct Acls: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, remove or list ACLs (like kafka-acls.sh).",
        discussion: "Example: sluice acls --bootstrap-server 127.0.0.1:9092 --add --allow-principal User:alice --operation Read --topic orders")

    @Option(name: .customLong("bootstrap-server")) var bootstrap: String
    @Flag var add = false
    @Flag var remove = false
    @Flag var list = false
    @Option(name: .customLong("allow-principal"), help: "A principal (User:name, or User:* for every user) to allow; may repeat.")
    var allowPrincipals: [String] = []
    @Option(name: .customLong("deny-principal"), help: "A principal to deny; may repeat.") var denyPrincipals: [String] = []
    @Option(name: .customLong("allow-host"), help: "Hosts the allow applies to (default *).") var allowHosts: [String] = []
    @Option(name: .customLong("deny-host"), help: "Hosts the deny applies to (default *).") var denyHosts: [String] = []
    @Option(name: .customLong("operation"), help: "Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All (default All); may repeat.")
    var operations: [String] = []
    @Option var topic: [String] = []
    @Option var group: [String] = []
    @Option(name: .customLong("transactional-id")) var transactionalIds: [String] = []
    @Flag var cluster = false
    @Option(name: .customLong("resource-pattern-type"), help: "literal or prefixed (add); also any or match (list, remove).")
    var patternType = "literal"
    @Option(help: "With --list: only this principal's ACLs.") var principal: String?
    @Flag(help: "Allow a producer: Write, Describe and Create on the topics.") var producer = false
    @Flag(help: "Allow a consumer: Read and Describe on the topics, Read on the groups.") var consumer = false
    @Flag(help: "With --producer: IdempotentWrite on the cluster.") var idempotent = false
    @Flag(help: "Remove without asking (the only way here; accepted for kafka-acls.sh scripts).") var force = false

    func validate() throws {
        guard [add, remove, list].filter({ $0 }).count == 1 else { throw ValidationError("exactly one of --add, --remove, --list") }
        if add && allowPrincipals.isEmpty && denyPrincipals.isEmpty {
            throw ValidationError("--add needs --allow-principal or --deny-principal")
        }
        _ = try resources()
        _ = try Self.pattern(patternType)
    }

    static func pattern(_ text: String) throws -> AclPatternType {
        switch text.lowercased() {
        case "literal": .literal
        case "prefixed": .prefixed
        case "any": .any
        case "match": .match
        default: throw ValidationError("--resource-pattern-type: literal, prefixed, any or match, not \(text)")
        }
    }

    static func operation(_ text: String) throws -> AclOperation {
        let key = text.lowercased().replacingOccurrences(of: "_", with: "")
        guard let op = AclOperation.allCases.first(where: { "\($0)".lowercased() == key }), op != .unknown else {
            throw ValidationError("unknown operation \(text)")
        }
        return op
    }

    func resources() throws -> [(AclResourceType, String)] {
        var out = topic.map { (AclResourceType.topic, $0) } + group.map { (.group, $0) } + transactionalIds.map { (.transactionalId, $0) }
        if cluster || idempotent { out.append((.cluster, AclResourceType.clusterName)) }
        return out
    }

    /// (resource, operation) pairs an --add or --remove means.
    func grants() throws -> [(AclResourceType, String, AclOperation)] {
        var out: [(AclResourceType, String, AclOperation)] = []
        for (type, name) in try resources() {
            var ops = try operations.map(Self.operation)
            if producer && type == .topic { ops += [.write, .describe, .create] }
            if producer && idempotent && type == .cluster { ops += [.idempotentWrite] }
            if consumer && type == .topic { ops += [.read, .describe] }
            if consumer && type == .group { ops += [.read] }
            if ops.isEmpty && !producer && !consumer { ops = [.all] }
            for op in ops where !out.contains(where: { $0.0 == type && $0.1 == name && $0.2 == op }) { out.append((type, name, op)) }
        }
        return out
    }

    func entries() -> [(String, String, AclPermissionType)] {
        let allows = allowPrincipals.flatMap { p in (allowHosts.isEmpty ? ["*"] : allowHosts).map { (p, $0, AclPermissionType.allow) } }
        let denies = denyPrincipals.flatMap { p in (denyHosts.isEmpty ? ["*"] : denyHosts).map { (p, $0, AclPermissionType.deny) } }
        return allows + denies
    }

    func run() throws {
        let client = try KafkaClient(bootstrap: bootstrap)
        let pattern = try Self.pattern(patternType)
        if add {
            let creations = try grants().flatMap { type, name, op in
                entries().map { principal, host, permission in
                    CreateAclsRequest.AclCreation(resourceType: type.rawValue, resourceName: name, resourcePatternType: pattern.rawValue,
                                                  principal: principal, host: host, operation: op.rawValue, permissionType: permission.rawValue)
                }
            }
            try client.createAcls(creations)
            print("Added \(creations.count) ACL(s).")
        } else if remove {
            let principals = entries()
            let filters = try grants().flatMap { type, name, op -> [DeleteAclsRequest.DeleteAclsFilter] in
                let byEntry: [(String?, String?, AclPermissionType)] = principals.isEmpty ? [(nil, nil, .any)] : principals.map { ($0.0, $0.1, $0.2) }
                return byEntry.map { principal, host, permission in
                    .init(resourceTypeFilter: type.rawValue, resourceNameFilter: name, patternTypeFilter: pattern.rawValue,
                          principalFilter: principal, hostFilter: host,
                          operation: (operations.isEmpty && !producer && !consumer ? AclOperation.any : op).rawValue,
                          permissionType: permission.rawValue)
                }
            }
            let removed = try client.deleteAcls(filters)
            print("Removed \(removed.count) ACL(s).")
        } else {
            try printList(client, pattern: pattern)
        }
    }

    private func printList(_ client: KafkaClient, pattern: AclPatternType) throws {
        let wanted = try resources()
        let filters: [(AclResourceType, String?)] = wanted.isEmpty ? [(.any, nil)] : wanted.map { ($0.0, $0.1) }
        for (type, name) in filters {
            let request = DescribeAclsRequest(resourceTypeFilter: type.rawValue, resourceNameFilter: name,
                                              patternTypeFilter: (wanted.isEmpty ? AclPatternType.any : pattern).rawValue,
                                              principalFilter: principal, hostFilter: nil, operation: AclOperation.any.rawValue,
                                              permissionType: AclPermissionType.any.rawValue)
            for r in try client.describeAcls(request) {
                let rtype = AclResourceType(rawValue: r.resourceType).map(Self.upper) ?? "\(r.resourceType)"
                let rpattern = AclPatternType(rawValue: r.patternType).map(Self.upper) ?? "\(r.patternType)"
                print("Current ACLs for resource `ResourcePattern(resourceType=\(rtype), name=\(r.resourceName), patternType=\(rpattern))`:")
                for a in r.acls {
                    let op = AclOperation(rawValue: a.operation).map(Self.upper) ?? "\(a.operation)"
                    let permission = AclPermissionType(rawValue: a.permissionType).map(Self.upper) ?? "\(a.permissionType)"
                    print(" \t(principal=\(a.principal), host=\(a.host), operation=\(op), permissionType=\(permission))")
                }
                print("")
            }
        }
    }

    /// Kafka's printed names: TRANSACTIONAL_ID, DESCRIBE_CONFIGS.
    static func upper<T>(_ value: T) -> String {
        "\(value)".reduce(into: "") { out, c in
            if c.isUppercase { out += "_" }
            out += c.uppercased()
        }
    }
}
