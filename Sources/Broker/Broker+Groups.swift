import Coordination
import Foundation
import KafkaProtocol
import NIOCore
import Security

/// FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
/// ListGroups, DescribeGroups, DeleteGroups.
extension Broker {
    func handleFindCoordinator(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try FindCoordinatorRequest.decode(from: &body, version: context.version)
        let (host, port) = (context.session.listener.advertisedHost, context.session.listener.advertisedPort)
        // Key type 0 is a consumer group; 1, a transactional id. This node coordinates both.
        let supported = request.keyType == 0 || request.keyType == 1
        if supported { markInUse(internalTopic: request.keyType == 0 ? GroupCoordinator.offsetsTopic : TransactionCoordinator.stateTopic) }
        let error = supported ? ErrorCode.none : .invalidRequest
        let message: String? = supported ? nil : "unknown coordinator key type \(request.keyType)"
        let access = access(context)
        // Finding a coordinator needs DESCRIBE on the group or transactional id.
        func refusal(_ key: String) -> ErrorCode? {
            switch request.keyType {
            case 0: access.allows(.describe, .group, key) ? nil : .groupAuthorizationFailed
            case 1: access.allows(.describe, .transactionalId, key) ? nil : .transactionalIdAuthorizationFailed
            default: nil
            }
        }
        var response = FindCoordinatorResponse()
        if context.version < 4 {
            let denied = refusal(request.key)
            let found = supported && denied == nil
            response.errorCode = (denied ?? error).rawValue
            response.errorMessage = message
            response.nodeId = found ? config.nodeId : -1
            response.host = found ? host : ""
            response.port = found ? Int32(port) : -1
        } else {
            response.coordinators = request.coordinatorKeys.map { key in
                let denied = refusal(key)
                let found = supported && denied == nil
                return .init(key: key, nodeId: found ? config.nodeId : -1, host: found ? host : "",
                             port: found ? Int32(port) : -1, errorCode: (denied ?? error).rawValue, errorMessage: message)
            }
        }
        return frame(response, context)
    }

    func handleJoinGroup(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try JoinGroupRequest.decode(from: &body, version: context.version)
        // v0 has no rebalance timeout: it equals the session timeout.
        let rebalanceTimeout = context.version == 0 ? request.sessionTimeoutMs : request.rebalanceTimeoutMs
        guard access(context).allows(.read, .group, request.groupId) else {
            var response = JoinGroupResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue, generationId: -1, leader: "",
                                             memberId: request.memberId)
            if context.version < 7 { response.protocolName = "" }
            return context.eventLoop.makeSucceededFuture(frame(response, context))
        }
        return groups.join(
            groupId: request.groupId, memberId: request.memberId, groupInstanceId: request.groupInstanceId,
            clientId: context.header.clientId ?? "", clientHost: "/" + context.clientHost,
            sessionTimeoutMs: request.sessionTimeoutMs, rebalanceTimeoutMs: rebalanceTimeout,
            protocolType: request.protocolType, protocols: request.protocols.map { (name: $0.name, metadata: $0.metadata) },
            requireKnownMemberId: context.version >= 4, on: context.eventLoop
        ).map { [self] outcome in
            var response = JoinGroupResponse(generationId: -1, leader: "", memberId: request.memberId)
            switch outcome {
            case .joined(let r):
                response.generationId = r.generationId
                response.protocolType = r.protocolType
                response.protocolName = r.protocolName
                response.leader = r.leaderId
                response.memberId = r.memberId
                response.members = r.members.map { .init(memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, metadata: $0.metadata) }
            case .joinFailed(_, let error):
                response.errorCode = error.code.rawValue
                if case .memberIdRequired(let id) = error { response.memberId = id }
            default:
                response.errorCode = ErrorCode.unknownServerError.rawValue
            }
            if context.version < 7 && response.protocolName == nil { response.protocolName = "" }
            return frame(response, context)
        }
    }

    func handleSyncGroup(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try SyncGroupRequest.decode(from: &body, version: context.version)
        guard access(context).allows(.read, .group, request.groupId) else {
            let response = SyncGroupResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue, protocolType: request.protocolType,
                                             protocolName: request.protocolName)
            return context.eventLoop.makeSucceededFuture(frame(response, context))
        }
        let assignments = Dictionary(request.assignments.map { ($0.memberId, $0.assignment) }, uniquingKeysWith: { a, _ in a })
        return groups.sync(groupId: request.groupId, memberId: request.memberId, groupInstanceId: request.groupInstanceId,
                           generationId: request.generationId, assignments: assignments, on: context.eventLoop)
            .map { [self] outcome in
                var response = SyncGroupResponse(protocolType: request.protocolType, protocolName: request.protocolName)
                switch outcome {
                case .synced(_, let assignment): response.assignment = assignment
                case .syncFailed(_, let error): response.errorCode = error.code.rawValue
                default: response.errorCode = ErrorCode.unknownServerError.rawValue
                }
                return frame(response, context)
            }
    }

    func handleHeartbeat(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try HeartbeatRequest.decode(from: &body, version: context.version)
        guard access(context).allows(.read, .group, request.groupId) else {
            return frame(HeartbeatResponse(errorCode: ErrorCode.groupAuthorizationFailed.rawValue), context)
        }
        let error = groups.heartbeat(groupId: request.groupId, memberId: request.memberId, groupInstanceId: request.groupInstanceId,
                                     generationId: request.generationId)
        return frame(HeartbeatResponse(errorCode: error?.code.rawValue ?? 0), context)
    }

    func handleLeaveGroup(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try LeaveGroupRequest.decode(from: &body, version: context.version)
        var response = LeaveGroupResponse()
        if !access(context).allows(.read, .group, request.groupId) {
            response.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
        } else if context.version < 3 {
            let error = groups.leave(groupId: request.groupId, memberId: request.memberId, groupInstanceId: nil, on: context.eventLoop)
            response.errorCode = error?.code.rawValue ?? 0
        } else {
            for m in request.members {
                let error = groups.leave(groupId: request.groupId, memberId: m.memberId, groupInstanceId: m.groupInstanceId, on: context.eventLoop)
                response.members.append(.init(memberId: m.memberId, groupInstanceId: m.groupInstanceId, errorCode: error?.code.rawValue ?? 0))
            }
        }
        return frame(response, context)
    }

    /// One partition of an OffsetCommit or TxnOffsetCommit: the topic and partition must exist
    /// and the metadata fit offset.metadata.max.bytes; then the entry to store.
    static func checkCommit(_ topic: String, _ known: TopicMetadata?, _ partition: Int32, _ offset: Int64, _ leaderEpoch: Int32,
                            _ metadata: String?, nowMs: Int64)
        -> (code: ErrorCode, entry: (GroupCoordinator.TopicPartition, GroupCoordinator.Committed)?) {
        guard let known, partition >= 0, partition < known.partitionCount else { return (.unknownTopicOrPartition, nil) }
        guard (metadata?.utf8.count ?? 0) <= GroupCoordinator.metadataBytesMax else { return (.offsetMetadataTooLarge, nil) }
        return (.none, (.init(topic: topic, partition: partition),
                        .init(offset: offset, leaderEpoch: leaderEpoch, metadata: metadata ?? "", commitTimestamp: nowMs)))
    }

    func handleOffsetCommit(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try OffsetCommitRequest.decode(from: &body, version: context.version)
        let access = access(context)
        let groupAllowed = access.allows(.read, .group, request.groupId)
        let groupError = groupAllowed ? groups.validateCommit(groupId: request.groupId, memberId: request.memberId,
                                                              groupInstanceId: request.groupInstanceId, generationId: request.generationIdOrMemberEpoch) : nil
        var response = OffsetCommitResponse()
        var entries: [(GroupCoordinator.TopicPartition, GroupCoordinator.Committed?)] = []
        let now = currentTimeMs()
        for topic in request.topics {
            var t = OffsetCommitResponse.OffsetCommitResponseTopic(name: topic.name)
            let known = metadata.topic(topic.name)
            let topicAllowed = access.allows(.read, .topic, topic.name)
            for p in topic.partitions {
                var code = !groupAllowed ? .groupAuthorizationFailed : groupError?.code ?? (topicAllowed ? .none : .topicAuthorizationFailed)
                if code == .none {
                    let checked = Self.checkCommit(topic.name, known, p.partitionIndex, p.committedOffset, p.committedLeaderEpoch,
                                                   p.committedMetadata, nowMs: now)
                    code = checked.code
                    if let entry = checked.entry { entries.append(entry) }
                }
                t.partitions.append(.init(partitionIndex: p.partitionIndex, errorCode: code.rawValue))
            }
            response.topics.append(t)
        }
        let groupId = request.groupId
        let answer = response
        let commits = entries
        // The append (and its fsync under `ack`) runs off the event loop.
        return threadPool.runIfActive(eventLoop: context.eventLoop) { [self] () -> OffsetCommitResponse in
            do {
                try groups.persist(group: groupId, commits)
                return answer
            } catch {
                logger.error("offset commit for \(groupId) failed: \(error)")
                var failed = answer
                for i in failed.topics.indices {
                    for j in failed.topics[i].partitions.indices where failed.topics[i].partitions[j].errorCode == 0 {
                        failed.topics[i].partitions[j].errorCode = ErrorCode.coordinatorNotAvailable.rawValue
                    }
                }
                return failed
            }
        }.map { [self] in frame($0, context) }
    }

    func handleOffsetFetch(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try OffsetFetchRequest.decode(from: &body, version: context.version)
        let access = access(context)
        typealias Partition = OffsetFetchResponse.OffsetFetchResponsePartition
        /// One group's answer: per topic its partitions, or nil when the caller may not describe the group.
        func lookup(_ groupId: String, _ wanted: [(String, [Int32])]?) -> [(String, [Partition])]? {
            guard access.allows(.describe, .group, groupId) else { return nil }
            let committed = groups.committed(group: groupId)
            func entry(_ name: String, _ p: Int32, _ c: GroupCoordinator.Committed?) -> Partition {
                let unstable = request.requireStable && groups.hasPendingOffset(group: groupId, .init(topic: name, partition: p))
                return .init(partitionIndex: p, committedOffset: unstable ? -1 : c?.offset ?? -1, committedLeaderEpoch: c?.leaderEpoch ?? -1,
                             metadata: c?.metadata ?? "", errorCode: unstable ? ErrorCode.unstableOffsetCommit.rawValue : 0)
            }
            if let wanted {
                return wanted.map { (name, parts) in
                    guard access.allows(.describe, .topic, name) else {
                        return (name, parts.map { .init(partitionIndex: $0, committedOffset: -1, committedLeaderEpoch: -1, metadata: "",
                                                        errorCode: ErrorCode.topicAuthorizationFailed.rawValue) })
                    }
                    return (name, parts.map { entry(name, $0, committed[.init(topic: name, partition: $0)]) })
                }
            }
            // null topics (v2+): every committed offset of the group the caller may describe.
            var byTopic: [String: [(Int32, GroupCoordinator.Committed)]] = [:]
            for (tp, c) in committed where access.allows(.describe, .topic, tp.topic) { byTopic[tp.topic, default: []].append((tp.partition, c)) }
            return byTopic.keys.sorted().map { name in (name, byTopic[name]!.sorted { $0.0 < $1.0 }.map { entry(name, $0.0, $0.1) }) }
        }
        var response = OffsetFetchResponse()
        if context.version < 8 {
            if let found = lookup(request.groupId, request.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }) {
                response.topics = found.map { .init(name: $0.0, partitions: $0.1) }
            } else {
                response.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
            }
        } else {
            response.groups = request.groups.map { g in
                guard let found = lookup(g.groupId, g.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }) else {
                    return .init(groupId: g.groupId, errorCode: ErrorCode.groupAuthorizationFailed.rawValue)
                }
                return .init(groupId: g.groupId, topics: found.map { (name, parts) in
                    .init(name: name, partitions: parts.map {
                        .init(partitionIndex: $0.partitionIndex, committedOffset: $0.committedOffset, committedLeaderEpoch: $0.committedLeaderEpoch,
                              metadata: $0.metadata, errorCode: $0.errorCode)
                    })
                })
            }
        }
        return frame(response, context)
    }

    func handleListGroups(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try ListGroupsRequest.decode(from: &body, version: context.version)
        let filter = Set(request.statesFilter.map { $0.lowercased() })
        let access = access(context)
        // DESCRIBE on the cluster lists every group; otherwise the groups the caller may describe.
        let everyGroup = access.allowsCluster(.describe)
        let listed = groups.summaries().filter {
            (filter.isEmpty || filter.contains($0.state.lowercased())) && (everyGroup || access.allows(.describe, .group, $0.groupId))
        }
        if !request.typesFilter.isEmpty && !request.typesFilter.map({ $0.lowercased() }).contains("classic") {
            return frame(ListGroupsResponse(), context)
        }
        let response = ListGroupsResponse(groups: listed.map {
            .init(groupId: $0.groupId, protocolType: $0.protocolType, groupState: $0.state, groupType: "classic")
        })
        return frame(response, context)
    }

    func handleDescribeGroups(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DescribeGroupsRequest.decode(from: &body, version: context.version)
        let all = Dictionary(uniqueKeysWithValues: groups.summaries().map { ($0.groupId, $0) })
        let access = access(context)
        var response = DescribeGroupsResponse()
        for id in request.groups {
            let operations = request.includeAuthorizedOperations ? access.operations(.group, id) : Self.authorizedOperationsUnknown
            guard access.allows(.describe, .group, id) else {
                response.groups.append(.init(errorCode: ErrorCode.groupAuthorizationFailed.rawValue, groupId: id, groupState: "",
                                             protocolType: "", protocolData: "", authorizedOperations: operations))
                continue
            }
            guard let g = all[id] else {
                // Kafka describes an unknown group as Dead with no members.
                response.groups.append(.init(groupId: id, groupState: "Dead", protocolType: "", protocolData: "", authorizedOperations: operations))
                continue
            }
            response.groups.append(.init(
                groupId: id, groupState: g.state, protocolType: g.protocolType, protocolData: g.protocolName,
                members: g.members.sorted { $0.memberId < $1.memberId }.map { m in
                    .init(memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId, clientHost: m.clientHost,
                          memberMetadata: m.protocols.first { $0.name == g.protocolName }?.metadata ?? [], memberAssignment: m.assignment)
                },
                authorizedOperations: operations))
        }
        return frame(response, context)
    }

    func handleDeleteGroups(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DeleteGroupsRequest.decode(from: &body, version: context.version)
        var response = DeleteGroupsResponse()
        let access = access(context)
        for id in request.groupsNames {
            let code = !access.allows(.delete, .group, id) ? .groupAuthorizationFailed : (try? groups.delete(groupId: id)) ?? .coordinatorNotAvailable
            response.results.append(.init(groupId: id, errorCode: code.rawValue))
        }
        return frame(response, context)
    }
}

extension Broker {
    func handleOffsetDelete(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try OffsetDeleteRequest.decode(from: &body, version: context.version)
        var response = OffsetDeleteResponse()
        let access = access(context)
        guard access.allows(.delete, .group, request.groupId) else {
            response.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
            return context.eventLoop.makeSucceededFuture(frame(response, context))
        }
        guard groups.groupExists(request.groupId) else {
            response.errorCode = ErrorCode.groupIdNotFound.rawValue
            return context.eventLoop.makeSucceededFuture(frame(response, context))
        }
        // Offsets of topics the group is consuming cannot be deleted (Kafka's rule).
        let subscribed = groups.subscribedTopics(group: request.groupId) ?? []
        var deletions: [(GroupCoordinator.TopicPartition, GroupCoordinator.Committed?)] = []
        for t in request.topics {
            let code: ErrorCode = !access.allows(.read, .topic, t.name) ? .topicAuthorizationFailed
                : subscribed.contains(t.name) ? .groupSubscribedToTopic
                : (metadata.topic(t.name) == nil ? .unknownTopicOrPartition : .none)
            if code == .none { deletions += t.partitions.map { (.init(topic: t.name, partition: $0.partitionIndex), nil) } }
            response.topics.append(.init(name: t.name, partitions: t.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: code.rawValue) }))
        }
        let groupId = request.groupId
        let answer = response
        let removals = deletions
        return threadPool.runIfActive(eventLoop: context.eventLoop) { [self] () -> OffsetDeleteResponse in
            do {
                try groups.persist(group: groupId, removals)
                return answer
            } catch {
                var failed = answer
                failed.errorCode = ErrorCode.coordinatorNotAvailable.rawValue
                return failed
            }
        }.map { [self] in frame($0, context) }
    }

    func handleDescribeLogDirs(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DescribeLogDirsRequest.decode(from: &body, version: context.version)
        guard access(context).allowsCluster(.describe) else {
            // v3+ carries the error; older versions get no log dirs, as from Kafka.
            return frame(DescribeLogDirsResponse(errorCode: ErrorCode.clusterAuthorizationFailed.rawValue), context)
        }
        var byTopic: [String: [DescribeLogDirsResponse.DescribeLogDirsPartition]] = [:]
        let wanted = request.topics.map { Dictionary($0.map { ($0.topic, Set($0.partitions)) }, uniquingKeysWith: { a, b in a.union(b) }) }
        // Every partition hosted here, the internal topics in use included (as Kafka lists them).
        for topic in metadata.topics + shownInternalTopics where wanted == nil || wanted![topic.name] != nil {
            for p in 0..<topic.partitionCount where wanted?[topic.name]?.contains(p) ?? true {
                guard let log = logManager.log(topic: topic.name, partition: p) else { continue }
                byTopic[topic.name, default: []].append(.init(partitionIndex: p, partitionSize: log.sizeBytes, offsetLag: 0, isFutureKey: false))
            }
        }
        var stats = statvfs()
        let haveStats = statvfs(config.logDir, &stats) == 0
        let response = DescribeLogDirsResponse(results: [.init(
            logDir: config.logDir,
            topics: byTopic.keys.sorted().map { .init(name: $0, partitions: byTopic[$0]!) },
            totalBytes: haveStats ? Int64(stats.f_blocks) * Int64(stats.f_frsize) : -1,
            usableBytes: haveStats ? Int64(stats.f_bavail) * Int64(stats.f_frsize) : -1)])
        return frame(response, context)
    }
}
