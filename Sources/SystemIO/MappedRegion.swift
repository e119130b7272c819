#if canImport(Glibc)
import Glibc
#endif

/// The single owner of an `mmap(2)` mapping of a file; unmapped when it goes away.
public struct MappedRegion: ~Copyable {
    public enum Access: Sendable { case readOnly, readWrite }

    public enum Advice: Sendable {
        case normal, sequential, random, willNeed, dontNeed
        var raw: Int32 {
            switch self {
            case .normal: MADV_NORMAL
            case .sequential: MADV_SEQUENTIAL
            case .random: MADV_RANDOM
            case .willNeed: MADV_WILLNEED
            case .dontNeed: MADV_DONTNEED
            }
        }
    }

    public let base: UnsafeMutableRawPointer
    public let count: Int

    /// Maps `length` bytes of `file` from `offset` (a multiple of the page size), shared so that
    /// stores reach the file.
    public init(
        mapping file: borrowing FileHandle, length: Int, offset: Int64 = 0, access: Access
    ) throws(Errno) {
        precondition(length > 0, "mapping zero bytes")
        let protection = access == .readOnly ? PROT_READ : PROT_READ | PROT_WRITE
        guard let pointer = mmap(nil, length, protection, MAP_SHARED, file.descriptor, off_t(offset)),
              pointer != MAP_FAILED
        else { throw Errno.current }
        self.base = pointer
        self.count = length
    }

    deinit { munmap(base, count) }

    public consuming func unmap() throws(Errno) {
        let (pointer, length) = (base, count)
        discard self
        if munmap(pointer, length) == -1 { throw Errno.current }
    }

    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: count)
    }

    /// Writes dirty pages of the range back to the file (`msync`), waiting unless `async`.
    public func sync(offset: Int = 0, length: Int? = nil, async: Bool = false) throws(Errno) {
        let span = length ?? count - offset
        precondition(offset >= 0 && span >= 0 && offset + span <= count, "msync out of range")
        let flags = async ? MS_ASYNC : MS_SYNC
        _ = try retryingInterrupts { msync(base + offset, span, flags) }.get()
    }

    public func advise(_ advice: Advice, offset: Int = 0, length: Int? = nil) throws(Errno) {
        let span = length ?? count - offset
        precondition(offset >= 0 && span >= 0 && offset + span <= count, "madvise out of range")
        _ = try retryingInterrupts { madvise(base + offset, span, advice.raw) }.get()
    }

    /// The system page size, for mapping offsets.
    public static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
}
