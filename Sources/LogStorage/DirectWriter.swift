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
/// the next block boundary: one `pwrite` per append (per 1 MiB piece of a larger one), no
/// read-modify-write. Until the segment is
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
    /// Appends larger than it are written in `stagingBytes` pieces.
    private let staging = AlignedBuffer(capacity: DirectWriter.stagingBytes)
    private var tailStart = 0
    private var tailBytes = 0
    private var tailLoaded = false
    /// A default-size maximal batch (max.message.bytes, 1 MiB) plus the tail block fits in one
    /// piece. Every active direct-mode segment holds one such buffer.
    static let stagingBytes = (1 << 20) + (64 << 10)

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
        // The batches stream through the staging buffer, which never grows: each time it is full
        // its blocks are written and it starts again at the next file offset. Growing it for a
        // large append cost a fresh allocation whose pages faulted in and were zeroed every time.
        let capacity = staging.capacity
        var fileOffset = start  // where staging[0] goes
        var at = tailBytes
        func stage(_ part: UnsafeRawBufferPointer) throws(Errno) {
            guard var source = part.baseAddress else { return }
            var left = part.count
            while left > 0 {
                let n = min(left, capacity - at)
                (staging.pointer + at).copyMemory(from: source, byteCount: n)
                at += n
                source += n
                left -= n
                if at == capacity {
                    try file.writeAll(UnsafeRawBufferPointer(start: staging.pointer, count: capacity), at: Int64(fileOffset))
                    fileOffset += capacity
                    at = 0
                }
            }
        }
        do {
            for batch in batches {
                try batch.withParts { (prefix, rest) throws(Errno) in
                    try stage(prefix)
                    try stage(rest)
                }
            }
            let padded = AlignedBuffer.rounded(at)
            if padded > 0 {
                memset(staging.pointer + at, 0, padded - at)
                try file.writeAll(UnsafeRawBufferPointer(start: staging.pointer, count: padded), at: Int64(fileOffset))
            }
        } catch {
            tailLoaded = false  // the staging bytes past the old tail are no longer trusted
            throw error
        }
        // The new partial block moves to the front for the next append.
        let newSize = fileOffset + at
        let newStart = newSize & ~(block - 1)
        let newTail = newSize - newStart
        if newTail > 0 && newStart != fileOffset {
            staging.pointer.copyMemory(from: staging.pointer + (newStart - fileOffset), byteCount: newTail)
        }
        tailStart = newStart
        tailBytes = newTail
        assert(newSize == size + batches.reduce(0) { $0 + $1.byteCount }, "direct append lost track of its bytes")
    }

    /// Forgets the cached tail (after truncation or recovery changed the file).
    func invalidate() { tailLoaded = false }
}
