#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Records
@testable import LogStorage

final class TempDir {
    let path: String
    init() {
        var template = Array("/var/tmp/sluice-log-XXXXXX".utf8CString)
        _ = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
    deinit { _ = system("rm -rf '\(path)'") }
}

/// A client-style batch (base offset 0) of `count` records with recognisable values.
func makeBatch(_ count: Int, tag: String, timestamp: Int64 = 1_000, valueBytes: Int = 20) -> RecordBatch {
    var builder = RecordBatchBuilder()
    builder.compression = .none
    let inputs = (0..<count).map { i in
        RecordBatchBuilder.Input(key: ByteBuffer(string: "\(tag)-\(i)"),
                                 value: ByteBuffer(string: String(repeating: "v", count: valueBytes) + "\(tag)-\(i)"),
                                 timestamp: timestamp + Int64(i))
    }
    return try! RecordBatch(try! builder.build(inputs))
}

/// Values of every record from `offset` on, with their offsets, read back through the log.
func readAll(_ log: PartitionLog, from offset: Int64 = 0) throws -> [(Int64, String)] {
    var out: [(Int64, String)] = []
    var next = max(offset, log.logStartOffset)
    while next < log.logEndOffset {
        let result = try log.read(from: next, maxBytes: 1 << 20)
        var batches = RecordBatchSequence(result.records)
        var advanced = false
        while let b = batches.next() {
            for r in try b.records() where b.baseOffset + Int64(r.offsetDelta) >= next {
                out.append((b.baseOffset + Int64(r.offsetDelta), String(buffer: r.value!)))
            }
            next = b.nextOffset
            advanced = true
        }
        if !advanced { break }
    }
    return out
}
