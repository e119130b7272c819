#if canImport(Glibc)
import Glibc
#endif

/// Memory aligned for O_DIRECT transfers (address, and in use lengths, multiples of
/// `alignment`). It grows on demand and frees its memory when it goes away.
public final class AlignedBuffer {
    public static let alignment = 4096
    public private(set) var pointer: UnsafeMutableRawPointer
    public private(set) var capacity: Int

    public init(capacity: Int = AlignedBuffer.alignment) {
        self.capacity = Self.rounded(max(capacity, Self.alignment))
        pointer = Self.allocate(self.capacity)
    }

    deinit { free(pointer) }

    /// `n` rounded up to a multiple of `alignment`.
    public static func rounded(_ n: Int) -> Int { (n + alignment - 1) & ~(alignment - 1) }

    /// Makes room for `count` bytes, keeping the first `keeping` bytes.
    public func reserve(_ count: Int, keeping: Int) {
        guard count > capacity else { return }
        resize(Self.rounded(count), keeping: keeping)
    }

    /// Reallocates to exactly `count` bytes (rounded up), keeping the first `keeping` bytes.
    public func resize(_ count: Int, keeping: Int) {
        let newCapacity = Self.rounded(max(count, Self.alignment))
        guard newCapacity != capacity else { return }
        let fresh = Self.allocate(newCapacity)
        if keeping > 0 { fresh.copyMemory(from: pointer, byteCount: min(keeping, newCapacity)) }
        free(pointer)
        pointer = fresh
        capacity = newCapacity
    }

    private static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        let rc = posix_memalign(&raw, alignment, bytes)
        precondition(rc == 0 && raw != nil, "posix_memalign(\(bytes)) failed: \(rc)")
        return raw!
    }
}
