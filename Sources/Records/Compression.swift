import CSluice

public enum CompressionError: Error, Equatable, Sendable {
    /// The decompressed data would exceed the cap (a decompression bomb, or a cap set too low).
    case outputExceedsCap(cap: Int)
    /// The input is not valid for the codec, or is truncated.
    case corrupt(CompressionCodec)
    case outOfMemory
}

/// One-shot compression and capped decompression over the C shim.
public enum Compression {
    /// How snappy output is framed. Kafka brokers and clients accept both when decoding.
    public enum SnappyFraming: Sendable { case raw, xerial }

    /// Our default cap on the decompressed size of one batch's records.
    public static let decompressedBytesMaxDefault = 64 << 20

    public static func compress(
        _ input: UnsafeRawBufferPointer, codec: CompressionCodec, level: Int32 = -1,
        snappyFraming: SnappyFraming = .xerial
    ) throws(CompressionError) -> [UInt8] {
        let cCodec = codec == .snappy && snappyFraming == .xerial ? Int32(SLUICE_CODEC_SNAPPY_XERIAL) : Int32(codec.rawValue)
        let bound = sluice_compress_bound(cCodec, input.count)
        var output = [UInt8](repeating: 0, count: bound)
        var written = 0
        let rc = output.withUnsafeMutableBytes {
            sluice_compress(cCodec, level, input.baseAddress, input.count, $0.baseAddress, bound, &written)
        }
        guard rc == SLUICE_OK else { throw CompressionError.outOfMemory }
        output.removeSubrange(written...)
        return output
    }

    public static func compress(
        _ input: [UInt8], codec: CompressionCodec, level: Int32 = -1, snappyFraming: SnappyFraming = .xerial
    ) throws(CompressionError) -> [UInt8] {
        let result: Result<[UInt8], CompressionError> = input.withUnsafeBytes {
            do throws(CompressionError) {
                return .success(try compress($0, codec: codec, level: level, snappyFraming: snappyFraming))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Decompresses `input`, allocating at most `cap` bytes of output. The buffer starts at a
    /// small multiple of the input (or the size the format declares, if smaller) and doubles up
    /// to the cap only while the input keeps producing: a frame that merely claims a large size
    /// gets no large buffer. Output memory is never zero-filled first.
    public static func decompress(
        _ input: UnsafeRawBufferPointer, codec: CompressionCodec, cap: Int = decompressedBytesMaxDefault
    ) throws(CompressionError) -> [UInt8] {
        precondition(cap >= 0, "negative decompression cap")
        let hint = sluice_decompressed_size_hint(Int32(codec.rawValue), input.baseAddress, input.count)
        if hint > Int64(cap) { throw .outputExceedsCap(cap: cap) }
        let declared = hint >= 0 ? Int(hint) : nil
        var capacity = initialCapacity(declared: declared, inputBytes: input.count, cap: cap)
        while true {
            var rc: Int32 = 0
            let output = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
                var written = 0
                rc = sluice_decompress(Int32(codec.rawValue), input.baseAddress, input.count, buffer.baseAddress, capacity, &written)
                count = rc == Int32(SLUICE_OK) ? written : 0
            }
            switch rc {
            case Int32(SLUICE_OK):
                return output
            case Int32(SLUICE_ERR_OUTPUT_FULL):
                if capacity >= cap { throw .outputExceedsCap(cap: cap) }
                capacity = nextCapacity(capacity, declared: declared, cap: cap)
            case Int32(SLUICE_ERR_NOMEM):
                throw .outOfMemory
            default:
                throw .corrupt(codec)
            }
        }
    }

    /// The first output buffer: four times the input (at least 64 KiB), or the declared size
    /// when that is smaller, never above the cap.
    static func initialCapacity(declared: Int?, inputBytes: Int, cap: Int) -> Int {
        let start = min(cap, max(4 * inputBytes, 64 << 10))
        return declared.map { min($0, start) } ?? start
    }

    /// Doubling, but landing on the declared size when it is on the way.
    static func nextCapacity(_ capacity: Int, declared: Int?, cap: Int) -> Int {
        var next = capacity > cap / 2 ? cap : max(capacity * 2, 1024)
        if let declared, declared > capacity, declared < next { next = declared }
        return next
    }

    public static func decompress(
        _ input: [UInt8], codec: CompressionCodec, cap: Int = decompressedBytesMaxDefault
    ) throws(CompressionError) -> [UInt8] {
        let result: Result<[UInt8], CompressionError> = input.withUnsafeBytes {
            do throws(CompressionError) {
                return .success(try decompress($0, codec: codec, cap: cap))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
