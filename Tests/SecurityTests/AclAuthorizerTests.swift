import Records
import Testing
@testable import Security

/// The standard authorizer's rules, checked case by case and against a brute-force model.
@Suite("ACL authorizer")
struct AclAuthorizerTests {
    static let alice = RequestPrincipal(principal: "User:alice", host: "10.0.0.1")
    static let bob = RequestPrincipal(principal: "User:bob", host: "10.0.0.2")

    static func acl(type: AclResourceType = .topic, _ name: String, pattern: AclPatternType = .literal, principal: String = "User:alice",
                    host: String = "*", _ op: AclOperation, _ permission: AclPermissionType = .allow) -> AclBinding {
        AclBinding(resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: host, operation: op,
                   permission: permission)
    }

    @Test("a resource no ACL applies to follows allow.everyone.if.no.acl.found")
    func noAcl() {
        #expect(!AclAuthorizer().authorize(Self.alice, .read, .topic, "t"))
        #expect(AclAuthorizer(allowEveryoneIfNoAclFound: true).authorize(Self.alice, .read, .topic, "t"))
        // Once any ACL covers the resource, the setting no longer opens it.
        var a = AclAuthorizer(allowEveryoneIfNoAclFound: true)
        a.add(Self.acl("t", principal: "User:bob", .read))
        #expect(!a.authorize(Self.alice, .read, .topic, "t"))
        #expect(a.authorize(Self.alice, .read, .topic, "other"))
    }

    @Test("super users may do everything, a DENY notwithstanding")
    func superUsers() {
        var a = AclAuthorizer(superUsers: AclAuthorizer.parseSuperUsers(" User:admin ; User:alice;"))
        #expect(a.superUsers == ["User:admin", "User:alice"])
        a.add(Self.acl("t", .all, .deny))
        #expect(a.authorize(Self.alice, .write, .topic, "t"))
        #expect(!a.authorize(Self.bob, .write, .topic, "t"))
    }

    @Test("DENY beats ALLOW, for the principal, the wildcard principal and ALL")
    func denyWins() {
        var a = AclAuthorizer()
        a.add(Self.acl("t", principal: "User:*", .write))
        #expect(a.authorize(Self.alice, .write, .topic, "t"))
        #expect(a.authorize(Self.bob, .write, .topic, "t"))
        a.add(Self.acl("t", .write, .deny))
        #expect(!a.authorize(Self.alice, .write, .topic, "t"))
        #expect(a.authorize(Self.bob, .write, .topic, "t"))
        a.add(Self.acl("t", pattern: .prefixed, principal: "User:*", .all, .deny))
        #expect(!a.authorize(Self.bob, .write, .topic, "t"))
        #expect(!a.authorize(Self.bob, .write, .topic, "tx"))
    }

    @Test("prefixed ACLs grant a family of topics; the literal * every topic")
    func patterns() {
        var a = AclAuthorizer()
        a.add(Self.acl("orders-", pattern: .prefixed, .read))
        #expect(a.authorize(Self.alice, .read, .topic, "orders-eu"))
        #expect(a.authorize(Self.alice, .read, .topic, "orders-"))
        #expect(!a.authorize(Self.alice, .read, .topic, "order"))
        #expect(!a.authorize(Self.alice, .read, .group, "orders-eu"))
        a.add(Self.acl("*", .describe))
        #expect(a.authorize(Self.alice, .describe, .topic, "anything"))
        #expect(!a.authorize(Self.alice, .write, .topic, "anything"))
    }

    @Test("READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; a DENY implies nothing")
    func implied() {
        var a = AclAuthorizer()
        a.add(Self.acl("t", .write))
        a.add(Self.acl("t", .alterConfigs))
        #expect(a.authorize(Self.alice, .describe, .topic, "t"))
        #expect(a.authorize(Self.alice, .describeConfigs, .topic, "t"))
        #expect(!a.authorize(Self.alice, .read, .topic, "t"))
        var b = AclAuthorizer()
        b.add(Self.acl("t", .all))
        b.add(Self.acl("t", .read, .deny))
        #expect(!b.authorize(Self.alice, .read, .topic, "t"))
        #expect(b.authorize(Self.alice, .describe, .topic, "t"))
    }

    @Test("hosts match exactly or by *")
    func hosts() {
        var a = AclAuthorizer()
        a.add(Self.acl("t", host: "10.0.0.1", .read))
        #expect(a.authorize(Self.alice, .read, .topic, "t"))
        #expect(!a.authorize(RequestPrincipal(principal: "User:alice", host: "10.0.0.9"), .read, .topic, "t"))
    }

    @Test("authorized operations are Kafka's bit set")
    func operations() {
        var a = AclAuthorizer()
        a.add(Self.acl("t", .read))
        // READ (3) and the DESCRIBE (8) it implies.
        #expect(a.authorizedOperations(Self.alice, .topic, "t") == (1 << 3) | (1 << 8))
        #expect(a.authorizedOperations(Self.bob, .topic, "t") == 0)
    }

    @Test("adding twice stores once; removing forgets")
    func addRemove() {
        var a = AclAuthorizer()
        let first = a.add(Self.acl("t", .read)), second = a.add(Self.acl("t", .read))
        #expect(first && !second)
        #expect(a.count == 1)
        let removed = a.remove(Self.acl("t", .read)), again = a.remove(Self.acl("t", .read))
        #expect(removed && !again)
        #expect(a.count == 0 && a.bindings.isEmpty)
    }

    @Test("idempotent producers: WRITE on some topic, unless a DENY covers it")
    func anyTopic() {
        var a = AclAuthorizer()
        #expect(!a.authorizeAny(Self.alice, .write, .topic))
        a.add(Self.acl("logs-", pattern: .prefixed, .write))
        #expect(a.authorizeAny(Self.alice, .write, .topic))
        #expect(!a.authorizeAny(Self.bob, .write, .topic))
        a.add(Self.acl("log", pattern: .prefixed, .write, .deny))
        #expect(!a.authorizeAny(Self.alice, .write, .topic))
    }

    @Test("filters: ANY, MATCH, LITERAL and PREFIXED select as DescribeAcls does")
    func filters() {
        let literal = Self.acl("orders", .read), star = Self.acl("*", .read), prefix = Self.acl("ord", pattern: .prefixed, .read)
        let group = Self.acl(type: .group, "orders", .read)
        let all = [literal, star, prefix, group]
        func select(_ type: AclResourceType, _ name: String?, _ pattern: AclPatternType) -> Set<AclBinding> {
            Set(all.filter { AclBindingFilter(resourceType: type, resourceName: name, patternType: pattern, principal: nil, host: nil,
                                              operation: .any, permission: .any).matches($0) })
        }
        #expect(select(.any, nil, .any) == Set(all))
        #expect(select(.topic, "orders", .any) == [literal])
        #expect(select(.topic, "orders", .match) == [literal, star, prefix])
        #expect(select(.topic, nil, .prefixed) == [prefix])
        #expect(select(.topic, "ord", .literal).isEmpty)
        let wrongOp = AclBindingFilter(resourceType: .any, resourceName: nil, patternType: .any, principal: "User:alice", host: "*",
                                       operation: .write, permission: .allow)
        #expect(all.filter { wrongOp.matches($0) }.isEmpty)
        #expect(AclBindingFilter(resourceType: .topic, resourceName: nil, patternType: .match, principal: nil, host: nil, operation: .any,
                                 permission: .any).invalidReason != nil)
    }

    @Test("bindings Kafka refuses to store are refused with a reason")
    func validation() {
        #expect(Self.acl("t", .read).invalidReason == nil)
        #expect(Self.acl(type: .any, "t", .read).invalidReason != nil)
        #expect(Self.acl("t", pattern: .match, .read).invalidReason != nil)
        #expect(Self.acl("t", .any).invalidReason != nil)
        #expect(Self.acl("t", principal: "alice", .read).invalidReason != nil)
        #expect(Self.acl(type: .cluster, "c", .alter).invalidReason != nil)
        #expect(Self.acl(type: .cluster, AclResourceType.clusterName, .alter).invalidReason == nil)
        #expect(Self.acl(type: .group, "g", .write).invalidReason != nil)
        #expect(Self.acl("*", pattern: .prefixed, .read).invalidReason != nil)
    }

    /// The rules written the slow way: every binding examined for every question.
    static func model(_ bindings: [AclBinding], superUsers: Set<String>, everyone: Bool, _ who: RequestPrincipal, _ op: AclOperation,
                      _ type: AclResourceType, _ name: String) -> Bool {
        if superUsers.contains(who.principal) { return true }
        let applies = bindings.filter { b in
            b.resourceType == type && (b.patternType == .prefixed ? name.hasPrefix(b.resourceName) : b.resourceName == name || b.resourceName == "*")
        }
        if applies.isEmpty { return everyone }
        let mine = applies.filter { ($0.principal == who.principal || $0.principal == "User:*") && ($0.host == "*" || $0.host == who.host) }
        if mine.contains(where: { $0.permission == .deny && [op, .all].contains($0.operation) }) { return false }
        let implies: [AclOperation: [AclOperation]] = [.read: [.describe], .write: [.describe], .delete: [.describe], .alter: [.describe],
                                                       .alterConfigs: [.describeConfigs]]
        return mine.contains { $0.permission == .allow && ($0.operation == op || $0.operation == .all || implies[$0.operation, default: []].contains(op)) }
    }

    @Test("random ACL sets decide as the model does", arguments: 0..<40)
    func againstModel(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let names = ["a", "ab", "abc", "b", "*"], principals = ["User:alice", "User:bob", "User:*"], hosts = ["*", "10.0.0.1", "10.0.0.2"]
        let ops: [AclOperation] = [.read, .write, .describe, .all, .alter, .describeConfigs, .alterConfigs]
        var bindings: [AclBinding] = []
        for _ in 0..<rng.below(12) {
            let pattern: AclPatternType = rng.below(3) == 0 ? .prefixed : .literal
            var name = names[rng.below(names.count)]
            if pattern == .prefixed && name == "*" { name = "a" }
            bindings.append(AclBinding(resourceType: rng.below(4) == 0 ? .group : .topic, resourceName: name, patternType: pattern,
                                       principal: principals[rng.below(3)], host: hosts[rng.below(3)], operation: ops[rng.below(ops.count)],
                                       permission: rng.below(3) == 0 ? .deny : .allow))
        }
        let everyone = rng.below(2) == 0
        let supers: Set<String> = rng.below(4) == 0 ? ["User:bob"] : []
        var a = AclAuthorizer(superUsers: supers, allowEveryoneIfNoAclFound: everyone)
        for b in bindings { a.add(b) }
        for who in [RequestPrincipal(principal: "User:alice", host: "10.0.0.1"), RequestPrincipal(principal: "User:bob", host: "10.0.0.2")] {
            for type in [AclResourceType.topic, .group] {
                for name in ["a", "ab", "abc", "abd", "b", "c"] {
                    for op in [AclOperation.read, .write, .describe, .alter, .describeConfigs] {
                        #expect(a.authorize(who, op, type, name) == Self.model(bindings, superUsers: supers, everyone: everyone, who, op, type, name),
                                "seed \(seed): \(who.principal) \(op) \(type) \(name)")
                    }
                }
            }
        }
    }
}

extension SplitMix64 {
    mutating func below(_ n: Int) -> Int { Int.random(in: 0..<n, using: &self) }
}
