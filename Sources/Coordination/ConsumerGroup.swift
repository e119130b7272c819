/// One classic consumer group as a state machine: no I/O, no clock, no randomness. Events come
/// in with the current time; the results say who is answered with what. The broker holds the
/// parked JoinGroup/SyncGroup requests and answers them when an event's result names them.
public struct ConsumerGroup: Sendable {
    public enum State: String, Sendable {
        case empty = "Empty"
        case preparingRebalance = "PreparingRebalance"
        case completingRebalance = "CompletingRebalance"
        case stable = "Stable"
        case dead = "Dead"
    }

    public struct Member: Sendable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        public var sessionTimeoutMs: Int32
        public var rebalanceTimeoutMs: Int32
        public var protocols: [(name: String, metadata: [UInt8])]
        public var assignment: [UInt8] = []
        public var lastHeartbeatMs: Int64
        /// Waiting for the JoinGroup response of the current rebalance.
        public var awaitingJoin = false
        /// Waiting for its assignment in CompletingRebalance.
        public var awaitingSync = false

        public static func == (a: Member, b: Member) -> Bool {
            a.memberId == b.memberId && a.groupInstanceId == b.groupInstanceId && a.assignment == b.assignment
                && a.protocols.map(\.name) == b.protocols.map(\.name)
        }

        func metadata(for protocolName: String) -> [UInt8] {
            protocols.first { $0.name == protocolName }?.metadata ?? []
        }
    }

    public enum Error: Swift.Error, Equatable, Sendable {
        case unknownMemberId, illegalGeneration, rebalanceInProgress, inconsistentGroupProtocol
        case invalidSessionTimeout, fencedInstanceId, memberIdRequired(String), groupMaxSizeReached
        case coordinatorNotAvailable
    }

    public struct JoinResult: Sendable, Equatable {
        public var memberId: String
        public var generationId: Int32
        public var protocolType: String?
        public var protocolName: String?
        public var leaderId: String
        /// Only the leader gets the members with their metadata for the chosen protocol.
        public var members: [(memberId: String, groupInstanceId: String?, metadata: [UInt8])]

        public static func == (a: JoinResult, b: JoinResult) -> Bool {
            a.memberId == b.memberId && a.generationId == b.generationId && a.protocolName == b.protocolName
                && a.leaderId == b.leaderId && a.members.map(\.memberId) == b.members.map(\.memberId)
        }
    }

    /// Who gets answered as a consequence of an event.
    public enum Outcome: Sendable, Equatable {
        case joined(JoinResult)
        case joinFailed(memberId: String, Error)
        case synced(memberId: String, assignment: [UInt8])
        case syncFailed(memberId: String, Error)
    }

    public struct Limits: Sendable {
        /// group.min.session.timeout.ms / group.max.session.timeout.ms (Kafka's defaults).
        public var sessionTimeoutMsMin: Int32 = 6_000
        public var sessionTimeoutMsMax: Int32 = 1_800_000
        /// group.initial.rebalance.delay.ms: how long a new group waits for more members.
        public var initialRebalanceDelayMs: Int64 = 3_000
        /// group.max.size
        public var membersMax = Int.max
        public init() {}
    }

    public let groupId: String
    public private(set) var state: State = .empty
    public private(set) var generationId: Int32 = 0
    public private(set) var protocolType: String?
    public private(set) var protocolName: String?
    public private(set) var leaderId: String?
    public private(set) var members: [String: Member] = [:]
    /// Members in join order (the first is the preferred leader).
    private var order: [String] = []
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used.
    private var pendingMemberIds: Set<String> = []
    private var rebalanceDeadlineMs: Int64 = 0
    private var initialDelayDeadlineMs: Int64?
    let limits: Limits

    public init(groupId: String, limits: Limits = Limits()) {
        self.groupId = groupId
        self.limits = limits
    }

    public var isEmpty: Bool { members.isEmpty }

    // MARK: - join

    /// A JoinGroup. `newMemberId` is what to hand out when the member has none yet (the broker
    /// makes it: client id plus a random suffix). `requireKnownMemberId` is JoinGroup v4+.
    public mutating func join(
        memberId: String, groupInstanceId: String?, clientId: String, clientHost: String,
        sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32, protocolType: String,
        protocols: [(name: String, metadata: [UInt8])], newMemberId: String, requireKnownMemberId: Bool, nowMs: Int64
    ) -> [Outcome] {
        func fail(_ e: Error) -> [Outcome] { [.joinFailed(memberId: memberId, e)] }
        guard sessionTimeoutMs >= limits.sessionTimeoutMsMin && sessionTimeoutMs <= limits.sessionTimeoutMsMax else {
            return fail(.invalidSessionTimeout)
        }
        guard !protocols.isEmpty, protocolType == self.protocolType || members.isEmpty || self.protocolType == nil else {
            return fail(.inconsistentGroupProtocol)
        }
        if !members.isEmpty && !hasCommonProtocol(with: protocols.map(\.name)) {
            return fail(.inconsistentGroupProtocol)
        }
        var id = memberId
        var staticRestart = false
        var fenced: [Outcome] = []
        let wasEmpty = members.isEmpty
        if let instance = groupInstanceId, let existing = members.values.first(where: { $0.groupInstanceId == instance }) {
            if memberId.isEmpty {
                // A static member restarted (or a second process took its instance id): it takes
                // the slot under a new member id, and the old id is fenced from then on.
                id = newMemberId
                if existing.awaitingJoin { fenced.append(.joinFailed(memberId: existing.memberId, .fencedInstanceId)) }
                if existing.awaitingSync { fenced.append(.syncFailed(memberId: existing.memberId, .fencedInstanceId)) }
                replaceMember(existing.memberId, with: id)
                members[id]!.awaitingSync = false
                staticRestart = true
            } else if memberId != existing.memberId {
                return fail(.fencedInstanceId)
            }
        } else if memberId.isEmpty {
            if members.count >= limits.membersMax { return fail(.groupMaxSizeReached) }
            if requireKnownMemberId && groupInstanceId == nil {
                pendingMemberIds.insert(newMemberId)
                return fail(.memberIdRequired(newMemberId))
            }
            id = newMemberId
        } else if members[memberId] == nil && !pendingMemberIds.contains(memberId) {
            return fail(.unknownMemberId)
        }
        pendingMemberIds.remove(id)
        var member = members[id] ?? Member(memberId: id, groupInstanceId: groupInstanceId, clientId: clientId, clientHost: clientHost,
                                           sessionTimeoutMs: sessionTimeoutMs, rebalanceTimeoutMs: rebalanceTimeoutMs,
                                           protocols: protocols, lastHeartbeatMs: nowMs)
        let changed = member.protocols.map(\.name) != protocols.map(\.name) || member.protocols.map(\.metadata) != protocols.map(\.metadata)
        member.protocols = protocols
        member.sessionTimeoutMs = sessionTimeoutMs
        member.rebalanceTimeoutMs = rebalanceTimeoutMs
        member.lastHeartbeatMs = nowMs
        member.awaitingJoin = true
        let isNew = members[id] == nil
        members[id] = member
        if isNew { order.append(id) }
        // An Empty group keeps its protocol type (it lists as a consumer group); the first member
        // to join it sets it anew.
        if wasEmpty || self.protocolType == nil { self.protocolType = protocolType }
        return fenced + completeJoin(of: id, isNew: isNew, changed: changed, staticRestart: staticRestart,
                                     rebalanceTimeoutMs: rebalanceTimeoutMs, nowMs: nowMs)
    }

    private mutating func completeJoin(of id: String, isNew: Bool, changed: Bool, staticRestart: Bool,
                                       rebalanceTimeoutMs: Int32, nowMs: Int64) -> [Outcome] {
        switch state {
        case .stable, .completingRebalance:
            if !isNew && !changed && state == .stable && (id != leaderId || staticRestart) {
                // A follower re-joining with the same metadata, or a static member after a
                // restart: answer with the current generation. A re-joining leader always gets a
                // rebalance, as in Kafka: it re-joins because it wants to assign anew (e.g. its
                // topic metadata changed).
                members[id]!.awaitingJoin = false
                return [.joined(joinResult(for: id))]
            }
            return startRebalance(nowMs: nowMs)
        case .empty:
            state = .preparingRebalance
            initialDelayDeadlineMs = nowMs + limits.initialRebalanceDelayMs
            rebalanceDeadlineMs = nowMs + Int64(max(rebalanceTimeoutMs, 0))
            return tryCompleteJoin(nowMs: nowMs)
        case .preparingRebalance:
            if let d = initialDelayDeadlineMs, isNew {
                // New members keep arriving: extend the initial delay, up to the rebalance timeout.
                initialDelayDeadlineMs = min(max(d, nowMs + limits.initialRebalanceDelayMs), rebalanceDeadlineMs)
            }
            return tryCompleteJoin(nowMs: nowMs)
        case .dead:
            return [.joinFailed(memberId: id, .coordinatorNotAvailable)]
        }
    }

    /// Kafka's static-member fencing: a request naming an instance id that now belongs to another
    /// member id comes from a replaced process, which must stop (FENCED_INSTANCE_ID is fatal).
    private func isFenced(memberId: String, groupInstanceId: String?) -> Bool {
        guard let instance = groupInstanceId, let owner = members.values.first(where: { $0.groupInstanceId == instance }) else {
            return false
        }
        return owner.memberId != memberId
    }

    private func hasCommonProtocol(with names: [String]) -> Bool {
        let common = members.values.reduce(Set(names)) { $0.intersection($1.protocols.map(\.name)) }
        return !common.isEmpty
    }

    private mutating func replaceMember(_ old: String, with new: String) {
        guard var m = members.removeValue(forKey: old) else { return }
        m.memberId = new
        members[new] = m
        if let i = order.firstIndex(of: old) { order[i] = new }
        if leaderId == old { leaderId = new }
    }

    private mutating func startRebalance(nowMs: Int64) -> [Outcome] {
        var out: [Outcome] = []
        // Members parked in SyncGroup learn that the generation is over.
        for (id, m) in members where m.awaitingSync {
            members[id]!.awaitingSync = false
            out.append(.syncFailed(memberId: id, .rebalanceInProgress))
        }
        state = .preparingRebalance
        initialDelayDeadlineMs = nil
        let timeout = members.values.map { Int64($0.rebalanceTimeoutMs) }.max() ?? 0
        rebalanceDeadlineMs = nowMs + timeout
        return out + tryCompleteJoin(nowMs: nowMs)
    }

    /// Completes the join phase when every member has re-joined (and any initial delay passed),
    /// or at the rebalance deadline, dropping members that did not re-join.
    private mutating func tryCompleteJoin(nowMs: Int64, deadlinePassed: Bool = false) -> [Outcome] {
        guard state == .preparingRebalance else { return [] }
        if let d = initialDelayDeadlineMs, nowMs < d, !deadlinePassed { return [] }
        let allJoined = members.values.allSatisfy(\.awaitingJoin)
        guard allJoined || deadlinePassed || nowMs >= rebalanceDeadlineMs else { return [] }
        for (id, m) in members where !m.awaitingJoin {
            members.removeValue(forKey: id)
            order.removeAll { $0 == id }
        }
        initialDelayDeadlineMs = nil
        generationId += 1
        guard !members.isEmpty else {
            state = .empty
            protocolName = nil
            leaderId = nil
            return []
        }
        protocolName = chooseProtocol()
        if leaderId == nil || members[leaderId!] == nil { leaderId = order.first }
        state = .completingRebalance
        var out: [Outcome] = []
        for id in order {
            members[id]!.awaitingJoin = false
            members[id]!.assignment = []
            out.append(.joined(joinResult(for: id)))
        }
        return out
    }

    /// The protocol every member supports that gets the most first-preference votes.
    private func chooseProtocol() -> String? {
        let names = members.values.reduce(Set(members.values.first!.protocols.map(\.name))) { $0.intersection($1.protocols.map(\.name)) }
        var votes: [String: Int] = [:]
        for id in order {
            if let pick = members[id]!.protocols.first(where: { names.contains($0.name) }) { votes[pick.name, default: 0] += 1 }
        }
        let firstMember = members[order.first!]!
        return votes.max { a, b in
            a.value != b.value ? a.value < b.value
                : (firstMember.protocols.firstIndex { $0.name == a.key } ?? 0) > (firstMember.protocols.firstIndex { $0.name == b.key } ?? 0)
        }?.key
    }

    private func joinResult(for id: String) -> JoinResult {
        let isLeader = id == leaderId
        let list = isLeader ? order.map { (memberId: $0, groupInstanceId: members[$0]!.groupInstanceId,
                                           metadata: members[$0]!.metadata(for: protocolName ?? "")) } : []
        return JoinResult(memberId: id, generationId: generationId, protocolType: protocolType, protocolName: protocolName,
                          leaderId: leaderId ?? "", members: list)
    }

    // MARK: - sync

    public mutating func sync(memberId: String, groupInstanceId: String?, generationId: Int32,
                              assignments: [String: [UInt8]], nowMs: Int64) -> [Outcome] {
        func fail(_ e: Error) -> [Outcome] { [.syncFailed(memberId: memberId, e)] }
        if isFenced(memberId: memberId, groupInstanceId: groupInstanceId) { return fail(.fencedInstanceId) }
        guard members[memberId] != nil else { return fail(.unknownMemberId) }
        if let instance = groupInstanceId, members[memberId]!.groupInstanceId != instance { return fail(.fencedInstanceId) }
        guard generationId == self.generationId else { return fail(.illegalGeneration) }
        members[memberId]!.lastHeartbeatMs = nowMs
        switch state {
        case .preparingRebalance: return fail(.rebalanceInProgress)
        case .stable: return [.synced(memberId: memberId, assignment: members[memberId]!.assignment)]
        case .completingRebalance:
            members[memberId]!.awaitingSync = true
            guard memberId == leaderId else { return [] }
            for id in members.keys { members[id]!.assignment = assignments[id] ?? [] }
            state = .stable
            var out: [Outcome] = []
            for id in order where members[id]!.awaitingSync {
                members[id]!.awaitingSync = false
                out.append(.synced(memberId: id, assignment: members[id]!.assignment))
            }
            return out
        case .empty, .dead: return fail(.unknownMemberId)
        }
    }

    // MARK: - heartbeat, leave, time

    public mutating func heartbeat(memberId: String, groupInstanceId: String?, generationId: Int32, nowMs: Int64) -> Error? {
        if isFenced(memberId: memberId, groupInstanceId: groupInstanceId) { return .fencedInstanceId }
        guard members[memberId] != nil else { return .unknownMemberId }
        if let instance = groupInstanceId, members[memberId]!.groupInstanceId != instance { return .fencedInstanceId }
        members[memberId]!.lastHeartbeatMs = nowMs
        if state == .preparingRebalance { return .rebalanceInProgress }
        guard generationId == self.generationId else { return .illegalGeneration }
        return nil
    }

    /// LeaveGroup for one member (by id, or by instance id for static members).
    public mutating func leave(memberId: String, groupInstanceId: String?, nowMs: Int64) -> (Error?, [Outcome]) {
        var id = memberId
        if let instance = groupInstanceId {
            guard let m = members.values.first(where: { $0.groupInstanceId == instance }) else { return (.unknownMemberId, []) }
            if !memberId.isEmpty && m.memberId != memberId { return (.fencedInstanceId, []) }
            id = m.memberId
        }
        guard members[id] != nil else { return (.unknownMemberId, []) }
        return (nil, remove(id, nowMs: nowMs))
    }

    private mutating func remove(_ id: String, nowMs: Int64) -> [Outcome] {
        let wasAwaitingJoin = members[id]?.awaitingJoin ?? false
        members.removeValue(forKey: id)
        order.removeAll { $0 == id }
        if leaderId == id { leaderId = nil }
        var out: [Outcome] = wasAwaitingJoin ? [.joinFailed(memberId: id, .unknownMemberId)] : []
        switch state {
        case .stable, .completingRebalance:
            out += startRebalance(nowMs: nowMs)
            if members.isEmpty { out += tryCompleteJoin(nowMs: nowMs, deadlinePassed: true) }
        case .preparingRebalance:
            out += tryCompleteJoin(nowMs: nowMs)
        default: break
        }
        if members.isEmpty && state != .preparingRebalance {
            state = .empty
            protocolName = nil
        }
        return out
    }

    /// Expires members whose session lapsed and completes joins whose deadline passed.
    public mutating func tick(nowMs: Int64) -> [Outcome] {
        var out: [Outcome] = []
        for (id, m) in members where !m.awaitingJoin && nowMs - m.lastHeartbeatMs > Int64(m.sessionTimeoutMs) {
            out += remove(id, nowMs: nowMs)
        }
        if state == .preparingRebalance {
            let due = nowMs >= rebalanceDeadlineMs || (initialDelayDeadlineMs.map { nowMs >= $0 } ?? false)
            if due { out += tryCompleteJoin(nowMs: nowMs, deadlinePassed: nowMs >= rebalanceDeadlineMs) }
        }
        return out
    }

    /// Whether offsets committed with (generation, member) belong to the current generation.
    /// Generation -1 with no member id is a standalone consumer's commit.
    /// A commit to a group with members from outside it (an admin client's) is UNKNOWN_MEMBER_ID.
    public func validateCommit(memberId: String, groupInstanceId: String?, generationId: Int32) -> Error? {
        if generationId < 0 && memberId.isEmpty && groupInstanceId == nil && members.isEmpty { return nil }
        if isFenced(memberId: memberId, groupInstanceId: groupInstanceId) { return .fencedInstanceId }
        guard members[memberId] != nil else { return .unknownMemberId }
        if let instance = groupInstanceId, members[memberId]!.groupInstanceId != instance { return .fencedInstanceId }
        guard generationId == self.generationId else { return .illegalGeneration }
        // As Kafka: commits of the current generation are still accepted while the group prepares
        // a rebalance (heartbeats tell the member), but not between JoinGroup and SyncGroup.
        if state == .completingRebalance { return .rebalanceInProgress }
        return nil
    }

    public mutating func markDead() { state = .dead }
}
