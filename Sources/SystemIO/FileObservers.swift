import Synchronization

/// Sees the file operations of descriptors it chose to follow, and may fail them: the hook that
/// simulated disks in tests use (torn and lost writes at power loss, ENOSPC, EIO). With no
/// observer installed every operation pays one relaxed atomic load.
public protocol FileObserver: AnyObject, Sendable {
    /// A file was opened; return true to follow this descriptor.
    func opened(_ descriptor: Int32, path: String) -> Bool
    func closed(_ descriptor: Int32)
    /// Before a write: nil lets it happen; an error fails it with nothing written.
    func willWrite(_ descriptor: Int32, offset: Int64, count: Int) -> Errno?
    /// After a write succeeded, with the bytes written.
    func wrote(_ descriptor: Int32, offset: Int64, bytes: UnsafeRawBufferPointer)
    /// Before fdatasync/fsync: nil lets it happen; an error fails it.
    func willSync(_ descriptor: Int32) -> Errno?
    func synced(_ descriptor: Int32)
    func truncated(_ descriptor: Int32, to size: Int64)
    /// The page cache of the file was dropped (clean pages only: `FileHandle.dropCleanCache`).
    func droppedCleanCache(_ descriptor: Int32)
    /// Path operations are offered to every observer.
    func renamed(_ from: String, to: String)
    func removed(_ path: String)
    /// A new file or directory at `path` (its entry is durable once its directory is synced).
    func created(_ path: String)
    /// The directory at `path` was fsynced: the entries made in it so far are durable.
    func syncedDirectory(_ path: String)
}

extension FileObserver {
    public func created(_ path: String) {}
    public func syncedDirectory(_ path: String) {}
}

public enum FileObservers {
    private static let installed = Atomic<Int>(0)
    private struct State {
        var all: [ObjectIdentifier: any FileObserver] = [:]
        var byDescriptor: [Int32: any FileObserver] = [:]
    }
    private static let state = Mutex(State())

    public static func install(_ observer: any FileObserver) {
        state.withLock { $0.all[ObjectIdentifier(observer)] = observer }
        installed.add(1, ordering: .sequentiallyConsistent)
    }

    public static func uninstall(_ observer: any FileObserver) {
        let removed = state.withLock { s -> Bool in
            guard s.all.removeValue(forKey: ObjectIdentifier(observer)) != nil else { return false }
            s.byDescriptor = s.byDescriptor.filter { $0.value !== observer }
            return true
        }
        if removed { installed.subtract(1, ordering: .sequentiallyConsistent) }
    }

    @inline(__always) static var active: Bool { installed.load(ordering: .relaxed) > 0 }

    /// Whether any observer is installed: code that does file I/O outside `FileHandle` (an
    /// io_uring) takes the `FileHandle` path instead while one is, so the observer sees it.
    public static var isActive: Bool { active }

    static func observer(for descriptor: Int32) -> (any FileObserver)? {
        guard active else { return nil }
        return state.withLock { $0.byDescriptor[descriptor] }
    }

    static func opened(_ descriptor: Int32, path: String) {
        guard active else { return }
        let all = state.withLock { Array($0.all.values) }
        for o in all where o.opened(descriptor, path: path) {
            state.withLock { $0.byDescriptor[descriptor] = o }
            return
        }
    }

    static func closed(_ descriptor: Int32) {
        guard active else { return }
        let o = state.withLock { $0.byDescriptor.removeValue(forKey: descriptor) }
        o?.closed(descriptor)
    }

    static func renamed(_ from: String, to: String) {
        guard active else { return }
        for o in state.withLock({ Array($0.all.values) }) { o.renamed(from, to: to) }
    }

    static func created(_ path: String) {
        guard active else { return }
        for o in state.withLock({ Array($0.all.values) }) { o.created(path) }
    }

    static func syncedDirectory(_ path: String) {
        guard active else { return }
        for o in state.withLock({ Array($0.all.values) }) { o.syncedDirectory(path) }
    }

    static func removed(_ path: String) {
        guard active else { return }
        for o in state.withLock({ Array($0.all.values) }) { o.removed(path) }
    }
}
