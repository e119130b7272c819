#if canImport(Glibc)
import Glibc
#endif
import Records
import Synchronization
import SystemIO

/// A seeded, deterministic model of what a disk keeps, beside the real files of one directory.
///
/// It follows every file the engine opens under `root` (through `FileObservers`), and keeps for
/// each the bytes known durable (as of its last successful sync) and the writes and truncations
/// since. `powerLoss()` replaces every file's real contents with what could be on the platter
/// after a power cut: the durable bytes, then a random prefix of the later operations, the last
/// of them torn at a random byte. It can also fail operations: a write with EIO or ENOSPC, a
/// sync with EIO, after which (as Linux does) the unsynced writes are dropped from the durable
/// path and a later successful sync does not bring them back.
///
/// Directory entries are modelled too: a file or directory created, renamed or removed under
/// `root` keeps that change through a power cut only if its directory was fsynced after it; of
/// the changes not synced, a random prefix survives (a journal replays in order) and the rest are
/// undone: created files vanish, renamed ones move back, removed ones return.
///
/// Not modelled: the contents of mmap'd index files (rebuilt by recovery past the recovery point).
final class SimulatedDisk: FileObserver, @unchecked Sendable {
    struct Faults: CustomStringConvertible {
        var writeEIO = 0.0
        var writeENOSPC = 0.0
        var syncEIO = 0.0
        var description: String { "write EIO \(writeEIO), ENOSPC \(writeENOSPC), sync EIO \(syncEIO)" }
    }

    enum Operation {
        case write(offset: Int, bytes: [UInt8])
        case truncate(Int)
    }

    /// A change to a directory's entries that is not durable until the directory is synced.
    enum EntryChange {
        case created(String)
        case renamed(from: String, to: String, replaced: File?)
        case removed(String, File?)
    }

    final class File {
        var durable: [UInt8]
        var pending: [Operation] = []
        init(durable: [UInt8]) { self.durable = durable }
    }

    struct State {
        var rng: SplitMix64
        var faults: Faults
        var files: [String: File] = [:]
        var descriptors: [Int32: String] = [:]
        var injected: [String] = []
        /// Unsynced entry changes per directory, oldest first.
        var entries: [String: [EntryChange]] = [:]

        mutating func roll(_ probability: Double) -> Bool {
            probability > 0 && Double(rng.next() % 1_000_000) / 1_000_000 < probability
        }
    }

    let root: String
    private let state: Mutex<State>

    init(root: String, seed: UInt64, faults: Faults = Faults()) {
        self.root = root
        state = Mutex(State(rng: SplitMix64(seed: seed), faults: faults))
    }

    var injected: [String] { state.withLock { $0.injected } }

    func setFaults(_ faults: Faults) { state.withLock { $0.faults = faults } }

    private func follows(_ path: String) -> Bool {
        path.hasPrefix(root + "/") && !path.hasSuffix(".index") && !path.hasSuffix(".timeindex")
    }

    private func under(_ path: String) -> Bool { path.hasPrefix(root + "/") }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    // MARK: - FileObserver

    func opened(_ descriptor: Int32, path: String) -> Bool {
        var info = stat()
        guard follows(path), fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        state.withLock { s in
            if s.files[path] == nil { s.files[path] = File(durable: Self.contents(path)) }
            s.descriptors[descriptor] = path
        }
        return true
    }

    func closed(_ descriptor: Int32) { state.withLock { _ = $0.descriptors.removeValue(forKey: descriptor) } }

    func willWrite(_ descriptor: Int32, offset: Int64, count: Int) -> Errno? {
        state.withLock { s in
            guard let path = s.descriptors[descriptor] else { return nil }
            if s.roll(s.faults.writeEIO) { s.injected.append("EIO writing \(path)@\(offset)"); return .ioError }
            if s.roll(s.faults.writeENOSPC) { s.injected.append("ENOSPC writing \(path)@\(offset)"); return .noSpace }
            return nil
        }
    }

    func wrote(_ descriptor: Int32, offset: Int64, bytes: UnsafeRawBufferPointer) {
        let copy = Array(bytes)
        state.withLock { s in
            guard let path = s.descriptors[descriptor], let f = s.files[path] else { return }
            f.pending.append(.write(offset: Int(offset), bytes: copy))
        }
    }

    func willSync(_ descriptor: Int32) -> Errno? {
        state.withLock { s in
            guard let path = s.descriptors[descriptor], let f = s.files[path] else { return nil }
            if s.roll(s.faults.syncEIO) {
                let ops = f.pending.map { op -> String in
                    switch op {
                    case .write(let offset, let bytes): "write \(bytes.count)@\(offset)"
                    case .truncate(let size): "truncate \(size)"
                    }
                }
                s.injected.append("EIO syncing \(path), \(f.pending.count) writes dropped (\(ops.joined(separator: ", ")); durable size \(f.durable.count))")
                f.pending.removeAll()  // written back never; the next sync will not report it
                return .ioError
            }
            return nil
        }
    }

    func synced(_ descriptor: Int32) {
        state.withLock { s in
            guard let path = s.descriptors[descriptor], let f = s.files[path] else { return }
            for op in f.pending { Self.apply(op, to: &f.durable) }
            f.pending.removeAll()
        }
    }

    func truncated(_ descriptor: Int32, to size: Int64) {
        state.withLock { s in
            guard let path = s.descriptors[descriptor], let f = s.files[path] else { return }
            f.pending.append(.truncate(Int(size)))
        }
    }

    /// What a reader sees once the clean pages are gone: the disk's bytes with the writes still
    /// dirty in the cache on top; writes whose writeback failed are gone.
    func droppedCleanCache(_ descriptor: Int32) {
        state.withLock { s in
            guard let path = s.descriptors[descriptor], let f = s.files[path] else { return }
            var view = f.durable
            for op in f.pending { Self.apply(op, to: &view) }
            Self.replace(path, with: view)
        }
    }

    func renamed(_ from: String, to: String) {
        state.withLock { s in
            let replaced = s.files[to]
            if let f = s.files.removeValue(forKey: from) {
                if follows(to) { s.files[to] = f }
            }
            for (d, p) in s.descriptors where p == from { s.descriptors[d] = to }
            if under(to) { s.entries[Self.parent(to), default: []].append(.renamed(from: from, to: to, replaced: replaced)) }
        }
    }

    func removed(_ path: String) {
        state.withLock { s in
            let f = s.files.removeValue(forKey: path)
            if under(path) { s.entries[Self.parent(path), default: []].append(.removed(path, f)) }
        }
    }

    func created(_ path: String) {
        guard under(path) else { return }
        state.withLock { $0.entries[Self.parent(path), default: []].append(.created(path)) }
    }

    func syncedDirectory(_ path: String) {
        state.withLock { _ = $0.entries.removeValue(forKey: path) }
    }

    // MARK: - power loss

    /// Rewrites every followed file as a power cut could leave it; returns a line per file that
    /// lost something. Afterwards what is on disk is durable (a new boot).
    @discardableResult
    func powerLoss() -> [String] {
        state.withLock { s in
            var report: [String] = []
            for (path, f) in s.files.sorted(by: { $0.key < $1.key }) {
                guard access(path, F_OK) == 0 else { continue }
                var image = f.durable
                let kept = f.pending.isEmpty ? 0 : Int(s.rng.next() % UInt64(f.pending.count + 1))
                for op in f.pending.prefix(kept) { Self.apply(op, to: &image) }
                var torn = ""
                if kept < f.pending.count, case .write(let offset, let bytes) = f.pending[kept], !bytes.isEmpty {
                    let prefix = Int(s.rng.next() % UInt64(bytes.count))
                    Self.apply(.write(offset: offset, bytes: Array(bytes.prefix(prefix))), to: &image)
                    torn = ", write \(kept) torn after \(prefix) of \(bytes.count) bytes"
                }
                if kept < f.pending.count {
                    report.append("\(path): kept \(kept) of \(f.pending.count) unsynced operations\(torn)")
                }
                Self.replace(path, with: image)
                f.durable = image
                f.pending.removeAll()
            }
            s.descriptors.removeAll()
            return report + Self.undoEntries(&s)
        }
    }

    /// Undoes the unsynced entry changes a power cut loses: of each directory's, a random
    /// prefix is kept. Deeper directories first, so an undone parent takes its children along.
    private static func undoEntries(_ s: inout State) -> [String] {
        var report: [String] = []
        for dir in s.entries.keys.sorted(by: { $0.count > $1.count }) {
            let changes = s.entries[dir]!
            let kept = Int(s.rng.next() % UInt64(changes.count + 1))
            guard kept < changes.count else { continue }
            report.append("\(dir): kept \(kept) of \(changes.count) unsynced directory entries")
            for change in changes[kept...].reversed() { undo(change, &s) }
        }
        s.entries.removeAll()
        return report
    }

    private static func undo(_ change: EntryChange, _ s: inout State) {
        switch change {
        case .created(let path):
            var info = stat()
            guard lstat(path, &info) == 0 else { return }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                removeTreeQuietly(path)
                for p in s.files.keys where p.hasPrefix(path + "/") { s.files.removeValue(forKey: p) }
            } else {
                unlink(path)
                s.files.removeValue(forKey: path)
            }
        case let .renamed(from, to, replaced):
            guard access(to, F_OK) == 0 else { return }
            rename(to, from)
            if let moved = s.files.removeValue(forKey: to) { s.files[from] = moved }
            if let replaced {
                recreate(to, with: replaced.durable)
                s.files[to] = replaced
            }
        case let .removed(path, file):
            guard let file, access(path, F_OK) != 0, access(parent(path), F_OK) == 0 else { return }
            recreate(path, with: file.durable)
            s.files[path] = file
        }
    }

    /// rm -r without telling the observers (this one holds its own lock here).
    private static func removeTreeQuietly(_ path: String) {
        for name in (try? Directory.list(path)) ?? [] {
            let child = "\(path)/\(name)"
            if Directory.exists(child) { removeTreeQuietly(child) } else { unlink(child) }
        }
        rmdir(path)
    }

    private static func recreate(_ path: String, with image: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0 { close(fd) }
        replace(path, with: image)
    }

    private static func apply(_ op: Operation, to image: inout [UInt8]) {
        switch op {
        case .truncate(let size):
            if size < image.count { image.removeSubrange(size...) } else { image += [UInt8](repeating: 0, count: size - image.count) }
        case .write(let offset, let bytes):
            if offset + bytes.count > image.count { image += [UInt8](repeating: 0, count: offset + bytes.count - image.count) }
            image.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        }
    }

    private static func contents(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += chunk.prefix(n)
        }
        return out
    }

    private static func replace(_ path: String, with image: [UInt8]) {
        let fd = open(path, O_WRONLY | O_TRUNC)
        precondition(fd >= 0, "simulated disk: cannot rewrite \(path)")
        defer { close(fd) }
        var done = 0
        while done < image.count {
            let n = image.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, image.count - done, off_t(done)) }
            precondition(n > 0, "simulated disk: short rewrite of \(path)")
            done += n
        }
    }
}
