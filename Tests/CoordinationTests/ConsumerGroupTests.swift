import Testing
@testable import Coordination

/// The group state machine, driven with a mock clock and no sockets.
@Suite("Consumer group state machine")
struct ConsumerGroupTests {
    static let range: [(name: String, metadata: [UInt8])] = [(name: "range", metadata: [1]), (name: "roundrobin", metadata: [2])]

    static func limits(delay: Int64 = 0) -> ConsumerGroup.Limits {
        var l = ConsumerGroup.Limits()
        l.initialRebalanceDelayMs = delay
        return l
    }

    static func join(_ g: inout ConsumerGroup, _ id: String, new: String = "", instance: String? = nil, now: Int64,
                     protocols: [(name: String, metadata: [UInt8])] = range, session: Int32 = 10_000) -> [ConsumerGroup.Outcome] {
        g.join(memberId: id, groupInstanceId: instance, clientId: "c", clientHost: "/127.0.0.1", sessionTimeoutMs: session,
               rebalanceTimeoutMs: 30_000, protocolType: "consumer", protocols: protocols, newMemberId: new,
               requireKnownMemberId: false, nowMs: now)
    }

    static func joined(_ outcomes: [ConsumerGroup.Outcome]) -> [ConsumerGroup.JoinResult] {
        outcomes.compactMap { if case .joined(let r) = $0 { r } else { nil } }
    }

    @Test("two members: one generation, the leader sees both, sync hands out the leader's assignment")
    func joinAndSync() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        let first = Self.join(&g, "", new: "a", now: 0)
        #expect(Self.joined(first).map(\.memberId) == ["a"])     // alone: completes at once
        #expect(g.state == .completingRebalance && g.generationId == 1)
        // b joins: a new rebalance; a must re-join before it completes.
        #expect(Self.join(&g, "", new: "b", now: 10).isEmpty)
        #expect(g.state == .preparingRebalance)
        #expect(g.heartbeat(memberId: "a", groupInstanceId: nil, generationId: 1, nowMs: 11) == .rebalanceInProgress)
        let results = Self.joined(Self.join(&g, "a", now: 20))
        #expect(Set(results.map(\.memberId)) == ["a", "b"])
        #expect(results.allSatisfy { $0.generationId == 2 && $0.leaderId == "a" && $0.protocolName == "range" })
        #expect(results.first { $0.memberId == "a" }!.members.count == 2)
        #expect(results.first { $0.memberId == "b" }!.members.isEmpty)
        // The follower syncs first and waits; the leader's sync answers both.
        #expect(g.sync(memberId: "b", groupInstanceId: nil, generationId: 2, assignments: [:], nowMs: 30).isEmpty)
        let synced = g.sync(memberId: "a", groupInstanceId: nil, generationId: 2, assignments: ["a": [1], "b": [2]], nowMs: 31)
        #expect(synced.contains(.synced(memberId: "a", assignment: [1])))
        #expect(synced.contains(.synced(memberId: "b", assignment: [2])))
        #expect(g.state == .stable)
        #expect(g.heartbeat(memberId: "b", groupInstanceId: nil, generationId: 2, nowMs: 40) == nil)
        #expect(g.heartbeat(memberId: "b", groupInstanceId: nil, generationId: 1, nowMs: 40) == .illegalGeneration)
        #expect(g.heartbeat(memberId: "zzz", groupInstanceId: nil, generationId: 2, nowMs: 40) == .unknownMemberId)
    }

    @Test("JoinGroup v4+: an empty member id first gets MEMBER_ID_REQUIRED with its id")
    func memberIdRequired() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        let out = g.join(memberId: "", groupInstanceId: nil, clientId: "c", clientHost: "h", sessionTimeoutMs: 10_000,
                         rebalanceTimeoutMs: 10_000, protocolType: "consumer", protocols: Self.range, newMemberId: "c-1",
                         requireKnownMemberId: true, nowMs: 0)
        #expect(out == [.joinFailed(memberId: "", .memberIdRequired("c-1"))])
        #expect(Self.joined(Self.join(&g, "c-1", now: 1)).map(\.memberId) == ["c-1"])
        // A made-up id is refused.
        #expect(Self.join(&g, "c-2", now: 2) == [.joinFailed(memberId: "c-2", .unknownMemberId)])
    }

    @Test("an expired session removes the member and the rest rebalance")
    func sessionExpiry() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        _ = Self.join(&g, "", new: "a", now: 0)
        _ = Self.join(&g, "", new: "b", now: 0)
        _ = Self.join(&g, "a", now: 0)
        _ = g.sync(memberId: "a", groupInstanceId: nil, generationId: 2, assignments: ["a": [1], "b": [2]], nowMs: 0)
        #expect(g.state == .stable)
        // a heartbeats, b goes silent past its 10 s session.
        _ = g.heartbeat(memberId: "a", groupInstanceId: nil, generationId: 2, nowMs: 9_000)
        #expect(g.tick(nowMs: 9_500).isEmpty)
        _ = g.tick(nowMs: 10_001)
        #expect(g.members["b"] == nil)
        #expect(g.state == .preparingRebalance)
        #expect(g.heartbeat(memberId: "a", groupInstanceId: nil, generationId: 2, nowMs: 10_002) == .rebalanceInProgress)
        let r = Self.joined(Self.join(&g, "a", now: 10_003))
        #expect(r.map(\.memberId) == ["a"] && r[0].generationId == 3)
    }

    @Test("members that do not re-join by the rebalance deadline are dropped")
    func rebalanceDeadline() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        _ = Self.join(&g, "", new: "a", now: 0)
        _ = Self.join(&g, "", new: "b", now: 0)
        _ = Self.join(&g, "a", now: 0)
        _ = g.sync(memberId: "a", groupInstanceId: nil, generationId: 2, assignments: [:], nowMs: 0)
        _ = Self.join(&g, "", new: "c", now: 100)  // b never re-joins
        #expect(g.tick(nowMs: 1_000).isEmpty)
        _ = Self.join(&g, "a", now: 1_000)
        let done = Self.joined(g.tick(nowMs: 30_101))
        #expect(Set(done.map(\.memberId)) == ["a", "c"])
        #expect(g.members["b"] == nil)
    }

    @Test("leaving triggers a rebalance; the last member leaving empties the group")
    func leave() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        _ = Self.join(&g, "", new: "a", now: 0)
        _ = Self.join(&g, "", new: "b", now: 0)
        _ = Self.join(&g, "a", now: 0)
        let (error, _) = g.leave(memberId: "b", groupInstanceId: nil, nowMs: 5)
        #expect(error == nil)
        #expect(g.state == .preparingRebalance)
        _ = Self.join(&g, "a", now: 6)
        #expect(g.state == .completingRebalance)
        _ = g.leave(memberId: "a", groupInstanceId: nil, nowMs: 7)
        #expect(g.isEmpty)
        #expect(g.leave(memberId: "a", groupInstanceId: nil, nowMs: 8).0 == .unknownMemberId)
    }

    @Test("a restarted static member takes its slot back without a rebalance; its old id is fenced")
    func staticMembership() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        _ = Self.join(&g, "", new: "s1", instance: "consumer-1", now: 0)
        _ = g.sync(memberId: "s1", groupInstanceId: "consumer-1", generationId: 1, assignments: ["s1": [9]], nowMs: 0)
        #expect(g.state == .stable)
        let again = Self.joined(Self.join(&g, "", new: "s2", instance: "consumer-1", now: 100))
        #expect(again.map(\.memberId) == ["s2"])
        #expect(again[0].generationId == 1)      // no new generation
        #expect(g.state == .stable)
        #expect(g.sync(memberId: "s2", groupInstanceId: "consumer-1", generationId: 1, assignments: [:], nowMs: 101)
                == [.synced(memberId: "s2", assignment: [9])])
        // The replaced process is fenced (fatal to it), not told UNKNOWN_MEMBER_ID, which would
        // send it back to join with an empty id and take the slot again.
        #expect(g.heartbeat(memberId: "s1", groupInstanceId: "consumer-1", generationId: 1, nowMs: 102) == .fencedInstanceId)
        #expect(g.sync(memberId: "s1", groupInstanceId: "consumer-1", generationId: 1, assignments: [:], nowMs: 102)
                == [.syncFailed(memberId: "s1", .fencedInstanceId)])
        #expect(g.validateCommit(memberId: "s1", groupInstanceId: "consumer-1", generationId: 1) == .fencedInstanceId)
        #expect(Self.join(&g, "s1", instance: "consumer-1", now: 103) == [.joinFailed(memberId: "s1", .fencedInstanceId)])
        #expect(g.leave(memberId: "s1", groupInstanceId: "consumer-1", nowMs: 104).0 == .fencedInstanceId)
        #expect(g.heartbeat(memberId: "s2", groupInstanceId: "consumer-1", generationId: 1, nowMs: 105) == nil)
    }

    @Test("a static member replaced while its JoinGroup is parked gets FENCED_INSTANCE_ID for it")
    func staticMemberReplacedDuringJoin() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        _ = Self.join(&g, "", new: "s1", instance: "i", now: 0)
        _ = Self.join(&g, "", new: "b", now: 1)
        #expect(Self.joined(Self.join(&g, "s1", instance: "i", now: 2)).count == 2)
        _ = g.sync(memberId: "s1", groupInstanceId: "i", generationId: 2, assignments: [:], nowMs: 3)
        #expect(g.state == .stable)
        // s1 re-joins with new metadata (parked until b re-joins), then a second process takes "i".
        #expect(Self.join(&g, "s1", instance: "i", now: 10, protocols: [(name: "range", metadata: [7])]).isEmpty)
        let out = Self.join(&g, "", new: "s2", instance: "i", now: 11)
        #expect(out.first == .joinFailed(memberId: "s1", .fencedInstanceId))
    }

    @Test("an Empty group keeps its protocol type; the next member to join sets it anew")
    func emptyGroupKeepsProtocolType() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        _ = Self.join(&g, "", new: "a", now: 0)
        _ = g.sync(memberId: "a", groupInstanceId: nil, generationId: 1, assignments: [:], nowMs: 0)
        _ = g.leave(memberId: "a", groupInstanceId: nil, nowMs: 1)
        #expect(g.state == .empty)
        #expect(g.protocolType == "consumer")
        #expect(g.protocolName == nil)
    }

    @Test("session timeouts outside the configured range and protocol mismatches are refused")
    func validation() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        #expect(Self.join(&g, "", new: "a", now: 0, session: 1_000) == [.joinFailed(memberId: "", .invalidSessionTimeout)])
        _ = Self.join(&g, "", new: "a", now: 0)
        #expect(Self.join(&g, "", new: "b", now: 1, protocols: [(name: "sticky", metadata: [])])
                == [.joinFailed(memberId: "", .inconsistentGroupProtocol)])
    }

    @Test("the initial rebalance delay gathers members of a new group into one generation")
    func initialDelay() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits(delay: 3_000))
        #expect(Self.join(&g, "", new: "a", now: 0).isEmpty)
        #expect(Self.join(&g, "", new: "b", now: 1_000).isEmpty)
        #expect(g.tick(nowMs: 2_000).isEmpty)
        let done = Self.joined(g.tick(nowMs: 4_001))
        #expect(Set(done.map(\.memberId)) == ["a", "b"])
        #expect(g.generationId == 1)
    }

    @Test("offset commits are checked against the generation")
    func commitValidation() {
        var g = ConsumerGroup(groupId: "g", limits: Self.limits())
        #expect(g.validateCommit(memberId: "", groupInstanceId: nil, generationId: -1) == nil)  // standalone
        _ = Self.join(&g, "", new: "a", now: 0)
        _ = g.sync(memberId: "a", groupInstanceId: nil, generationId: 1, assignments: [:], nowMs: 0)
        #expect(g.validateCommit(memberId: "a", groupInstanceId: nil, generationId: 1) == nil)
        #expect(g.validateCommit(memberId: "a", groupInstanceId: nil, generationId: 0) == .illegalGeneration)
        #expect(g.validateCommit(memberId: "x", groupInstanceId: nil, generationId: 1) == .unknownMemberId)
        // An admin client's commit to a group with members: Kafka checks membership first.
        #expect(g.validateCommit(memberId: "", groupInstanceId: nil, generationId: -1) == .unknownMemberId)
    }
}


@Suite("Consumer group state machine: re-joins")
struct ConsumerGroupRejoinTests {
    @Test("a re-joining leader gets a new generation; a re-joining follower with the same metadata does not")
    func leaderRejoinRebalances() {
        var g = ConsumerGroup(groupId: "g", limits: ConsumerGroupTests.limits())
        _ = ConsumerGroupTests.join(&g, "", new: "a", now: 0)
        _ = g.sync(memberId: "a", groupInstanceId: nil, generationId: 1, assignments: ["a": []], nowMs: 0)
        #expect(g.state == .stable)
        let again = ConsumerGroupTests.joined(ConsumerGroupTests.join(&g, "a", now: 1))
        #expect(again.map(\.generationId) == [2])           // the leader re-joins: a new generation
        #expect(g.state == .completingRebalance)
        _ = g.sync(memberId: "a", groupInstanceId: nil, generationId: 2, assignments: ["a": [7]], nowMs: 2)
        _ = ConsumerGroupTests.join(&g, "", new: "b", now: 3)
        _ = ConsumerGroupTests.join(&g, "a", now: 3)
        _ = g.sync(memberId: "a", groupInstanceId: nil, generationId: 3, assignments: ["a": [1], "b": [2]], nowMs: 4)
        let follower = ConsumerGroupTests.joined(ConsumerGroupTests.join(&g, "b", now: 5))
        #expect(follower.map(\.generationId) == [3])        // a follower with unchanged metadata: no rebalance
        #expect(g.state == .stable)
    }
}
