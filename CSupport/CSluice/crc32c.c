// CRC-32C (Castagnoli). Three paths with identical results:
//  - software: slicing-by-8 tables, portable;
//  - hardware: the SSE4.2 crc32 instruction over three independent streams, so the
//    instruction's 3-cycle latency is hidden; the three partial CRCs are joined with
//    precomputed "advance by N zero bytes" tables (CRC is linear over GF(2));
//  - folded: on CPUs with AVX-512 and VPCLMULQDQ, long inputs are folded 256 bytes at a
//    time with carry-less multiplies (16 of them per 256 bytes, against 32 crc32
//    instructions) down to 16 bytes that the crc32 instruction finishes.
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
static int fold_available;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

// Folding constants. A 16-byte block A that lies D bytes before block B adds A * x^(8D) to
// B modulo P. The block's first 8 bytes are its high-degree half (A_lo * x^64), its last 8
// the low one, so the pair for distance D is (x^(8D+64) mod P, x^(8D) mod P). Each is stored
// as reflect32(x^(N-1) mod P) << 32: with that layout the carry-less product of a reflected
// half and the constant lands bit for bit where B's own coefficients are (the missing factor
// x is the one-bit offset between the two reflected layouts), so it can be XORed into B.
static uint64_t fold_256[2], fold_64[2], fold_48[2], fold_32[2], fold_16[2];

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

// x^n mod P in the normal (unreflected) bit order, P = 0x1EDC6F41 with its x^32 term.
static uint32_t x_pow_mod(size_t n) {
    uint64_t r = 1;
    for (size_t i = 0; i < n; i++) {
        r <<= 1;
        if (r & 0x100000000ull) r ^= 0x11EDC6F41ull;
    }
    return (uint32_t)r;
}

static uint64_t fold_constant(size_t n) {
    uint32_t r = x_pow_mod(n - 1), reflected = 0;
    for (int i = 0; i < 32; i++) if (r & (1u << i)) reflected |= 1u << (31 - i);
    return (uint64_t)reflected << 32;
}

static void set_fold(uint64_t pair[2], size_t distance) {
    pair[0] = fold_constant(8 * distance + 64);
    pair[1] = fold_constant(8 * distance);
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
    set_fold(fold_256, 256);
    set_fold(fold_64, 64);
    set_fold(fold_48, 48);
    set_fold(fold_32, 32);
    set_fold(fold_16, 16);
#if defined(__x86_64__)
    fold_available = hw_available && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul");
#endif
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

#if defined(__x86_64__)
#include <immintrin.h>

#define FOLD_TARGET __attribute__((target("avx512f,avx512bw,vpclmulqdq,pclmul,sse4.2")))

// B ^ A moved forward by the distance `k` was made for, one 16-byte lane at a time.
FOLD_TARGET static inline __m512i fold512(__m512i a, __m512i k, __m512i b) {
    __m512i lo = _mm512_clmulepi64_epi128(a, k, 0x00), hi = _mm512_clmulepi64_epi128(a, k, 0x11);
    return _mm512_ternarylogic_epi64(lo, hi, b, 0x96);  // lo ^ hi ^ b
}

FOLD_TARGET static inline __m128i fold128(__m128i a, const uint64_t pair[2], __m128i b) {
    __m128i k = _mm_set_epi64x((long long)pair[1], (long long)pair[0]);
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x00), _mm_clmulepi64_si128(a, k, 0x11)), b);
}

FOLD_TARGET static inline __m512i broadcast_pair(const uint64_t pair[2]) {
    return _mm512_set_epi64((long long)pair[1], (long long)pair[0], (long long)pair[1], (long long)pair[0],
                            (long long)pair[1], (long long)pair[0], (long long)pair[1], (long long)pair[0]);
}

// Raw CRC state over n >= 256 bytes. The state is XORed into the first four bytes (the same
// as starting from zero over the changed message); four 64-byte accumulators fold forward
// 256 bytes a step, then into one another, to one 16-byte block, whose zero-start CRC
// followed by the tail's is the message's.
FOLD_TARGET static uint32_t fold_raw(uint32_t crc, const unsigned char *p, size_t n) {
    __m512i a0 = _mm512_loadu_si512((const void *)p), a1 = _mm512_loadu_si512((const void *)(p + 64));
    __m512i a2 = _mm512_loadu_si512((const void *)(p + 128)), a3 = _mm512_loadu_si512((const void *)(p + 192));
    a0 = _mm512_xor_si512(a0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
    p += 256; n -= 256;
    const __m512i k256 = broadcast_pair(fold_256);
    while (n >= 256) {
        a0 = fold512(a0, k256, _mm512_loadu_si512((const void *)p));
        a1 = fold512(a1, k256, _mm512_loadu_si512((const void *)(p + 64)));
        a2 = fold512(a2, k256, _mm512_loadu_si512((const void *)(p + 128)));
        a3 = fold512(a3, k256, _mm512_loadu_si512((const void *)(p + 192)));
        p += 256; n -= 256;
    }
    const __m512i k64 = broadcast_pair(fold_64);
    a1 = fold512(a0, k64, a1);
    a2 = fold512(a1, k64, a2);
    a3 = fold512(a2, k64, a3);
    while (n >= 64) {
        a3 = fold512(a3, k64, _mm512_loadu_si512((const void *)p));
        p += 64; n -= 64;
    }
    __m128i x = _mm512_extracti32x4_epi32(a3, 3);
    x = fold128(_mm512_extracti32x4_epi32(a3, 0), fold_48, x);
    x = fold128(_mm512_extracti32x4_epi32(a3, 1), fold_32, x);
    x = fold128(_mm512_extracti32x4_epi32(a3, 2), fold_16, x);
    while (n >= 16) {
        x = fold128(x, fold_16, _mm_loadu_si128((const __m128i *)p));
        p += 16; n -= 16;
    }
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(x, 1));
    return hw_raw((uint32_t)c, p, n);
}
#endif

// Below this the setup and the final folds cost more than they save.
#define FOLD_MIN 512

uint32_t sluice_crc32c_folded(uint32_t crc, const void *data, size_t length) {
    pthread_once(&init_once, crc32c_init);
#if defined(__x86_64__)
    if (fold_available && length >= FOLD_MIN) return ~fold_raw(~crc, (const unsigned char *)data, length);
#endif
    return sluice_crc32c_hardware(crc, data, length);
}

int sluice_crc32c_has_folding(void) {
    pthread_once(&init_once, crc32c_init);
    return fold_available;
}

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
    return sluice_crc32c_folded(crc, data, length);
}

int sluice_crc32c_has_hardware(void) {
    pthread_once(&init_once, crc32c_init);
    return hw_available;
}
