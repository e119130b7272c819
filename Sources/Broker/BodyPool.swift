import CSluice
@_spi(CustomByteBufferAllocator) import NIOCore

/// Buffers for request bodies read straight from the socket (`sluice.socket.receive=frames`).
/// Their memory comes from CSluice's body pool, which recycles blocks: fresh megabytes from
/// malloc fault and are zeroed page by page on first touch, which cost more than the copy that
/// reading into them saves. The pool is process-wide and bounded by
/// `sluice.socket.receive.pool.bytes`.
enum BodyPool {
    static let allocator = ByteBufferAllocator(
        allocate: { sluice_body_pool_alloc($0) },
        reallocate: { sluice_body_pool_realloc($0, $1, $2) },
        deallocate: { sluice_body_pool_free($0) },
        copy: { $0.copyMemory(from: $1, byteCount: $2) })

    static func setLimit(bytes: Int) { sluice_body_pool_set_limit(bytes) }

    static var statistics: (hits: UInt64, misses: UInt64, cachedBytes: UInt64) {
        var hits: UInt64 = 0, misses: UInt64 = 0, cached: UInt64 = 0
        sluice_body_pool_stats(&hits, &misses, &cached)
        return (hits, misses, cached)
    }
}
