import NIOCore
import Testing
@testable import Records

/// The produce path validates records with a raw-memory scanner; `Record`'s general parser is
/// the reference. Both must accept and reject exactly the same bodies.
@Suite("Record validation: fast scanner against the parser")
struct RecordValidationTests {
    struct Rng { var s: UInt64; mutating func next() -> UInt64 { s &+= 0x9E37_79B9_7F4A_7C15; var z = s; z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9; z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB; return z ^ (z >> 31) } }

    static func batch(_ rng: inout Rng) throws -> ByteBuffer {
        let count = 1 + Int(rng.next() % 6)
        let inputs = (0..<count).map { i -> RecordBatchBuilder.Input in
            let key: ByteBuffer? = rng.next() % 3 == 0 ? nil : ByteBuffer(string: String(repeating: "k", count: Int(rng.next() % 20)))
            let value: ByteBuffer? = rng.next() % 5 == 0 ? nil : ByteBuffer(string: String(repeating: "v", count: Int(rng.next() % 300)))
            let headers = (0..<Int(rng.next() % 3)).map { h in
                Record.Header(key: "h\(h)", value: rng.next() % 2 == 0 ? nil : ByteBuffer(string: "x\(h)"))
            }
            return .init(key: key, value: value, headers: headers, timestamp: 1_000 + Int64(i) * Int64(rng.next() % 100_000))
        }
        return try RecordBatchBuilder().build(inputs)
    }

    static func outcome(_ body: () throws -> Void) -> Bool { (try? body()) != nil }

    @Test("valid batches pass both; every mutated body gets the same verdict from both", arguments: 0..<8)
    func agree(seed: UInt64) throws {
        var rng = Rng(s: seed &* 7919 &+ 1)
        var rejected = 0
        for _ in 0..<400 {
            var bytes = try Self.batch(&rng)
            let valid = try RecordBatch(bytes, verifyCRC: false)
            try valid.validateForAppend(deep: true)
            try valid.validateRecordsByParsing()
            // Mutate 1-3 bytes of the records section (after the 61-byte header).
            let recordsStart = RecordBatch.headerBytes
            let span = bytes.readableBytes - recordsStart
            guard span > 0 else { continue }
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let at = recordsStart + Int(rng.next() % UInt64(span))
                let choices: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, UInt8(truncatingIfNeeded: rng.next())]
                bytes.setInteger(choices[Int(rng.next() % UInt64(choices.count))], at: bytes.readerIndex + at)
            }
            guard let mutated = try? RecordBatch(bytes, verifyCRC: false) else { continue }
            for requireKeys in [false, true] {
                let fast = Self.outcome { try mutated.validateForAppend(deep: true, requireKeys: requireKeys) }
                let reference = Self.outcome { try mutated.validateRecordsByParsing(requireKeys: requireKeys) }
                #expect(fast == reference, "seed \(seed), requireKeys \(requireKeys): fast \(fast), parser \(reference)")
                if !fast { rejected += 1 }
            }
        }
        #expect(rejected > 50, "the mutations must produce invalid bodies for the comparison to mean anything")
    }
}
