/// Kafka's 128-bit UUID (topic ids, directory ids), written as 16 big-endian bytes and shown in
/// Kafka's form: URL-safe base64 without padding.
public struct Uuid: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public static let zero = Uuid(high: 0, low: 0)

    /// A random version-4 UUID that is neither zero nor shown starting with "-" (as Kafka avoids).
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> Uuid {
        while true {
            var u = Uuid(high: generator.next(), low: generator.next())
            u.high = (u.high & ~0xF000) | 0x4000                      // version 4
            u.low = (u.low & ~(0xC000_0000_0000_0000)) | 0x8000_0000_0000_0000  // IETF variant
            if u != .zero && !u.description.hasPrefix("-") { return u }
        }
    }

    public static func random() -> Uuid {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } +
            (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    public var description: String {
        let b = bytes
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            let chunk = Array(b[i..<min(i + 3, b.count)])
            let n = (UInt32(chunk[0]) << 16) | (chunk.count > 1 ? UInt32(chunk[1]) << 8 : 0) | (chunk.count > 2 ? UInt32(chunk[2]) : 0)
            let chars = chunk.count + 1
            for j in 0..<chars { out.append(Self.alphabet[Int((n >> (18 - 6 * UInt32(j))) & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses Kafka's base64 form.
    public init?(_ text: String) {
        var values: [UInt8] = []
        for c in text.utf8 {
            guard let v = Self.alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt8(v))
        }
        guard values.count == 22 else { return nil }
        var bits: [UInt8] = []
        var acc: UInt32 = 0, n = 0
        for v in values {
            acc = (acc << 6) | UInt32(v); n += 6
            if n >= 8 { n -= 8; bits.append(UInt8(truncatingIfNeeded: acc >> UInt32(n))) }
        }
        guard bits.count == 16 else { return nil }
        high = bits[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bits[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
