// copytrace: an LD_PRELOAD library that counts the bytes a process copies with memcpy and
// memmove, and for copies of at least COPYTRACE_MIN bytes (default 512) the call stacks they come
// from. At exit it writes a report to $COPYTRACE_OUT: totals, then one line per stack
// ("bytes calls object+offset ..."), for Benchmarks/scripts/zero-copy.py to symbolize.
//
// Build: cc -O2 -shared -fPIC -o copytrace.so copytrace.c -ldl
// Copies the compiler inlines (small fixed sizes) never reach memcpy and are not counted; copies
// of record-sized buffers always do.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH 12
#define SLOTS 8192

struct site {
        uint64_t hash;
        uint64_t bytes, calls;
        int depth;
        void *frames[DEPTH];
};

static struct site table[SLOTS];
static atomic_flag lock = ATOMIC_FLAG_INIT;
static _Atomic uint64_t total_bytes, total_calls, big_bytes, big_calls, dropped;
static size_t min_size = 512;
static void *(*real_memcpy)(void *, const void *, size_t);
static void *(*real_memmove)(void *, const void *, size_t);
static __thread int inside;

static void *slow_copy(void *d, const void *s, size_t n) {
        unsigned char *dp = d;
        const unsigned char *sp = s;
        if (dp < sp)
                for (size_t i = 0; i < n; i++) dp[i] = sp[i];
        else
                for (size_t i = n; i > 0; i--) dp[i - 1] = sp[i - 1];
        return d;
}

__attribute__((constructor)) static void init(void) {
        inside = 1;
        real_memcpy = dlsym(RTLD_NEXT, "memcpy");
        real_memmove = dlsym(RTLD_NEXT, "memmove");
        const char *m = getenv("COPYTRACE_MIN");
        if (m) min_size = (size_t)strtoull(m, NULL, 10);
        void *warm[2];
        backtrace(warm, 2);  // loads libgcc_s now, not inside a copy
        inside = 0;
}

static void record(size_t n) {
        atomic_fetch_add(&total_bytes, n);
        atomic_fetch_add(&total_calls, 1);
        if (n < min_size || inside) return;
        atomic_fetch_add(&big_bytes, n);
        atomic_fetch_add(&big_calls, 1);
        inside = 1;
        void *frames[DEPTH + 2];
        int depth = backtrace(frames, DEPTH + 2) - 2;  // drop record() and the wrapper
        if (depth < 0) depth = 0;
        uint64_t h = 1469598103934665603ull;
        for (int i = 0; i < depth; i++) h = (h ^ (uint64_t)(uintptr_t)frames[i + 2]) * 1099511628211ull;
        while (atomic_flag_test_and_set(&lock)) {}
        for (int probe = 0; probe < SLOTS; probe++) {
                struct site *s = &table[(h + probe) % SLOTS];
                if (s->calls == 0) {
                        s->hash = h;
                        s->depth = depth;
                        for (int i = 0; i < depth; i++) s->frames[i] = frames[i + 2];
                }
                if (s->hash == h) {
                        s->bytes += n;
                        s->calls += 1;
                        goto done;
                }
        }
        atomic_fetch_add(&dropped, n);
done:
        atomic_flag_clear(&lock);
        inside = 0;
}

void *memcpy(void *d, const void *s, size_t n) {
        if (!real_memcpy) return slow_copy(d, s, n);
        record(n);
        return real_memcpy(d, s, n);
}

void *memmove(void *d, const void *s, size_t n) {
        if (!real_memmove) return slow_copy(d, s, n);
        record(n);
        return real_memmove(d, s, n);
}

__attribute__((destructor)) static void report(void) {
        const char *path = getenv("COPYTRACE_OUT");
        if (!path) return;
        inside = 1;
        FILE *f = fopen(path, "w");
        if (!f) return;
        fprintf(f, "total_bytes %llu\ntotal_calls %llu\nbig_bytes %llu\nbig_calls %llu\nmin_size %zu\nunrecorded_bytes %llu\n",
                (unsigned long long)total_bytes, (unsigned long long)total_calls, (unsigned long long)big_bytes,
                (unsigned long long)big_calls, min_size, (unsigned long long)dropped);
        for (int i = 0; i < SLOTS; i++) {
                struct site *s = &table[i];
                if (!s->calls) continue;
                fprintf(f, "site %llu %llu", (unsigned long long)s->bytes, (unsigned long long)s->calls);
                for (int k = 0; k < s->depth; k++) {
                        Dl_info info;
                        if (dladdr(s->frames[k], &info) && info.dli_fname)
                                fprintf(f, " %s+0x%lx", info.dli_fname,
                                        (unsigned long)((char *)s->frames[k] - (char *)info.dli_fbase) - 1);
                        else
                                fprintf(f, " ?+%p", s->frames[k]);
                }
                fprintf(f, "\n");
        }
        fclose(f);
}
