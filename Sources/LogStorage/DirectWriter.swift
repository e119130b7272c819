import Foundation
import Records
import SystemIO
#if canImport(Glibc)
import Glibc
#endif

/// The O_DIRECT append path of one active segment (`sluice.io.mode=direct`), with write-behind.
///
/// An append copies its batches into aligned memory (`staging`) and returns. A write then sends
/// everything staged since the last one: the block holding the written end goes through the
/// page cache, whole (its old bytes as they are, then the new ones), and the blocks after it go
/// with one O_DIRECT write, zero-padded to the next block boundary. The broker's writes run on
/// the group-commit threads' io_uring (`GroupCommitter`), one write in flight per segment, so
/// appends that arrive while one is in flight go out together in the next; a write that stays
/// inside the block holding the written end (one page-cache copy, no O_DIRECT) is done at once by
/// the appending thread. `written` says how far the file holds the log; readers and the high
/// watermark stop there.
///
/// Why the partial block goes through the page cache: readers (header scans, sendfile) read
/// through the page cache, and may have cached the block holding the written end. An O_DIRECT
/// write over a cached page races with those readers (the kernel's invalidation of the page can
/// lose), and a reader could then see the old page. O_DIRECT here only writes blocks at or
/// beyond the file's size, which nobody can have cached, and the page cache keeps the partial
/// block coherent for everyone. The block is written whole so that the kernel never has to
/// read it from the disk first (a partial write of an uncached page does), which cost a disk
/// read per append.
///
/// Until the segment is sealed (and truncated to its size) the file may end in up to 4095 bytes
/// past the last batch: zeros, or the start of a batch staged while a write was in flight (its
/// padding came from the same memory). A zero batch header is invalid and a partial batch fails
/// its length or CRC-32C check, so clean loading and recovery both stop there.
///
/// A torn write cannot damage data written before: the only block holding old bytes that a write
/// touches is the partial one, written back whole from the page cache with its old bytes as they
/// were, so whichever of its sectors reach the disk the prefix reads the same. Only the new
/// batches can be torn, and their CRC-32C shows it at recovery, which truncates there.
final class DirectWriter: WriteBehindCore, WriteBehind, @unchecked Sendable {
    /// The O_DIRECT descriptor, and a buffered one of the same file for the partial block.
    let file: FileBox
    let pageCache: FileBox
    private let staging = AlignedBuffer(capacity: DirectWriter.stagingBytes)
    /// Two default-size maximal batches (max.message.bytes, 1 MiB) fit with room to spare: one
    /// in flight while the next is staged. Every active direct-mode segment holds one such buffer.
    static let stagingBytes = 4 << 20

    /// `staging[0..<filled]` holds the file's bytes from `bufferStart` (a block boundary) on.
    private var bufferStart = 0
    private var filled = 0
    /// Per append: where its bytes end and the offset after it, until they are written.
    private var marks: [(end: Int, nextOffset: Int64)] = []

    init(path: String) throws(Errno) {
        file = FileBox(try SystemIO.FileHandle.open(path, [.writeOnly, .direct]))
        pageCache = FileBox(try SystemIO.FileHandle.open(path, [.writeOnly]))
    }

    /// Copies `batches` into the staging buffer behind the segment's `size` bytes (offsets below
    /// `nextOffset`); they reach the file with a later write (`beginWrite` or `drain`). The first
    /// append reads the partial block that precedes `size` through `log`.
    /// When the buffer is full the append waits for the write in flight, or writes what is staged
    /// itself; an append larger than the buffer is written that way, a buffer at a time.
    func stage(_ batches: [PlacedBatch], at size: Int, nextOffset: Int64, reading log: borrowing SystemIO.FileHandle) throws(Errno) {
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw failure }
        if !loaded {
            precondition(!writing, "a write in flight on an unloaded writer")
            bufferStart = size & ~(AlignedBuffer.alignment - 1)
            filled = size - bufferStart
            if filled > 0 {
                let n = try log.readAll(into: UnsafeMutableRawBufferPointer(start: staging.pointer, count: filled), at: Int64(bufferStart))
                guard n == filled else { throw Errno.ioError }
            }
            writtenBytes = size
            writtenNextOffset = nextOffset
            marks.removeAll()
            loaded = true
        }
        precondition(bufferStart + filled == size, "direct writer out of step with its segment")
        do {
            for batch in batches {
                try batch.withParts { (prefix, rest) throws(Errno) in
                    try copy(prefix)
                    try copy(rest)
                }
            }
        } catch {
            // Part of the append may be written already, with offsets the log never assigned.
            failure = failure ?? error
            throw error
        }
        marks.append((bufferStart + filled, batches.last.map(\.nextOffset) ?? nextOffset))
        // A write that stays inside the block holding the written end is one page-cache copy,
        // cheaper here than handing it to a commit thread and waiting for the answer: done now
        // when no write is in flight. Anything that needs O_DIRECT waits for a write (`beginWrite`).
        if !writing && writtenBytes % AlignedBuffer.alignment != 0 && bufferStart + filled <= AlignedBuffer.rounded(writtenBytes) {
            try writeLocked()
        }
    }

    func drain() throws(Errno) {
        lock.lock()
        defer { lock.unlock() }
        while writing { lock.wait() }
        if let failure { throw failure }
        try writeLocked()
    }

    func invalidate() {
        lock.lock()
        defer { lock.unlock() }
        precondition(!writing, "invalidating a direct writer with a write in flight")
        loaded = false
        marks.removeAll()
    }

    // MARK: - under the lock

    private func copy(_ part: UnsafeRawBufferPointer) throws(Errno) {
        guard var source = part.baseAddress else { return }
        var left = part.count
        while left > 0 {
            if filled == staging.capacity { try makeRoom() }
            let n = min(left, staging.capacity - filled)
            (staging.pointer + filled).copyMemory(from: source, byteCount: n)
            filled += n
            source += n
            left -= n
        }
    }

    /// The buffer is full: once no write is in flight, what is written moves out; if nothing is
    /// written yet, this thread writes what is staged.
    private func makeRoom() throws(Errno) {
        while writing { lock.wait() }
        if let failure { throw failure }
        compact()
        if filled == staging.capacity {
            try writeLocked()
            compact()
        }
    }

    /// A write's parts: the whole block holding the written end through the page cache (none when
    /// the written end is on a block boundary), then the whole blocks after it with O_DIRECT (none
    /// when the new end is in the same block).
    override func prepareLocked() -> StagedWrite? {
        guard loaded, !writing, failure == nil, bufferStart + filled > writtenBytes else { return nil }
        let block = AlignedBuffer.alignment
        let end = bufferStart + filled
        // Zero padding to the block boundary after the new end, for whichever part ends there.
        let padded = AlignedBuffer.rounded(filled)
        memset(staging.pointer + filled, 0, padded - filled)
        // The partial block goes to the page cache whole (its old bytes as they are, the new ones,
        // zeros after): a write of part of a page that is not cached would read it from the disk.
        let partialStart = writtenBytes & ~(block - 1)
        let buffered = partialStart == writtenBytes
            ? UnsafeRawBufferPointer(start: staging.pointer, count: 0)
            : UnsafeRawBufferPointer(start: staging.pointer + (partialStart - bufferStart), count: block)
        let directStart = AlignedBuffer.rounded(writtenBytes)
        var direct = UnsafeRawBufferPointer(start: staging.pointer, count: 0)
        if end > directStart {
            direct = UnsafeRawBufferPointer(start: staging.pointer + (directStart - bufferStart), count: padded - (directStart - bufferStart))
        }
        let write = StagedWrite(vectors: 2, end: end)
        write.add(pageCache, at: Int64(partialStart), [buffered])
        write.add(file, at: Int64(directStart), [direct], resumable: false)
        return write
    }

    override func completeLocked(_ write: StagedWrite, _ error: Errno?) {
        if let error {
            failure = failure ?? error
            return
        }
        writtenBytes = write.end
        var done = 0
        while done < marks.count && marks[done].end <= writtenBytes {
            writtenNextOffset = marks[done].nextOffset
            done += 1
        }
        marks.removeFirst(done)
    }

    /// Writes everything staged on this thread; the lock is held and no write is in flight.
    private func writeLocked() throws(Errno) {
        guard let write = prepareLocked() else { return }
        completeLocked(write, perform(write))
        if let failure { throw failure }
    }

    /// Moves the unwritten part (from the block holding the written end) to the front of the
    /// buffer; no write is in flight.
    private func compact() {
        let keepFrom = (writtenBytes & ~(AlignedBuffer.alignment - 1)) - bufferStart
        guard keepFrom > 0 else { return }
        let keep = filled - keepFrom
        if keep > 0 { staging.pointer.copyMemory(from: staging.pointer + keepFrom, byteCount: keep) }
        bufferStart += keepFrom
        filled = keep
    }
}
