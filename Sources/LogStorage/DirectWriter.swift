import Records
import SystemIO
#if canImport(Glibc)
import Glibc
#endif

/// The O_DIRECT append path of one active segment (`sluice.io.mode=direct`).
///
/// O_DIRECT moves whole 4 KiB blocks between aligned memory and 4 KiB-aligned file offsets, but
/// batches have any length. So the writer keeps the segment's last, partial block in aligned
/// memory, and each append writes that block again followed by the new batches, zero-padded to
/// the next block boundary: one `pwrite` per append, no read-modify-write. Until the segment is
/// sealed (and truncated to its size) the file may end in up to 4095 zero bytes; a zero batch
/// header is invalid, so clean loading and recovery both stop there.
///
/// A torn write cannot damage data written before: the bytes of the rewritten block below the
/// old end are rewritten with identical contents, so whichever of its sectors reach the disk the
/// prefix reads the same. Only the new batches can be torn, and their CRC-32C shows it at
/// recovery, which truncates there.
final class DirectWriter {
    let file: FileHandle
    /// `staging[0..<tailBytes]` holds the file's bytes from `tailStart` (a block boundary) to the end.
    private let staging = AlignedBuffer(capacity: 64 << 10)
    private var tailStart = 0
    private var tailBytes = 0
    private var tailLoaded = false
    /// Larger staging buffers (appends of big batches) are given back after the append.
    static let retainedCapacity = 256 << 10

    init(path: String) throws(Errno) {
        file = try FileHandle.open(path, [.writeOnly, .direct])
    }

    /// Writes `batches` at `size` (the segment's valid length), reading the partial block that
    /// precedes it through `log` (the buffered descriptor) on the first append.
    func append(_ batches: [PlacedBatch], at size: Int, reading log: borrowing FileHandle) throws(Errno) {
        let block = AlignedBuffer.alignment
        let start = size & ~(block - 1)
        if !tailLoaded || tailStart != start || tailBytes != size - start {
            tailStart = start
            tailBytes = size - start
            if tailBytes > 0 {
                let n = try log.readAll(into: UnsafeMutableRawBufferPointer(start: staging.pointer, count: tailBytes), at: Int64(start))
                guard n == tailBytes else { throw Errno.ioError }
            }
            tailLoaded = true
        }
        let incoming = batches.reduce(0) { $0 + $1.byteCount }
        let end = tailBytes + incoming
        let padded = AlignedBuffer.rounded(end)
        staging.reserve(padded, keeping: tailBytes)
        var at = tailBytes
        for batch in batches {
            batch.withParts { prefix, rest in
                (staging.pointer + at).copyMemory(from: prefix.baseAddress!, byteCount: prefix.count)
                if let base = rest.baseAddress { (staging.pointer + at + prefix.count).copyMemory(from: base, byteCount: rest.count) }
            }
            at += batch.byteCount
        }
        memset(staging.pointer + end, 0, padded - end)
        do {
            try file.writeAll(UnsafeRawBufferPointer(start: staging.pointer, count: padded), at: Int64(start))
        } catch {
            tailLoaded = false  // the staging bytes past the old tail are no longer trusted
            throw error
        }
        // The new partial block moves to the front for the next append.
        let newSize = size + incoming
        let newStart = newSize & ~(block - 1)
        let newTail = newSize - newStart
        if newTail > 0 && newStart != start {
            staging.pointer.copyMemory(from: staging.pointer + (newStart - start), byteCount: newTail)
        }
        tailStart = newStart
        tailBytes = newTail
        if staging.capacity > Self.retainedCapacity { staging.resize(Self.retainedCapacity, keeping: tailBytes) }
    }

    /// Forgets the cached tail (after truncation or recovery changed the file).
    func invalidate() { tailLoaded = false }
}
