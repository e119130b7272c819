/// Who the request comes from: a principal ("User:alice"; "User:ANONYMOUS" on a PLAINTEXT
/// listener) and the client's IP address.
public struct RequestPrincipal: Sendable, Equatable {
    public var principal: String
    public var host: String

    public init(principal: String, host: String) {
        self.principal = principal
        self.host = host
    }

    public static func anonymous(host: String) -> RequestPrincipal { RequestPrincipal(principal: "User:ANONYMOUS", host: host) }
}

/// Kafka's standard authorizer, as a value: a set of bindings and the two settings that decide
/// what they cannot (`super.users`, `allow.everyone.if.no.acl.found`). Rules, in Kafka's order:
/// a super user may do everything; a matching DENY beats any ALLOW; a matching ALLOW of the
/// operation, or of one that implies it, allows; a resource no binding applies to at all is
/// allowed only when `allow.everyone.if.no.acl.found` is true.
public struct AclAuthorizer: Sendable {
    public private(set) var superUsers: Set<String>
    public private(set) var allowEveryoneIfNoAclFound: Bool
    /// Bindings by resource type, then by name: literal names (including "*") and prefixes apart.
    private var literal: [AclResourceType: [String: Set<AclBinding>]] = [:]
    private var prefixed: [AclResourceType: [String: Set<AclBinding>]] = [:]
    public private(set) var count = 0

    public init(superUsers: Set<String> = [], allowEveryoneIfNoAclFound: Bool = false) {
        self.superUsers = superUsers
        self.allowEveryoneIfNoAclFound = allowEveryoneIfNoAclFound
    }

    /// `super.users` as Kafka writes it: principals separated by semicolons.
    public static func parseSuperUsers(_ value: String) -> Set<String> {
        Set(value.split(separator: ";").map { entry in
            String(entry.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
        }.filter { !$0.isEmpty })
    }

    public var bindings: [AclBinding] {
        (literal.values.flatMap(\.values) + prefixed.values.flatMap(\.values)).flatMap { $0 }
    }

    /// Adds a binding; false when an identical one is already there.
    @discardableResult
    public mutating func add(_ b: AclBinding) -> Bool {
        let inserted = b.patternType == .prefixed
            ? prefixed[b.resourceType, default: [:]][b.resourceName, default: []].insert(b).inserted
            : literal[b.resourceType, default: [:]][b.resourceName, default: []].insert(b).inserted
        if inserted { count += 1 }
        return inserted
    }

    @discardableResult
    public mutating func remove(_ b: AclBinding) -> Bool {
        let removed = b.patternType == .prefixed
            ? prefixed[b.resourceType]?[b.resourceName]?.remove(b) != nil
            : literal[b.resourceType]?[b.resourceName]?.remove(b) != nil
        if removed { count -= 1 }
        return removed
    }

    public func matching(_ filter: AclBindingFilter) -> [AclBinding] {
        bindings.filter { filter.matches($0) }
    }

    /// The bindings whose pattern covers this resource (any principal, host or operation).
    func applicable(_ type: AclResourceType, _ name: String) -> [AclBinding] {
        var found: [AclBinding] = []
        if let byName = literal[type] {
            found += byName[name] ?? []
            if name != "*" { found += byName["*"] ?? [] }
        }
        for (prefix, set) in prefixed[type] ?? [:] where name.hasPrefix(prefix) { found += set }
        return found
    }

    public func authorize(_ who: RequestPrincipal, _ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
        if superUsers.contains(who.principal) { return true }
        let acls = applicable(type, name)
        if acls.isEmpty { return allowEveryoneIfNoAclFound }
        let mine = acls.filter {
            ($0.principal == who.principal || $0.principal == "User:*") && ($0.host == who.host || $0.host == "*")
        }
        if mine.contains(where: { $0.permission == .deny && ($0.operation == operation || $0.operation == .all) }) { return false }
        return mine.contains { acl in
            acl.permission == .allow && (acl.operation == operation || acl.operation == .all || acl.operation.implied.contains(operation))
        }
    }

    /// Whether some resource of the type allows the operation: a matching ALLOW binding whose
    /// pattern no matching DENY covers (a wildcard DENY, or a DENY on the same name or a prefix
    /// of it). With no bindings of the type at all, `allow.everyone.if.no.acl.found` decides.
    public func authorizeAny(_ who: RequestPrincipal, _ operation: AclOperation, _ type: AclResourceType) -> Bool {
        if superUsers.contains(who.principal) { return true }
        let all = (literal[type]?.values.flatMap { $0 } ?? []) + (prefixed[type]?.values.flatMap { $0 } ?? [])
        if all.isEmpty { return allowEveryoneIfNoAclFound }
        let mine = all.filter {
            ($0.principal == who.principal || $0.principal == "User:*") && ($0.host == who.host || $0.host == "*")
        }
        let denies = mine.filter { $0.permission == .deny && ($0.operation == operation || $0.operation == .all) }
        return mine.contains { allow in
            guard allow.permission == .allow, allow.operation == operation || allow.operation == .all else { return false }
            return !denies.contains { deny in
                (deny.patternType == .literal && deny.resourceName == "*")
                    || (deny.patternType == .literal && allow.patternType == .literal && deny.resourceName == allow.resourceName)
                    || (deny.patternType == .prefixed && allow.resourceName.hasPrefix(deny.resourceName))
            }
        }
    }

    /// Kafka's authorized-operations bit set for one resource: bit n set when operation code n is
    /// allowed.
    public func authorizedOperations(_ who: RequestPrincipal, _ type: AclResourceType, _ name: String) -> Int32 {
        AclOperation.operations(of: type).reduce(Int32(0)) { bits, op in
            authorize(who, op, type, name) ? bits | (1 << Int32(op.rawValue)) : bits
        }
    }
}
