/// Per-log settings. Kafka's topic config names where one exists; Sluice's own knobs carry the
/// `sluice.` prefix. Defaults are Kafka's unless stated.
public struct LogConfig: Sendable, Equatable {
    public enum IOMode: String, Sendable { case buffered, direct }
    public enum BufferedSubmit: String, Sendable { case inline, ring }
    public enum Durability: String, Sendable { case none, interval, ack }
    public enum TimestampType: String, Sendable { case createTime = "CreateTime", logAppendTime = "LogAppendTime" }

    /// `segment.bytes`: roll when the active segment would pass this size.
    public var segmentBytes = 1 << 30
    /// `segment.ms`: roll when the active segment's first append is older than this.
    public var segmentMs: Int64 = 7 * 24 * 3_600_000
    /// `segment.index.bytes`: preallocated size of each offset and time index.
    public var segmentIndexBytes = 10 << 20
    /// `index.interval.bytes`: bytes of log between index entries.
    public var indexIntervalBytes = 4096
    /// `retention.ms`: delete segments whose newest record is older (-1: keep forever).
    public var retentionMs: Int64 = 7 * 24 * 3_600_000
    /// `retention.bytes`: delete oldest segments while the log is larger (-1: no limit).
    public var retentionBytes: Int64 = -1
    /// `file.delete.delay.ms`: how long a deleted segment waits as `.deleted` before unlink.
    public var fileDeleteDelayMs: Int64 = 60_000
    /// `flush.messages` / `flush.ms`: with durability `interval`, fsync after this many
    /// messages or this long (Kafka's defaults: never, leaving it to the page cache).
    public var flushMessages: Int64 = Int64.max
    public var flushMs: Int64 = Int64.max
    /// `preallocate`: fallocate the whole segment when it is created.
    public var preallocate = false
    /// `sluice.preallocate.step.bytes`: without `preallocate`, the active segment reserves its
    /// blocks (fallocate, file size unchanged) ahead of its end by this much, or by as much as it
    /// holds if that is less (64 KiB at least); 0 turns it off. Appends into reserved blocks skip
    /// ext4's per-page delayed-allocation work (see docs/configuration.md for what it saved);
    /// sealing the segment returns what it did not use. Ours; on by default (16 MiB).
    public var preallocateStepBytes = 16 << 20
    /// `sluice.zero.ahead.bytes`: with durability `ack` and inline buffered writes, the active
    /// segment keeps up to this many bytes past its end written with zeros (and synced, in the
    /// background), so that the fdatasync an acknowledgement waits for overwrites blocks the
    /// file already has and commits no journal transaction. As much as the segment holds if that
    /// is less (64 KiB at least); skipped while the segment grows faster than
    /// `LogSegment.zeroAheadRateMax`, where the zeros would double the writes for syncs that are
    /// amortised anyway. 0 turns it off. Ours (512 KiB).
    public var zeroAheadBytes = 512 << 10
    /// The largest `sluice.zero.ahead.bytes` accepted.
    public static let zeroAheadBytesMax: Int64 = 16 << 20
    /// `sluice.cache.drop.behind.bytes`: with inline buffered writes, the active segment keeps at
    /// most about this many bytes behind its end in the page cache: as it grows, it starts
    /// writeback of what it appended and drops the clean pages further back (sync_file_range,
    /// then POSIX_FADV_DONTNEED), so the page cache recycles the same memory instead of growing.
    /// Tail reads stay in memory; reads further back than this come from the disk. 0 (the
    /// default, Kafka's way) leaves the page cache to the kernel; otherwise at least
    /// `dropBehindBytesMin`. Ours.
    public var dropBehindBytes = 0
    /// The smallest non-zero `sluice.cache.drop.behind.bytes` accepted (four steps of 1 MiB).
    public static let dropBehindBytesMin: Int64 = 4 << 20
    /// `message.timestamp.type`.
    public var timestampType: TimestampType = .createTime
    /// `max.message.bytes`: the largest batch a producer may append.
    public var maxMessageBytes = 1_048_588
    /// `sluice.io.mode`: `buffered` (page cache, Kafka's way) or `direct` (O_DIRECT appends of
    /// 4 KiB-aligned blocks; see DirectWriter). Applies to segments created after a change.
    public var ioMode: IOMode = .buffered
    /// `sluice.io.buffered.submit`: how buffered appends reach the page cache. `inline`: a
    /// `pwritev` by the appending thread (the event loop). `ring`: written behind on the
    /// group-commit threads' io_uring (see BufferedWriteBehind), every waiting partition's write
    /// in one submission, with no copy of the received bytes. Applies to segments created after a
    /// change; direct mode always writes behind.
    public var bufferedSubmit: BufferedSubmit = .inline
    /// `sluice.durability`: `none` (Kafka's default: page cache, flushed on roll and shutdown),
    /// `interval` (flush.messages / flush.ms), `ack` (fdatasync before an append is acknowledged).
    public var durability: Durability = .none

    /// Kafka topic configs kept as given (their defaults are Kafka's). The compaction ones are
    /// read through the typed accessors below; the rest are accepted and shown but not acted on
    /// (`compression.type=producer` is what Sluice does anyway: batches stay as sent).
    public static let acceptedDefaults: [String: String] = [
        "cleanup.policy": "delete", "compression.type": "producer", "min.insync.replicas": "1",
        "unclean.leader.election.enable": "false", "delete.retention.ms": "86400000",
        "min.compaction.lag.ms": "0", "max.compaction.lag.ms": "9223372036854775807",
        "min.cleanable.dirty.ratio": "0.5", "segment.jitter.ms": "0",
        "message.timestamp.difference.max.ms": "9223372036854775807",
        "message.timestamp.before.max.ms": "9223372036854775807",
        "message.timestamp.after.max.ms": "9223372036854775807", "message.downconversion.enable": "true",
        "leader.replication.throttled.replicas": "", "follower.replication.throttled.replicas": "",
        "remote.storage.enable": "false", "local.retention.ms": "-2", "local.retention.bytes": "-2",
    ]
    /// Values of the accepted-but-inactive configs that differ from their defaults.
    public var accepted: [String: String] = [:] {
        didSet { (compacts, deletesByRetention) = Self.policyFlags(value("cleanup.policy")) }
    }

    // Compaction settings (kept as strings with the accepted configs, read typed here).
    private func value(_ name: String) -> String { accepted[name] ?? Self.acceptedDefaults[name]! }
    // `cleanup.policy`, parsed once whenever it changes: the produce path asks on every request.
    private static func policyFlags(_ policy: String) -> (compacts: Bool, deletes: Bool) {
        let parts = Set(policy.split(separator: ",").map { $0.filter { $0 != " " } })
        return (parts.contains("compact"), parts.contains("delete"))
    }
    /// `cleanup.policy` contains `compact`.
    public private(set) var compacts = false
    /// `cleanup.policy` contains `delete` (retention by time and size applies).
    public private(set) var deletesByRetention = true
    /// `delete.retention.ms`: how long tombstones (and removable markers) outlive their first cleaning.
    public var deleteRetentionMs: Int64 { Int64(value("delete.retention.ms")) ?? 86_400_000 }
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    public var minCompactionLagMs: Int64 { Int64(value("min.compaction.lag.ms")) ?? 0 }
    /// `max.compaction.lag.ms`: a dirty record older than this forces a cleaning whatever the ratio.
    public var maxCompactionLagMs: Int64 { Int64(value("max.compaction.lag.ms")) ?? Int64.max }
    /// `min.cleanable.dirty.ratio`: dirty bytes / cleanable bytes needed before a cleaning.
    public var minCleanableDirtyRatio: Double { Double(value("min.cleanable.dirty.ratio")) ?? 0.5 }

    public init() {}

    public enum ConfigError: Error, Equatable, CustomStringConvertible {
        case invalid(name: String, value: String, reason: String)
        public var description: String {
            switch self { case let .invalid(n, v, r): "invalid value \(v) for \(n): \(r)" }
        }
    }

    /// Every name this type understands, with the value it has now (for DescribeConfigs).
    public var entries: [(name: String, value: String)] {
        [("segment.bytes", "\(segmentBytes)"), ("segment.ms", "\(segmentMs)"),
         ("segment.index.bytes", "\(segmentIndexBytes)"), ("index.interval.bytes", "\(indexIntervalBytes)"),
         ("retention.ms", "\(retentionMs)"), ("retention.bytes", "\(retentionBytes)"),
         ("file.delete.delay.ms", "\(fileDeleteDelayMs)"), ("flush.messages", "\(flushMessages)"),
         ("flush.ms", "\(flushMs)"), ("preallocate", "\(preallocate)"),
         ("sluice.preallocate.step.bytes", "\(preallocateStepBytes)"), ("sluice.zero.ahead.bytes", "\(zeroAheadBytes)"),
         ("sluice.cache.drop.behind.bytes", "\(dropBehindBytes)"),
         ("message.timestamp.type", timestampType.rawValue), ("max.message.bytes", "\(maxMessageBytes)"),
         ("sluice.io.mode", ioMode.rawValue), ("sluice.io.buffered.submit", bufferedSubmit.rawValue),
         ("sluice.durability", durability.rawValue)]
            + Self.acceptedDefaults.keys.sorted().map { ($0, accepted[$0] ?? Self.acceptedDefaults[$0]!) }
    }

    public static let knownNames: Set<String> = Set(LogConfig().entries.map(\.name))

    /// Applies one `name=value`; unknown names return false (the caller decides how to warn).
    @discardableResult
    public mutating func set(_ name: String, _ value: String) throws(ConfigError) -> Bool {
        func int(_ min: Int64 = Int64.min) throws(ConfigError) -> Int64 {
            guard let v = Int64(value), v >= min else { throw .invalid(name: name, value: value, reason: "expected an integer ≥ \(min)") }
            return v
        }
        switch name {
        case "segment.bytes": segmentBytes = Int(try int(14))
        case "segment.ms": segmentMs = try int(1)
        case "segment.index.bytes": segmentIndexBytes = Int(try int(8))
        case "index.interval.bytes": indexIntervalBytes = Int(try int(0))
        case "retention.ms": retentionMs = try int(-1)
        case "retention.bytes": retentionBytes = try int(-1)
        case "file.delete.delay.ms": fileDeleteDelayMs = try int(0)
        case "flush.messages": flushMessages = try int(1)
        case "flush.ms": flushMs = try int(0)
        case "max.message.bytes": maxMessageBytes = Int(try int(0))
        case "sluice.preallocate.step.bytes": preallocateStepBytes = Int(try int(0))
        case "sluice.zero.ahead.bytes":
            // The appending thread writes the zeros itself, so a refill must stay small.
            let v = try int(0)
            guard v <= Self.zeroAheadBytesMax else {
                throw .invalid(name: name, value: value, reason: "expected at most \(Self.zeroAheadBytesMax) (16 MiB)")
            }
            zeroAheadBytes = Int(v)
        case "sluice.cache.drop.behind.bytes":
            let v = try int(0)
            guard v == 0 || v >= Self.dropBehindBytesMin else {
                throw .invalid(name: name, value: value, reason: "expected 0 (off) or at least \(Self.dropBehindBytesMin) (4 MiB)")
            }
            dropBehindBytes = Int(v)
        case "preallocate":
            guard let b = Bool(value.lowercased()) else { throw .invalid(name: name, value: value, reason: "expected true or false") }
            preallocate = b
        case "message.timestamp.type":
            guard let t = TimestampType(rawValue: value) else { throw .invalid(name: name, value: value, reason: "expected CreateTime or LogAppendTime") }
            timestampType = t
        case "sluice.io.mode":
            guard let m = IOMode(rawValue: value) else { throw .invalid(name: name, value: value, reason: "expected buffered or direct") }
            ioMode = m
        case "sluice.io.buffered.submit":
            guard let m = BufferedSubmit(rawValue: value) else { throw .invalid(name: name, value: value, reason: "expected inline or ring") }
            bufferedSubmit = m
        case "sluice.durability":
            guard let d = Durability(rawValue: value) else { throw .invalid(name: name, value: value, reason: "expected none, interval or ack") }
            durability = d
        case "cleanup.policy":
            let parts = Set(value.split(separator: ",").map { String($0.filter { $0 != " " }) })
            guard !parts.isEmpty, parts.isSubset(of: ["delete", "compact"]) else {
                throw .invalid(name: name, value: value, reason: "expected delete, compact or compact,delete")
            }
            accepted[name] = value
        case "compression.type":
            guard ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"].contains(value) else {
                throw .invalid(name: name, value: value, reason: "expected producer, uncompressed, gzip, snappy, lz4 or zstd")
            }
            accepted[name] = value
        case "delete.retention.ms", "min.compaction.lag.ms", "max.compaction.lag.ms":
            _ = try int(0)
            accepted[name] = value
        case "min.cleanable.dirty.ratio":
            guard let r = Double(value), r >= 0, r <= 1 else { throw .invalid(name: name, value: value, reason: "expected a number in [0, 1]") }
            accepted[name] = value
        default:
            guard Self.acceptedDefaults[name] != nil else { return false }
            accepted[name] = value
        }
        return true
    }
}
