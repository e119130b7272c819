#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A POSIX error number, the one error type of the syscall layer.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's `errno`.
    public static var current: Errno { Errno(rawValue: errno) }

    public var description: String {
        guard let text = strerror(rawValue) else { return "errno \(rawValue)" }
        return "\(String(cString: text)) (errno \(rawValue))"
    }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let badAddress = Errno(rawValue: EFAULT)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let noSpace = Errno(rawValue: ENOSPC)
    public static let ioError = Errno(rawValue: EIO)
    public static let notPermitted = Errno(rawValue: EPERM)
    public static let notImplemented = Errno(rawValue: ENOSYS)
    public static let noEntry = Errno(rawValue: ENOENT)
    public static let exists = Errno(rawValue: EEXIST)
    public static let canceled = Errno(rawValue: ECANCELED)
    public static let tryAgain = Errno(rawValue: EAGAIN)
    public static let busy = Errno(rawValue: EBUSY)
    public static let notSupported = Errno(rawValue: EOPNOTSUPP)
    public static let outOfMemory = Errno(rawValue: ENOMEM)
}

/// Runs a syscall that returns -1 and sets errno on failure, retrying EINTR.
///
/// EBADF and EFAULT on an owned descriptor or buffer mean our own bookkeeping is wrong, so they
/// trap rather than travel up as if the disk had failed.
@inline(__always)
func retryingInterrupts<T: FixedWidthInteger>(_ body: () -> T) -> Result<T, Errno> {
    while true {
        let result = body()
        if result != -1 { return .success(result) }
        let error = Errno.current
        if error == .interrupted { continue }
        precondition(error != .badFileDescriptor && error != .badAddress,
                     "programmer error in a syscall on an owned resource: \(error)")
        return .failure(error)
    }
}

/// As `retryingInterrupts`, but EBADF and EFAULT are returned as values: for descriptors that
/// the caller passed in and Sluice does not own (DiskRing operations).
@inline(__always)
func retryingInterruptsUnowned<T: FixedWidthInteger>(_ body: () -> T) -> Result<T, Errno> {
    while true {
        let result = body()
        if result != -1 { return .success(result) }
        let error = Errno.current
        if error == .interrupted { continue }
        return .failure(error)
    }
}
