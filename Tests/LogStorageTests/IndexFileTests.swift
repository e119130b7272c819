#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import LogStorage

@Suite("Index files")
struct IndexFileTests {
    /// How many of the first `bytes` of the file are in the page cache (mincore on a mapping of
    /// our own, which reports the file's pages whether or not the index's mapping touched them).
    static func residentPages(_ path: String, bytes: Int) -> Int {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        guard fd >= 0, let base = mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0), base != MAP_FAILED else { return -1 }
        defer { munmap(base, bytes) }
        var vec = [UInt8](repeating: 0, count: (bytes + 4095) / 4096)
        guard mincore(base, bytes, &vec) == 0 else { return -1 }
        return vec.filter { $0 & 1 == 1 }.count
    }

    @Test("a reserved step is written (in the page cache) before the first entry is stored into its mapping, and entries across steps read back")
    func reservationsArePopulated() throws {
        let dir = TempDir()
        let path = "\(dir.path)/00000000000000000000.index"
        let index = try OffsetIndex(path: path, baseOffset: 0, mappedBytes: 10 << 20)
        #expect(Self.residentPages(path, bytes: IndexFile.reserveStep) == 0, "a new index file holds no pages yet")
        // The first store into a page the mapping must fault in from the file took milliseconds
        // on the appending thread (fallocate reserved blocks but left the pages out of the cache).
        #expect(index.storage.reserveNext())
        let step = IndexFile.reserveStep
        #expect(Self.residentPages(path, bytes: step) == step / 4096, "the reserved step is not in the page cache")
        // Entries past several steps: each reservation writes only past the stored entries.
        let count = 3 * step / OffsetIndex.entryBytes + 17
        for i in 0..<count { #expect(index.append(offset: Int64(i) * 10, position: i * 4096)) }
        #expect(index.entryCount == count)
        for i in stride(from: 0, to: count, by: 997) {
            #expect(index.lookup(Int64(i) * 10 + 5) == (Int64(i) * 10, i * 4096))
        }
        #expect(index.lookup(Int64(count - 1) * 10) == (Int64(count - 1) * 10, (count - 1) * 4096))
        // Trimmed and reopened, the file holds exactly the entries.
        try index.storage.trim()
        let reopened = try OffsetIndex(path: path, baseOffset: 0, mappedBytes: 0)
        #expect(reopened.entryCount == count)
        #expect(reopened.lookup(Int64(count / 2) * 10) == (Int64(count / 2) * 10, count / 2 * 4096))
    }
}
