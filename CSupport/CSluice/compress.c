// Kafka's four codecs over the Debian libraries. Every decoder writes only into the caller's
// buffer and stops with SLUICE_ERR_OUTPUT_FULL at its end, so a decompression bomb costs at
// most the cap the caller chose (plus each library's own bounded working state).
#include "csluice.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zstd.h>
#include <zstd_errors.h>

static const unsigned char xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_BYTES 16
#define XERIAL_BLOCK_BYTES (32 * 1024)   // the block size of Java's and kafka-python's framing

static uint32_t load_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void store_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static int is_xerial(const unsigned char *src, size_t n) {
    return n >= XERIAL_HEADER_BYTES && memcmp(src, xerial_magic, sizeof xerial_magic) == 0;
}

size_t sluice_compress_bound(int codec, size_t n) {
    switch (codec) {
    case SLUICE_CODEC_NONE: return n;
    case SLUICE_CODEC_GZIP: return (size_t)compressBound((uLong)n) + 32;  // + gzip header/trailer
    case SLUICE_CODEC_SNAPPY: return snappy_max_compressed_length(n);
    case SLUICE_CODEC_SNAPPY_XERIAL: {
        size_t blocks = n / XERIAL_BLOCK_BYTES + 1;
        return XERIAL_HEADER_BYTES + blocks * (4 + snappy_max_compressed_length(XERIAL_BLOCK_BYTES));
    }
    case SLUICE_CODEC_LZ4: return LZ4F_compressFrameBound(n, NULL);
    case SLUICE_CODEC_ZSTD: return ZSTD_compressBound(n);
    default: return 0;
    }
}

static int gzip_compress(int level, const unsigned char *src, size_t n, unsigned char *dst,
                         size_t cap, size_t *written) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level < 0 ? Z_DEFAULT_COMPRESSION : level, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return SLUICE_ERR_NOMEM;
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    zs.next_out = dst;
    zs.avail_out = cap > UINT_MAX ? UINT_MAX : (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    *written = zs.total_out;
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? SLUICE_OK : SLUICE_ERR_OUTPUT_FULL;
}

// Decodes one or more concatenated gzip (or zlib) members.
static int gzip_decompress(const unsigned char *src, size_t n, unsigned char *dst, size_t cap,
                           size_t *written) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK) return SLUICE_ERR_NOMEM;
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    size_t out = 0;
    int status = SLUICE_ERR_CORRUPT;
    for (;;) {
        unsigned char probe;
        int probing = out == cap;
        zs.next_out = probing ? &probe : dst + out;
        zs.avail_out = probing ? 1 : (cap - out > UINT_MAX ? UINT_MAX : (uInt)(cap - out));
        uInt before = zs.avail_out;
        uInt in_before = zs.avail_in;
        int rc = inflate(&zs, Z_NO_FLUSH);
        size_t produced = before - zs.avail_out;
        if (probing && produced > 0) { status = SLUICE_ERR_OUTPUT_FULL; break; }
        out += probing ? 0 : produced;
        if (rc == Z_STREAM_END) {
            if (zs.avail_in == 0) { status = SLUICE_OK; break; }
            if (inflateReset(&zs) != Z_OK) break;      // another member follows
            continue;
        }
        if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;   // truncated
        if (rc != Z_OK && rc != Z_BUF_ERROR) break;         // data or memory error
        if (produced == 0 && zs.avail_in == in_before && !probing) break;  // no progress
    }
    *written = out;
    inflateEnd(&zs);
    return status;
}

static int snappy_raw_decompress(const unsigned char *src, size_t n, unsigned char *dst,
                                 size_t cap, size_t *written) {
    size_t need;
    if (snappy_uncompressed_length((const char *)src, n, &need) != SNAPPY_OK) return SLUICE_ERR_CORRUPT;
    if (need > cap) return SLUICE_ERR_OUTPUT_FULL;
    size_t got = cap;
    if (snappy_uncompress((const char *)src, n, (char *)dst, &got) != SNAPPY_OK) return SLUICE_ERR_CORRUPT;
    *written = got;
    return SLUICE_OK;
}

static int snappy_xerial_decompress(const unsigned char *src, size_t n, unsigned char *dst,
                                    size_t cap, size_t *written) {
    size_t pos = XERIAL_HEADER_BYTES, out = 0;
    *written = 0;
    while (pos < n) {
        if (n - pos < 4) return SLUICE_ERR_CORRUPT;
        uint32_t block = load_be32(src + pos);
        pos += 4;
        if (block > n - pos) return SLUICE_ERR_CORRUPT;
        size_t got = 0;
        int rc = snappy_raw_decompress(src + pos, block, dst + out, cap - out, &got);
        if (rc != SLUICE_OK) return rc;
        out += got;
        pos += block;
    }
    *written = out;
    return SLUICE_OK;
}

static int snappy_xerial_compress(const unsigned char *src, size_t n, unsigned char *dst,
                                  size_t cap, size_t *written) {
    if (cap < XERIAL_HEADER_BYTES) return SLUICE_ERR_OUTPUT_FULL;
    memcpy(dst, xerial_magic, sizeof xerial_magic);
    store_be32(dst + 8, 1);   // version
    store_be32(dst + 12, 1);  // minimum compatible version
    size_t out = XERIAL_HEADER_BYTES;
    for (size_t pos = 0; pos < n; pos += XERIAL_BLOCK_BYTES) {
        size_t chunk = n - pos < XERIAL_BLOCK_BYTES ? n - pos : XERIAL_BLOCK_BYTES;
        if (cap - out < 4 + snappy_max_compressed_length(chunk)) return SLUICE_ERR_OUTPUT_FULL;
        size_t len = cap - out - 4;
        if (snappy_compress((const char *)src + pos, chunk, (char *)dst + out + 4, &len) != SNAPPY_OK)
            return SLUICE_ERR_OUTPUT_FULL;
        store_be32(dst + out, (uint32_t)len);
        out += 4 + len;
    }
    *written = out;
    return SLUICE_OK;
}

static int lz4_decompress(const unsigned char *src, size_t n, unsigned char *dst, size_t cap,
                          size_t *written) {
    LZ4F_dctx *ctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION))) return SLUICE_ERR_NOMEM;
    size_t in = 0, out = 0, hint = 1;
    int status = SLUICE_OK;
    while (in < n) {
        unsigned char probe;
        int probing = out == cap;   // output full: does the input still want to produce bytes?
        size_t dst_size = probing ? 1 : cap - out, src_size = n - in;
        hint = LZ4F_decompress(ctx, probing ? &probe : dst + out, &dst_size, src + in, &src_size, NULL);
        if (LZ4F_isError(hint)) { status = SLUICE_ERR_CORRUPT; break; }
        if (probing && dst_size > 0) { status = SLUICE_ERR_OUTPUT_FULL; break; }
        if (!probing) out += dst_size;
        in += src_size;
        if (src_size == 0 && dst_size == 0) { status = SLUICE_ERR_CORRUPT; break; }
    }
    if (status == SLUICE_OK && hint != 0) status = SLUICE_ERR_CORRUPT;  // frame not finished
    LZ4F_freeDecompressionContext(ctx);
    *written = out;
    return status;
}

static int lz4_compress(int level, const unsigned char *src, size_t n, unsigned char *dst,
                        size_t cap, size_t *written) {
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;   // what Kafka's Java producer uses
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.compressionLevel = level < 0 ? 0 : level;
    size_t r = LZ4F_compressFrame(dst, cap, src, n, &prefs);
    if (LZ4F_isError(r)) return SLUICE_ERR_OUTPUT_FULL;
    *written = r;
    return SLUICE_OK;
}

static int zstd_decompress(const unsigned char *src, size_t n, unsigned char *dst, size_t cap,
                           size_t *written) {
    ZSTD_DCtx *ctx = ZSTD_createDCtx();
    if (!ctx) return SLUICE_ERR_NOMEM;
    // A window never needs to be larger than the output allowed, so bound zstd's own buffer too.
    int window_log = 10;
    while (window_log < 27 && ((size_t)1 << window_log) < cap) window_log++;
    ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, window_log);
    ZSTD_inBuffer input = {src, n, 0};
    size_t out = 0, remaining = 1;
    int status = SLUICE_OK;
    for (;;) {
        unsigned char probe;
        int probing = out == cap;
        ZSTD_outBuffer output = {probing ? &probe : dst + out, probing ? 1 : cap - out, 0};
        size_t in_before = input.pos;
        remaining = ZSTD_decompressStream(ctx, &output, &input);
        if (ZSTD_isError(remaining)) {
            // A window larger than the cap allows means the frame wants more output than that.
            status = ZSTD_getErrorCode(remaining) == ZSTD_error_frameParameter_windowTooLarge
                ? SLUICE_ERR_OUTPUT_FULL : SLUICE_ERR_CORRUPT;
            break;
        }
        if (probing && output.pos > 0) { status = SLUICE_ERR_OUTPUT_FULL; break; }
        if (!probing) out += output.pos;
        if (input.pos == input.size && remaining == 0) break;
        if (output.pos == 0 && input.pos == in_before) {
            status = (input.pos == input.size) ? SLUICE_ERR_CORRUPT : (probing ? SLUICE_ERR_OUTPUT_FULL : SLUICE_ERR_CORRUPT);
            break;
        }
    }
    ZSTD_freeDCtx(ctx);
    *written = out;
    return status;
}

int sluice_compress(int codec, int level, const void *src, size_t n, void *dst, size_t cap,
                    size_t *written) {
    *written = 0;
    switch (codec) {
    case SLUICE_CODEC_NONE:
        if (n > cap) return SLUICE_ERR_OUTPUT_FULL;
        memcpy(dst, src, n);
        *written = n;
        return SLUICE_OK;
    case SLUICE_CODEC_GZIP: return gzip_compress(level, src, n, dst, cap, written);
    case SLUICE_CODEC_SNAPPY: {
        if (cap < snappy_max_compressed_length(n)) return SLUICE_ERR_OUTPUT_FULL;
        size_t len = cap;
        if (snappy_compress(src, n, dst, &len) != SNAPPY_OK) return SLUICE_ERR_OUTPUT_FULL;
        *written = len;
        return SLUICE_OK;
    }
    case SLUICE_CODEC_SNAPPY_XERIAL: return snappy_xerial_compress(src, n, dst, cap, written);
    case SLUICE_CODEC_LZ4: return lz4_compress(level, src, n, dst, cap, written);
    case SLUICE_CODEC_ZSTD: {
        size_t r = ZSTD_compress(dst, cap, src, n, level < 0 ? ZSTD_CLEVEL_DEFAULT : level);
        if (ZSTD_isError(r)) return SLUICE_ERR_OUTPUT_FULL;
        *written = r;
        return SLUICE_OK;
    }
    default: return SLUICE_ERR_UNSUPPORTED;
    }
}

int sluice_decompress(int codec, const void *src, size_t n, void *dst, size_t cap,
                      size_t *written) {
    *written = 0;
    switch (codec) {
    case SLUICE_CODEC_NONE:
        if (n > cap) return SLUICE_ERR_OUTPUT_FULL;
        memcpy(dst, src, n);
        *written = n;
        return SLUICE_OK;
    case SLUICE_CODEC_GZIP: return gzip_decompress(src, n, dst, cap, written);
    case SLUICE_CODEC_SNAPPY:
    case SLUICE_CODEC_SNAPPY_XERIAL:
        return is_xerial(src, n) ? snappy_xerial_decompress(src, n, dst, cap, written)
                                 : snappy_raw_decompress(src, n, dst, cap, written);
    case SLUICE_CODEC_LZ4: return lz4_decompress(src, n, dst, cap, written);
    case SLUICE_CODEC_ZSTD: return zstd_decompress(src, n, dst, cap, written);
    default: return SLUICE_ERR_UNSUPPORTED;
    }
}

int64_t sluice_decompressed_size_hint(int codec, const void *src, size_t n) {
    switch (codec) {
    case SLUICE_CODEC_NONE: return (int64_t)n;
    case SLUICE_CODEC_SNAPPY:
    case SLUICE_CODEC_SNAPPY_XERIAL: {
        if (is_xerial(src, n)) return -1;
        size_t len;
        return snappy_uncompressed_length(src, n, &len) == SNAPPY_OK ? (int64_t)len : -1;
    }
    case SLUICE_CODEC_ZSTD: {
        unsigned long long size = ZSTD_getFrameContentSize(src, n);
        if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR) return -1;
        return size > INT64_MAX ? -1 : (int64_t)size;
    }
    default: return -1;
    }
}
