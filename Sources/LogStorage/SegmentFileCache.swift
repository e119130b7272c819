import NIOConcurrencyHelpers

/// Bounds the open files of sealed segments (`sluice.segments.open.max`). Every sealed segment
/// holds a descriptor for its `.log` and two index mappings while open; with thousands of
/// partitions that would run into the open-file limit and `vm.max_map_count` (65530 by
/// default). Active segments are always open and not counted. Sealed segments are opened on
/// access and the least recently used are closed when more than the limit are open; closing
/// only drops the segment's reference, so a reader in the middle of using the files keeps them.
final class SegmentFileCache: @unchecked Sendable {
    static let shared = SegmentFileCache()
    public static let defaultLimit = 2048

    private struct Entry {
        weak var segment: LogSegment?
        var lastUse: UInt64
    }

    private struct State {
        var limit = SegmentFileCache.defaultLimit
        var tick: UInt64 = 0
        var open: [ObjectIdentifier: Entry] = [:]
        var evictions = 0
    }

    private let lock = NIOLock()
    private var s = State()

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
    /// `sluice.segments.open.max`: sealed segments whose files stay open (process-wide).
    public static var openSegmentsLimit: Int {
        get { SegmentFileCache.shared.limit }
        set { SegmentFileCache.shared.limit = newValue }
    }

    /// Sealed segments with open files now, and how many were closed to respect the limit.
    public static var openSegmentCounts: (open: Int, evictions: Int) { SegmentFileCache.shared.counts }
}
