// A recycling allocator for large request bodies (see csluice.h). Blocks come in power-of-two
// classes; a freed block goes onto its class's stack while the pool holds less than its limit,
// so the next body of that size lands in memory that is already mapped and likely still cached.
#include "csluice.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { POOL_MIN_SHIFT = 16, POOL_MAX_SHIFT = 26, POOL_CLASSES = POOL_MAX_SHIFT - POOL_MIN_SHIFT + 1 };
// The header in front of every block keeps its class, so free knows where it goes. 64 bytes keep
// the caller's memory 64-byte aligned, as malloc's would be at least 16.
enum { POOL_HEADER = 64, POOL_UNPOOLED = 0xff };

typedef struct block { struct block *next; } block_t;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static block_t *pool_free[POOL_CLASSES];
static size_t pool_cached_bytes;
static size_t pool_limit_bytes = 64u << 20;
static uint64_t pool_hits, pool_misses;

void sluice_body_pool_set_limit(size_t bytes) {
    pthread_mutex_lock(&pool_lock);
    pool_limit_bytes = bytes;
    while (pool_cached_bytes > pool_limit_bytes) {
        int freed = 0;
        for (int c = POOL_CLASSES - 1; c >= 0 && !freed; c--) {
            block_t *b = pool_free[c];
            if (b == NULL) continue;
            pool_free[c] = b->next;
            pool_cached_bytes -= (size_t)1 << (c + POOL_MIN_SHIFT);
            free(b);
            freed = 1;
        }
        if (!freed) break;
    }
    pthread_mutex_unlock(&pool_lock);
}

void sluice_body_pool_stats(uint64_t *hits, uint64_t *misses, uint64_t *cached_bytes) {
    pthread_mutex_lock(&pool_lock);
    *hits = pool_hits;
    *misses = pool_misses;
    *cached_bytes = pool_cached_bytes;
    pthread_mutex_unlock(&pool_lock);
}

static int class_of(size_t total) {
    int shift = POOL_MIN_SHIFT;
    while (shift <= POOL_MAX_SHIFT && ((size_t)1 << shift) < total) shift++;
    return shift <= POOL_MAX_SHIFT ? shift - POOL_MIN_SHIFT : -1;
}

void *sluice_body_pool_alloc(size_t size) {
    if (size > SIZE_MAX - POOL_HEADER) return NULL;
    size_t total = size + POOL_HEADER;
    int c = class_of(total);
    unsigned char *raw = NULL;
    if (c >= 0) {
        pthread_mutex_lock(&pool_lock);
        block_t *b = pool_free[c];
        if (b != NULL) {
            pool_free[c] = b->next;
            pool_cached_bytes -= (size_t)1 << (c + POOL_MIN_SHIFT);
            pool_hits++;
        } else {
            pool_misses++;
        }
        pthread_mutex_unlock(&pool_lock);
        raw = b != NULL ? (unsigned char *)b : malloc((size_t)1 << (c + POOL_MIN_SHIFT));
    } else {
        raw = malloc(total);
    }
    if (raw == NULL) return NULL;
    raw[0] = c >= 0 ? (unsigned char)c : POOL_UNPOOLED;
    return raw + POOL_HEADER;
}

void sluice_body_pool_free(void *ptr) {
    if (ptr == NULL) return;
    unsigned char *raw = (unsigned char *)ptr - POOL_HEADER;
    int c = raw[0];
    if (c != POOL_UNPOOLED) {
        size_t bytes = (size_t)1 << (c + POOL_MIN_SHIFT);
        pthread_mutex_lock(&pool_lock);
        if (pool_cached_bytes + bytes <= pool_limit_bytes) {
            block_t *b = (block_t *)raw;
            b->next = pool_free[c];
            pool_free[c] = b;
            pool_cached_bytes += bytes;
            raw = NULL;
        }
        pthread_mutex_unlock(&pool_lock);
    }
    free(raw);
}

void *sluice_body_pool_realloc(void *ptr, size_t old_size, size_t new_size) {
    void *fresh = sluice_body_pool_alloc(new_size);
    if (fresh == NULL) return NULL;
    if (ptr != NULL) {
        memcpy(fresh, ptr, old_size < new_size ? old_size : new_size);
        sluice_body_pool_free(ptr);
    }
    return fresh;
}
