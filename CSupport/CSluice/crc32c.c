// CRC-32C (Castagnoli). Two paths with identical results:
//  - software: slicing-by-8 tables, portable;
//  - hardware: the SSE4.2 crc32 instruction over three independent streams, so the
//    instruction's 3-cycle latency is hidden; the three partial CRCs are joined with
//    precomputed "advance by N zero bytes" tables (CRC is linear over GF(2)).
#include "csluice.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t sw_table[8][256];
// shift_long[k][b] = raw CRC state `b << 8k` advanced over LONG_BLOCK zero bytes.
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static int hw_available;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t hw_raw(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) { c = _mm_crc32_u8((uint32_t)c, *p++); n--; }
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; n -= 8; }
    while (n > 0) { c = _mm_crc32_u8((uint32_t)c, *p++); n--; }
    return (uint32_t)c;
}

__attribute__((target("sse4.2")))
static uint32_t hw_zeros(uint32_t crc, size_t n) {
    uint64_t c = crc;
    for (size_t i = 0; i < n / 8; i++) c = _mm_crc32_u64(c, 0);
    return (uint32_t)c;
}
#endif

static uint32_t sw_raw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n > 0 && ((uintptr_t)p & 7) != 0) { crc = sw_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8); n--; }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4); memcpy(&hi, p + 4, 4);   // little-endian host assumed (x86_64, aarch64)
        lo ^= crc;
        crc = sw_table[7][lo & 0xff] ^ sw_table[6][(lo >> 8) & 0xff] ^
              sw_table[5][(lo >> 16) & 0xff] ^ sw_table[4][lo >> 24] ^
              sw_table[3][hi & 0xff] ^ sw_table[2][(hi >> 8) & 0xff] ^
              sw_table[1][(hi >> 16) & 0xff] ^ sw_table[0][hi >> 24];
        p += 8; n -= 8;
    }
    while (n > 0) { crc = sw_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8); n--; }
    return crc;
}

// Raw state advanced over n zero bytes, bit by bit through the software table (init only).
static uint32_t sw_zeros(uint32_t crc, size_t n) {
    for (size_t i = 0; i < n; i++) crc = sw_table[0][crc & 0xff] ^ (crc >> 8);
    return crc;
}

static void build_shift_table(uint32_t table[4][256], size_t zeros) {
    // The map state -> state advanced over `zeros` bytes is linear, so it is enough to
    // advance the 32 basis vectors and combine them.
    uint32_t basis[32];
    for (int bit = 0; bit < 32; bit++) {
#if defined(__x86_64__)
        basis[bit] = hw_available ? hw_zeros(1u << bit, zeros) : sw_zeros(1u << bit, zeros);
#else
        basis[bit] = sw_zeros(1u << bit, zeros);
#endif
    }
    for (int k = 0; k < 4; k++) {
        for (int b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++) if (b & (1 << i)) v ^= basis[8 * k + i];
            table[k][b] = v;
        }
    }
}

static void crc32c_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        sw_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            sw_table[t][i] = (sw_table[t - 1][i] >> 8) ^ sw_table[0][sw_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    hw_available = __builtin_cpu_supports("sse4.2");
#endif
    build_shift_table(shift_long, LONG_BLOCK);
    build_shift_table(shift_short, SHORT_BLOCK);
}

static inline uint32_t apply_shift(uint32_t table[4][256], uint32_t crc) {
    return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^
           table[3][crc >> 24];
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t hw_interleaved(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c0 = crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) { c0 = _mm_crc32_u8((uint32_t)c0, *p++); n--; }
    // Three streams of LONG_BLOCK, then of SHORT_BLOCK, each joined by a table lookup.
    while (n >= 3 * LONG_BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *end = p + LONG_BLOCK;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, p, 8); memcpy(&w1, p + LONG_BLOCK, 8); memcpy(&w2, p + 2 * LONG_BLOCK, 8);
            c0 = _mm_crc32_u64(c0, w0); c1 = _mm_crc32_u64(c1, w1); c2 = _mm_crc32_u64(c2, w2);
            p += 8;
        } while (p < end);
        c0 = apply_shift(shift_long, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = apply_shift(shift_long, (uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * LONG_BLOCK; n -= 3 * LONG_BLOCK;
    }
    while (n >= 3 * SHORT_BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *end = p + SHORT_BLOCK;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, p, 8); memcpy(&w1, p + SHORT_BLOCK, 8); memcpy(&w2, p + 2 * SHORT_BLOCK, 8);
            c0 = _mm_crc32_u64(c0, w0); c1 = _mm_crc32_u64(c1, w1); c2 = _mm_crc32_u64(c2, w2);
            p += 8;
        } while (p < end);
        c0 = apply_shift(shift_short, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = apply_shift(shift_short, (uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * SHORT_BLOCK; n -= 3 * SHORT_BLOCK;
    }
    return hw_raw((uint32_t)c0, p, n);
}
#endif

uint32_t sluice_crc32c_software(uint32_t crc, const void *data, size_t length) {
    pthread_once(&init_once, crc32c_init);
    return ~sw_raw(~crc, (const unsigned char *)data, length);
}

uint32_t sluice_crc32c_hardware(uint32_t crc, const void *data, size_t length) {
    pthread_once(&init_once, crc32c_init);
#if defined(__x86_64__)
    if (hw_available) return ~hw_interleaved(~crc, (const unsigned char *)data, length);
#endif
    return ~sw_raw(~crc, (const unsigned char *)data, length);
}

uint32_t sluice_crc32c(uint32_t crc, const void *data, size_t length) {
    return sluice_crc32c_hardware(crc, data, length);
}

int sluice_crc32c_has_hardware(void) {
    pthread_once(&init_once, crc32c_init);
    return hw_available;
}
