import Dispatch
import NIOConcurrencyHelpers

/// Where the syncs that segment rolls start run: one background queue per process (rolls are
/// rare, one per segment), or, in deterministic simulations, only when the test says, so that a
/// seed decides whether a power cut comes before or after them.
public final class RollFlusher: Sendable {
    public static let background = RollFlusher(queue: DispatchQueue(label: "sluice.roll-flush"))

    private let queue: DispatchQueue?
    private let pending = NIOLockedValueBox<[@Sendable () -> Void]>([])

    private init(queue: DispatchQueue?) { self.queue = queue }

    /// A flusher that holds work until `runPending` (or drops it with `dropPending`).
    public static func manual() -> RollFlusher { RollFlusher(queue: nil) }

    func submit(_ work: @escaping @Sendable () -> Void) {
        if let queue { queue.async(execute: work) } else { pending.withLockedValue { $0.append(work) } }
    }

    /// Runs the work held so far, oldest first.
    public func runPending() {
        let work = pending.withLockedValue { p in defer { p.removeAll() }; return p }
        for w in work { w() }
    }

    /// Forgets the work held (a crash before it ran).
    public func dropPending() { pending.withLockedValue { $0.removeAll() } }
}
