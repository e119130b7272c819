import Coordination
import Foundation
import KafkaProtocol
import NIOCore

/// FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
/// ListGroups, DescribeGroups, DeleteGroups.
extension Broker {
    func handleFindCoordinator(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try FindCoordinatorRequest.decode(from: &body, version: context.version)
        let (host, port) = config.advertised
        // Key type 0 is a consumer group; 1, a transactional id. This node coordinates both.
        let supported = request.keyType == 0 || request.keyType == 1
        if supported { markInUse(internalTopic: request.keyType == 0 ? GroupCoordinator.offsetsTopic : TransactionCoordinator.stateTopic) }
        let error = supported ? ErrorCode.none : .invalidRequest
        let message: String? = supported ? nil : "unknown coordinator key type \(request.keyType)"
        var response = FindCoordinatorResponse()
        if context.version < 4 {
            response.errorCode = error.rawValue
            response.errorMessage = message
            response.nodeId = supported ? config.nodeId : -1
            response.host = supported ? host : ""
            response.port = supported ? Int32(port) : -1
        } else {
            response.coordinators = request.coordinatorKeys.map { key in
                .init(key: key, nodeId: supported ? config.nodeId : -1, host: supported ? host : "",
                      port: supported ? Int32(port) : -1, errorCode: error.rawValue, errorMessage: message)
            }
        }
        return frame(response, context)
    }

    func handleJoinGroup(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try JoinGroupRequest.decode(from: &body, version: context.version)
        // v0 has no rebalance timeout: it equals the session timeout.
        let rebalanceTimeout = context.version == 0 ? request.sessionTimeoutMs : request.rebalanceTimeoutMs
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
        let error = groups.heartbeat(groupId: request.groupId, memberId: request.memberId, groupInstanceId: request.groupInstanceId,
                                     generationId: request.generationId)
        return frame(HeartbeatResponse(errorCode: error?.code.rawValue ?? 0), context)
    }

    func handleLeaveGroup(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try LeaveGroupRequest.decode(from: &body, version: context.version)
        var response = LeaveGroupResponse()
        if context.version < 3 {
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
        let groupError = groups.validateCommit(groupId: request.groupId, memberId: request.memberId,
                                               groupInstanceId: request.groupInstanceId, generationId: request.generationIdOrMemberEpoch)
        var response = OffsetCommitResponse()
        var entries: [(GroupCoordinator.TopicPartition, GroupCoordinator.Committed?)] = []
        let now = currentTimeMs()
        for topic in request.topics {
            var t = OffsetCommitResponse.OffsetCommitResponseTopic(name: topic.name)
            let known = metadata.topic(topic.name)
            for p in topic.partitions {
                var code = groupError?.code ?? .none
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
        func lookup(_ groupId: String, _ wanted: [(String, [Int32])]?) -> [(String, [(Int32, GroupCoordinator.Committed?)])] {
            let committed = groups.committed(group: groupId)
            if let wanted {
                return wanted.map { (name, parts) in (name, parts.map { ($0, committed[.init(topic: name, partition: $0)]) }) }
            }
            // null topics (v2+): every committed offset of the group.
            var byTopic: [String: [(Int32, GroupCoordinator.Committed?)]] = [:]
            for (tp, c) in committed { byTopic[tp.topic, default: []].append((tp.partition, c)) }
            return byTopic.keys.sorted().map { ($0, byTopic[$0]!.sorted { $0.0 < $1.0 }) }
        }
        var response = OffsetFetchResponse()
        if context.version < 8 {
            let wanted = request.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
            response.topics = lookup(request.groupId, wanted).map { (name, parts) in
                .init(name: name, partitions: parts.map { (p, c) in
                    let unstable = request.requireStable && groups.hasPendingOffset(group: request.groupId, .init(topic: name, partition: p))
                    return .init(partitionIndex: p, committedOffset: unstable ? -1 : c?.offset ?? -1, committedLeaderEpoch: c?.leaderEpoch ?? -1,
                                 metadata: c?.metadata ?? "", errorCode: unstable ? ErrorCode.unstableOffsetCommit.rawValue : 0)
                })
            }
        } else {
            response.groups = request.groups.map { g in
                let wanted = g.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
                return .init(groupId: g.groupId, topics: lookup(g.groupId, wanted).map { (name, parts) in
                    .init(name: name, partitions: parts.map { (p, c) in
                            let unstable = request.requireStable && groups.hasPendingOffset(group: g.groupId, .init(topic: name, partition: p))
                        return .init(partitionIndex: p, committedOffset: unstable ? -1 : c?.offset ?? -1, committedLeaderEpoch: c?.leaderEpoch ?? -1,
                                     metadata: c?.metadata ?? "", errorCode: unstable ? ErrorCode.unstableOffsetCommit.rawValue : 0)
                    })
                })
            }
        }
        return frame(response, context)
    }

    func handleListGroups(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try ListGroupsRequest.decode(from: &body, version: context.version)
        let filter = Set(request.statesFilter.map { $0.lowercased() })
        let listed = groups.summaries().filter { filter.isEmpty || filter.contains($0.state.lowercased()) }
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
        var response = DescribeGroupsResponse()
        for id in request.groups {
            guard let g = all[id] else {
                // Kafka describes an unknown group as Dead with no members.
                response.groups.append(.init(groupId: id, groupState: "Dead", protocolType: "", protocolData: "",
                                             authorizedOperations: request.includeAuthorizedOperations ? Self.groupOperations : Self.authorizedOperationsUnknown))
                continue
            }
            response.groups.append(.init(
                groupId: id, groupState: g.state, protocolType: g.protocolType, protocolData: g.protocolName,
                members: g.members.sorted { $0.memberId < $1.memberId }.map { m in
                    .init(memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId, clientHost: m.clientHost,
                          memberMetadata: m.protocols.first { $0.name == g.protocolName }?.metadata ?? [], memberAssignment: m.assignment)
                },
                authorizedOperations: request.includeAuthorizedOperations ? Self.groupOperations : Self.authorizedOperationsUnknown))
        }
        return frame(response, context)
    }

    func handleDeleteGroups(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DeleteGroupsRequest.decode(from: &body, version: context.version)
        var response = DeleteGroupsResponse()
        for id in request.groupsNames {
            let code = (try? groups.delete(groupId: id)) ?? .coordinatorNotAvailable
            response.results.append(.init(groupId: id, errorCode: code.rawValue))
        }
        return frame(response, context)
    }
}

extension Broker {
    func handleOffsetDelete(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try OffsetDeleteRequest.decode(from: &body, version: context.version)
        var response = OffsetDeleteResponse()
        guard groups.groupExists(request.groupId) else {
            response.errorCode = ErrorCode.groupIdNotFound.rawValue
            return context.eventLoop.makeSucceededFuture(frame(response, context))
        }
        // Offsets of topics the group is consuming cannot be deleted (Kafka's rule).
        let subscribed = groups.subscribedTopics(group: request.groupId) ?? []
        var deletions: [(GroupCoordinator.TopicPartition, GroupCoordinator.Committed?)] = []
        for t in request.topics {
            let code: ErrorCode = subscribed.contains(t.name) ? .groupSubscribedToTopic
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
