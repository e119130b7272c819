#if canImport(Glibc)
import Glibc
#endif
import SystemIO

/// A memory-mapped file of fixed-size entries: preallocated to `segment.index.bytes` while its
/// segment is active, trimmed to the entries it holds when the segment rolls or closes. On open,
/// a trimmed file's size says how many entries it holds.
final class IndexFile {
    let path: String
    let entryBytes: Int
    private let file: FileHandle
    private var region: MappedRegion?
    /// The mapped entries (empty when nothing is mapped).
    private(set) var bytes = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    var entryCount: Int
    private(set) var capacity: Int
    /// Bytes of the file backed by allocated blocks. The preallocated file is sparse (as Kafka's
    /// is); pages are reserved before their first store, because touching an unbacked page of a
    /// mapping on a full file system raises SIGBUS. A full disk costs an index entry (lookups
    /// scan a little further), never the process.
    ///
    /// They are reserved by writing zeros (through the page cache, where a full disk fails the
    /// write), not with fallocate: the first store into a page the mapping has to fault in from
    /// the file cost 2-4 ms on this project's test machine (Benchmarks/scripts/index-touch-probe.c),
    /// on the appending event loop, at the first index entry of every segment; a store into a page
    /// already in the page cache costs microseconds.
    private var reservedBytes: Int
    static let reserveStep = 64 << 10

    init(path: String, entryBytes: Int, mappedBytes: Int) throws(StorageError) {
        self.path = path
        self.entryBytes = entryBytes
        do {
            file = try FileHandle.open(path, [.readWrite, .create])
            let existing = Int(try file.size())
            entryCount = existing / entryBytes
            reservedBytes = entryCount * entryBytes
            capacity = max(entryCount, mappedBytes / entryBytes)
            try map()
        } catch { throw error.at(path) }
    }

    private func map() throws(Errno) {
        bytes = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        if let r = region.take() { try r.unmap() }
        try file.truncate(to: Int64(capacity * entryBytes))
        if capacity > 0 {
            let mapped = try MappedRegion(mapping: file, length: capacity * entryBytes, access: .readWrite)
            bytes = mapped.bytes
            region = consume mapped
        }
    }

    var isFull: Bool { entryCount >= capacity }

    /// Makes sure the next entry's bytes are backed by disk blocks (and in the page cache); false
    /// if the disk is full. Only bytes past every entry are written, so readers see no change.
    func reserveNext() -> Bool {
        let end = (entryCount + 1) * entryBytes
        guard end > reservedBytes else { return true }
        let length = min(Self.reserveStep, capacity * entryBytes - reservedBytes)
        guard length > 0 else { return false }
        do {
            try file.writeZeros(length, at: Int64(reservedBytes))
            reservedBytes += length
            return true
        } catch {
            return false
        }
    }
    var sizeBytes: Int { entryCount * entryBytes }

    func flush() throws(StorageError) {
        guard bytes.count > 0 else { return }
        if msync(bytes.baseAddress, bytes.count, MS_SYNC) != 0 { throw Errno.current.at(path) }
    }

    /// Drops every entry and their bytes (Kafka's index reset, before recovery rebuilds it): the
    /// file is cut to nothing and grown again, so no stale entry past the new ones survives for
    /// a reader of the file.
    func reset() throws(StorageError) {
        entryCount = 0
        reservedBytes = 0
        do {
            bytes = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            if let r = region.take() { try r.unmap() }
            try file.truncate(to: 0)
            try map()
        } catch { throw error.at(path) }
    }

    func trim() throws(StorageError) {
        capacity = entryCount
        do { try map() } catch { throw error.at(path) }
    }

    /// Binary search for the last entry for which `isBefore` holds (entries are sorted by it).
    func lastIndex(where isBefore: (Int) -> Bool) -> Int? {
        var low = 0, high = entryCount - 1, found: Int? = nil
        while low <= high {
            let mid = (low + high) / 2
            if isBefore(mid) { found = mid; low = mid + 1 } else { high = mid - 1 }
        }
        return found
    }
}

/// A segment's sparse offset index (`.index`): 8-byte entries, big-endian
/// (offset − baseOffset as u32, byte position in the `.log` as u32).
final class OffsetIndex {
    static let entryBytes = 8
    let baseOffset: Int64
    let storage: IndexFile

    init(path: String, baseOffset: Int64, mappedBytes: Int) throws(StorageError) {
        self.baseOffset = baseOffset
        storage = try IndexFile(path: path, entryBytes: Self.entryBytes, mappedBytes: mappedBytes)
    }

    var entryCount: Int { storage.entryCount }
    var isFull: Bool { storage.isFull }

    func entry(_ i: Int) -> (offset: Int64, position: Int) {
        let rel = UInt32(bigEndian: storage.bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt32.self))
        let pos = UInt32(bigEndian: storage.bytes.loadUnaligned(fromByteOffset: i * 8 + 4, as: UInt32.self))
        return (baseOffset + Int64(rel), Int(pos))
    }

    var lastEntry: (offset: Int64, position: Int)? { entryCount > 0 ? entry(entryCount - 1) : nil }

    /// Adds an entry (offsets increase). Returns false when full.
    @discardableResult
    func append(offset: Int64, position: Int) -> Bool {
        guard !isFull else { return false }
        if let last = lastEntry, offset <= last.offset { return true }
        precondition(offset - baseOffset <= Int64(UInt32.max) && position <= Int(UInt32.max))
        guard storage.reserveNext() else { return true }  // disk full: skip this entry
        storage.bytes.storeBytes(of: UInt32(offset - baseOffset).bigEndian, toByteOffset: entryCount * 8, as: UInt32.self)
        storage.bytes.storeBytes(of: UInt32(position).bigEndian, toByteOffset: entryCount * 8 + 4, as: UInt32.self)
        storage.entryCount += 1
        return true
    }

    /// The last entry at or before `offset` (where to start scanning), or the segment start.
    func lookup(_ offset: Int64) -> (offset: Int64, position: Int) {
        storage.lastIndex { entry($0).offset <= offset }.map(entry) ?? (baseOffset, 0)
    }

    func truncate(toOffsetBelow offset: Int64) {
        while entryCount > 0 && entry(entryCount - 1).offset >= offset { storage.entryCount -= 1 }
    }
}

/// A segment's time index (`.timeindex`): 12-byte entries, big-endian (timestamp i64,
/// offset − baseOffset u32), added when a batch raises the segment's largest timestamp.
final class TimeIndex {
    static let entryBytes = 12
    let baseOffset: Int64
    let storage: IndexFile

    init(path: String, baseOffset: Int64, mappedBytes: Int) throws(StorageError) {
        self.baseOffset = baseOffset
        storage = try IndexFile(path: path, entryBytes: Self.entryBytes, mappedBytes: mappedBytes)
    }

    var entryCount: Int { storage.entryCount }
    var isFull: Bool { storage.isFull }

    func entry(_ i: Int) -> (timestamp: Int64, offset: Int64) {
        let ts = Int64(bigEndian: storage.bytes.loadUnaligned(fromByteOffset: i * 12, as: Int64.self))
        let rel = UInt32(bigEndian: storage.bytes.loadUnaligned(fromByteOffset: i * 12 + 8, as: UInt32.self))
        return (ts, baseOffset + Int64(rel))
    }

    var lastEntry: (timestamp: Int64, offset: Int64)? { entryCount > 0 ? entry(entryCount - 1) : nil }

    @discardableResult
    func append(timestamp: Int64, offset: Int64) -> Bool {
        guard !isFull else { return false }
        if let last = lastEntry, timestamp <= last.timestamp || offset < last.offset { return true }
        guard storage.reserveNext() else { return true }  // disk full: skip this entry
        storage.bytes.storeBytes(of: timestamp.bigEndian, toByteOffset: entryCount * 12, as: Int64.self)
        storage.bytes.storeBytes(of: UInt32(offset - baseOffset).bigEndian, toByteOffset: entryCount * 12 + 8, as: UInt32.self)
        storage.entryCount += 1
        return true
    }

    /// The offset of the last entry with a timestamp below `timestamp` (where to start scanning
    /// for the first record at or after it), or the segment start.
    func lookup(_ timestamp: Int64) -> Int64 {
        storage.lastIndex { entry($0).timestamp < timestamp }.map { entry($0).offset } ?? baseOffset
    }

    func truncate(toOffsetBelow offset: Int64) {
        while entryCount > 0 && entry(entryCount - 1).offset >= offset { storage.entryCount -= 1 }
    }
}
