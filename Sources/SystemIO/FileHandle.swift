#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Dispatch

/// The single owner of an open file descriptor. It closes the descriptor when it goes away;
/// `close()` does the same but reports the error, which matters after writes.
public struct FileHandle: ~Copyable {
    public let descriptor: Int32

    /// Takes ownership of an open descriptor.
    public init(adopting descriptor: Int32) {
        precondition(descriptor >= 0, "adopting a negative descriptor")
        self.descriptor = descriptor
    }

    public static func open(
        _ path: String, _ options: OpenOptions, permissions: mode_t = 0o644
    ) throws(Errno) -> FileHandle {
        let flags = options.rawValue | O_CLOEXEC
        // Observers (simulated disks) learn of new directory entries, which a power cut takes
        // back unless the directory was synced.
        let creates = FileObservers.isActive && options.contains(.create) && access(path, F_OK) != 0
        let fd = try retryingInterruptsUnowned { Glibc.open(path, flags, permissions) }.get()
        if creates { FileObservers.created(path) }
        FileObservers.opened(fd, path: path)
        return FileHandle(adopting: fd)
    }

    deinit {
        FileObservers.closed(descriptor)
        _ = Glibc.close(descriptor)
    }

    /// Closes and reports failure (an EIO here can mean data written earlier was lost).
    public consuming func close() throws(Errno) {
        let fd = descriptor
        discard self
        FileObservers.closed(fd)
        // Linux releases the descriptor even when close fails, so EINTR must not be retried.
        if Glibc.close(fd) == -1 {
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// One `pwrite(2)`; it may write fewer bytes than given.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(Errno) -> Int {
        let observer = FileObservers.observer(for: descriptor)
        if let observer, let error = observer.willWrite(descriptor, offset: offset, count: bytes.count) { throw error }
        let n = try retryingInterrupts { pwrite(descriptor, bytes.baseAddress, bytes.count, off_t(offset)) }.get()
        observer?.wrote(descriptor, offset: offset, bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
        return n
    }

    /// Writes every byte, looping over short writes.
    public func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(Errno) {
        var done = 0
        while done < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[done...])
            done += try write(rest, at: offset + Int64(done))
        }
    }

    /// Writes `first` then `second` at `offset` with one `pwritev(2)` (looping over short writes):
    /// a patched header followed by bytes that stay where they are.
    public func writeAll(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer, at offset: Int64) throws(Errno) {
        var vectors = (iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress), iov_len: first.count),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress), iov_len: second.count))
        let fd = descriptor
        if let observer = FileObservers.observer(for: fd) {
            // Observed files take the plain path, so that the observer sees every byte.
            if let error = observer.willWrite(fd, offset: offset, count: first.count + second.count) { throw error }
            try writeAll(first, at: offset)
            try writeAll(second, at: offset + Int64(first.count))
            return
        }
        let written = try withUnsafeMutableBytes(of: &vectors) { raw in
            retryingInterrupts { pwritev(fd, raw.baseAddress!.assumingMemoryBound(to: iovec.self), 2, off_t(offset)) }
        }.get()
        if written >= first.count + second.count { return }
        if written < first.count {
            try writeAll(UnsafeRawBufferPointer(rebasing: first[written...]), at: offset + Int64(written))
            try writeAll(second, at: offset + Int64(first.count))
        } else {
            try writeAll(UnsafeRawBufferPointer(rebasing: second[(written - first.count)...]), at: offset + Int64(written))
        }
    }

    /// Writes every byte the vectors point at, in order from `offset`, with `pwritev(2)` (at most
    /// IOV_MAX vectors per call, looping over short writes).
    public func writeAll(_ vectors: UnsafeBufferPointer<iovec>, at offset: Int64) throws(Errno) {
        let fd = descriptor
        if FileObservers.observer(for: fd) != nil {
            // Observed files take the plain path, so that the observer sees every byte.
            var at = offset
            for v in vectors where v.iov_len > 0 {
                try writeAll(UnsafeRawBufferPointer(start: v.iov_base, count: v.iov_len), at: at)
                at += Int64(v.iov_len)
            }
            return
        }
        var next = 0       // first vector not yet written whole
        var skip = 0       // bytes of it already written
        var at = offset
        while next < vectors.count {
            if skip > 0 {  // finish a vector a short write stopped inside
                let v = vectors[next]
                try writeAll(UnsafeRawBufferPointer(start: v.iov_base! + skip, count: v.iov_len - skip), at: at)
                at += Int64(v.iov_len - skip)
                next += 1
                skip = 0
                continue
            }
            let count = min(vectors.count - next, 1024)
            var n = try retryingInterrupts { pwritev(fd, vectors.baseAddress! + next, Int32(count), off_t(at)) }.get()
            if n == 0 && vectors[next..<(next + count)].contains(where: { $0.iov_len > 0 }) { throw Errno.ioError }
            at += Int64(n)
            while next < vectors.count {
                let len = vectors[next].iov_len
                if n >= len { n -= len; next += 1 } else { skip = n; break }
            }
        }
    }

    /// Writes every byte of an array (small metadata files; the data path uses buffers).
    public func writeAll(_ bytes: [UInt8], at offset: Int64) throws(Errno) {
        if FileObservers.observer(for: descriptor) != nil {
            let outcome: Result<Void, Errno> = bytes.withUnsafeBytes { raw in
                do throws(Errno) { try writeAll(raw, at: offset); return .success(()) } catch { return .failure(error) }
            }
            return try outcome.get()
        }
        let fd = descriptor
        let result: Result<Void, Errno> = bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                switch retryingInterrupts({ pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done)) }) {
                case .success(let n): done += n
                case .failure(let e): return .failure(e)
                }
            }
            return .success(())
        }
        try result.get()
    }

    /// Reads up to `count` bytes from `offset` into a new array (shorter at end of file).
    public func read(count: Int, at offset: Int64) throws(Errno) -> [UInt8] {
        let fd = descriptor
        var bytes = [UInt8](repeating: 0, count: count)
        let result: Result<Int, Errno> = bytes.withUnsafeMutableBytes { raw in
            var done = 0
            while done < raw.count {
                switch retryingInterrupts({ pread(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done)) }) {
                case .success(0): return .success(done)
                case .success(let n): done += n
                case .failure(let e): return .failure(e)
                }
            }
            return .success(done)
        }
        let n = try result.get()
        if n < count { bytes.removeSubrange(n...) }
        return bytes
    }

    /// One `pread(2)`; returns 0 at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(Errno) -> Int {
        try retryingInterrupts { pread(descriptor, buffer.baseAddress, buffer.count, off_t(offset)) }.get()
    }

    /// Reads until the buffer is full or the file ends; returns the bytes read.
    public func readAll(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]),
                             at: offset + Int64(done))
            if n == 0 { break }
            done += n
        }
        return done
    }

    public func dataSync() throws(Errno) {
        let observer = FileObservers.observer(for: descriptor)
        if let observer, let error = observer.willSync(descriptor) { throw error }
        _ = try retryingInterrupts { fdatasync(descriptor) }.get()
        observer?.synced(descriptor)
    }

    public func sync() throws(Errno) {
        let observer = FileObservers.observer(for: descriptor)
        if let observer, let error = observer.willSync(descriptor) { throw error }
        _ = try retryingInterrupts { fsync(descriptor) }.get()
        observer?.synced(descriptor)
    }

    /// Reserves blocks (`fallocate(2)`); `keepSize` leaves the visible file size unchanged.
    public func allocate(offset: Int64, length: Int64, keepSize: Bool = false) throws(Errno) {
        let mode = keepSize ? sluice_falloc_keep_size() : 0
        while true {
            let rc = sluice_fallocate(descriptor, mode, offset, length)
            if rc == 0 { return }
            if rc == -EINTR { continue }
            throw Errno(rawValue: -rc)
        }
    }

    /// Writes `count` zero bytes at `offset` (through the page cache, so that a full disk fails
    /// the write rather than a later store or writeback), a megabyte at a time from one shared
    /// buffer of zeros.
    public func writeZeros(_ count: Int, at offset: Int64) throws(Errno) {
        var done = 0
        while done < count {
            let n = min(count - done, Self.zeros.count)
            try writeAll(UnsafeRawBufferPointer(rebasing: Self.zeros[0..<n]), at: offset + Int64(done))
            done += n
        }
    }

    nonisolated(unsafe) private static let zeros: UnsafeRawBufferPointer = {  // never written after this
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        b.initializeMemory(as: UInt8.self, repeating: 0)
        return UnsafeRawBufferPointer(b)
    }()

    /// Starts writeback of a range's dirty pages (`sync_file_range(2)`, `SYNC_FILE_RANGE_WRITE`,
    /// which reports no earlier writeback error) and fdatasyncs the file at `path` on `queue`.
    /// For work ahead of need (zeros past a log's end): nobody waits for it and its outcome is
    /// ignored, so it syncs through a descriptor of its own, opened afresh. A `dup` would share
    /// this handle's open file description, and with it the cursor by which Linux reports a
    /// writeback error once per description: an EIO this sync swallowed would then never reach
    /// the fdatasync an acknowledgement waits for. Does nothing under a simulated disk, whose
    /// model sees only the syncs it is asked for.
    public func syncInBackground(path: String, offset: Int64, length: Int64, on queue: DispatchQueue) {
        guard FileObservers.observer(for: descriptor) == nil else { return }
        _ = sluice_sync_file_range_write(descriptor, offset, length)
        queue.async {
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return }
            _ = fdatasync(fd)
            Glibc.close(fd)
        }
    }

    /// Drop-behind for an append-only file: starts writeback of `[writeFrom, writeTo)`
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait for the writes, only for
    /// room in the device's queue when writeback is behind) and drops the clean pages
    /// of `[dropFrom, dropTo)` from the page cache (`POSIX_FADV_DONTNEED`, which leaves dirty
    /// pages and pages under writeback where they are). Neither reports an error: a writeback
    /// error stays recorded for the next fdatasync, and a page that was not clean yet is simply
    /// kept. Does nothing under a simulated disk, whose model sees only the syncs it is asked for.
    public func dropBehind(writeFrom: Int64, writeTo: Int64, dropFrom: Int64, dropTo: Int64) {
        guard FileObservers.observer(for: descriptor) == nil else { return }
        if writeTo > writeFrom { _ = sluice_sync_file_range_write(descriptor, writeFrom, writeTo - writeFrom) }
        dropClean(from: dropFrom, count: dropTo - dropFrom)
    }

    /// Starts reading `[from, from + count)` into the page cache (`POSIX_FADV_WILLNEED`): the
    /// reads are queued and not waited for, so a later read of the range finds it there or in
    /// flight. Advice only: failures are ignored. Does nothing under a simulated disk.
    public func willNeed(from: Int64, count: Int64) {
        guard count > 0, FileObservers.observer(for: descriptor) == nil else { return }
        _ = posix_fadvise(descriptor, off_t(from), off_t(count), POSIX_FADV_WILLNEED)
    }

    /// Whether the page holding byte `offset` is in the page cache now, without reading it in
    /// (a one-byte `preadv2` with `RWF_NOWAIT`). nil when the file system cannot tell, and under
    /// a simulated disk.
    public func isCached(at offset: Int64) -> Bool? {
        guard FileObservers.observer(for: descriptor) == nil else { return nil }
        let r = sluice_page_cached(descriptor, offset)
        return r < 0 ? nil : r == 1
    }

    /// Drops the clean pages of `[from, from + count)` from the page cache
    /// (`POSIX_FADV_DONTNEED`; dirty pages, pages under writeback and pages still referenced,
    /// e.g. by a socket buffer sendfile filled, stay). Advice only. Does nothing under a
    /// simulated disk.
    public func dropClean(from: Int64, count: Int64) {
        guard count > 0, FileObservers.observer(for: descriptor) == nil else { return }
        _ = posix_fadvise(descriptor, off_t(from), off_t(count), POSIX_FADV_DONTNEED)
    }

    /// Drops the file's clean pages from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`),
    /// so that the next reads come from the disk. Dirty pages stay (and are scheduled for
    /// writeback). Advice only: failures are ignored.
    public func dropCleanCache() {
        _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
        FileObservers.observer(for: descriptor)?.droppedCleanCache(descriptor)
    }

    public func truncate(to size: Int64) throws(Errno) {
        _ = try retryingInterrupts { ftruncate(descriptor, off_t(size)) }.get()
        FileObservers.observer(for: descriptor)?.truncated(descriptor, to: size)
    }

    /// The file's size in bytes.
    public func size() throws(Errno) -> Int64 {
        var info = stat()
        _ = try retryingInterrupts { fstat(descriptor, &info) }.get()
        return Int64(info.st_size)
    }

    /// `sendfile(2)` from this file to a socket or file; returns bytes sent (may be short).
    public func send(to destination: Int32, from offset: Int64, count: Int) throws(Errno) -> Int {
        var position = off_t(offset)
        return try retryingInterruptsUnowned { sendfile(destination, descriptor, &position, count) }.get()
    }
}

/// Directory helpers that storage needs around files.
public enum FileSystem {
    /// fsyncs a directory so that a create, rename or unlink inside it is durable.
    public static func syncDirectory(_ path: String) throws(Errno) {
        let dir = try FileHandle.open(path, [.readOnly, .directory])
        try dir.sync()
        try dir.close()
        FileObservers.syncedDirectory(path)
    }

    public static func rename(_ from: String, to: String) throws(Errno) {
        _ = try retryingInterruptsUnowned { Glibc.rename(from, to) }.get()
        FileObservers.renamed(from, to: to)
    }

    public static func remove(_ path: String) throws(Errno) {
        _ = try retryingInterruptsUnowned { unlink(path) }.get()
        FileObservers.removed(path)
    }

    public static func makeDirectory(_ path: String, permissions: mode_t = 0o755) throws(Errno) {
        _ = try retryingInterruptsUnowned { mkdir(path, permissions) }.get()
        FileObservers.created(path)
    }
}
