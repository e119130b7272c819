import Foundation
import Records
import SystemIO
#if canImport(Glibc)
import Glibc
#endif

/// An active segment's write-behind: an append stages its batches and returns; a later write puts
/// them in the file, either on a group-commit thread's io_uring (`beginWrite` ... `finishWrite`,
/// with the writes of every other waiting partition in the same submission) or on the calling
/// thread (`drain`). One write is in flight per segment at a time. `written` says how far the file
/// holds the log; readers and the high watermark stop there.
///
/// Two kinds: `DirectWriter` (`sluice.io.mode=direct`: staged bytes are copied into aligned
/// memory and written with O_DIRECT) and `BufferedWriteBehind` (`sluice.io.buffered.submit=ring`:
/// the received bytes stay where they are, and one vectored page-cache write per round carries
/// every batch staged since the last).
protocol WriteBehind: AnyObject, Sendable {
    /// The file holds the log up to `bytes` (offsets below `nextOffset`); nil while nothing was
    /// staged since the writer was (re)loaded, when the segment's own size and offset are exact.
    var written: (bytes: Int, nextOffset: Int64)? { get }
    /// Stages `batches` behind the segment's `size` bytes (offsets below `nextOffset`); `log` is
    /// the segment's buffered descriptor, for a writer that must read what precedes `size`.
    func stage(_ batches: [PlacedBatch], at size: Int, nextOffset: Int64, reading log: borrowing SystemIO.FileHandle) throws(Errno)
    /// Takes everything staged for one write, or nil when nothing is staged or a write is already
    /// in flight. The caller performs it (on a ring, or with `perform`) and reports with `finishWrite`.
    func beginWrite() -> StagedWrite?
    /// Records how a write from `beginWrite` ended: nil when every part was written whole.
    func finishWrite(_ write: StagedWrite, error: Errno?)
    /// Returns once everything staged is in the file (waiting for a write in flight, then writing
    /// the rest on the calling thread); throws the error of a failed write.
    func drain() throws(Errno)
    /// Forgets the staged state (after truncation or recovery changed the file); call with no
    /// write in flight (after `drain`).
    func invalidate()
}

extension WriteBehind {
    /// Performs a write from `beginWrite` with plain syscalls through `FileHandle` on the calling
    /// thread (so a simulated disk sees it); nil when every part was written whole.
    func perform(_ write: StagedWrite) -> Errno? {
        do throws(Errno) {
            for part in write.parts { try part.file.handle.writeAll(part.vectors, at: part.offset) }
            return nil
        } catch { return error }
    }
}

/// What both write-behinds share: one lock, at most one write in flight, how far the file holds
/// the log, and the failure that stops it. Subclasses say what a write takes (`prepareLocked`)
/// and what its completion records (`completeLocked`), both called with the lock held.
class WriteBehindCore: @unchecked Sendable {
    /// Guards the state here and the subclass's; appenders wait on it for room, `drain` for a
    /// write in flight.
    let lock = NSCondition()
    /// False until the first append (and after `invalidate`): the segment's size is the truth.
    var loaded = false
    /// A write of staged bytes is in flight (its memory must not move).
    var writing = false
    var writtenBytes = 0
    var writtenNextOffset: Int64 = 0
    /// A failed write: the staged bytes cannot be trusted to reach the file, so nothing more is.
    var failure: Errno?

    var written: (bytes: Int, nextOffset: Int64)? {
        lock.lock()
        defer { lock.unlock() }
        return loaded ? (writtenBytes, writtenNextOffset) : nil
    }

    func beginWrite() -> StagedWrite? {
        lock.lock()
        defer { lock.unlock() }
        guard let write = prepareLocked() else { return nil }
        writing = true
        return write
    }

    func finishWrite(_ write: StagedWrite, error: Errno?) {
        lock.lock()
        defer { lock.unlock() }
        writing = false
        completeLocked(write, error)
        lock.broadcast()
    }

    /// Everything staged for one write, or nil (nothing staged, a write in flight, a failure).
    func prepareLocked() -> StagedWrite? { preconditionFailure("a WriteBehindCore subclass must say what a write takes") }
    /// Records a finished write: the written end moves, or `failure` is set.
    func completeLocked(_ write: StagedWrite, _ error: Errno?) { preconditionFailure("a WriteBehindCore subclass must record writes") }
}

/// One write of staged bytes: a few parts, each one vectored write at an offset of one file. Once
/// every part is written whole, the file holds the log up to `end`. Owns its iovec array (and any
/// small headers the vectors point at); the bytes the vectors point at belong to the writer that
/// made it, which keeps them until `finishWrite`.
final class StagedWrite: @unchecked Sendable {
    struct Part {
        let file: FileBox
        let vectors: UnsafeBufferPointer<iovec>
        let offset: Int64
        let bytes: Int
        /// Whether a short write may be finished from where it stopped (page-cache writes; an
        /// O_DIRECT one could stop off a block boundary).
        let resumable: Bool

        /// Writes what a short write of `done` bytes left, on the calling thread.
        func finish(after done: Int) throws(Errno) {
            guard resumable, done < bytes else { throw Errno.ioError }
            var skip = done
            var rest: [iovec] = []
            for v in vectors {
                if skip >= v.iov_len { skip -= v.iov_len; continue }
                rest.append(iovec(iov_base: v.iov_base.map { $0 + skip }, iov_len: v.iov_len - skip))
                skip = 0
            }
            let outcome: Result<Void, Errno> = rest.withUnsafeBufferPointer { tail in
                do throws(Errno) { try file.handle.writeAll(tail, at: offset + Int64(done)); return .success(()) } catch { return .failure(error) }
            }
            try outcome.get()
        }
    }

    private(set) var parts: [Part] = []
    let end: Int
    private let vectorStorage: UnsafeMutableBufferPointer<iovec>
    private var vectorsUsed = 0
    /// Per write: a few fixed-size headers (buffered write-behind's batch prefixes).
    let headers: UnsafeMutableRawBufferPointer

    init(vectors: Int, headerBytes: Int = 0, end: Int) {
        vectorStorage = .allocate(capacity: max(1, vectors))
        headers = .allocate(byteCount: max(1, headerBytes), alignment: 8)
        self.end = end
    }

    deinit {
        vectorStorage.deallocate()
        headers.deallocate()
    }

    /// Adds a part whose vectors point at `buffers`, written at `offset` of `file`. Empty
    /// buffers are skipped, and a part with no bytes is not added. `resumable`: see `Part`.
    func add(_ file: FileBox, at offset: Int64, _ buffers: [UnsafeRawBufferPointer], resumable: Bool = true) {
        let start = vectorsUsed
        var bytes = 0
        for b in buffers where b.count > 0 {
            precondition(vectorsUsed < vectorStorage.count, "more vectors than the write was made for")
            vectorStorage[vectorsUsed] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count)
            vectorsUsed += 1
            bytes += b.count
        }
        guard bytes > 0 else { return }
        parts.append(Part(file: file, vectors: UnsafeBufferPointer(rebasing: vectorStorage[start..<vectorsUsed]),
                          offset: offset, bytes: bytes, resumable: resumable))
    }
}

extension StagedWrite.Part {
    var descriptor: Int32 { file.handle.descriptor }
}

/// A `FileHandle` (a `~Copyable` owner) in a class, so that a write's parts can point at it.
final class FileBox: @unchecked Sendable {
    let handle: SystemIO.FileHandle
    init(_ handle: consuming SystemIO.FileHandle) { self.handle = handle }
}

/// `sluice.io.buffered.submit=ring`: buffered appends written behind on the group-commit threads.
///
/// An append only records its batches (views into the received request, kept alive here until
/// written: no copy) and their file positions. A write takes every batch staged since the last
/// and sends them with one `pwritev` at the written end: per batch its 16-byte prefix (base
/// offset, length, leader epoch) and the received bytes after it. On a commit thread the writes
/// of every waiting partition, and then their fdatasyncs, share one `io_uring_enter`, so the
/// event loop that received a produce makes no write syscall for it.
///
/// The file only ever grows from its written end, through the page cache: readers see exactly
/// what was written, and a crash loses at most staged batches, which nobody was told about.
final class BufferedWriteBehind: WriteBehindCore, WriteBehind, @unchecked Sendable {
    let file: FileBox
    /// At most this many batches per write (two vectors each, within the kernel's IOV_MAX of
    /// 1024); the rest go in the next.
    static let batchesPerWrite = 512

    /// Staged, not yet written, in file order; the first `inFlight` are in the write in flight.
    private var staged: [(batch: PlacedBatch, position: Int)] = []
    private var stagedBytes = 0
    private var inFlight = 0
    /// Staged bytes (request buffers kept alive) beyond which an append writes what is staged
    /// itself: producers with acks=0 do not wait for their writes, so nothing else bounds them.
    static let stagedBytesMax = 32 << 20

    init(path: String) throws(Errno) {
        file = FileBox(try SystemIO.FileHandle.open(path, [.writeOnly]))
    }

    func stage(_ batches: [PlacedBatch], at size: Int, nextOffset: Int64, reading log: borrowing SystemIO.FileHandle) throws(Errno) {
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw failure }
        if !loaded {
            precondition(!writing && staged.isEmpty, "a write-behind reloaded with batches staged")
            writtenBytes = size
            writtenNextOffset = nextOffset
            loaded = true
        }
        var position = size
        for batch in batches {
            staged.append((batch, position))
            position += batch.byteCount
            stagedBytes += batch.byteCount
        }
        if stagedBytes > Self.stagedBytesMax {
            while writing { lock.wait() }
            while let write = prepareLocked() {
                completeLocked(write, perform(write))
                if let failure { throw failure }
            }
        }
    }

    func drain() throws(Errno) {
        lock.lock()
        defer { lock.unlock() }
        while writing { lock.wait() }
        while let write = prepareLocked() {
            completeLocked(write, perform(write))
            if let failure { throw failure }
        }
        if let failure { throw failure }
    }

    func invalidate() {
        lock.lock()
        defer { lock.unlock() }
        precondition(!writing, "invalidating a write-behind with a write in flight")
        loaded = false
        staged.removeAll()
        stagedBytes = 0
        inFlight = 0
    }

    // MARK: - under the lock

    override func prepareLocked() -> StagedWrite? {
        guard loaded, !writing, failure == nil, !staged.isEmpty else { return nil }
        let count = min(staged.count, Self.batchesPerWrite)
        let last = staged[count - 1]
        let write = StagedWrite(vectors: 2 * count, headerBytes: PlacedBatch.prefixBytes * count, end: last.position + last.batch.byteCount)
        var buffers: [UnsafeRawBufferPointer] = []
        buffers.reserveCapacity(2 * count)
        for (i, entry) in staged[0..<count].enumerated() {
            let header = UnsafeMutableRawBufferPointer(rebasing: write.headers[(i * PlacedBatch.prefixBytes)..<((i + 1) * PlacedBatch.prefixBytes)])
            entry.batch.withParts { (prefix, rest) in
                header.copyMemory(from: prefix)
                buffers.append(UnsafeRawBufferPointer(header))
                // The received bytes stay in their buffer, which `staged` keeps alive (and no one
                // mutates) until the write is finished.
                buffers.append(rest)
            }
        }
        write.add(file, at: Int64(staged[0].position), buffers)
        inFlight = count
        return write
    }

    override func completeLocked(_ write: StagedWrite, _ error: Errno?) {
        defer { inFlight = 0 }
        if let error {
            failure = failure ?? error
            return
        }
        writtenBytes = write.end
        writtenNextOffset = staged[inFlight - 1].batch.nextOffset
        stagedBytes -= staged[0..<inFlight].reduce(0) { $0 + $1.batch.byteCount }
        staged.removeFirst(inFlight)
    }
}
