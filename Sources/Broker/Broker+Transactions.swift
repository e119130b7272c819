import Coordination
import KafkaProtocol
import LogStorage
import NIOCore
import Records
import Security

/// The transaction coordinator's requests (InitProducerId with a transactional id,
/// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit, ListTransactions,
/// DescribeTransactions) and the markers they write. On one node the coordinator and every
/// partition leader are in this process, so markers are appended directly (no WriteTxnMarkers).
extension Broker {
    typealias TxnPartition = TransactionMetadata.Partition

    /// The error a client of `version` understands for a coordinator failure: PRODUCER_FENCED
    /// exists from the version given; older versions get INVALID_PRODUCER_EPOCH, as in Kafka.
    static func code(_ failure: TransactionMetadata.Failure, fencedFrom: Int16, version: Int16) -> ErrorCode {
        switch failure {
        case .concurrentTransactions: .concurrentTransactions
        case .invalidTxnState: .invalidTxnState
        case .invalidProducerIdMapping: .invalidProducerIdMapping
        case .producerFenced: version >= fencedFrom ? .producerFenced : .invalidProducerEpoch
        }
    }

    // MARK: - InitProducerId

    func initTransactionalProducer(_ request: InitProducerIdRequest, id: String, version: Int16) -> InitProducerIdResponse {
        var response = InitProducerIdResponse(producerId: -1, producerEpoch: -1)
        guard request.transactionTimeoutMs > 0, Int64(request.transactionTimeoutMs) <= config.transactionMaxTimeoutMs else {
            response.errorCode = ErrorCode.invalidTransactionTimeout.rawValue
            return response
        }
        let now = currentTimeMs()
        let requested = request.producerId >= 0 && request.producerEpoch >= 0 ? (request.producerId, request.producerEpoch) : nil
        do {
            // A fencing abort: PrepareAbort with the bumped epoch is stored first, then the
            // markers, then the final state (a crash in between completes the abort at start).
            var fence: (TransactionMetadata.Markers, TransactionMetadata)?
            let result: TransactionMetadata = try transactions.update(id) { m in
                guard var current = m else {
                    let fresh = TransactionMetadata(transactionalId: id, producerId: try metadata.allocateProducerId(nowMs: now),
                                                    producerEpoch: 0, timeoutMs: request.transactionTimeoutMs, status: .empty,
                                                    lastUpdateMs: now)
                    m = fresh
                    return fresh
                }
                let before = current
                if let markers = try current.initProducer(timeoutMs: request.transactionTimeoutMs, requested: requested, nowMs: now,
                                                          newProducerId: { try metadata.allocateProducerId(nowMs: now) }) {
                    var aborting = before
                    aborting.status = .prepareAbort
                    aborting.producerEpoch = markers.producerEpoch
                    aborting.lastUpdateMs = now
                    m = aborting
                    fence = (markers, current)
                    return current
                }
                m = current
                return current
            }
            if let (markers, final) = fence {
                logger.info("transactional id \(id): aborting its open transaction to fence producer \(markers.producerId)")
                let failed = writeMarkers(markers)
                guard failed.isEmpty else {
                    // Stays PrepareAbort; housekeeping finishes the markers, the client retries.
                    markersOwed.withLockedValue { _ = $0.insert(id) }
                    try transactions.update(id) { m in m?.partitions = Set(failed) }
                    throw TransactionMetadata.Failure.concurrentTransactions
                }
                try transactions.update(id) { m in m = final }
            }
            response.producerId = result.producerId
            response.producerEpoch = result.producerEpoch
        } catch let failure as TransactionMetadata.Failure {
            response.errorCode = Self.code(failure, fencedFrom: 4, version: version).rawValue
        } catch {
            logger.error("InitProducerId for \(id) failed: \(error)")
            response.errorCode = ErrorCode.coordinatorNotAvailable.rawValue
        }
        return response
    }

    // MARK: - AddPartitionsToTxn, AddOffsetsToTxn

    func handleAddPartitionsToTxn(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try AddPartitionsToTxnRequest.decode(from: &body, version: context.version)
        let access = access(context)
        return threadPool.runIfActive(eventLoop: context.eventLoop) { [self] () -> AddPartitionsToTxnResponse in
            var response = AddPartitionsToTxnResponse()
            var unknown: Set<TxnPartition> = []
            var denied: Set<String> = []
            var wanted: [TxnPartition] = []
            for t in request.v3AndBelowTopics {
                if !access.allows(.write, .topic, t.name) { denied.insert(t.name) }
                let count = metadata.topic(t.name)?.partitionCount ?? 0
                for p in t.partitions {
                    let tp = TxnPartition(topic: t.name, partition: p)
                    if p < 0 || p >= count { unknown.insert(tp) } else { wanted.append(tp) }
                }
            }
            var code = ErrorCode.none
            if !access.allows(.write, .transactionalId, request.v3AndBelowTransactionalId) {
                code = .transactionalIdAuthorizationFailed
            } else if unknown.isEmpty && denied.isEmpty {
                do {
                    try transactions.update(request.v3AndBelowTransactionalId) { m throws in
                        guard var current = m else { throw TransactionMetadata.Failure.invalidProducerIdMapping }
                        try current.add(wanted, producerId: request.v3AndBelowProducerId, epoch: request.v3AndBelowProducerEpoch,
                                        nowMs: currentTimeMs())
                        m = current
                    }
                } catch let failure as TransactionMetadata.Failure {
                    code = Self.code(failure, fencedFrom: 2, version: context.version)
                } catch {
                    logger.error("AddPartitionsToTxn failed: \(error)")
                    code = .coordinatorNotAvailable
                }
            }
            for t in request.v3AndBelowTopics {
                response.resultsByTopicV3AndBelow.append(.init(name: t.name, resultsByPartition: t.partitions.map { p in
                    let tp = TxnPartition(topic: t.name, partition: p)
                    let c: ErrorCode = code != .none || (unknown.isEmpty && denied.isEmpty) ? code
                        : denied.contains(t.name) ? .topicAuthorizationFailed
                        : unknown.contains(tp) ? .unknownTopicOrPartition : .operationNotAttempted
                    return .init(partitionIndex: p, partitionErrorCode: c.rawValue)
                }))
            }
            return response
        }.map { [self] in frame($0, context) }
    }

    func handleAddOffsetsToTxn(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try AddOffsetsToTxnRequest.decode(from: &body, version: context.version)
        let access = access(context)
        if !access.allows(.write, .transactionalId, request.transactionalId) || !access.allows(.read, .group, request.groupId) {
            let code: ErrorCode = access.allows(.write, .transactionalId, request.transactionalId) ? .groupAuthorizationFailed
                : .transactionalIdAuthorizationFailed
            return context.eventLoop.makeSucceededFuture(frame(AddOffsetsToTxnResponse(errorCode: code.rawValue), context))
        }
        return threadPool.runIfActive(eventLoop: context.eventLoop) { [self] () -> AddOffsetsToTxnResponse in
            var response = AddOffsetsToTxnResponse()
            let tp = TxnPartition(topic: GroupCoordinator.offsetsTopic,
                                  partition: GroupCoordinator.partition(for: request.groupId, partitions: groups.offsetsPartitions))
            do {
                try transactions.update(request.transactionalId) { m throws in
                    guard var current = m else { throw TransactionMetadata.Failure.invalidProducerIdMapping }
                    try current.add([tp], producerId: request.producerId, epoch: request.producerEpoch, nowMs: currentTimeMs())
                    m = current
                }
            } catch let failure as TransactionMetadata.Failure {
                response.errorCode = Self.code(failure, fencedFrom: 2, version: context.version).rawValue
            } catch {
                logger.error("AddOffsetsToTxn failed: \(error)")
                response.errorCode = ErrorCode.coordinatorNotAvailable.rawValue
            }
            return response
        }.map { [self] in frame($0, context) }
    }

    // MARK: - EndTxn

    func handleEndTxn(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try EndTxnRequest.decode(from: &body, version: context.version)
        guard access(context).allows(.write, .transactionalId, request.transactionalId) else {
            let response = EndTxnResponse(errorCode: ErrorCode.transactionalIdAuthorizationFailed.rawValue, producerId: -1, producerEpoch: -1)
            return context.eventLoop.makeSucceededFuture(frame(response, context))
        }
        return threadPool.runIfActive(eventLoop: context.eventLoop) { [self] () -> EndTxnResponse in
            var response = EndTxnResponse(producerId: -1, producerEpoch: -1)
            do {
                try endTransaction(request.transactionalId) { m throws in
                    guard var current = m else { throw TransactionMetadata.Failure.invalidProducerIdMapping }
                    let markers = try current.end(commit: request.committed, producerId: request.producerId,
                                                  epoch: request.producerEpoch, nowMs: currentTimeMs())
                    m = current
                    return markers
                }
            } catch let failure as TransactionMetadata.Failure {
                response.errorCode = Self.code(failure, fencedFrom: 2, version: context.version).rawValue
            } catch {
                logger.error("EndTxn for \(request.transactionalId) failed: \(error)")
                response.errorCode = ErrorCode.coordinatorNotAvailable.rawValue
            }
            return response
        }.map { [self] in frame($0, context) }
    }

    /// Prepare (stored), markers (written), complete (stored): the steps of ending a
    /// transaction. While the markers are written the state is PrepareX, so a concurrent
    /// request for the id gets CONCURRENT_TRANSACTIONS and a crash completes it at start.
    ///
    /// Once PrepareX is stored the outcome is decided, as in Kafka: if some markers cannot be
    /// written (a full disk), the id stays PrepareX with the partitions still owed a marker,
    /// and housekeeping retries them until they land; the caller is answered as if done.
    func endTransaction(_ id: String, _ prepare: (inout TransactionMetadata?) throws -> TransactionMetadata.Markers?) throws {
        guard let markers = try transactions.update(id, prepare) else { return }
        try finishMarkers(id, markers)
    }

    /// Writes the markers and completes the id, or records which partitions still need one.
    func finishMarkers(_ id: String, _ markers: TransactionMetadata.Markers) throws {
        let failed = writeMarkers(markers)
        if failed.isEmpty {
            do {
                try transactions.update(id) { m in m?.completed(nowMs: currentTimeMs()) }
                markersOwed.withLockedValue { _ = $0.remove(id) }
            } catch {
                markersOwed.withLockedValue { _ = $0.insert(id) }  // stored state still PrepareX: retry
                throw error
            }
        } else {
            logger.warning("transactional id \(id): \(failed.count) markers not written yet; will retry")
            markersOwed.withLockedValue { _ = $0.insert(id) }
            try? transactions.update(id) { m in m?.partitions = Set(failed) }
        }
    }

    /// Housekeeping: retries the markers of ids in `markersOwed` (only those: an id in PrepareX
    /// for any other reason has an EndTxn writing its markers right now).
    func retryOwedMarkers() {
        for id in markersOwed.withLockedValue({ Array($0) }) {
            guard let m = transactions.get(id), m.status == .prepareCommit || m.status == .prepareAbort else {
                markersOwed.withLockedValue { _ = $0.remove(id) }
                continue
            }
            try? finishMarkers(id, .init(producerId: m.producerId, producerEpoch: m.producerEpoch,
                                         committed: m.status == .prepareCommit, partitions: m.partitions.sorted()))
        }
    }

    /// Appends a COMMIT or ABORT control batch to every partition of the transaction, records it
    /// in the partition's producer state (ending the transaction there: the LSO moves) and, for
    /// an abort, in the `.txnindex`. Under durability `ack` the markers are on disk on return.
    /// Returns the partitions whose marker could not be written.
    func writeMarkers(_ markers: TransactionMetadata.Markers) -> [TxnPartition] {
        var failed: [TxnPartition] = []
        var woken: [String] = []
        for tp in markers.partitions {
            guard let log = logManager.log(topic: tp.topic, partition: tp.partition) else { continue }  // deleted meanwhile
            do {
                try writeMarker(markers, to: log, topic: tp.topic)
                woken.append(log.name)
            } catch {
                logger.error("transaction marker for \(log.name) failed: \(error)")
                failed.append(tp)
            }
        }
        fetchWaiters.wake(woken)
        return failed
    }

    private func writeMarker(_ markers: TransactionMetadata.Markers, to log: PartitionLog, topic: String) throws {
        let now = currentTimeMs()
        do {
            let state = try producerStates.state(for: log)
            let bytes = RecordBatchBuilder.controlBatch(markers.committed ? .commit : .abort, producerId: markers.producerId,
                                                        producerEpoch: markers.producerEpoch, coordinatorEpoch: 0, timestamp: now)
            let batch = try RecordBatch(bytes)
            let appended: PartitionLog.AppendResult = try state.lock.withLock {
                let r = try log.append([batch], nowMs: now, deferFlush: true)
                let done = state.machine.complete(producerId: markers.producerId, epoch: markers.producerEpoch, markerOffset: r.baseOffset,
                                                  committed: markers.committed, coordinatorEpoch: 0, timestampMs: now)
                if let done, !done.committed {
                    // Held in memory even if its write fails; written before the next snapshot.
                    do {
                        try log.appendAbortedTransaction(AbortedTransaction(
                            producerId: done.producerId, firstOffset: done.firstOffset, lastOffset: done.lastOffset,
                            lastStableOffset: state.machine.firstUnstableOffset ?? r.lastOffset + 1))
                    } catch {
                        logger.warning("\(log.name): aborted-transaction index entry not written yet: \(error)")
                    }
                }
                return r
            }
            // The fsync runs outside the partition's producer lock (appends keep flowing).
            if appended.needsFlush { try log.flush(upTo: appended.lastOffset + 1, nowMs: now) }
            if topic == GroupCoordinator.offsetsTopic {
                groups.completeTransaction(producerId: markers.producerId, commit: markers.committed)
            }
        }
    }

    /// At start: a transaction stored as PrepareCommit/PrepareAbort had its end decided but
    /// maybe not all markers written; write them (again: a second marker is harmless) and complete.
    func completeInterruptedTransactions() throws {
        for m in transactions.all where m.status == .prepareCommit || m.status == .prepareAbort {
            logger.info("completing the interrupted \(m.status.name) of transactional id \(m.transactionalId)")
            try finishMarkers(m.transactionalId, .init(producerId: m.producerId, producerEpoch: m.producerEpoch,
                                                        committed: m.status == .prepareCommit, partitions: m.partitions.sorted()))
        }
    }

    /// transaction.timeout.ms: aborts transactions open for longer (fencing their producers);
    /// transactional.id.expiration.ms: forgets ids idle for longer with no open transaction.
    func abortTimedOutTransactions(nowMs: Int64) {
        for m in transactions.all {
            if m.status == .ongoing && nowMs - m.startTimestampMs > Int64(m.timeoutMs) {
                logger.info("transactional id \(m.transactionalId): transaction timed out after \(m.timeoutMs) ms; aborting")
                do {
                    try endTransaction(m.transactionalId) { state in state?.abortForTimeout(nowMs: nowMs) }
                } catch {
                    logger.error("aborting the timed-out transaction of \(m.transactionalId) failed: \(error)")
                }
            } else if [.empty, .completeCommit, .completeAbort].contains(m.status),
                      nowMs - m.lastUpdateMs > config.transactionalIdExpirationMs {
                _ = try? transactions.update(m.transactionalId) { state in state = nil }
            }
        }
    }

    /// Produce of a transactional batch: the partition must be in the producer's open
    /// transaction (KIP-890's verification, which costs nothing on one node). Called under the
    /// partition's producer-state lock, so no marker can slip between the check and the append.
    func verifyTransactionalWrite(_ batch: RecordBatch, topic: String, partition: Int32) -> ErrorCode? {
        guard let m = transactions.get(producerId: batch.producerId) else { return .invalidProducerIdMapping }
        do {
            try m.verifyWrite(producerId: batch.producerId, epoch: batch.producerEpoch, partition: .init(topic: topic, partition: partition))
            return nil
        } catch {
            return error == .producerFenced ? .invalidProducerEpoch : Self.code(error, fencedFrom: 0, version: 0)
        }
    }

    // MARK: - TxnOffsetCommit

    func handleTxnOffsetCommit(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try TxnOffsetCommitRequest.decode(from: &body, version: context.version)
        let access = access(context)
        return threadPool.runIfActive(eventLoop: context.eventLoop) { [self] () -> TxnOffsetCommitResponse in
            var code = ErrorCode.none
            let offsetsPartition = TxnPartition(topic: GroupCoordinator.offsetsTopic,
                                                partition: GroupCoordinator.partition(for: request.groupId, partitions: groups.offsetsPartitions))
            if !access.allows(.write, .transactionalId, request.transactionalId) {
                code = .transactionalIdAuthorizationFailed
            } else if !access.allows(.read, .group, request.groupId) {
                code = .groupAuthorizationFailed
            } else if let m = transactions.get(request.transactionalId) {
                do {
                    try m.verifyWrite(producerId: request.producerId, epoch: request.producerEpoch, partition: offsetsPartition)
                } catch let failure as TransactionMetadata.Failure {
                    code = Self.code(failure, fencedFrom: 2, version: context.version)
                } catch {
                    code = .invalidTxnState
                }
            } else {
                code = .invalidProducerIdMapping
            }
            // v3+ carries the consumer's generation and member id: a zombie member is refused.
            if code == .none && context.version >= 3 && (request.generationId >= 0 || !request.memberId.isEmpty) {
                if let e = groups.validateCommit(groupId: request.groupId, memberId: request.memberId,
                                                 groupInstanceId: request.groupInstanceId, generationId: request.generationId) {
                    code = e.code
                }
            }
            var response = TxnOffsetCommitResponse()
            var entries: [(GroupCoordinator.TopicPartition, GroupCoordinator.Committed)] = []
            let now = currentTimeMs()
            for t in request.topics {
                var rt = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic(name: t.name)
                let known = metadata.topic(t.name)
                let topicAllowed = access.allows(.read, .topic, t.name)
                for p in t.partitions {
                    var c = code == .none && !topicAllowed ? .topicAuthorizationFailed : code
                    if c == .none {
                        let checked = Self.checkCommit(t.name, known, p.partitionIndex, p.committedOffset, p.committedLeaderEpoch,
                                                       p.committedMetadata, nowMs: now)
                        c = checked.code
                        if let entry = checked.entry { entries.append(entry) }
                    }
                    rt.partitions.append(.init(partitionIndex: p.partitionIndex, errorCode: c.rawValue))
                }
                response.topics.append(rt)
            }
            do {
                try groups.persistTransactional(group: request.groupId, producerId: request.producerId, epoch: request.producerEpoch, entries)
            } catch {
                logger.error("TxnOffsetCommit for \(request.groupId) failed: \(error)")
                for i in response.topics.indices {
                    for j in response.topics[i].partitions.indices where response.topics[i].partitions[j].errorCode == 0 {
                        response.topics[i].partitions[j].errorCode = ErrorCode.coordinatorNotAvailable.rawValue
                    }
                }
            }
            return response
        }.map { [self] in frame($0, context) }
    }

    // MARK: - operators

    func handleListTransactions(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try ListTransactionsRequest.decode(from: &body, version: context.version)
        let names = Set(TransactionMetadata.Status.allCases.map(\.name))
        var response = ListTransactionsResponse()
        response.unknownStateFilters = request.stateFilters.filter { !names.contains($0) }
        let states = Set(request.stateFilters)
        let pids = Set(request.producerIdFilters)
        let now = currentTimeMs()
        let access = access(context)
        for m in transactions.all.sorted(by: { $0.transactionalId < $1.transactionalId }) {
            if !access.allows(.describe, .transactionalId, m.transactionalId) { continue }
            if !states.isEmpty && !states.contains(m.status.name) { continue }
            if !pids.isEmpty && !pids.contains(m.producerId) { continue }
            // v1: only transactions running longer than the filter (ms); -1 means no filter.
            if request.durationFilter >= 0 && !(m.status == .ongoing && now - m.startTimestampMs > request.durationFilter) { continue }
            response.transactionStates.append(.init(transactionalId: m.transactionalId, producerId: m.producerId,
                                                    transactionState: m.status.name))
        }
        return frame(response, context)
    }

    func handleDescribeTransactions(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DescribeTransactionsRequest.decode(from: &body, version: context.version)
        var response = DescribeTransactionsResponse()
        let access = access(context)
        for id in request.transactionalIds {
            guard access.allows(.describe, .transactionalId, id) else {
                response.transactionStates.append(.init(errorCode: ErrorCode.transactionalIdAuthorizationFailed.rawValue, transactionalId: id,
                                                        transactionState: "", transactionTimeoutMs: 0, transactionStartTimeMs: -1,
                                                        producerId: -1, producerEpoch: -1))
                continue
            }
            guard let m = transactions.get(id) else {
                response.transactionStates.append(.init(errorCode: ErrorCode.transactionalIdNotFound.rawValue, transactionalId: id,
                                                        transactionState: "", transactionTimeoutMs: 0, transactionStartTimeMs: -1,
                                                        producerId: -1, producerEpoch: -1))
                continue
            }
            var grouped: [String: [Int32]] = [:]
            for p in m.partitions { grouped[p.topic, default: []].append(p.partition) }
            response.transactionStates.append(.init(
                errorCode: 0, transactionalId: id, transactionState: m.status.name, transactionTimeoutMs: m.timeoutMs,
                transactionStartTimeMs: m.startTimestampMs, producerId: m.producerId, producerEpoch: m.producerEpoch,
                topics: grouped.keys.sorted().map { .init(topic: $0, partitions: grouped[$0]!.sorted()) }))
        }
        return frame(response, context)
    }
}
