#if canImport(Glibc)
import Glibc
#endif
import Testing
import SystemIO

@Suite("FileHandle and MappedRegion")
struct FileAndMappingTests {
    @Test("write, sync, read back, truncate and close report through typed errors")
    func fileRoundTrip() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("data")
        let file = try FileHandle.open(path, [.readWrite, .create, .exclusive])
        let text = Array("hello, segment".utf8)
        try text.withUnsafeBytes { try file.writeAll($0, at: 100) }
        try file.dataSync()
        #expect(try file.size() == 114)
        var back = [UInt8](repeating: 0, count: text.count)
        #expect(try back.withUnsafeMutableBytes { try file.readAll(into: $0, at: 100) } == text.count)
        #expect(back == text)
        try file.truncate(to: 10)
        #expect(try file.size() == 10)
        try file.close()

        #expect(throws: Errno.exists) { _ = try FileHandle.open(path, [.readWrite, .create, .exclusive]) }
        #expect(throws: Errno.noEntry) { _ = try FileHandle.open(dir.file("missing"), [.readOnly]) }
    }

    @Test("a vectored write of more vectors than IOV_MAX, some empty, lands every byte in order")
    func vectoredWriteAll() throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("vectors"), [.readWrite, .create])
        // 2,500 pieces (the kernel takes at most 1,024 per pwritev), every seventh one empty.
        let pieces: [[UInt8]] = (0..<2500).map { i in i % 7 == 0 ? [] : [UInt8](repeating: UInt8(i % 251), count: 1 + i % 13) }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: pieces.reduce(0) { $0 + $1.count }, alignment: 8)
        defer { storage.deallocate() }
        var vectors: [iovec] = []
        var at = 0
        for piece in pieces {
            piece.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: storage[at..<(at + piece.count)]).copyMemory(from: $0) }
            vectors.append(iovec(iov_base: storage.baseAddress! + at, iov_len: piece.count))
            at += piece.count
        }
        try vectors.withUnsafeBufferPointer { try file.writeAll($0, at: 3) }
        #expect(try file.size() == Int64(3 + at))
        let back = try file.read(count: at, at: 3)
        #expect(back == pieces.flatMap { $0 })
    }

    @Test("a shared mapping writes through to the file and msync makes it durable")
    func mappingWritesThrough() throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("index"), [.readWrite, .create])
        try file.truncate(to: Int64(MappedRegion.pageSize * 2))
        let region = try MappedRegion(mapping: file, length: MappedRegion.pageSize * 2, access: .readWrite)
        try region.advise(.random)
        region.bytes.storeBytes(of: UInt32(0xDEADBEEF).bigEndian, toByteOffset: 8, as: UInt32.self)
        try region.sync()
        try region.unmap()
        var word = [UInt8](repeating: 0, count: 4)
        _ = try word.withUnsafeMutableBytes { try file.readAll(into: $0, at: 8) }
        #expect(word == [0xDE, 0xAD, 0xBE, 0xEF])
    }

    @Test("fallocate and rename, and directory fsync")
    func allocateAndRename() throws {
        let dir = TemporaryDirectory()
        let file = try FileHandle.open(dir.file("a.tmp"), [.readWrite, .create])
        try file.allocate(offset: 0, length: 1 << 16)
        #expect(try file.size() == 1 << 16)
        try file.close()
        try FileSystem.rename(dir.file("a.tmp"), to: dir.file("a"))
        try FileSystem.syncDirectory(dir.path)
        #expect(access(dir.file("a"), F_OK) == 0)
        #expect(access(dir.file("a.tmp"), F_OK) != 0)
    }

    @Test("sendfile copies a file range without user-space buffers")
    func sendfileRange() throws {
        let dir = TemporaryDirectory()
        let source = try FileHandle.open(dir.file("src"), [.readWrite, .create])
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
        try bytes.withUnsafeBytes { try source.writeAll($0, at: 0) }
        let target = try FileHandle.open(dir.file("dst"), [.readWrite, .create])
        let sent = try source.send(to: target.descriptor, from: 1000, count: 5000)
        #expect(sent == 5000)
        var back = [UInt8](repeating: 0, count: 5000)
        _ = try back.withUnsafeMutableBytes { try target.readAll(into: $0, at: 0) }
        #expect(back == Array(bytes[1000..<6000]))
    }
}
