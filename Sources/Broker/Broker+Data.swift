import KafkaProtocol
import LogStorage
import NIOConcurrencyHelpers
import NIOCore
import Dispatch
import Records
import Security
#if canImport(Glibc)
import Glibc
#endif

/// Produce, Fetch, ListOffsets, DeleteRecords, OffsetForLeaderEpoch.
extension Broker {
    func handleProduce(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ByteBuffer?> {
        let request = try ProduceRequest.decode(from: &body, version: context.version)
        // Appends run here, on the connection's event loop, so that pipelined requests of one
        // connection are appended in the order they were sent. Page-cache writes are quick; the
        // fsyncs that durability `ack` needs, and the writes of a write-behind (direct mode,
        // sluice.io.buffered.submit=ring), go to the group committer, which handles every
        // partition that is waiting in one io_uring submission.
        let (response, flushes) = produce(request, version: context.version, access: access(context))
        if flushes.isEmpty {
            return context.eventLoop.makeSucceededFuture(request.acks == 0 ? nil : frame(response, context))
        }
        let promise = context.eventLoop.makePromise(of: ProduceResponse.self)
        let pending = NIOLockedValueBox((left: flushes.count, failed: [(Int, Int)]()))
        for (log, offset, durable, topicIndex, partitionIndex) in flushes {
            committer.sync(log, upTo: offset, durable: durable) { [self] result in
                if case .failure(let error) = result { logger.error("flush of \(log.name) failed: \(error)") }
                // This partition's high watermark moved with its durable (or written) offset: its
                // consumers need not wait for the request's other partitions.
                else { fetchWaiters.wake([log.name]) }
                let finished = pending.withLockedValue { p -> [(Int, Int)]? in
                    if case .failure = result { p.failed.append((topicIndex, partitionIndex)) }
                    p.left -= 1
                    return p.left == 0 ? p.failed : nil
                }
                guard let failed = finished else { return }
                var response = response
                for (t, p) in failed {
                    response.responses[t].partitionResponses[p].errorCode = ErrorCode.kafkaStorageError.rawValue
                }
                promise.succeed(response)
            }
        }
        return promise.futureResult.map { [self] response in request.acks == 0 ? nil : frame(response, context) }
    }

    /// The response, and what must happen before it is sent: (log, offset, durable, topic index,
    /// partition index) for every append that waits for its write (direct mode) or fsync.
    private func produce(_ request: ProduceRequest, version: Int16, access: Access) -> (ProduceResponse, [(PartitionLog, Int64, Bool, Int, Int)]) {
        var flushes: [(PartitionLog, Int64, Bool, Int, Int)] = []
        let transactionalIdDenied = request.transactionalId.map { !access.allows(.write, .transactionalId, $0) } ?? false
        var appended: [String] = []
        let now = currentTimeMs()
        var response = ProduceResponse()
        for topic in request.topicData {
            var topicResponse = ProduceResponse.TopicProduceResponse(name: topic.name)
            let internalTopic = Self.isInternal(topic.name)  // once per topic, not per partition
            let writeAllowed = access.allows(.write, .topic, topic.name)
            for partition in topic.partitionData {
                var result = ProduceResponse.PartitionProduceResponse(index: partition.index, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1)
                if request.acks != 0 && request.acks != 1 && request.acks != -1 {
                    failProduce(&result, .invalidRequiredAcks)
                } else if transactionalIdDenied {
                    failProduce(&result, .transactionalIdAuthorizationFailed)
                } else if !writeAllowed {
                    failProduce(&result, .topicAuthorizationFailed)
                } else if internalTopic {
                    // Only the coordinators write there (Kafka: "Cannot append to internal topic").
                    failProduce(&result, .invalidTopicException, "cannot append to internal topic \(topic.name)")
                } else if let log = logManager.log(topic: topic.name, partition: partition.index), topic.name != MetadataStore.logName {
                    if let owed = append(partition.records, to: log, topic: topic.name, partition: partition.index, version: version,
                                         nowMs: now, into: &result) {
                        flushes.append((log, owed.offset, owed.durable, response.responses.count, topicResponse.partitionResponses.count))
                    }
                    if result.errorCode == 0 { appended.append(log.name) }
                } else {
                    failProduce(&result, .unknownTopicOrPartition)
                }
                topicResponse.partitionResponses.append(result)
            }
            response.responses.append(topicResponse)
        }
        if !appended.isEmpty { fetchWaiters.wake(appended) }
        return (response, flushes)
    }

    private func failProduce(_ result: inout ProduceResponse.PartitionProduceResponse, _ code: ErrorCode, _ message: String? = nil) {
        metrics.failedProduce.increment()
        result.errorCode = code.rawValue
        result.errorMessage = message
    }

    /// Validates one partition's batch and appends it (an idempotent producer's sequence checked,
    /// appended and recorded under the partition's producer-state lock), filling in `result`.
    /// Returns what the answer must wait for: the offset to be written or synced up to, and
    /// whether it is a sync.
    private func append(_ records: ByteBuffer?, to log: PartitionLog, topic: String, partition: Int32, version: Int16, nowMs now: Int64,
                        into result: inout ProduceResponse.PartitionProduceResponse) -> (offset: Int64, durable: Bool)? {
        let batch: RecordBatch
        switch validate(records, version: version, config: log.currentConfig) {
        case .failure(let failure):
            failProduce(&result, failure.code, failure.message)
            // KIP-467: which records were refused, so the client fails only those.
            result.recordErrors = failure.recordIndexes.map { .init(batchIndex: $0, batchIndexErrorMessage: failure.message) }
            return nil
        case .success(let b): batch = b
        }
        do {
            let state = batch.producerId >= 0 ? try producerStates.state(for: log) : nil
            state?.lock.lock()
            defer { state?.lock.unlock() }
            if batch.isTransactional, let code = verifyTransactionalWrite(batch, topic: topic, partition: partition) {
                failProduce(&result, code, "not part of an ongoing transaction of producer \(batch.producerId) epoch \(batch.producerEpoch)")
                return nil
            }
            let verdict = state?.machine.check(producerId: batch.producerId, epoch: batch.producerEpoch,
                                               firstSequence: batch.baseSequence, lastSequence: batch.lastSequence) ?? .append
            switch verdict {
            case .append:
                let r = try log.append([batch], nowMs: now, deferFlush: true, deferWrite: true)
                metrics.bytesIn.increment(by: batch.byteCount)
                metrics.messagesIn.increment(by: Int(batch.recordCount))
                state?.machine.record(producerId: batch.producerId, epoch: batch.producerEpoch,
                                      firstSequence: batch.baseSequence, lastSequence: batch.lastSequence,
                                      firstOffset: r.baseOffset, lastOffset: r.lastOffset, timestampMs: now,
                                      transactional: batch.isTransactional)
                result.baseOffset = r.baseOffset
                result.logAppendTimeMs = r.logAppendTime
                result.logStartOffset = r.logStartOffset
                return r.needsFlush || r.needsWrite ? (r.lastOffset + 1, r.needsFlush) : nil
            case .duplicate(let firstOffset, let lastOffset):
                // A retry of a batch already in the log: answer with its offsets, once they are
                // as durable as a first append's would be.
                result.baseOffset = firstOffset
                result.logStartOffset = log.logStartOffset
                let ack = log.currentConfig.durability == .ack
                return (ack && log.durableOffset <= lastOffset) || log.writtenOffset <= lastOffset ? (lastOffset + 1, ack) : nil
            case .outOfOrderSequence(let expected, let got):
                failProduce(&result, .outOfOrderSequenceNumber, "expected sequence \(expected), got \(got)")
            case .invalidEpoch(let current, let got):
                failProduce(&result, .invalidProducerEpoch, "producer epoch \(got) is older than \(current)")
            case .unknownProducer:
                failProduce(&result, .unknownProducerId, "no state for producer \(batch.producerId)")
            }
        } catch StorageError.recordTooLarge {
            failProduce(&result, .messageTooLarge)
        } catch {
            logger.error("append to \(log.name) failed: \(error)")
            failProduce(&result, .kafkaStorageError, "\(error)")
        }
        return nil
    }

    /// Kafka's checks on produced data: exactly one magic-2 batch (Produce v3+), an intact CRC,
    /// size within max.message.bytes, a codec the request version allows, sane offsets and
    /// sequence fields, and records that parse (decompressing under our cap).
    private func validate(_ records: ByteBuffer?, version: Int16, config: LogConfig) -> Result<RecordBatch, Failure> {
        guard let records, records.readableBytes > 0 else { return .failure(Failure(.invalidRecord, "no record batch")) }
        if records.readableBytes > config.maxMessageBytes + RecordBatch.headerBytes {
            return .failure(Failure(.messageTooLarge, "batch of \(records.readableBytes) bytes"))
        }
        var sequence = RecordBatchSequence(records)
        var batches: [RecordBatch] = []
        while let b = sequence.next() { batches.append(b) }
        if let error = sequence.error {
            switch error {
            case .unsupportedMagic: return .failure(Failure(.invalidRecord, "\(error)"))
            default: return .failure(Failure(.corruptMessage, "\(error)"))
            }
        }
        if sequence.trailingPartialBytes > 0 { return .failure(Failure(.corruptMessage, "truncated record batch")) }
        guard batches.count == 1, let batch = batches.first else {
            return .failure(Failure(.invalidRecord, "expected exactly one record batch, got \(batches.count)"))
        }
        guard let codec = batch.compression else { return .failure(Failure(.unsupportedCompressionType, nil)) }
        if codec == .zstd && version < 7 { return .failure(Failure(.unsupportedCompressionType, "zstd needs Produce v7+")) }
        do {
            // One pass over the records; compacted topics also refuse records without keys there.
            try batch.validateForAppend(deep: true, requireKeys: config.compacts, decompressedBytesMax: self.config.decompressedBytesMax)
        } catch {
            if config.compacts, let keyless = Self.keylessRecords(batch, decompressedBytesMax: self.config.decompressedBytesMax) {
                return .failure(Failure(.invalidRecord, "Compacted topic cannot accept message without key", recordIndexes: keyless))
            }
            switch error {
            case .compression(.outputExceedsCap): return .failure(Failure(.recordListTooLarge, "\(error)"))
            case .compression, .crcMismatch, .truncated, .invalidLength: return .failure(Failure(.corruptMessage, "\(error)"))
            default: return .failure(Failure(.invalidRecord, "\(error)"))
            }
        }
        return .success(batch)
    }

    struct Failure: Error {
        var code: ErrorCode
        var message: String?
        /// The positions in the batch of the records at fault, when only some are (KIP-467).
        var recordIndexes: [Int32] = []
        init(_ code: ErrorCode, _ message: String?, recordIndexes: [Int32] = []) {
            self.code = code
            self.message = message
            self.recordIndexes = recordIndexes
        }
    }

    /// The positions of the records without a key, if the batch parses and has any (the refused
    /// batch's slow path: Kafka names each such record in the Produce response).
    static func keylessRecords(_ batch: RecordBatch, decompressedBytesMax: Int) -> [Int32]? {
        guard let records = try? batch.records(decompressedBytesMax: decompressedBytesMax) else { return nil }
        let keyless = records.indices.filter { records[$0].key == nil }.map { Int32($0) }
        return keyless.isEmpty ? nil : keyless
    }

    // MARK: - fetch

    func handleFetch(_ context: RequestContext, _ body: inout ByteBuffer) throws -> EventLoopFuture<ResponseFrame?> {
        let request = try FetchRequest.decode(from: &body, version: context.version)
        let promise = context.eventLoop.makePromise(of: ResponseFrame?.self)
        let deadline = currentTimeMs() + Int64(max(0, request.maxWaitMs))
        let state = FetchState(promise: promise)
        let access = access(context)
        let attempt: @Sendable (Bool) -> Void = { [self] final in
            guard !state.done else { return }
            let (response, slices, bytes, failed) = fetch(request, version: context.version, access: access)
            if final || failed || bytes >= Int(max(1, request.minBytes)) || request.maxWaitMs <= 0 || currentTimeMs() >= deadline {
                state.done = true
                metrics.bytesOut.increment(by: bytes)
                if failed { metrics.failedFetch.increment() }
                if let id = state.waiterId { fetchWaiters.remove(id) }
                state.timeout?.cancel()
                promise.succeed(assemble(response, slices: slices, context))
            } else {
                for group in slices { for s in group { close(s.descriptor) } }
            }
        }
        attempt(false)
        if !state.done {
            let partitions = Set(request.topics.flatMap { t in t.partitions.map { "\(t.topic)-\($0.partition)" } })
            state.waiterId = fetchWaiters.add(on: context.eventLoop, partitions: partitions) { attempt(false) }
            state.timeout = context.eventLoop.scheduleTask(in: .milliseconds(max(0, deadline - currentTimeMs()))) { attempt(true) }
            // An append may have landed between the first attempt and registering.
            context.eventLoop.execute { attempt(false) }
        }
        return promise.futureResult
    }

    final class FetchState: @unchecked Sendable {
        let promise: EventLoopPromise<ResponseFrame?>
        var done = false
        var waiterId: Int?
        var timeout: Scheduled<Void>?
        init(promise: EventLoopPromise<ResponseFrame?>) { self.promise = promise }
    }

    /// Marks where a partition's records go: the response is encoded with this placeholder in
    /// each records field, then split around it so the file ranges can be sent with sendfile.
    static let recordsMarkerBytes = 12

    /// The response frame with each partition's records as file ranges.
    private func assemble(_ response: FetchResponse, slices: [[PartitionLog.FileSlice]], _ context: RequestContext) -> ResponseFrame {
        var response = response
        let nonce = UInt64.random(in: 0...UInt64.max)
        var markers: [[UInt8]] = []
        var index = 0
        for t in response.responses.indices {
            for p in response.responses[t].partitions.indices {
                defer { index += 1 }
                guard !slices[index].isEmpty else { continue }
                var marker = ByteBuffer()
                marker.writeInteger(nonce)
                marker.writeInteger(UInt32(index))
                markers.append(Array(marker.readableBytesView))
                response.responses[t].partitions[p].records = marker
            }
        }
        let encoded = frame(response, context)
        guard !markers.isEmpty else { return ResponseFrame(encoded) }
        let flexible = FetchResponse.isFlexible(version: context.version)
        let bytes = Array(encoded.readableBytesView)
        var parts: [ResponseFrame.Part] = []
        var cursor = 0
        var total = 0
        var sliceGroups = slices.filter { !$0.isEmpty }.makeIterator()
        for marker in markers {
            let group = sliceGroups.next()!
            guard let at = Self.find(marker, in: bytes, from: cursor) else {
                for s in group { close(s.descriptor) }
                continue
            }
            // The length prefix before the marker: int32, or unsigned varint (length + 1).
            let prefixStart = flexible ? at - 1 : at - 4
            let length = group.reduce(0) { $0 + $1.length }
            var head = ByteBuffer(bytes: bytes[cursor..<prefixStart])
            if flexible { head.writeUnsignedVarint(UInt32(length + 1)) } else { head.writeInteger(Int32(length)) }
            total += head.readableBytes + length
            parts.append(.bytes(head))
            for s in group { parts.append(.file(OwnedDescriptor(s.descriptor), position: s.position, length: s.length)) }
            cursor = at + marker.count
        }
        let tail = ByteBuffer(bytes: bytes[cursor...])
        total += tail.readableBytes
        parts.append(.bytes(tail))
        // The frame's size prefix (the first four bytes) must count the file ranges too.
        if case .bytes(var first) = parts[0] {
            first.setInteger(Int32(total - 4), at: first.readerIndex)
            parts[0] = .bytes(first)
        }
        return ResponseFrame(parts: parts)
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var i = start
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// One pass over the requested partitions: the response (records left empty), the file
    /// ranges per partition in response order, their total size, and whether any partition failed.
    private func fetch(_ request: FetchRequest, version: Int16, access: Access) -> (FetchResponse, [[PartitionLog.FileSlice]], Int, Bool) {
        var response = FetchResponse(sessionId: 0)
        var slices: [[PartitionLog.FileSlice]] = []
        var remaining = request.maxBytes > 0 ? Int(request.maxBytes) : Int(Int32.max)
        var total = 0
        var failed = false
        for topic in request.topics {
            var topicResponse = FetchResponse.FetchableTopicResponse(topic: topic.topic, topicId: topic.topicId)
            let readAllowed = access.allows(.read, .topic, topic.topic)
            for p in topic.partitions {
                var data = FetchResponse.PartitionData(partitionIndex: p.partition, highWatermark: -1, lastStableOffset: -1,
                                                       logStartOffset: -1, preferredReadReplica: -1)
                data.records = ByteBuffer()
                if request.isolationLevel == 1 { data.abortedTransactions = [] }
                var found: [PartitionLog.FileSlice] = []
                defer { slices.append(found) }
                guard readAllowed else {
                    data.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    failed = true
                    topicResponse.partitions.append(data)
                    continue
                }
                guard let log = logManager.log(topic: topic.topic, partition: p.partition), topic.topic != MetadataStore.logName else {
                    data.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    failed = true
                    topicResponse.partitions.append(data)
                    continue
                }
                let hw = highWatermark(log)
                let lso = producerStates.lastStableOffset(log, highWatermark: hw)
                let readCommitted = request.isolationLevel == 1
                data.highWatermark = hw
                data.lastStableOffset = lso
                data.logStartOffset = log.logStartOffset
                do {
                    let maxBytes = min(Int(max(0, p.partitionMaxBytes)), remaining)
                    // read_committed stops at the LSO and names the aborted transactions in range,
                    // whose records the client drops.
                    let bound = readCommitted ? lso : hw
                    let read = try log.readSlices(from: p.fetchOffset, maxBytes: maxBytes, upperBound: bound, minOneBatch: total == 0)
                    if readCommitted && read.bytes > 0 {
                        data.abortedTransactions = try log.abortedTransactions(from: p.fetchOffset, upTo: bound).map {
                            .init(producerId: $0.producerId, firstOffset: $0.firstOffset)
                        }
                    }
                    found = read.slices
                    total += read.bytes
                    remaining = max(0, remaining - read.bytes)
                } catch StorageError.offsetOutOfRange {
                    data.errorCode = ErrorCode.offsetOutOfRange.rawValue
                    failed = true
                } catch {
                    logger.error("fetch from \(log.name) failed: \(error)")
                    data.errorCode = ErrorCode.kafkaStorageError.rawValue
                    failed = true
                }
                topicResponse.partitions.append(data)
            }
            response.responses.append(topicResponse)
        }
        return (response, slices, total, failed)
    }

    // MARK: - offsets

    func handleListOffsets(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try ListOffsetsRequest.decode(from: &body, version: context.version)
        var response = ListOffsetsResponse()
        let access = access(context)
        for topic in request.topics {
            var t = ListOffsetsResponse.ListOffsetsTopicResponse(name: topic.name)
            let describeAllowed = access.allows(.describe, .topic, topic.name)
            for p in topic.partitions {
                var r = ListOffsetsResponse.ListOffsetsPartitionResponse(partitionIndex: p.partitionIndex, timestamp: -1, offset: -1, leaderEpoch: 0)
                if !describeAllowed {
                    r.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    r.leaderEpoch = -1
                } else if let log = logManager.log(topic: topic.name, partition: p.partitionIndex), topic.name != MetadataStore.logName {
                    // What the isolation level may read: the LSO under read_committed, else the
                    // high watermark. Lookups that land at or past it answer nothing, as in Kafka.
                    func fetchable() -> Int64 {
                        let hw = highWatermark(log)
                        return request.isolationLevel == 1 ? producerStates.lastStableOffset(log, highWatermark: hw) : hw
                    }
                    switch p.timestamp {
                    case -1:
                        r.offset = fetchable()
                    case -2, -4: r.offset = log.logStartOffset
                    case -3:
                        do {
                            if let m = try log.recordWithMaxTimestamp(), m.offset < fetchable() { r.offset = m.offset; r.timestamp = m.timestamp }
                        } catch {
                            r.errorCode = ErrorCode.kafkaStorageError.rawValue
                        }
                    case -5: r.offset = -1
                    default:
                        do {
                            if let found = try log.offset(forTimestamp: p.timestamp), found.offset < fetchable() {
                                r.offset = found.offset
                                r.timestamp = found.timestamp
                            }
                        } catch {
                            r.errorCode = ErrorCode.kafkaStorageError.rawValue
                        }
                    }
                } else {
                    r.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    r.leaderEpoch = -1
                }
                t.partitions.append(r)
            }
            response.topics.append(t)
        }
        return frame(response, context)
    }

    func handleDeleteRecords(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try DeleteRecordsRequest.decode(from: &body, version: context.version)
        var response = DeleteRecordsResponse()
        let access = access(context)
        for topic in request.topics {
            var t = DeleteRecordsResponse.DeleteRecordsTopicResult(name: topic.name)
            let deleteAllowed = access.allows(.delete, .topic, topic.name)
            for p in topic.partitions {
                var r = DeleteRecordsResponse.DeleteRecordsPartitionResult(partitionIndex: p.partitionIndex, lowWatermark: -1)
                if !deleteAllowed {
                    r.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                } else if Self.isInternal(topic.name) {
                    // Kafka: "Cannot delete records of internal topic" (it would drop committed
                    // offsets or transaction state).
                    r.errorCode = ErrorCode.invalidTopicException.rawValue
                } else if let log = logManager.log(topic: topic.name, partition: p.partitionIndex), topic.name != MetadataStore.logName {
                    let hw = highWatermark(log)
                    let target = p.offset == -1 ? hw : p.offset
                    if target < 0 || target > hw {
                        r.errorCode = ErrorCode.offsetOutOfRange.rawValue
                    } else {
                        do { r.lowWatermark = try log.deleteRecords(before: target, nowMs: currentTimeMs()) }
                        catch { r.errorCode = ErrorCode.kafkaStorageError.rawValue }
                    }
                } else {
                    r.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                }
                t.partitions.append(r)
            }
            response.topics.append(t)
        }
        return frame(response, context)
    }

    func handleOffsetForLeaderEpoch(_ context: RequestContext, _ body: inout ByteBuffer) throws -> ByteBuffer {
        let request = try OffsetForLeaderEpochRequest.decode(from: &body, version: context.version)
        var response = OffsetForLeaderEpochResponse()
        let access = access(context)
        for topic in request.topics {
            var t = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult(topic: topic.topic)
            let describeAllowed = access.allows(.describe, .topic, topic.topic)
            for p in topic.partitions {
                var r = OffsetForLeaderEpochResponse.EpochEndOffset(partition: p.partition, leaderEpoch: -1, endOffset: -1)
                if !describeAllowed {
                    r.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                } else if let log = logManager.log(topic: topic.topic, partition: p.partition), topic.topic != MetadataStore.logName {
                    // A single node has had one leader epoch, 0, since the partition was created.
                    // As Kafka: a client ahead of us (a newer currentLeaderEpoch) is told
                    // UNKNOWN_LEADER_EPOCH, one behind FENCED_LEADER_EPOCH (-1 skips the check);
                    // the end offset of epoch 0 is the log end, and of an epoch above ours -1/-1.
                    let current: Int32 = 0
                    if p.currentLeaderEpoch > current {
                        r.errorCode = ErrorCode.unknownLeaderEpoch.rawValue
                    } else if p.currentLeaderEpoch >= 0 && p.currentLeaderEpoch < current {
                        r.errorCode = ErrorCode.fencedLeaderEpoch.rawValue
                    } else if p.leaderEpoch >= 0 && p.leaderEpoch <= current {
                        r.leaderEpoch = current
                        r.endOffset = log.logEndOffset
                    }
                } else {
                    r.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                }
                t.partitions.append(r)
            }
            response.topics.append(t)
        }
        return frame(response, context)
    }
}

