#if canImport(Glibc)
import Glibc
#endif
import CSluice

/// Flags for `FileHandle.open`, mapped to `open(2)` flags. `O_CLOEXEC` is always added.
public struct OpenOptions: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let readOnly = OpenOptions([])
    public static let writeOnly = OpenOptions(rawValue: O_WRONLY)
    public static let readWrite = OpenOptions(rawValue: O_RDWR)
    public static let create = OpenOptions(rawValue: O_CREAT)
    public static let exclusive = OpenOptions(rawValue: O_EXCL)
    public static let truncate = OpenOptions(rawValue: O_TRUNC)
    public static let append = OpenOptions(rawValue: O_APPEND)
    /// Bypass the page cache; buffers, offsets and lengths must be aligned (4 KiB is safe).
    public static let direct = OpenOptions(rawValue: sluice_o_direct())
    public static let dataSync = OpenOptions(rawValue: O_DSYNC)
    public static let directory = OpenOptions(rawValue: O_DIRECTORY)
}
