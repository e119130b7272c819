import Foundation
import Testing
import Records

@Suite("CRC-32C")
struct CRC32CTests {
    @Test("RFC 3720 and well-known vectors")
    func knownVectors() {
        #expect(CRC32C.checksum(of: Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum(of: [UInt8]()) == 0)
        // RFC 3720 B.4: 32 bytes of zeros, of 0xFF, ascending and descending.
        #expect(CRC32C.checksum(of: [UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum(of: [UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(of: (0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum(of: (0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    /// The CPU's feature flags as the kernel reports them (empty where /proc/cpuinfo has none).
    static func cpuFlags() -> Set<String> {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: ":").last!.split(separator: " ").map(String.init))
    }

    @Test("the paths in use are the ones this CPU's features allow (checked against /proc/cpuinfo)")
    func dispatchFollowsTheCPU() {
        let flags = Self.cpuFlags()
        #expect(CRC32C.usesHardware == flags.contains("sse4_2"), "flags: sse4_2 \(flags.contains("sse4_2"))")
        let folding = flags.contains("sse4_2") && ["avx512f", "avx512bw", "vpclmulqdq", "pclmulqdq"].allSatisfy(flags.contains)
        #expect(CRC32C.usesFolding == folding)
    }

    @Test("hardware equals software for every length 0...4096 at every alignment 0...7, continuing any state")
    func hardwareEqualsSoftware() {
        expectEqualsSoftwareAtEveryLengthAndAlignment(seed: 0x5EED, path: "hardware") { slice, state in
            CRC32C.hardware(slice, continuing: state)
        }
    }

    @Test("large inputs cross the interleaved-stream boundaries identically")
    func largeInputs() {
        let byteCount = 3 * 8192 * 4 + 3 * 256 * 3 + 77
        expectEqualsSoftware(
            lengths: [3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 3 * 256 * 5 + 3, byteCount - 1, byteCount],
            starts: [0, 1, 5], byteCount: byteCount, seed: 42, paths: [("hardware", { CRC32C.hardware($0) })])
    }

    @Test("the folded path equals software for every length 0...4096 at every alignment 0...7, continuing any state")
    func foldedEqualsSoftware() {
        // Without AVX-512 VPCLMULQDQ this checks the SSE4.2 fallback again; the machines here
        // have it (Intel Xeon with avx512f and vpclmulqdq), and `usesFolding` says which ran.
        expectEqualsSoftwareAtEveryLengthAndAlignment(seed: 0xF01D, path: "folded (in use: \(CRC32C.usesFolding))") { slice, state in
            CRC32C.folded(slice, continuing: state)
        }
    }

    @Test("the folded path on long inputs: every 256-, 64- and 16-byte remainder, and a megabyte")
    func foldedLongInputs() {
        let byteCount = (1 << 20) + 300
        expectEqualsSoftware(
            lengths: Array(8192..<(8192 + 257)) + [1 << 20, (1 << 20) + 1, (1 << 20) + 255, byteCount - 3],
            starts: [3], byteCount: byteCount, seed: 7,
            paths: [("folded", { CRC32C.folded($0) }), ("checksum", { CRC32C.checksum($0) })])
    }

    @Test("continuing a checksum equals checksumming the concatenation")
    func continuation() {
        let a = Array("record batch ".utf8), b = Array("continued across two buffers".utf8)
        let whole = CRC32C.checksum(of: a + b)
        let split = CRC32C.checksum(of: b, continuing: CRC32C.checksum(of: a))
        #expect(whole == split)
    }

    /// Compares `candidate` with the software table over every slice of 0...4096 bytes at offsets 0...7 of one
    /// random buffer, each with a fresh random initial state, and records the first difference.
    private func expectEqualsSoftwareAtEveryLengthAndAlignment(
        seed: UInt64, path: String,
        _ candidate: (UnsafeRawBufferPointer, UInt32) -> UInt32
    ) {
        var generator = SplitMix64(seed: seed)
        let storage = (0..<(4096 + 8)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        storage.withUnsafeBytes { all in
            for start in 0..<8 {
                for length in 0...4096 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    let state = UInt32(truncatingIfNeeded: generator.next())
                    let got = candidate(slice, state), want = CRC32C.software(slice, continuing: state)
                    if got != want {
                        Issue.record("\(path) differs at start \(start) length \(length): \(got), software \(want)")
                        return
                    }
                }
            }
        }
    }

    /// Compares each of `paths` with the software table on slices of one random buffer of
    /// `byteCount` bytes: every length in `lengths` at every offset in `starts` that fits.
    private func expectEqualsSoftware(
        lengths: [Int], starts: [Int], byteCount: Int, seed: UInt64,
        paths: [(name: String, checksum: (UnsafeRawBufferPointer) -> UInt32)]
    ) {
        var generator = SplitMix64(seed: seed)
        let bytes = (0..<byteCount).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        bytes.withUnsafeBytes { all in
            for length in lengths {
                for start in starts where start + length <= all.count {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    let want = CRC32C.software(slice)
                    for path in paths {
                        #expect(path.checksum(slice) == want, "\(path.name), length \(length) start \(start)")
                    }
                }
            }
        }
    }
}
