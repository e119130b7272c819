import Synchronization

/// The broker-wide budget of request bytes in memory (Kafka's `queued.max.request.bytes`). A
/// frame's declared size is reserved when its length prefix is read, before a buffer of that
/// size is made, and returned when the request has been answered (or its connection closed).
/// A connection whose next frame does not fit stops being read until memory comes back, so many
/// connections declaring large frames at once cannot take more than the budget between them.
public final class RequestMemory: Sendable {
    /// nil: unbounded (Kafka's -1).
    public let limit: Int?
    private struct State {
        var used = 0
        var waiters: [@Sendable () -> Void] = []
    }
    private let state = Mutex(State())

    public init(limit: Int?) { self.limit = limit }

    public var used: Int { state.withLock { $0.used } }

    /// Takes `bytes` if they fit (or nothing else is held: a frame larger than the whole budget
    /// may still be read alone, as socket.request.max.bytes allows it). Otherwise `whenFree`
    /// runs once memory has been returned, and the caller should try again then.
    public func reserve(_ bytes: Int, whenFree: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            guard let limit, s.used + bytes > limit, s.used > 0 else {
                s.used += bytes
                return true
            }
            s.waiters.append(whenFree)
            return false
        }
    }

    public func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let wake = state.withLock { s -> [@Sendable () -> Void] in
            s.used -= bytes
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in wake { w() }
    }
}
