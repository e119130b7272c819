/// Kafka's ACL model, with Kafka's wire codes: which principal, from which host, may or may not
/// do which operation on which resources. Pure values; the metadata log stores them as
/// AccessControlEntryRecords and `AclAuthorizer` decides with them.

/// Resource types (org.apache.kafka.common.resource.ResourceType codes).
public enum AclResourceType: Int8, Sendable, CaseIterable {
    case unknown = 0, any = 1, topic = 2, group = 3, cluster = 4, transactionalId = 5, delegationToken = 6, user = 7

    /// The name the cluster resource always has.
    public static let clusterName = "kafka-cluster"
}

/// How a binding's resource name is matched (PatternType codes).
public enum AclPatternType: Int8, Sendable, CaseIterable {
    /// In filters: any stored pattern type. MATCH: every binding that applies to the named resource.
    case unknown = 0, any = 1, match = 2, literal = 3, prefixed = 4
}

/// Operations (AclOperation codes).
public enum AclOperation: Int8, Sendable, CaseIterable {
    case unknown = 0, any = 1, all = 2, read = 3, write = 4, create = 5, delete = 6, alter = 7, describe = 8
    case clusterAction = 9, describeConfigs = 10, alterConfigs = 11, idempotentWrite = 12, createTokens = 13, describeTokens = 14

    /// What an ALLOW of this operation also allows, as in Kafka: DESCRIBE comes with READ, WRITE,
    /// DELETE and ALTER; DESCRIBE_CONFIGS with ALTER_CONFIGS.
    var implied: [AclOperation] {
        switch self {
        case .read, .write, .delete, .alter: [.describe]
        case .alterConfigs: [.describeConfigs]
        default: []
        }
    }

    /// The operations a resource type has, as Kafka lists them in authorized-operations bit sets.
    public static func operations(of type: AclResourceType) -> [AclOperation] {
        switch type {
        case .topic: [.read, .write, .create, .delete, .alter, .describe, .describeConfigs, .alterConfigs]
        case .group: [.read, .describe, .delete]
        case .cluster: [.create, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite, .alter, .describe]
        case .transactionalId: [.describe, .write]
        case .delegationToken: [.describe]
        case .user: [.createTokens, .describeTokens]
        default: []
        }
    }
}

/// ALLOW or DENY (AclPermissionType codes).
public enum AclPermissionType: Int8, Sendable, CaseIterable {
    case unknown = 0, any = 1, deny = 2, allow = 3
}

/// One ACL: a resource pattern and an access control entry.
public struct AclBinding: Sendable, Hashable {
    public var resourceType: AclResourceType
    public var resourceName: String
    public var patternType: AclPatternType
    /// "User:alice", or "User:*" for every user.
    public var principal: String
    /// A client IP address, or "*" for any host.
    public var host: String
    public var operation: AclOperation
    public var permission: AclPermissionType

    public init(resourceType: AclResourceType, resourceName: String, patternType: AclPatternType, principal: String, host: String,
                operation: AclOperation, permission: AclPermissionType) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    /// Why Kafka would refuse to store this binding, or nil when it may be stored.
    public var invalidReason: String? {
        if [.unknown, .any].contains(resourceType) { return "resource type \(resourceType) is not a concrete resource type" }
        if patternType != .literal && patternType != .prefixed { return "pattern type must be LITERAL or PREFIXED" }
        if [.unknown, .any].contains(operation) { return "operation \(operation) is not a concrete operation" }
        if permission != .allow && permission != .deny { return "permission type must be ALLOW or DENY" }
        if resourceName.isEmpty { return "the resource name must not be empty" }
        if resourceType == .cluster && resourceName != AclResourceType.clusterName {
            return "the cluster resource is named \(AclResourceType.clusterName)"
        }
        if patternType == .prefixed && resourceName == "*" { return "a PREFIXED pattern cannot be the wildcard *" }
        guard let colon = principal.firstIndex(of: ":"), colon != principal.startIndex, principal.index(after: colon) != principal.endIndex else {
            return "principal \(principal) is not of the form Type:name"
        }
        if host.isEmpty { return "the host must not be empty (use * for any host)" }
        if !AclOperation.operations(of: resourceType).contains(operation) && operation != .all {
            return "operation \(operation) does not apply to resource type \(resourceType)"
        }
        return nil
    }
}

/// A DescribeAcls / DeleteAcls filter: nil names, hosts and principals, and ANY codes, match
/// everything.
public struct AclBindingFilter: Sendable, Equatable {
    public var resourceType: AclResourceType
    public var resourceName: String?
    public var patternType: AclPatternType
    public var principal: String?
    public var host: String?
    public var operation: AclOperation
    public var permission: AclPermissionType

    public init(resourceType: AclResourceType, resourceName: String?, patternType: AclPatternType, principal: String?, host: String?,
                operation: AclOperation, permission: AclPermissionType) {
        self.resourceType = resourceType
        self.resourceName = resourceName
        self.patternType = patternType
        self.principal = principal
        self.host = host
        self.operation = operation
        self.permission = permission
    }

    /// Why Kafka would refuse this filter, or nil.
    public var invalidReason: String? {
        if resourceType == .unknown || patternType == .unknown || operation == .unknown || permission == .unknown {
            return "the filter has an UNKNOWN element"
        }
        if patternType == .match && resourceName == nil { return "a MATCH filter needs a resource name" }
        return nil
    }

    public func matches(_ b: AclBinding) -> Bool {
        guard resourceType == .any || resourceType == b.resourceType,
              operation == .any || operation == b.operation,
              permission == .any || permission == b.permission,
              principal == nil || principal == b.principal,
              host == nil || host == b.host
        else { return false }
        switch patternType {
        case .any: return resourceName == nil || resourceName == b.resourceName
        case .match:
            guard let name = resourceName else { return true }
            switch b.patternType {
            case .literal: return b.resourceName == name || b.resourceName == "*"
            case .prefixed: return name.hasPrefix(b.resourceName)
            default: return false
            }
        default: return patternType == b.patternType && (resourceName == nil || resourceName == b.resourceName)
        }
    }
}
