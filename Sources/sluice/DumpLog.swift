import ArgumentParser
import Foundation
import NIOCore
import Records

/// `sluice dump-log --files 00000000000000000000.log [--print-data-log]`, offline, like Kafka's
/// kafka-dump-log: every batch with its offsets, positions, CRC check, and optionally records;
/// `.index` and `.timeindex` files as their entries.
struct DumpLog: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump-log", abstract: "Print segments and indexes.")

    @Option(name: .customLong("files"), parsing: .upToNextOption, help: "Segment (.log), .index or .timeindex files.")
    var files: [String]

    @Flag(name: .customLong("print-data-log"), help: "Also print each record's key, value and headers.")
    var printData = false

    func run() throws {
        for path in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            print("Dumping \(path)")
            let name = URL(fileURLWithPath: path).lastPathComponent
            let base = Int64(name.prefix(20)) ?? 0
            if path.hasSuffix(".index") {
                for i in stride(from: 0, to: data.count - data.count % 8, by: 8) {
                    let rel = data[i..<(i + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    let pos = data[(i + 4)..<(i + 8)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    print("offset: \(base + Int64(rel)) position: \(pos)")
                }
            } else if path.hasSuffix(".timeindex") {
                for i in stride(from: 0, to: data.count - data.count % 12, by: 12) {
                    let ts = data[i..<(i + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    let rel = data[(i + 8)..<(i + 12)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    print("timestamp: \(Int64(bitPattern: ts)) offset: \(base + Int64(rel))")
                }
            } else {
                var sequence = RecordBatchSequence(ByteBuffer(bytes: data), verifyCRC: false)
                var position = 0
                while let batch = sequence.next() {
                    let valid = batch.computeCRC() == batch.crc
                    print("baseOffset: \(batch.baseOffset) lastOffset: \(batch.lastOffset) count: \(batch.recordCount) "
                          + "baseSequence: \(batch.baseSequence) lastSequence: \(batch.lastSequence) producerId: \(batch.producerId) "
                          + "producerEpoch: \(batch.producerEpoch) partitionLeaderEpoch: \(batch.partitionLeaderEpoch) "
                          + "isTransactional: \(batch.isTransactional) isControl: \(batch.isControl) position: \(position) "
                          + "CreateTime: \(batch.maxTimestamp) size: \(batch.byteCount) magic: 2 "
                          + "compresscodec: \(batch.compression?.description ?? "unknown") crc: \(batch.crc) isvalid: \(valid)")
                    if printData, let records = try? batch.records() {
                        for r in records {
                            let key = r.key.map { String(buffer: $0) } ?? "null"
                            let value = r.value.map { String(buffer: $0) } ?? "null"
                            let headers = r.headers.map { "\($0.key):\($0.value.map { String(buffer: $0) } ?? "null")" }.joined(separator: ",")
                            print("| offset: \(batch.baseOffset + Int64(r.offsetDelta)) CreateTime: \(batch.baseTimestamp + r.timestampDelta) "
                                  + "keySize: \(r.key?.readableBytes ?? -1) valueSize: \(r.value?.readableBytes ?? -1) "
                                  + "headerKeys: [\(headers)] key: \(key) payload: \(value)")
                        }
                    }
                    position += batch.byteCount
                }
                let rest = data.count - position
                if rest > 0 && data[position...].allSatisfy({ $0 == 0 }) {
                    // An active segment's zeros ahead (durability ack) or direct I/O's block padding.
                    print("Found \(rest) bytes of zeros past the last batch at position \(position) (written ahead of an active segment's end, or block padding; no records)")
                } else {
                    if let error = sequence.error { print("Found an invalid batch at position \(position): \(error)") }
                    if sequence.trailingPartialBytes > 0 { print("Found \(sequence.trailingPartialBytes) trailing bytes of a partial batch at position \(position)") }
                }
            }
        }
    }
}
