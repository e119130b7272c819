import NIOCore
import Records
@testable import KafkaProtocol

/// Seeded random values for the generated round-trip tests (SplitMix64, so failures replay).
struct ArbitraryGenerator {
    var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { random.next() }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ oneIn: Int) -> Bool { below(oneIn) == 0 }
    mutating func bool() -> Bool { next() & 1 == 1 }

    mutating func integer<T: FixedWidthInteger>(_ type: T.Type) -> T {
        // Favour the edges, where encodings break.
        switch below(6) {
        case 0: return T.min
        case 1: return T.max
        case 2: return 0
        case 3: return T(truncatingIfNeeded: -1)
        default: return T(truncatingIfNeeded: next())
        }
    }

    mutating func double() -> Double {
        [0.0, -1.5, 1e300, Double.leastNonzeroMagnitude, Double(Int32(truncatingIfNeeded: next())) / 7][below(5)]
    }

    mutating func string() -> String {
        let alphabet = Array("abcXYZ09-_.é✓")
        return String((0..<below(12)).map { _ in alphabet[below(alphabet.count)] })
    }

    mutating func bytes() -> [UInt8] {
        (0..<below(24)).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    mutating func records() -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        buffer.writeBytes(bytes())
        return buffer
    }

    mutating func uuid() -> Uuid { Uuid(high: next(), low: next()) }

    mutating func array<T>(_ make: (inout ArbitraryGenerator) -> T) -> [T] {
        var copy = self
        let count = copy.below(4)
        var out: [T] = []
        for _ in 0..<count { out.append(make(&copy)) }
        self = copy
        return out
    }
}

struct RoundTripOutcome: Sendable {
    var failure: String?
}

/// encode -> decode must give the value back, consume every byte, and re-encode identically.
func roundTrip<T: KafkaStruct>(_ value: T, version: Int16) -> RoundTripOutcome {
    let encoded = value.encoded(version: version)
    var reader = encoded
    do {
        let decoded = try T.decode(from: &reader, version: version)
        if reader.readableBytes != 0 {
            return RoundTripOutcome(failure: "\(reader.readableBytes) bytes left over")
        }
        if decoded != value {
            return RoundTripOutcome(failure: "decoded value differs:\n  \(value)\n  \(decoded)")
        }
        if decoded.encoded(version: version) != encoded {
            return RoundTripOutcome(failure: "re-encoding differs")
        }
        return RoundTripOutcome(failure: nil)
    } catch {
        return RoundTripOutcome(failure: "decode failed: \(error)")
    }
}
