#if canImport(Glibc)
import Glibc
#endif
import CSluice
import Logging

/// Which file an operation targets: a plain descriptor, or a slot registered with
/// `DiskRing.registerFiles` (saves the kernel a descriptor-table lookup per operation).
public enum DiskFile: Sendable, Equatable {
    case descriptor(Int32)
    case registered(Int32)
}

/// One disk operation. Buffers are borrowed: they must stay valid until the completion with the
/// operation's tag has been reaped.
public enum DiskOperation {
    case write(DiskFile, UnsafeRawBufferPointer, offset: Int64)
    case writev(DiskFile, UnsafeBufferPointer<iovec>, offset: Int64)
    case read(DiskFile, UnsafeMutableRawBufferPointer, offset: Int64)
    case readv(DiskFile, UnsafeBufferPointer<iovec>, offset: Int64)
    /// Write from a buffer registered with `registerBuffers` (index `buffer`).
    case writeFixed(DiskFile, UnsafeRawBufferPointer, offset: Int64, buffer: Int32)
    case readFixed(DiskFile, UnsafeMutableRawBufferPointer, offset: Int64, buffer: Int32)
    case fsync(DiskFile)
    case fdatasync(DiskFile)
    case fallocate(DiskFile, mode: Int32, offset: Int64, length: Int64)
}

/// The outcome of one operation: bytes transferred (0 for syncs) or the error.
public struct DiskCompletion: Sendable, Equatable {
    public let tag: UInt64
    public let result: Result<Int, Errno>
}

/// One io_uring, owned by one thread, used in batches: enqueue many operations, submit them with
/// one syscall, reap many completions at once. Where io_uring cannot be set up (EPERM, ENOSYS,
/// the `io_uring_disabled` sysctl) it runs the same operations as plain syscalls at submit time,
/// so callers never branch on the backend.
public struct DiskRing: ~Copyable {
    public enum Preference: Sendable { case automatic, ioUring, syscalls }

    public enum Backend: Sendable, Equatable {
        case ioUring
        case syscalls(reason: String)
    }

    /// Default number of submission entries; completions get twice as many.
    public static let entriesDefault: UInt32 = 256

    public let backend: Backend
    /// How many operations can be queued before a submit is needed.
    public let submissionCapacity: Int

    private let ring: UnsafeMutablePointer<io_uring>?
    private var queued: [(operation: DiskOperation, tag: UInt64, linked: Bool)] = []  // fallback only
    private var ready: [DiskCompletion] = []                                          // fallback only
    private var registeredFiles: [Int32] = []
    private var ringQueued = 0
    /// Submitted and not yet reaped.
    public private(set) var inFlight = 0
    private var supportedOpcodes: [Bool] = []

    public init(
        entries: UInt32 = DiskRing.entriesDefault,
        preference: Preference = .automatic,
        logger: Logger = Logger(label: "sluice.diskring")
    ) throws(Errno) {
        precondition(entries > 0 && entries <= 32768, "io_uring entries out of range")
        submissionCapacity = Int(entries)
        if preference == .syscalls {
            ring = nil
            backend = .syscalls(reason: "requested")
            return
        }
        let disabled = sluice_io_uring_disabled_sysctl()
        var failure: Errno? = nil
        var setUp: UnsafeMutablePointer<io_uring>? = nil
        if disabled == 2 {
            failure = .notPermitted
        } else {
            let candidate = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
            var params = io_uring_params()
            params.cq_entries = entries * 2
            params.flags = UInt32(IORING_SETUP_CQSIZE)
            let rc = io_uring_queue_init_params(entries, candidate, &params)
            if rc == 0 {
                setUp = candidate
            } else {
                candidate.deallocate()
                failure = Errno(rawValue: -rc)
            }
        }
        if let setUp {
            ring = setUp
            backend = .ioUring
            var supported = [UInt8](repeating: 0, count: Int(IORING_OP_LAST.rawValue))
            if sluice_uring_probe(setUp, &supported, Int32(supported.count)) == 0 {
                supportedOpcodes = supported.map { $0 != 0 }
            }
            return
        }
        let error = failure ?? .notImplemented
        if preference == .ioUring { throw error }
        ring = nil
        let reason = "io_uring unavailable (\(error)\(disabled > 0 ? ", kernel.io_uring_disabled=\(disabled)" : ""))"
        backend = .syscalls(reason: reason)
        logger.warning("\(reason); disk I/O falls back to pwritev/preadv/fdatasync")
    }

    deinit {
        if let ring {
            io_uring_queue_exit(ring)
            ring.deallocate()
        }
    }

    /// Whether the kernel's io_uring supports an opcode (always true for the syscall fallback,
    /// which implements every `DiskOperation`).
    public func supports(_ opcode: io_uring_op) -> Bool {
        guard ring != nil else { return true }
        let index = Int(opcode.rawValue)
        return index < supportedOpcodes.count && supportedOpcodes[index]
    }

    /// Operations queued and not yet submitted.
    public var pending: Int { ring == nil ? queued.count : ringQueued }

    /// Registers descriptors so operations can name them as `.registered(index)`.
    public mutating func registerFiles(_ descriptors: [Int32]) throws(Errno) {
        precondition(registeredFiles.isEmpty, "files are already registered")
        if let ring {
            let rc = descriptors.withUnsafeBufferPointer {
                io_uring_register_files(ring, $0.baseAddress, UInt32($0.count))
            }
            if rc < 0 { throw Errno(rawValue: -rc) }
        }
        registeredFiles = descriptors
    }

    /// Pins buffers for `.writeFixed` / `.readFixed` (saves page pinning per operation).
    public mutating func registerBuffers(_ buffers: [UnsafeMutableRawBufferPointer]) throws(Errno) {
        guard let ring else { return }
        let vectors = buffers.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
        let rc = vectors.withUnsafeBufferPointer {
            io_uring_register_buffers(ring, $0.baseAddress, UInt32($0.count))
        }
        if rc < 0 { throw Errno(rawValue: -rc) }
    }

    /// Queues one operation. `linkedToNext` makes the next queued operation start only after this
    /// one succeeds completely (else it completes with ECANCELED). Returns false when the
    /// submission queue is full: submit, then enqueue again.
    public mutating func enqueue(_ operation: DiskOperation, tag: UInt64, linkedToNext: Bool = false) -> Bool {
        guard let ring else {
            guard queued.count < submissionCapacity else { return false }
            queued.append((operation, tag, linkedToNext))
            return true
        }
        guard let sqe = io_uring_get_sqe(ring) else { return false }
        var flags: UInt32 = linkedToNext ? sluice_iosqe_io_link() : 0
        func fd(_ file: DiskFile) -> Int32 {
            switch file {
            case .descriptor(let d): return d
            case .registered(let i): flags |= sluice_iosqe_fixed_file(); return i
            }
        }
        switch operation {
        case let .write(file, bytes, offset):
            io_uring_prep_write(sqe, fd(file), bytes.baseAddress, UInt32(bytes.count), UInt64(offset))
        case let .writev(file, vectors, offset):
            io_uring_prep_writev(sqe, fd(file), vectors.baseAddress, UInt32(vectors.count), UInt64(offset))
        case let .read(file, buffer, offset):
            io_uring_prep_read(sqe, fd(file), buffer.baseAddress, UInt32(buffer.count), UInt64(offset))
        case let .readv(file, vectors, offset):
            io_uring_prep_readv(sqe, fd(file), vectors.baseAddress, UInt32(vectors.count), UInt64(offset))
        case let .writeFixed(file, bytes, offset, index):
            io_uring_prep_write_fixed(sqe, fd(file), bytes.baseAddress, UInt32(bytes.count), UInt64(offset), index)
        case let .readFixed(file, buffer, offset, index):
            io_uring_prep_read_fixed(sqe, fd(file), buffer.baseAddress, UInt32(buffer.count), UInt64(offset), index)
        case let .fsync(file):
            io_uring_prep_fsync(sqe, fd(file), 0)
        case let .fdatasync(file):
            io_uring_prep_fsync(sqe, fd(file), sluice_ioring_fsync_datasync())
        case let .fallocate(file, mode, offset, length):
            io_uring_prep_fallocate(sqe, fd(file), mode, off_t(offset), off_t(length))
        }
        sluice_sqe_set_flags(sqe, flags)
        sluice_sqe_set_data64(sqe, tag)
        ringQueued += 1
        return true
    }

    /// Hands every queued operation to the kernel with one syscall, optionally waiting until
    /// `waitingFor` completions are ready. Returns how many were submitted.
    @discardableResult
    public mutating func submit(waitingFor minimum: Int = 0) throws(Errno) -> Int {
        guard let ring else { return runQueuedSyscalls() }
        while true {
            let rc = minimum > 0 ? io_uring_submit_and_wait(ring, UInt32(minimum)) : io_uring_submit(ring)
            if rc == -EINTR { continue }
            if rc < 0 { throw Errno(rawValue: -rc) }
            ringQueued -= Int(rc)
            inFlight += Int(rc)
            return Int(rc)
        }
    }

    /// Appends ready completions to `completions`, first waiting until at least `minimum` are
    /// ready (never more than are in flight). Returns how many were appended.
    @discardableResult
    public mutating func reap(into completions: inout [DiskCompletion], minimum: Int = 0) throws(Errno) -> Int {
        precondition(minimum <= inFlight, "waiting for more completions than are in flight")
        guard let ring else {
            let count = ready.count
            completions.append(contentsOf: ready)
            ready.removeAll(keepingCapacity: true)
            inFlight -= count
            return count
        }
        var reaped = 0
        var batch = [UnsafeMutablePointer<io_uring_cqe>?](repeating: nil, count: 64)
        while true {
            let count = Int(io_uring_peek_batch_cqe(ring, &batch, UInt32(batch.count)))
            for i in 0..<count {
                let cqe = batch[i]!
                let res = cqe.pointee.res
                let result: Result<Int, Errno> = res < 0 ? .failure(Errno(rawValue: -res)) : .success(Int(res))
                completions.append(DiskCompletion(tag: sluice_cqe_get_data64(cqe), result: result))
            }
            io_uring_cq_advance(ring, UInt32(count))
            reaped += count
            inFlight -= count
            if count == batch.count { continue }
            if reaped >= minimum { return reaped }
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            let rc = io_uring_wait_cqe_nr(ring, &cqe, UInt32(minimum - reaped))
            if rc < 0 && rc != -EINTR && rc != -EAGAIN { throw Errno(rawValue: -rc) }
        }
    }

    /// Runs a whole batch and waits for it: the convenience for callers that do not overlap
    /// batches. Results come back in the order of `operations`. Chains (`linkedToNext`) are never
    /// split across submissions.
    public mutating func perform(
        _ operations: [(DiskOperation, linkedToNext: Bool)]
    ) throws(Errno) -> [Result<Int, Errno>] {
        precondition(inFlight == 0 && pending == 0, "perform() needs an idle ring")
        var results = [Result<Int, Errno>?](repeating: nil, count: operations.count)
        var completions: [DiskCompletion] = []
        completions.reserveCapacity(operations.count)
        var index = 0
        while index < operations.count {
            // The chain starting at `index` must fit in the queue as a whole.
            var chainEnd = index
            while operations[chainEnd].linkedToNext && chainEnd + 1 < operations.count { chainEnd += 1 }
            let chainLength = chainEnd - index + 1
            precondition(chainLength <= submissionCapacity, "a linked chain longer than the ring")
            if pending + chainLength > submissionCapacity {
                try submit()
            }
            for i in index...chainEnd {
                let linked = i < chainEnd
                let accepted = enqueue(operations[i].0, tag: UInt64(i), linkedToNext: linked)
                precondition(accepted, "queue space was checked")
            }
            index = chainEnd + 1
        }
        try submit()
        while inFlight > 0 {
            completions.removeAll(keepingCapacity: true)
            try reap(into: &completions, minimum: 1)
            for completion in completions { results[Int(completion.tag)] = completion.result }
        }
        return results.map { $0! }
    }

    // MARK: - the syscall fallback

    private mutating func runQueuedSyscalls() -> Int {
        let count = queued.count
        var chainBroken = false
        for entry in queued {
            let result: Result<Int, Errno>
            if chainBroken {
                result = .failure(.canceled)
            } else {
                result = Self.execute(entry.operation, files: registeredFiles)
            }
            ready.append(DiskCompletion(tag: entry.tag, result: result))
            if entry.linked {
                // Like io_uring: an error or a short transfer breaks the rest of the chain.
                if !chainBroken, case .success(let n) = result, Self.isShort(entry.operation, n) { chainBroken = true }
                if case .failure = result { chainBroken = true }
            } else {
                chainBroken = false
            }
        }
        queued.removeAll(keepingCapacity: true)
        inFlight += count
        return count
    }

    private static func isShort(_ operation: DiskOperation, _ transferred: Int) -> Bool {
        switch operation {
        case let .write(_, b, _), let .writeFixed(_, b, _, _): return transferred < b.count
        case let .read(_, b, _), let .readFixed(_, b, _, _): return transferred < b.count
        case let .writev(_, v, _), let .readv(_, v, _): return transferred < v.reduce(0) { $0 + $1.iov_len }
        case .fsync, .fdatasync, .fallocate: return false
        }
    }

    private static func execute(_ operation: DiskOperation, files: [Int32]) -> Result<Int, Errno> {
        func fd(_ file: DiskFile) -> Int32 {
            switch file {
            case .descriptor(let d): return d
            case .registered(let i): return i >= 0 && Int(i) < files.count ? files[Int(i)] : -1
            }
        }
        switch operation {
        case let .write(file, bytes, offset), let .writeFixed(file, bytes, offset, _):
            return retryingInterruptsUnowned { pwrite(fd(file), bytes.baseAddress, bytes.count, off_t(offset)) }
        case let .read(file, buffer, offset), let .readFixed(file, buffer, offset, _):
            return retryingInterruptsUnowned { pread(fd(file), buffer.baseAddress, buffer.count, off_t(offset)) }
        case let .writev(file, vectors, offset):
            return retryingInterruptsUnowned { pwritev(fd(file), vectors.baseAddress, Int32(vectors.count), off_t(offset)) }
        case let .readv(file, vectors, offset):
            return retryingInterruptsUnowned { preadv(fd(file), vectors.baseAddress, Int32(vectors.count), off_t(offset)) }
        case let .fsync(file):
            return retryingInterruptsUnowned { fsync(fd(file)) }.map { Int($0) }
        case let .fdatasync(file):
            return retryingInterruptsUnowned { fdatasync(fd(file)) }.map { Int($0) }
        case let .fallocate(file, mode, offset, length):
            let rc = sluice_fallocate(fd(file), mode, offset, length)
            return rc == 0 ? .success(0) : .failure(Errno(rawValue: -rc))
        }
    }
}
