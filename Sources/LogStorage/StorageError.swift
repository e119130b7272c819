import SystemIO

/// Failures of the storage layer; the broker maps them to Kafka error codes.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(Errno, path: String)
    case offsetOutOfRange(requested: Int64, logStart: Int64, logEnd: Int64)
    case corrupt(String)
    case logExists(String)
    case recordTooLarge(Int)
    case closed
    /// A write or fdatasync failed so that what is on disk is unknown; the log takes no more
    /// appends or flushes until a restart runs recovery on it.
    case offline(String)

    public var description: String {
        switch self {
        case let .io(e, path): "I/O error on \(path): \(e)"
        case let .offsetOutOfRange(r, s, e): "offset \(r) is outside the log [\(s), \(e))"
        case .corrupt(let why): "corrupt log: \(why)"
        case .logExists(let name): "log \(name) already exists"
        case .recordTooLarge(let n): "batch of \(n) bytes exceeds max.message.bytes"
        case .closed: "log is closed"
        case .offline(let why): "log is offline after an I/O failure (\(why)); restart the broker to recover it"
        }
    }
}

extension Error {
    /// This error as a storage error about `path`.
    func at(_ path: String) -> StorageError {
        if let errno = self as? Errno { return .io(errno, path: path) }
        if let storage = self as? StorageError { return storage }
        return .corrupt("\(path): \(self)")
    }
}

import NIOConcurrencyHelpers

extension NIOLock {
    /// withLock for bodies with typed throws (NIOLock.withLock is untyped `rethrows`).
    @inline(__always)
    func withStorageLock<T>(_ body: () throws(StorageError) -> T) throws(StorageError) -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
