import CSluice
import Testing

/// CSluice's body pool (the memory behind request bodies read straight from the socket).
/// Process-wide state: the tests run serialized and restore the limit.
@Suite("Request body pool", .serialized)
struct BodyPoolTests {
    static func stats() -> (hits: UInt64, misses: UInt64, cached: UInt64) {
        var h: UInt64 = 0, m: UInt64 = 0, c: UInt64 = 0
        sluice_body_pool_stats(&h, &m, &c)
        return (h, m, c)
    }

    @Test("a freed block is handed out again for a body of its class, with its bytes usable")
    func recycles() throws {
        sluice_body_pool_set_limit(64 << 20)
        defer { sluice_body_pool_set_limit(64 << 20) }
        let first = try #require(sluice_body_pool_alloc(1_000_000))
        first.initializeMemory(as: UInt8.self, repeating: 0xAB, count: 1_000_000)
        sluice_body_pool_free(first)
        let before = Self.stats()
        let second = try #require(sluice_body_pool_alloc(900_000))
        #expect(second == first)
        #expect(Self.stats().hits == before.hits + 1)
        second.storeBytes(of: 7, toByteOffset: 899_999, as: UInt8.self)
        sluice_body_pool_free(second)
    }

    @Test("the pool keeps no more than its limit; lowering the limit frees what is cached")
    func bounded() throws {
        sluice_body_pool_set_limit(3 << 20)
        defer { sluice_body_pool_set_limit(64 << 20) }
        let blocks = (0..<6).map { _ in sluice_body_pool_alloc(1 << 20)! }  // 2 MiB class each (header)
        blocks.forEach { sluice_body_pool_free($0) }
        #expect(Self.stats().cached <= 3 << 20)
        sluice_body_pool_set_limit(0)
        #expect(Self.stats().cached == 0)
    }

    @Test("sizes outside the classes and realloc keep their contents")
    func unpooledAndRealloc() throws {
        let small = try #require(sluice_body_pool_alloc(10))
        small.copyMemory(from: [UInt8](1...10), byteCount: 10)
        let grown = try #require(sluice_body_pool_realloc(small, 10, 200_000))
        #expect(Array(UnsafeRawBufferPointer(start: grown, count: 10)) == [UInt8](1...10))
        sluice_body_pool_free(grown)
        let huge = try #require(sluice_body_pool_alloc(80 << 20))  // beyond the largest class
        huge.storeBytes(of: 1, toByteOffset: (80 << 20) - 1, as: UInt8.self)
        sluice_body_pool_free(huge)
    }
}
