// CSluice: the thin C layer under Sluice. It exports what Swift cannot import well
// (inline helpers, macros, GNU-only constants, SIMD intrinsics) and holds no policy.
#ifndef CSLUICE_H
#define CSLUICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <liburing.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- files ---------------------------------------------------------------------------------

/// O_DIRECT, which Glibc only declares under _GNU_SOURCE.
int sluice_o_direct(void);
/// sync_file_range(2) with SYNC_FILE_RANGE_WRITE (start writeback, do not wait); 0 or -errno.
int sluice_sync_file_range_write(int fd, int64_t offset, int64_t length);
/// fallocate(2); returns 0 or -errno.
int sluice_fallocate(int fd, int mode, int64_t offset, int64_t length);
/// FALLOC_FL_KEEP_SIZE / FALLOC_FL_PUNCH_HOLE.
int sluice_falloc_keep_size(void);
int sluice_falloc_punch_hole(void);
/// Whether the page holding `offset` is in the page cache: a one-byte preadv2(2) with RWF_NOWAIT,
/// which does not start or wait for a read. 1 cached (or at or past the end of the file), 0 not
/// (or still being read in), -errno when the probe itself fails (e.g. EOPNOTSUPP).
int sluice_page_cached(int fd, int64_t offset);
/// splice(2) between a pipe and a file or socket; returns bytes moved or -errno.
int64_t sluice_splice(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t length,
                      unsigned int flags);
/// The sysctl that can switch io_uring off: 0 enabled, 1 unprivileged off, 2 off, -1 unknown.
int sluice_io_uring_disabled_sysctl(void);

// ---- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ---------------------------------

/// Extends a finished CRC-32C (pass 0 to start) over `length` bytes, choosing the fastest path
/// the CPU has (folded, then SSE4.2, then software).
uint32_t sluice_crc32c(uint32_t crc, const void *data, size_t length);
/// Portable table-driven path (slicing by 8).
uint32_t sluice_crc32c_software(uint32_t crc, const void *data, size_t length);
/// SSE4.2 path with three interleaved streams; falls back to software when unavailable.
uint32_t sluice_crc32c_hardware(uint32_t crc, const void *data, size_t length);
/// 1 when the SSE4.2 crc32 instruction is used by sluice_crc32c.
int sluice_crc32c_has_hardware(void);
/// AVX-512 VPCLMULQDQ folding for inputs of 512 bytes and more, the SSE4.2 path below that or
/// where the CPU lacks it.
uint32_t sluice_crc32c_folded(uint32_t crc, const void *data, size_t length);
/// 1 when sluice_crc32c folds long inputs with VPCLMULQDQ.
int sluice_crc32c_has_folding(void);

// ---- compression with Kafka's framings ------------------------------------------------------

enum {
    SLUICE_CODEC_NONE = 0,
    SLUICE_CODEC_GZIP = 1,
    SLUICE_CODEC_SNAPPY = 2,          // raw snappy (what librdkafka sends)
    SLUICE_CODEC_LZ4 = 3,             // LZ4 frame format
    SLUICE_CODEC_ZSTD = 4,
    SLUICE_CODEC_SNAPPY_XERIAL = 0x102 // compression only: the framing Java/Python clients send
};

enum {
    SLUICE_OK = 0,
    SLUICE_ERR_OUTPUT_FULL = -1,  // the output would exceed the caller's cap
    SLUICE_ERR_CORRUPT = -2,      // malformed or truncated input
    SLUICE_ERR_NOMEM = -3,
    SLUICE_ERR_UNSUPPORTED = -4,  // unknown codec
};

/// Bytes of output that sluice_compress may need for `length` input bytes.
size_t sluice_compress_bound(int codec, size_t length);
/// Compresses into dst[0..<capacity]; *written gets the size. level < 0 means the codec default.
int sluice_compress(int codec, int level, const void *src, size_t length, void *dst,
                    size_t capacity, size_t *written);
/// Decompresses into dst[0..<capacity], never writing or allocating past it (beyond the codec's
/// own bounded working state). SLUICE_CODEC_SNAPPY accepts raw and xerial-framed input.
int sluice_decompress(int codec, const void *src, size_t length, void *dst, size_t capacity,
                      size_t *written);
/// The decompressed size recorded in the input's header, or -1 when the format does not say.
int64_t sluice_decompressed_size_hint(int codec, const void *src, size_t length);

// ---- io_uring -------------------------------------------------------------------------------

/// io_uring_cqe_get_data64 etc. are inline; these keep Swift independent of liburing's version.
void sluice_sqe_set_data64(struct io_uring_sqe *sqe, uint64_t data);
uint64_t sluice_cqe_get_data64(const struct io_uring_cqe *cqe);
void sluice_sqe_set_flags(struct io_uring_sqe *sqe, unsigned flags);
unsigned sluice_iosqe_io_link(void);
unsigned sluice_iosqe_fixed_file(void);
unsigned sluice_ioring_fsync_datasync(void);
/// Fills `supported` (length IORING_OP_LAST or `count`) with 1/0 per opcode; returns -errno.
int sluice_uring_probe(struct io_uring *ring, uint8_t *supported, int count);

// ---- request body pool ------------------------------------------------------------------------

/// Large request bodies are read straight from the socket into buffers of their own. Fresh
/// malloc'd megabytes fault and are zeroed page by page on first touch, which cost more than the
/// copy they replace; these functions recycle blocks in power-of-two classes (64 KiB to 64 MiB)
/// up to a byte limit (default 64 MiB) shared by the process. Thread-safe.
void *sluice_body_pool_alloc(size_t size);
void *sluice_body_pool_realloc(void *ptr, size_t old_size, size_t new_size);
void sluice_body_pool_free(void *ptr);
/// Bytes the pool may keep; lowering it frees cached blocks.
void sluice_body_pool_set_limit(size_t bytes);
void sluice_body_pool_stats(uint64_t *hits, uint64_t *misses, uint64_t *cached_bytes);

#ifdef __cplusplus
}
#endif
#endif
