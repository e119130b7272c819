import Benchmark
import Records
#if canImport(Glibc)
import Glibc
#endif

/// CRC-32C throughput for the three paths and compression round trips. Throughput: one benchmark
/// iteration checksums `bytes` bytes, so bytes/s = bytes × iterations/s (printed as GB/s by
/// `crcSummary`, run with `swift run -c release Foundation --crc-summary`).
let benchmarks: @Sendable () -> Void = {
    let sizes = [1 << 10, 16 << 10, 1 << 20]
    let buffers: [Int: UnsafeMutableRawBufferPointer] = Dictionary(uniqueKeysWithValues: sizes.map { size in
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        for i in 0..<size { b[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
        return (size, b)
    })
    let configuration = Benchmark.Configuration(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(2)
    )
    for size in sizes {
        let input = UnsafeRawBufferPointer(buffers[size]!)
        Benchmark("CRC32C hardware \(size / 1024) KiB", configuration: configuration) { benchmark in
            for _ in benchmark.scaledIterations { blackHole(CRC32C.hardware(input)) }
        }
        Benchmark("CRC32C folded \(size / 1024) KiB", configuration: configuration) { benchmark in
            for _ in benchmark.scaledIterations { blackHole(CRC32C.folded(input)) }
        }
        Benchmark("CRC32C software \(size / 1024) KiB", configuration: configuration) { benchmark in
            for _ in benchmark.scaledIterations { blackHole(CRC32C.software(input)) }
        }
    }
    let sample = Array(UnsafeRawBufferPointer(buffers[1 << 20]!))
    for codec in CompressionCodec.allCases where codec != .none {
        let compressed = try! Compression.compress(sample, codec: codec)
        Benchmark("decompress \(codec) 1 MiB", configuration: .init(metrics: [.throughput, .wallClock, .mallocCountTotal], maxDuration: .seconds(2))) { benchmark in
            for _ in benchmark.scaledIterations { blackHole(try! Compression.decompress(compressed, codec: codec)) }
        }
    }
}
