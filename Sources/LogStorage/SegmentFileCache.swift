import NIOConcurrencyHelpers

/// Bounds the open files of sealed segments (`sluice.segments.open.max`). Every sealed segment
/// holds a descriptor for its `.log` and two index mappings while open; with thousands of
/// partitions that would run into the open-file limit and `vm.max_map_count` (65530 by
/// default). Active segments are always open and not counted. Sealed segments are opened on
/// access and the least recently used are closed when more than the limit are open; closing
/// only drops the segment's reference, so a reader in the middle of using the files keeps them.
/// Each `LogManager` has its own (a broker has one manager), so two managers in one process —
/// tests running side by side — never evict each other's files or change each other's limit.
final class SegmentFileCache: @unchecked Sendable {
    static let defaultLimit = 2048

    private struct Entry {
        weak var segment: LogSegment?
        var lastUse: UInt64
    }

    private struct State {
        var limit: Int
        var tick: UInt64 = 0
        var open: [ObjectIdentifier: Entry] = [:]
        var evictions = 0
    }

    private let lock = NIOLock()
    private var s: State

    init(limit: Int = SegmentFileCache.defaultLimit) {
        s = State(limit: max(1, limit))
    }

    /// Sealed segments with open files, and how many times files were closed for the limit.
    var counts: (open: Int, evictions: Int) { lock.withLock { (s.open.count, s.evictions) } }

    var limit: Int {
        get { lock.withLock { s.limit } }
        set { lock.withLock { s.limit = max(1, newValue) } }
    }

    /// Records a use of a sealed segment's files, closing the least recently used beyond the
    /// limit. Eviction works in batches (an eighth of the limit) so that the sort is amortised.
    func touch(_ segment: LogSegment) {
        let victims: [LogSegment] = lock.withLock {
            s.tick &+= 1
            let id = ObjectIdentifier(segment)
            if s.open[id]?.segment === segment {
                s.open[id]!.lastUse = s.tick
                return []
            }
            s.open[id] = Entry(segment: segment, lastUse: s.tick)
            guard s.open.count > s.limit + max(1, s.limit / 8) else { return [] }
            var ordered = s.open.filter { $0.value.segment != nil }.sorted { $0.value.lastUse < $1.value.lastUse }
            s.open = s.open.filter { $0.value.segment != nil }
            var out: [LogSegment] = []
            while s.open.count > s.limit, !ordered.isEmpty {
                let (key, entry) = ordered.removeFirst()
                guard key != id, let victim = entry.segment else { continue }
                s.open.removeValue(forKey: key)
                out.append(victim)
            }
            s.evictions += out.count
            return out
        }
        // Outside the cache's lock: a segment's own lock is never taken while holding it.
        for v in victims { v.releaseFiles() }
    }

    /// A segment that is active again (truncation) or gone.
    func forget(_ segment: LogSegment) {
        _ = lock.withLock { s.open.removeValue(forKey: ObjectIdentifier(segment)) }
    }
}

extension LogManager {
    /// `sluice.segments.open.max`'s default.
    public static let defaultOpenSegmentsLimit = SegmentFileCache.defaultLimit

    /// `sluice.segments.open.max`: sealed segments of this manager's logs whose files stay open.
    public var openSegmentsLimit: Int {
        get { fileCache.limit }
        set { fileCache.limit = newValue }
    }

    /// Sealed segments with open files now, and how many were closed to respect the limit.
    public var openSegmentCounts: (open: Int, evictions: Int) { fileCache.counts }
}
