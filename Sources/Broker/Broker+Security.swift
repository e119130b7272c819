import KafkaProtocol
import NIOCore
import Security

/// What a request may do: a snapshot of the ACLs taken when the request starts, and who sent it.
/// Without an authorizer (`authorizer.class.name` empty, Kafka's default) everything is allowed.
struct Access {
    let authorizer: AclAuthorizer?
    let who: RequestPrincipal

    func allows(_ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
        authorizer?.authorize(who, operation, type, name) ?? true
    }

    func allowsCluster(_ operation: AclOperation) -> Bool { allows(operation, .cluster, AclResourceType.clusterName) }

    /// Whether the operation is allowed on some resource of the type (KIP-679's check for
    /// idempotent producers: WRITE on any topic).
    func allowsAny(_ operation: AclOperation, _ type: AclResourceType) -> Bool {
        authorizer?.authorizeAny(who, operation, type) ?? true
    }

    /// Kafka's authorized-operations bit set (every operation of the type without an authorizer).
    func operations(_ type: AclResourceType, _ name: String) -> Int32 {
        if let authorizer { return authorizer.authorizedOperations(who, type, name) }
        return AclOperation.operations(of: type).reduce(Int32(0)) { $0 | (1 << Int32($1.rawValue)) }
    }
}

/// ACLs (CreateAcls, DescribeAcls, DeleteAcls) and SCRAM credentials (Describe/AlterUserScramCredentials).
extension Broker {
    func access(_ context: RequestContext) -> Access {
        Access(authorizer: config.authorizerEnabled ? metadata.acls : nil, who: context.principal)
    }

    /// Why an ACL request cannot be served (no authorizer, or the caller may not), or nil.
    private func aclRequestRefusal(_ context: RequestContext, _ operation: AclOperation) -> (ErrorCode, String)? {
        guard config.authorizerEnabled else { return (.securityDisabled, "no authorizer is configured (authorizer.class.name)") }
        guard access(context).allowsCluster(operation) else { return (.clusterAuthorizationFailed, "not authorized to \(operation) the cluster") }
        return nil
    }

    func handleCreateAcls(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try CreateAclsRequest.decode(from: &body, version: context.version)
        var response = CreateAclsResponse()
        if let (code, message) = aclRequestRefusal(context, .alter) {
            response.results = request.creations.map { _ in .init(errorCode: code.rawValue, errorMessage: message) }
            return frame(response, context)
        }
        var valid: [AclBinding] = []
        for c in request.creations {
            let binding = AclBinding(
                resourceType: AclResourceType(rawValue: c.resourceType) ?? .unknown, resourceName: c.resourceName,
                patternType: AclPatternType(rawValue: c.resourcePatternType) ?? .unknown, principal: c.principal, host: c.host,
                operation: AclOperation(rawValue: c.operation) ?? .unknown, permission: AclPermissionType(rawValue: c.permissionType) ?? .unknown)
            if let reason = binding.invalidReason {
                response.results.append(.init(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: reason))
            } else {
                response.results.append(.init(errorCode: 0, errorMessage: nil))
                valid.append(binding)
            }
        }
        do {
            try metadata.createAcls(valid, nowMs: currentTimeMs())
        } catch {
            for i in response.results.indices where response.results[i].errorCode == 0 {
                response.results[i] = .init(errorCode: ErrorCode.kafkaStorageError.rawValue, errorMessage: "\(error)")
            }
        }
        return frame(response, context)
    }

    static func filter(resourceType: Int8, resourceName: String?, patternType: Int8, principal: String?, host: String?,
                       operation: Int8, permissionType: Int8) -> AclBindingFilter {
        AclBindingFilter(resourceType: AclResourceType(rawValue: resourceType) ?? .unknown, resourceName: resourceName,
                         patternType: AclPatternType(rawValue: patternType) ?? .unknown, principal: principal, host: host,
                         operation: AclOperation(rawValue: operation) ?? .unknown, permission: AclPermissionType(rawValue: permissionType) ?? .unknown)
    }

    func handleDescribeAcls(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let r = try DescribeAclsRequest.decode(from: &body, version: context.version)
        var response = DescribeAclsResponse()
        let filter = Self.filter(resourceType: r.resourceTypeFilter, resourceName: r.resourceNameFilter, patternType: r.patternTypeFilter,
                                 principal: r.principalFilter, host: r.hostFilter, operation: r.operation, permissionType: r.permissionType)
        if let (code, message) = aclRequestRefusal(context, .describe) {
            (response.errorCode, response.errorMessage) = (code.rawValue, message)
        } else if let reason = filter.invalidReason {
            (response.errorCode, response.errorMessage) = (ErrorCode.invalidRequest.rawValue, reason)
        } else {
            let byResource = Dictionary(grouping: metadata.acls.matching(filter)) { ResourceKey($0) }
            response.resources = byResource.keys.sorted().map { key in
                let acls = byResource[key]!.sorted {
                    ($0.principal, $0.host, $0.operation.rawValue, $0.permission.rawValue) < ($1.principal, $1.host, $1.operation.rawValue, $1.permission.rawValue)
                }
                return .init(resourceType: key.type, resourceName: key.name, patternType: key.pattern, acls: acls.map {
                    .init(principal: $0.principal, host: $0.host, operation: $0.operation.rawValue, permissionType: $0.permission.rawValue)
                })
            }
        }
        return frame(response, context)
    }

    func handleDeleteAcls(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DeleteAclsRequest.decode(from: &body, version: context.version)
        var response = DeleteAclsResponse()
        if let (code, message) = aclRequestRefusal(context, .alter) {
            response.filterResults = request.filters.map { _ in .init(errorCode: code.rawValue, errorMessage: message) }
            return frame(response, context)
        }
        let filters = request.filters.map {
            Self.filter(resourceType: $0.resourceTypeFilter, resourceName: $0.resourceNameFilter, patternType: $0.patternTypeFilter,
                        principal: $0.principalFilter, host: $0.hostFilter, operation: $0.operation, permissionType: $0.permissionType)
        }
        let usable = filters.filter { $0.invalidReason == nil }
        let removed: [[AclBinding]]
        do { removed = try metadata.deleteAcls(usable, nowMs: currentTimeMs()) } catch {
            response.filterResults = filters.map { _ in .init(errorCode: ErrorCode.kafkaStorageError.rawValue, errorMessage: "\(error)") }
            return frame(response, context)
        }
        var next = removed.makeIterator()
        for f in filters {
            if let reason = f.invalidReason {
                response.filterResults.append(.init(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: reason))
                continue
            }
            response.filterResults.append(.init(errorCode: 0, errorMessage: nil, matchingAcls: (next.next() ?? []).map {
                .init(errorCode: 0, errorMessage: nil, resourceType: $0.resourceType.rawValue, resourceName: $0.resourceName,
                      patternType: $0.patternType.rawValue, principal: $0.principal, host: $0.host, operation: $0.operation.rawValue,
                      permissionType: $0.permission.rawValue)
            }))
        }
        return frame(response, context)
    }

    // MARK: - SCRAM credentials

    func handleDescribeUserScramCredentials(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DescribeUserScramCredentialsRequest.decode(from: &body, version: context.version)
        var response = DescribeUserScramCredentialsResponse()
        guard access(context).allowsCluster(.describe) else {
            response.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
            return frame(response, context)
        }
        let asked = request.users.map { $0.map(\.name) }
        let names = asked.flatMap { $0.isEmpty ? nil : $0 } ?? metadata.scramUsers
        var seen: [String: Int] = [:]
        for n in names { seen[n, default: 0] += 1 }
        var reported = Set<String>()
        for user in names where reported.insert(user).inserted {
            var r = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult(user: user, errorCode: 0)
            let credentials = metadata.scramCredentials(user)
            if seen[user]! > 1 {
                (r.errorCode, r.errorMessage) = (ErrorCode.duplicateResource.rawValue, "user \(user) is named more than once")
            } else if credentials.isEmpty {
                (r.errorCode, r.errorMessage) = (ErrorCode.resourceNotFound.rawValue, "user \(user) has no SCRAM credentials")
            } else {
                r.credentialInfos = credentials.values.sorted { $0.mechanism.rawValue < $1.mechanism.rawValue }.map {
                    .init(mechanism: $0.mechanism.rawValue, iterations: $0.iterations)
                }
            }
            response.results.append(r)
        }
        return frame(response, context)
    }

    func handleAlterUserScramCredentials(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try AlterUserScramCredentialsRequest.decode(from: &body, version: context.version)
        var response = AlterUserScramCredentialsResponse()
        let allowed = access(context).allowsCluster(.alter)
        var failed: [String: (ErrorCode, String)] = [:]
        var order: [String] = []
        var named: [String: Int] = [:]  // (user, mechanism) pairs named more than once are refused
        func note(_ user: String, _ mechanism: Int8) {
            if !order.contains(user) { order.append(user) }
            named["\(user)\u{0}\(mechanism)", default: 0] += 1
        }
        for d in request.deletions { note(d.name, d.mechanism) }
        for u in request.upsertions { note(u.name, u.mechanism) }
        func check(_ user: String, _ mechanism: Int8) -> ScramMechanism? {
            if !allowed { failed[user] = (.clusterAuthorizationFailed, "not authorized to alter the cluster") }
            else if user.isEmpty { failed[user] = (.unacceptableCredential, "the user name must not be empty") }
            else if named["\(user)\u{0}\(mechanism)"]! > 1 { failed[user] = (.duplicateResource, "\(user) names one mechanism more than once") }
            guard let m = ScramMechanism(rawValue: mechanism) else {
                failed[user] = failed[user] ?? (.unsupportedSaslMechanism, "unknown SCRAM mechanism \(mechanism)")
                return nil
            }
            return m
        }
        var deletions: [(String, ScramMechanism)] = []
        for d in request.deletions {
            guard let m = check(d.name, d.mechanism) else { continue }
            if failed[d.name] == nil, metadata.scramCredentials(d.name)[m] == nil {
                failed[d.name] = (.resourceNotFound, "\(d.name) has no \(m.name) credential")
            }
            deletions.append((d.name, m))
        }
        var upserts: [(String, ScramCredential)] = []
        for u in request.upsertions {
            guard let m = check(u.name, u.mechanism) else { continue }
            if failed[u.name] == nil, !(ScramMechanism.minIterations...ScramMechanism.maxIterations).contains(u.iterations) {
                failed[u.name] = (.unacceptableCredential, "iterations must be in \(ScramMechanism.minIterations)...\(ScramMechanism.maxIterations)")
            } else if failed[u.name] == nil, u.salt.isEmpty || u.saltedPassword.isEmpty {
                failed[u.name] = (.unacceptableCredential, "the salt and the salted password must not be empty")
            }
            upserts.append((u.name, ScramCredential(mechanism: m, salt: u.salt, saltedPassword: u.saltedPassword, iterations: u.iterations)))
        }
        // A user's changes apply together or not at all.
        do {
            try metadata.alterScramCredentials(upserts: upserts.filter { failed[$0.0] == nil }, deletions: deletions.filter { failed[$0.0] == nil },
                                               nowMs: currentTimeMs())
        } catch {
            for user in order where failed[user] == nil { failed[user] = (.kafkaStorageError, "\(error)") }
        }
        response.results = order.map { user in
            .init(user: user, errorCode: failed[user]?.0.rawValue ?? 0, errorMessage: failed[user]?.1)
        }
        return frame(response, context)
    }
}

/// A DescribeAcls resource: type, name and pattern type, ordered for a stable response.
private struct ResourceKey: Hashable, Comparable {
    let type: Int8, name: String, pattern: Int8
    init(_ b: AclBinding) { (type, name, pattern) = (b.resourceType.rawValue, b.resourceName, b.patternType.rawValue) }
    static func < (a: ResourceKey, b: ResourceKey) -> Bool { (a.type, a.name, a.pattern) < (b.type, b.name, b.pattern) }
}

// MARK: - SASL

extension Broker {
    func handleSaslHandshake(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try SaslHandshakeRequest.decode(from: &body, version: context.version)
        let session = context.session
        var response = SaslHandshakeResponse(errorCode: 0, mechanisms: session.listener.saslMechanisms.map(\.rawValue))
        guard case .awaitingHandshake = session.login else {
            // A PLAINTEXT listener, or a second handshake: Kafka answers ILLEGAL_SASL_STATE.
            response.errorCode = ErrorCode.illegalSaslState.rawValue
            return frame(response, context)
        }
        guard let mechanism = SaslMechanism(rawValue: request.mechanism), session.listener.saslMechanisms.contains(mechanism) else {
            response.errorCode = ErrorCode.unsupportedSaslMechanism.rawValue
            session.closeAfterResponse = true
            return frame(response, context)
        }
        session.login = .handshaken(mechanism)
        return frame(response, context)
    }

    func handleSaslAuthenticate(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try SaslAuthenticateRequest.decode(from: &body, version: context.version)
        let session = context.session
        var response = SaslAuthenticateResponse(authBytes: [], sessionLifetimeMs: 0)
        func fail(_ code: ErrorCode, _ message: String) {
            logger.info("SASL login from \(session.clientHost) on \(session.listener.name) failed: \(message)")
            response.errorCode = code.rawValue
            response.errorMessage = message
            session.closeAfterResponse = true
        }
        switch session.login {
        case .handshaken(.plain):
            switch PlainLogin.authenticate(request.authBytes, users: session.listener.plainUsers) {
            case .success(let user): session.authenticated(as: user)
            case .failure(let f): fail(.saslAuthenticationFailed, f.message)
            }
        case .handshaken(let mechanism):
            guard let scram = mechanism.scram else { fail(.illegalSaslState, "unexpected SaslAuthenticate"); break }
            var server = ScramServer(mechanism: scram)
            switch server.receiveFirst(request.authBytes, serverNonce: Self.scramNonce(), credentials: { [metadata] in metadata.scramCredentials($0)[scram] }) {
            case .success(let reply):
                response.authBytes = reply
                session.login = .scram(server)
            case .failure(let f): fail(.saslAuthenticationFailed, f.message)
            }
        case .scram(var server):
            switch server.receiveFinal(request.authBytes) {
            case .success(let (reply, user)):
                response.authBytes = reply
                session.authenticated(as: user)
            case .failure(let f): fail(.saslAuthenticationFailed, f.message)
            }
        case .awaitingHandshake, .done:
            fail(.illegalSaslState, "SaslAuthenticate without a SaslHandshake before it")
        }
        return frame(response, context)
    }

    /// A fresh server nonce: 24 random bytes, base64 without '=' and ','.
    static func scramNonce() -> String {
        var g = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        return String((0..<32).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] })
    }
}
