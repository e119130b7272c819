#if canImport(Glibc)
import Glibc
#endif

/// Memory aligned for O_DIRECT transfers (address, and in use lengths, multiples of
/// `alignment`), of a fixed capacity; freed when it goes away.
public final class AlignedBuffer {
    public static let alignment = 4096
    public let pointer: UnsafeMutableRawPointer
    public let capacity: Int

    public init(capacity: Int = AlignedBuffer.alignment) {
        self.capacity = Self.rounded(max(capacity, Self.alignment))
        pointer = Self.allocate(self.capacity)
    }

    deinit { free(pointer) }

    /// `n` rounded up to a multiple of `alignment`.
    public static func rounded(_ n: Int) -> Int { (n + alignment - 1) & ~(alignment - 1) }

    private static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        let rc = posix_memalign(&raw, alignment, bytes)
        precondition(rc == 0 && raw != nil, "posix_memalign(\(bytes)) failed: \(rc)")
        return raw!
    }
}
