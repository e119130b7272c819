import SystemIO

/// An aborted transaction as Kafka's `.txnindex` records it: the producer, the first offset of
/// its data in this partition, the offset of its ABORT marker, and the last stable offset once
/// the marker was written.
public struct AbortedTransaction: Sendable, Equatable {
    public var producerId: Int64
    public var firstOffset: Int64
    public var lastOffset: Int64
    public var lastStableOffset: Int64

    public init(producerId: Int64, firstOffset: Int64, lastOffset: Int64, lastStableOffset: Int64) {
        self.producerId = producerId
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
        self.lastStableOffset = lastStableOffset
    }
}

/// `<baseOffset>.txnindex`: 34-byte big-endian entries (int16 version 0, producer id, first
/// offset, last offset, last stable offset), one per ABORT marker in the segment, in marker
/// order. Created on the first abort; small, so read whole and cached. Not thread-safe (its
/// segment's log serialises access).
final class TransactionIndex {
    static let entryBytes = 34
    static let version: Int16 = 0
    let path: String
    private var cached: [AbortedTransaction]?

    init(path: String) { self.path = path }

    func entries() throws(StorageError) -> [AbortedTransaction] {
        if let cached { return cached }
        guard Directory.fileExists(path) else { cached = []; return [] }
        let bytes: [UInt8]
        do {
            let f = try FileHandle.open(path, [.readOnly])
            bytes = try f.read(count: Int(try f.size()), at: 0)
        } catch { throw error.at(path) }
        var found: [AbortedTransaction] = []
        var at = 0
        func get(_ n: Int) -> Int64 {
            defer { at += n }
            return bytes[at..<(at + n)].reduce(Int64(0)) { $0 << 8 | Int64($1) }
        }
        // A torn last entry (a crash mid-write) is ignored; replaying the log re-adds it.
        while at + Self.entryBytes <= bytes.count {
            let version = Int16(truncatingIfNeeded: get(2))
            guard version == Self.version else { break }
            found.append(AbortedTransaction(producerId: get(8), firstOffset: get(8), lastOffset: get(8), lastStableOffset: get(8)))
        }
        cached = found
        return found
    }

    /// Entries known in memory but not yet written (the write failed, e.g. on a full disk).
    private(set) var unwritten = 0

    /// Adds an entry (at once in memory, so fetches see it) and makes it durable (aborts are
    /// rare; the entry must not be lost once a producer snapshot says its marker needs no
    /// replay). If the write fails the entry stays in memory and `persist` retries it.
    func append(_ entry: AbortedTransaction) throws(StorageError) {
        var all = try entries()
        all.append(entry)
        cached = all
        unwritten += 1
        try persist()
    }

    func persist() throws(StorageError) {
        guard unwritten > 0, let all = cached else { return }
        try write(all, appendingFrom: all.count - unwritten)
        unwritten = 0
    }

    /// Drops entries whose marker is at or after `offset`.
    func truncate(toOffsetBelow offset: Int64) throws(StorageError) {
        let all = try entries()
        let kept = all.filter { $0.lastOffset < offset }
        guard kept.count != all.count else { return }
        cached = kept
        unwritten = 0
        if kept.isEmpty {
            try? FileSystem.remove(path)
        } else {
            unwritten = kept.count
            try write(kept, appendingFrom: 0, truncate: true)
            unwritten = 0
        }
    }

    private func write(_ all: [AbortedTransaction], appendingFrom first: Int, truncate: Bool = false) throws(StorageError) {
        var bytes: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
        for e in all[first...] {
            put(Self.version); put(e.producerId); put(e.firstOffset); put(e.lastOffset); put(e.lastStableOffset)
        }
        do {
            let f = try FileHandle.open(path, truncate ? [.writeOnly, .create, .truncate] : [.writeOnly, .create])
            try f.writeAll(bytes, at: Int64(first * Self.entryBytes))
            if !truncate { try f.truncate(to: Int64(all.count * Self.entryBytes)) }
            try f.dataSync()
            try f.close()
        } catch { throw error.at(path) }
    }
}
