import CSluice

/// CRC-32C (Castagnoli), the checksum of Kafka record batches (magic 2).
public enum CRC32C {
    /// The checksum of `bytes`, or `bytes` appended to data whose checksum was `crc`.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        sluice_crc32c(crc, bytes.baseAddress, bytes.count)
    }

    public static func checksum<Bytes: ContiguousBytes>(of bytes: Bytes, continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// The SSE4.2 path (three interleaved streams); the software path where the CPU lacks it.
    public static func hardware(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        sluice_crc32c_hardware(crc, bytes.baseAddress, bytes.count)
    }

    /// The AVX-512 VPCLMULQDQ folding path for inputs of 512 bytes and more (what `checksum`
    /// uses where the CPU has it); the SSE4.2 path below that or without it.
    public static func folded(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        sluice_crc32c_folded(crc, bytes.baseAddress, bytes.count)
    }

    /// The portable slicing-by-8 path.
    public static func software(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        sluice_crc32c_software(crc, bytes.baseAddress, bytes.count)
    }

    /// Whether `checksum` runs on the CPU's crc32 instruction.
    public static var usesHardware: Bool { sluice_crc32c_has_hardware() != 0 }

    /// Whether `checksum` folds long inputs with carry-less multiplies (AVX-512 VPCLMULQDQ).
    public static var usesFolding: Bool { sluice_crc32c_has_folding() != 0 }
}

/// Types whose bytes can be borrowed as one contiguous region.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}
