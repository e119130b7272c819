import NIOCore
import Records

/// The record-batch parser: splitting a records field, header checks, CRC, record parsing and
/// decompression under a small cap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecordBatch(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    for verify in [true, false] {
        var batches = RecordBatchSequence(buffer, verifyCRC: verify)
        while let batch = batches.next() {
            _ = try? batch.validateForAppend(deep: true)
            _ = try? batch.records(decompressedBytesMax: 1 << 20)
        }
    }
    return 0
}

// SwiftPM links executables with main defined as <Target>_main; hand it to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("FuzzRecordBatch_main")
public func FuzzRecordBatchMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzRecordBatch(data, size) }
}
