import Foundation
import Testing
import CSluice
@testable import Records

@Suite("Compression")
struct CompressionTests {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    static func fixture(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(name)))
    }

    static func sample(count: Int, seed: UInt64) -> [UInt8] {
        // Half random, half repetitive: compressible but not trivially.
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { i in i % 64 < 32 ? UInt8(truncatingIfNeeded: generator.next()) : UInt8(i % 7) }
    }

    @Test("round trips for every codec and size", arguments: CompressionCodec.allCases)
    func roundTrip(codec: CompressionCodec) throws {
        for count in [0, 1, 100, 4096, 70_000, 1 << 20] {
            let input = Self.sample(count: count, seed: UInt64(count))
            let compressed = try Compression.compress(input, codec: codec)
            let output = try Compression.decompress(compressed, codec: codec)
            #expect(output == input, "\(codec) size \(count)")
        }
    }

    @Test("raw snappy round trips and both framings decode through one codec")
    func snappyFramings() throws {
        let input = Self.sample(count: 100_000, seed: 9)
        let raw = try Compression.compress(input, codec: .snappy, snappyFraming: .raw)
        let xerial = try Compression.compress(input, codec: .snappy, snappyFraming: .xerial)
        #expect(Array(xerial.prefix(8)) == [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00])
        #expect(raw.first != 0x82)
        #expect(try Compression.decompress(raw, codec: .snappy) == input)
        #expect(try Compression.decompress(xerial, codec: .snappy) == input)
    }

    @Test("decodes what other implementations wrote",
          arguments: [("plain.txt.gz", CompressionCodec.gzip), ("plain.txt.lz4", .lz4), ("plain.txt.zst", .zstd),
                      ("plain.txt.snappy-raw", .snappy), ("plain.txt.snappy-xerial", .snappy)])
    func foreignFixtures(file: String, codec: CompressionCodec) throws {
        let plain = try Self.fixture("plain.txt")
        #expect(plain.count == 100 * 1024)
        let decoded = try Compression.decompress(try Self.fixture(file), codec: codec)
        #expect(decoded == plain)
    }

    @Test("a decompression bomb stops at the cap", arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
    func bombStopsAtCap(codec: CompressionCodec) throws {
        let bomb = try Compression.compress([UInt8](repeating: 0, count: 32 << 20), codec: codec)
        #expect(bomb.count < 2 << 20)
        let cap = 1 << 20
        #expect(throws: CompressionError.outputExceedsCap(cap: cap)) {
            _ = try Compression.decompress(bomb, codec: codec, cap: cap)
        }
        // Exactly at the cap still decodes.
        let fits = try Compression.compress([UInt8](repeating: 0, count: cap), codec: codec)
        #expect(try Compression.decompress(fits, codec: codec, cap: cap).count == cap)
    }

    @Test("the C decoders never write past the caller's buffer", arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
    func guardPageAfterOutput(codec: CompressionCodec) throws {
        // The output buffer ends exactly at an inaccessible page: a write past the cap would crash.
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let capPages = 16
        let region = mmap(nil, (capPages + 1) * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        defer { munmap(region, (capPages + 1) * page) }
        #expect(mprotect(region + capPages * page, page, PROT_NONE) == 0)
        let bomb = try Compression.compress([UInt8](repeating: 0x41, count: 8 << 20), codec: codec)
        var written = 0
        let rc = bomb.withUnsafeBytes {
            sluice_decompress(Int32(codec.rawValue), $0.baseAddress, $0.count, region, capPages * page, &written)
        }
        #expect(rc == Int32(SLUICE_ERR_OUTPUT_FULL))
        #expect(written <= capPages * page)
    }

    @Test("a declared size over the cap is refused before decoding", arguments: [CompressionCodec.snappy, .zstd])
    func declaredSizeOverCap(codec: CompressionCodec) throws {
        let big = try Compression.compress([UInt8](repeating: 7, count: 4 << 20), codec: codec, snappyFraming: .raw)
        #expect(throws: CompressionError.outputExceedsCap(cap: 1000)) {
            _ = try Compression.decompress(big, codec: codec, cap: 1000)
        }
    }

    @Test("the output buffer starts at a small multiple of the input, not at the size a frame claims")
    func outputGrowsFromTheInput() throws {
        // A 100-byte frame claiming 60 MB (within a 64 MiB cap) gets a 64 KiB buffer first.
        #expect(Compression.initialCapacity(declared: 60_000_000, inputBytes: 100, cap: 64 << 20) == 64 << 10)
        #expect(Compression.initialCapacity(declared: 500, inputBytes: 100, cap: 64 << 20) == 500)
        #expect(Compression.initialCapacity(declared: nil, inputBytes: 1 << 20, cap: 64 << 20) == 4 << 20)
        #expect(Compression.initialCapacity(declared: nil, inputBytes: 1 << 20, cap: 1 << 20) == 1 << 20)
        // Doubling lands on a declared size on the way, and stops at the cap.
        #expect(Compression.nextCapacity(64 << 10, declared: 100_000, cap: 64 << 20) == 100_000)
        #expect(Compression.nextCapacity(64 << 10, declared: 60_000_000, cap: 64 << 20) == 128 << 10)
        #expect(Compression.nextCapacity(40 << 20, declared: nil, cap: 64 << 20) == 64 << 20)
        // Real data far above 4x its compressed size still decodes whole through the growth.
        for codec in [CompressionCodec.gzip, .snappy, .lz4, .zstd] {
            let original = [UInt8](repeating: 3, count: 8 << 20)
            let packed = try Compression.compress(original, codec: codec, snappyFraming: .raw)
            #expect(try Compression.decompress(packed, codec: codec, cap: 16 << 20) == original)
        }
    }

    @Test("corrupt and truncated input is rejected, never crashes", arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
    func corruptInput(codec: CompressionCodec) throws {
        let input = Self.sample(count: 50_000, seed: 3)
        let good = try Compression.compress(input, codec: codec)
        // Truncated.
        #expect(throws: CompressionError.corrupt(codec)) {
            _ = try Compression.decompress(Array(good.prefix(good.count / 2)), codec: codec)
        }
        // Garbage.
        var generator = SplitMix64(seed: 11)
        let garbage = (0..<2000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        #expect(throws: (any Error).self) { _ = try Compression.decompress(garbage, codec: codec) }
        // Random single-byte flips: either an error or some output, but no crash or over-cap output.
        for i in 0..<200 {
            var damaged = good
            let position = Int(generator.next() % UInt64(damaged.count))
            damaged[position] ^= UInt8(truncatingIfNeeded: i | 1)
            if let out = try? Compression.decompress(damaged, codec: codec, cap: 1 << 20) {
                #expect(out.count <= 1 << 20)
            }
        }
    }

    @Test("codec numbers follow Kafka's batch attributes")
    func codecNumbers() {
        #expect(CompressionCodec(attributes: 0x0013) == .lz4)       // transactional + lz4
        #expect(CompressionCodec(attributes: 0x0004) == .zstd)
        #expect(CompressionCodec(attributes: 0x0007) == nil)
        #expect(CompressionCodec.allCases.map(\.rawValue) == [0, 1, 2, 3, 4])
    }
}
