#if canImport(Glibc)
import Glibc
#endif
import Testing
import CSluice
@testable import SystemIO

/// Every test runs through io_uring and through the syscall fallback, which must behave alike.
let backends: [DiskRing.Preference] = [.ioUring, .syscalls]

private func fillPattern(_ buffer: UnsafeMutableRawBufferPointer, block: Int) {
    for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i &* 31 &+ block &* 7 &+ (i >> 8)) }
}

@Suite("DiskRing")
struct DiskRingTests {
    @Test("io_uring is set up on this kernel, and the fallback reports why it is used")
    func backendsReportThemselves() throws {
        let ring = try DiskRing(preference: .automatic)
        if sluiceIoUringDisabled() <= 0 {
            let backend = ring.backend
            let writes = ring.supports(IORING_OP_WRITE), syncs = ring.supports(IORING_OP_FSYNC)
            #expect(backend == .ioUring)
            #expect(writes && syncs)
        }
        let fallback = try DiskRing(preference: .syscalls)
        let fallbackBackend = fallback.backend
        #expect(fallbackBackend == .syscalls(reason: "requested"))
    }

    @Test("writes many blocks, fdatasyncs, and reads them back", arguments: backends)
    func writeSyncReadBack(preference: DiskRing.Preference) throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("blocks"), [.readWrite, .create])
        let fd = file.descriptor
        var ring = try DiskRing(entries: 32, preference: preference)
        let blockBytes = 16 << 10
        let blockCount = 200  // more than the ring holds: perform() must submit in several rounds
        let data = AlignedBuffer(count: blockBytes * blockCount)
        for b in 0..<blockCount {
            fillPattern(UnsafeMutableRawBufferPointer(rebasing: data.bytes[b * blockBytes..<(b + 1) * blockBytes]), block: b)
        }
        var ops: [(DiskOperation, linkedToNext: Bool)] = (0..<blockCount).map { b in
            let slice = UnsafeRawBufferPointer(rebasing: data.bytes[b * blockBytes..<(b + 1) * blockBytes])
            return (.write(.descriptor(fd), slice, offset: Int64(b * blockBytes)), false)
        }
        ops.append((.fdatasync(.descriptor(fd)), false))
        let results = try ring.perform(ops)
        #expect(results.count == blockCount + 1)
        for (i, result) in results.enumerated() {
            #expect(result == .success(i < blockCount ? blockBytes : 0))
        }
        let size = try file.size()
        #expect(size == Int64(blockBytes * blockCount))

        let back = AlignedBuffer(count: blockBytes * blockCount)
        let reads: [(DiskOperation, linkedToNext: Bool)] = (0..<blockCount).map { b in
            let slice = UnsafeMutableRawBufferPointer(rebasing: back.bytes[b * blockBytes..<(b + 1) * blockBytes])
            return (.read(.descriptor(fd), slice, offset: Int64(b * blockBytes)), false)
        }
        let readResults = try ring.perform(reads)
        #expect(readResults.allSatisfy { $0 == .success(blockBytes) })
        #expect(memcmp(data.bytes.baseAddress!, back.bytes.baseAddress!, data.bytes.count) == 0)
        try file.close()
    }

    @Test("writev gathers several buffers into one write", arguments: backends)
    func gatherWrite(preference: DiskRing.Preference) throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("gather"), [.readWrite, .create])
        let fd = file.descriptor
        var ring = try DiskRing(preference: preference)
        let parts: [[UInt8]] = [Array("header|".utf8), Array("body-bytes|".utf8), Array("trailer".utf8)]
        let buffers = parts.map { part -> UnsafeMutableRawBufferPointer in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: part.count, alignment: 8)
            b.copyBytes(from: part)
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: buffers.count)
        defer { vectors.deallocate() }
        for (i, b) in buffers.enumerated() { vectors[i] = iovec(iov_base: b.baseAddress, iov_len: b.count) }
        let results = try ring.perform([(.writev(.descriptor(fd), UnsafeBufferPointer(vectors), offset: 5), false)])
        #expect(results == [.success(parts.joined().count)])
        var back = [UInt8](repeating: 0, count: 5 + parts.joined().count)
        let n = try back.withUnsafeMutableBytes { try readAll(fd, into: $0) }
        #expect(n == back.count)
        #expect(Array(back[5...]) == Array(parts.joined()))
        #expect(back[0..<5].allSatisfy { $0 == 0 })
    }

    @Test("O_DIRECT writes of 4 KiB-aligned buffers", arguments: backends)
    func directWrites(preference: DiskRing.Preference) throws {
        let dir = TemporaryDirectory()
        let probe = open(dir.file("direct"), O_RDWR | O_CREAT | sluice_o_direct(), 0o644)
        if probe < 0 {
            Issue.record("O_DIRECT open failed (\(Errno.current)); set TMPDIR to a disk-backed directory")
            return
        }
        close(probe)
        let file = try FileHandle.open(dir.file("direct"), [.readWrite, .direct])
        let fd = file.descriptor
        var ring = try DiskRing(preference: preference)
        let chunk = 64 << 10
        let data = AlignedBuffer(count: chunk * 8)
        fillPattern(data.bytes, block: 3)
        let ops: [(DiskOperation, linkedToNext: Bool)] = (0..<8).map { i in
            (.write(.descriptor(fd), UnsafeRawBufferPointer(rebasing: data.bytes[i * chunk..<(i + 1) * chunk]),
                    offset: Int64(i * chunk)), i < 7)
        } + [(.fdatasync(.descriptor(fd)), false)]
        let results = try ring.perform(ops)
        #expect(results.dropLast().allSatisfy { $0 == .success(chunk) })
        #expect(results.last == .success(0))
        let back = AlignedBuffer(count: chunk * 8)
        let read = try ring.perform([(.read(.descriptor(fd), back.bytes, offset: 0), false)])
        #expect(read == [.success(chunk * 8)])
        #expect(memcmp(data.bytes.baseAddress!, back.bytes.baseAddress!, chunk * 8) == 0)

        // Misaligned length through O_DIRECT is the kernel's EINVAL, reported as a typed error.
        let odd = try ring.perform([(.write(.descriptor(fd),
                                            UnsafeRawBufferPointer(rebasing: data.bytes[0..<100]), offset: 0), false)])
        #expect(odd == [.failure(.invalidArgument)])
    }

    @Test("a bad descriptor completes with EBADF and cancels the rest of its chain", arguments: backends)
    func badDescriptor(preference: DiskRing.Preference) throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("ok"), [.readWrite, .create])
        let fd = file.descriptor
        var ring = try DiskRing(preference: preference)
        let buffer = AlignedBuffer(count: 512)
        let raw = UnsafeRawBufferPointer(buffer.bytes)
        let results = try ring.perform([
            (.write(.descriptor(1_000_000), raw, offset: 0), true),
            (.fdatasync(.descriptor(fd)), false),
            (.write(.descriptor(fd), raw, offset: 0), false),
        ])
        #expect(results[0] == .failure(.badFileDescriptor))
        #expect(results[1] == .failure(.canceled))
        #expect(results[2] == .success(512))  // the next, unlinked operation still runs
    }

    @Test("a full device answers ENOSPC as a typed error", arguments: backends)
    func devFullIsNoSpace(preference: DiskRing.Preference) throws {
        let full = try FileHandle.open("/dev/full", [.writeOnly])
        let fullFd = full.descriptor
        var ring = try DiskRing(preference: preference)
        let buffer = AlignedBuffer(count: 4096)
        let results = try ring.perform([(.write(.descriptor(fullFd), UnsafeRawBufferPointer(buffer.bytes), offset: 0), false)])
        #expect(results == [.failure(.noSpace)])
    }

    @Test("ENOSPC on a tiny tmpfs, and the space is usable again after freeing",
          .enabled(if: canMountTmpfs(), "mounting a tmpfs needs root (CAP_SYS_ADMIN)"),
          arguments: backends)
    func tinyTmpfsFillsUp(preference: DiskRing.Preference) throws {
        let dir = TemporaryDirectory("sluice-tmpfs")
        #expect(mount("tmpfs", dir.path, "tmpfs", 0, "size=256k") == 0)
        defer { umount2(dir.path, Int32(MNT_DETACH)) }
        let file = try FileHandle.open(dir.file("fill"), [.readWrite, .create])
        let fd = file.descriptor
        var ring = try DiskRing(preference: preference)
        let chunk = AlignedBuffer(count: 64 << 10)
        fillPattern(chunk.bytes, block: 1)
        let ops: [(DiskOperation, linkedToNext: Bool)] = (0..<8).map { i in
            (.write(.descriptor(fd), UnsafeRawBufferPointer(chunk.bytes), offset: Int64(i * chunk.bytes.count)), false)
        }
        let results = try ring.perform(ops)
        #expect(results.contains(.failure(.noSpace)))
        let written = results.reduce(0) { sum, r in if case .success(let n) = r { return sum + n } else { return sum } }
        #expect(written <= 256 << 10)
        // Free the space: a new write succeeds.
        try file.truncate(to: 0)
        let again = try ring.perform([(.write(.descriptor(fd), UnsafeRawBufferPointer(chunk.bytes), offset: 0), false)])
        #expect(again == [.success(chunk.bytes.count)])
    }

    @Test("registered files and buffers", arguments: backends)
    func registeredFilesAndBuffers(preference: DiskRing.Preference) throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("fixed"), [.readWrite, .create])
        let fd = file.descriptor
        var ring = try DiskRing(preference: preference)
        let buffer = AlignedBuffer(count: 8192)
        fillPattern(buffer.bytes, block: 9)
        try ring.registerFiles([fd])
        try ring.registerBuffers([buffer.bytes])
        let results = try ring.perform([
            (.writeFixed(.registered(0), UnsafeRawBufferPointer(buffer.bytes), offset: 0, buffer: 0), true),
            (.fdatasync(.registered(0)), false),
        ])
        #expect(results == [.success(8192), .success(0)])
        var back = [UInt8](repeating: 0, count: 8192)
        _ = try back.withUnsafeMutableBytes { try readAll(fd, into: $0) }
        #expect(back.elementsEqual(UnsafeRawBufferPointer(buffer.bytes)))
    }

    @Test("enqueue, submit and reap overlap: completions carry their tags", arguments: backends)
    func asynchronousUse(preference: DiskRing.Preference) throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("async"), [.readWrite, .create])
        let fd = file.descriptor
        var ring = try DiskRing(entries: 8, preference: preference)
        let block = AlignedBuffer(count: 4096)
        fillPattern(block.bytes, block: 2)
        var tags: Set<UInt64> = []
        for i in 0..<8 {
            let accepted = ring.enqueue(.write(.descriptor(fd), UnsafeRawBufferPointer(block.bytes), offset: Int64(i * 4096)), tag: UInt64(100 + i))
            #expect(accepted)
            tags.insert(UInt64(100 + i))
        }
        let acceptedWhenFull = ring.enqueue(.fsync(.descriptor(fd)), tag: 999)
        #expect(acceptedWhenFull == false)
        let submitted = try ring.submit()
        #expect(submitted == 8)
        let inFlight = ring.inFlight
        #expect(inFlight == 8)
        var completions: [DiskCompletion] = []
        try ring.reap(into: &completions, minimum: 8)
        #expect(Set(completions.map(\.tag)) == tags)
        #expect(completions.allSatisfy { $0.result == .success(4096) })
        let drained = ring.inFlight
        #expect(drained == 0)
        let size = try file.size()
        #expect(size == 8 * 4096)
    }

    @Test("fallocate reserves space without changing the size", arguments: backends)
    func fallocateKeepSize(preference: DiskRing.Preference) throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("prealloc"), [.readWrite, .create])
        let fd = file.descriptor
        var ring = try DiskRing(preference: preference)
        let results = try ring.perform([(.fallocate(.descriptor(fd), mode: sluiceKeepSize(), offset: 0, length: 1 << 20), false)])
        #expect(results == [.success(0)])
        let size = try file.size()
        #expect(size == 0)
        var info = stat()
        fstat(fd, &info)
        #expect(info.st_blocks * 512 >= 1 << 20)
    }
}

func canMountTmpfs() -> Bool { geteuid() == 0 && probeMount() }

private func probeMount() -> Bool {
    let dir = TemporaryDirectory("sluice-probe")
    guard mount("tmpfs", dir.path, "tmpfs", 0, "size=64k") == 0 else { return false }
    umount2(dir.path, Int32(MNT_DETACH))
    return true
}

/// Reads a whole buffer from offset 0 with plain pread (tests check the ring against it).
func readAll(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    var done = 0
    while done < buffer.count {
        let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(done))
        if n < 0 { throw Errno.current }
        if n == 0 { break }
        done += n
    }
    return done
}
