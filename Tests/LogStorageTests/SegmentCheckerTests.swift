#if canImport(Glibc)
import Glibc
#endif
import Testing

/// An independent checker of a partition directory, sharing no code with LogStorage or
/// Records: its own CRC-32C (bitwise), its own big-endian reads. It verifies every batch's CRC,
/// offset continuity across segments, file naming, and that every index entry points at the
/// start of a batch whose base offset it names.
struct SegmentChecker {
    struct Report { var batches = 0; var records: Int64 = 0; var indexEntries = 0; var problems: [String] = [] }

    static func crc32c(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    static func be<T: FixedWidthInteger>(_ b: [UInt8], _ at: Int, _: T.Type) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v = (v << 8) | T(truncatingIfNeeded: b[at + i]) }
        return v
    }

    static func readFile(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    static func check(directory: String, startOffset: Int64? = nil) -> Report {
        var report = Report()
        var names: [String] = []
        if let dir = opendir(directory) {
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name.hasSuffix(".log") { names.append(name) }
            }
            closedir(dir)
        }
        var expected = startOffset
        for name in names.sorted() {
            guard name.count == 24, let base = Int64(name.prefix(20)) else { report.problems.append("bad segment name \(name)"); continue }
            let log = readFile("\(directory)/\(name)") ?? []
            var starts: [Int: Int64] = [:]
            var pos = 0
            while pos < log.count {
                guard pos + 61 <= log.count else { report.problems.append("\(name): partial header at \(pos)"); break }
                let first = be(log, pos, Int64.self)
                let length = Int(be(log, pos + 8, Int32.self))
                let total = length + 12
                guard log[pos + 16] == 2, total >= 61, pos + total <= log.count else { report.problems.append("\(name): bad batch at \(pos)"); break }
                let stored = be(log, pos + 17, UInt32.self)
                if crc32c(log[(pos + 21)..<(pos + total)]) != stored { report.problems.append("\(name): CRC mismatch at \(pos)") }
                let delta = Int64(be(log, pos + 23, Int32.self))
                let count = Int64(be(log, pos + 57, Int32.self))
                if let e = expected, first != e { report.problems.append("\(name): offset \(first) where \(e) was expected") }
                if pos == 0 && first < base { report.problems.append("\(name): first offset \(first) below base \(base)") }
                starts[pos] = first
                expected = first + delta + 1
                report.batches += 1
                report.records += count
                pos += total
            }
            let index = readFile("\(directory)/\(name.prefix(20)).index") ?? []
            for i in stride(from: 0, to: index.count - index.count % 8, by: 8) {
                let rel = Int64(be(index, i, UInt32.self)), position = Int(be(index, i + 4, UInt32.self))
                if rel == 0 && position == 0 && (i > 0 || starts[0] == nil) { continue }  // preallocated tail of an active index
                report.indexEntries += 1
                if starts[position] != base + rel { report.problems.append("\(name).index entry \(i / 8) -> \(base + rel)@\(position) is not a batch start") }
            }
        }
        return report
    }
}

@Suite("Independent segment checker")
struct SegmentCheckerSelfTests {
    @Test("its CRC-32C agrees with the RFC 3720 vector")
    func crcVector() {
        #expect(SegmentChecker.crc32c(ArraySlice(Array("123456789".utf8))) == 0xE306_9283)
    }
}
