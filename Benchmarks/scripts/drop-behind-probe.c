/*
 * What a growing page cache costs a writer on this machine, without a broker: one file written
 * sequentially in 1 MiB pwrites at a paced rate, either left to the kernel ("keep") or with
 * drop-behind as sluice.cache.drop.behind.bytes does it ("drop": writeback started a step
 * behind the end with sync_file_range, clean pages more than the window behind dropped with
 * POSIX_FADV_DONTNEED). Prints the writer's CPU-seconds per GB (pwrite's page allocation and
 * copy are all in the writer's system time) and the slowest pwrite, per 512 MiB.
 *
 * On a VM whose balloon driver reports free pages to the host, every page the page cache takes
 * that was not freed moments ago costs a host fault; drop-behind keeps reusing the same pages.
 *
 *   cc -O2 -o /tmp/dbp Benchmarks/scripts/drop-behind-probe.c
 *   /tmp/dbp DIR keep|drop[-fallocated] [MIB [MB_PER_S [WINDOW_MIB]]]   (default 2048 MiB at 200 MB/s, 64 MiB)
 *
 * A rate of 0 writes as fast as it can. "-fallocated" reserves the whole file's blocks first
 * (posix_fallocate, not counted), so ext4's block allocation is out of the comparison. Needs MIB
 * of free space in DIR; the file is removed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_stime.tv_sec + r.ru_utime.tv_sec) + (double)(r.ru_stime.tv_usec + r.ru_utime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    const char *mode = argc > 2 ? argv[2] : "";
    int drop = !strncmp(mode, "drop", 4), fallocated = strstr(mode, "-fallocated") != NULL;
    if ((!drop && strncmp(mode, "keep", 4)) || (strlen(mode) != 4 && !fallocated)) {
        fprintf(stderr, "usage: %s DIR keep|drop[-fallocated] [MIB [MB_PER_S [WINDOW_MIB]]]\n", argv[0]);
        return 2;
    }
    long total = (argc > 3 ? atol(argv[3]) : 2048) << 20;
    double rate = (argc > 4 ? atof(argv[4]) : 200) * 1e6;
    long window = (argc > 5 ? atol(argv[5]) : 64) << 20;
    long chunk = 1 << 20, report = 512L << 20;
    long step = window / 4 > (8 << 20) ? (8 << 20) : (window / 4 < (1 << 20) ? (1 << 20) : window / 4);
    char path[4096];
    snprintf(path, sizeof path, "%s/drop-behind-probe-%d", argv[1], (int)getpid());
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) { perror(path); return 1; }
    if (fallocated && (errno = posix_fallocate(fd, 0, total)) != 0) { perror("posix_fallocate"); unlink(path); return 1; }
    if (fallocated) fsync(fd);
    char *buf = malloc((size_t)chunk);
    memset(buf, 7, (size_t)chunk);
    long written_back = 0, dropped = 0, next = step;
    double t0 = now(), mark_t = t0, mark_cpu = cpu(), slowest = 0, begin_cpu = mark_cpu;
    printf("%s%s, %ld MiB at %s, window %ld MiB\n", drop ? "drop-behind" : "kept by the kernel",
           fallocated ? " (fallocated)" : "", total >> 20,
           rate > 0 ? argv[4] : "full speed", window >> 20);
    for (long off = 0; off < total; off += chunk) {
        if (rate > 0) {
            double due = t0 + (double)off / rate;
            while (now() < due) nanosleep(&(struct timespec){0, 100000}, NULL);
        }
        double a = now();
        if (pwrite(fd, buf, (size_t)chunk, off) != chunk) { perror("pwrite"); unlink(path); return 1; }
        double d = now() - a;
        if (d > slowest) slowest = d;
        long end = off + chunk;
        if (drop && end >= next) {
            long write_to = end - step, drop_to = end - window, drop_from = dropped - step;
            if (drop_from < 0) drop_from = 0;
            if (write_to > written_back) { sync_file_range(fd, written_back, write_to - written_back, SYNC_FILE_RANGE_WRITE); written_back = write_to; }
            if (drop_to > drop_from) { posix_fadvise(fd, drop_from, drop_to - drop_from, POSIX_FADV_DONTNEED); dropped = drop_to; }
            next = end + step;
        }
        if (end % report == 0) {
            double t = now(), c = cpu();
            printf("%6.2f GB: writer %.3f CPU-s/GB, %.0f MB/s, slowest pwrite %.1f ms\n", end / 1e9,
                   (c - mark_cpu) / (report / 1e9), report / 1e6 / (t - mark_t), slowest * 1e3);
            fflush(stdout);
            mark_t = t; mark_cpu = c; slowest = 0;
        }
    }
    printf("all: writer %.3f CPU-s/GB over %.1f s\n", (cpu() - begin_cpu) / (total / 1e9), now() - t0);
    close(fd);
    unlink(path);
    return 0;
}
