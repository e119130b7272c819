/*
 * How a file in the page cache best reaches a reader on this machine's loopback, without a
 * broker: one sender pushes the file over a TCP connection on 127.0.0.1 to a reader process
 * (1 MiB reads), either with sendfile ("sendfile", as Sluice's fetch path does) or with write()
 * from a read-only mapping of the file ("write": the kernel copies the pages into the socket's
 * buffers; nothing is copied in user space). Prints MB/s and each side's CPU-seconds per GB.
 *
 * On a NIC sendfile saves the copy. On loopback it does not: the reader copies the bytes out of
 * the socket either way, and with sendfile the sender builds each segment from page-cache pages
 * through a pipe (`perf record -g -- /tmp/lsp FILE sendfile` shows where the time goes).
 *
 *   cc -O2 -o /tmp/lsp Benchmarks/scripts/loopback-send-probe.c
 *   dd if=/dev/urandom of=/var/tmp/lsp.dat bs=1M count=1024
 *   for i in 1 2 3 4; do /tmp/lsp /var/tmp/lsp.dat sendfile; /tmp/lsp /var/tmp/lsp.dat write; done
 *   rm /var/tmp/lsp.dat
 *
 * The file is read once before the timed part, so that it is in the page cache (it must fit in
 * free memory). An optional third argument sets the bytes per sendfile or write call (default 1 MiB). The
 * reader checks that it received the whole file; the run fails (exit 1) if it did not.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* The reader: drains the connection, checks it got `expected` bytes, prints its own CPU per GB. */
static void read_all(const struct sockaddr_in *address, off_t expected) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (const struct sockaddr *)address, sizeof *address) != 0) die("connect");
    size_t capacity = 1 << 20;
    char *buffer = malloc(capacity);
    if (!buffer) die("malloc");
    double total = 0;
    ssize_t n;
    while ((n = read(s, buffer, capacity)) > 0) total += (double)n;
    if (n < 0) die("read");
    if (total != (double)expected) {
        fprintf(stderr, "reader: got %.0f of %lld bytes\n", total, (long long)expected);
        _exit(1);
    }
    printf("  reader %.3f CPU-s/GB\n", cpu_seconds() / (total / 1e9));
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[2], "sendfile") != 0 && strcmp(argv[2], "write") != 0)) {
        fprintf(stderr, "usage: %s FILE sendfile|write [BYTES_PER_CALL]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[2];
    long chunk = 1L << 20;
    if (argc > 3) {
        char *end;
        chunk = strtol(argv[3], &end, 10);
        if (*argv[3] == '\0' || *end != '\0' || chunk <= 0) {
            fprintf(stderr, "BYTES_PER_CALL must be a positive whole number, not '%s'\n", argv[3]);
            return 2;
        }
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open");
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0) die("lseek");
    if (size == 0) {
        fprintf(stderr, "%s is empty\n", argv[1]);
        return 2;
    }

    /* Read the file once first: the probe measures a file in the page cache, not the disk. */
    {
        char *scratch = malloc(1 << 20);
        if (!scratch) die("malloc");
        ssize_t n;
        off_t at = 0;
        while ((n = pread(fd, scratch, 1 << 20, at)) > 0) at += n;
        if (n < 0) die("pread");
        free(scratch);
    }

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(listener, 1) != 0 || getsockname(listener, (struct sockaddr *)&address, &length) != 0)
        die("listen");
    pid_t reader = fork();
    if (reader < 0) die("fork");
    if (reader == 0) read_all(&address, size);
    int connection = accept(listener, NULL, NULL);
    if (connection < 0) die("accept");
    const char *mapped = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) die("mmap");

    double start = now(), cpu_start = cpu_seconds();
    off_t offset = 0;
    while (offset < size) {
        size_t count = (size_t)(size - offset < chunk ? size - offset : chunk);
        ssize_t sent;
        if (strcmp(mode, "sendfile") == 0) {
            off_t position = offset;
            sent = sendfile(connection, fd, &position, count);
        } else {
            sent = write(connection, mapped + offset, count);
        }
        if (sent <= 0) die(mode);
        offset += sent;
    }
    shutdown(connection, SHUT_WR);
    int status;
    if (waitpid(reader, &status, 0) < 0) die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the reader failed; no figures\n");
        return 1;
    }
    double seconds = now() - start, cpu = cpu_seconds() - cpu_start;
    printf("%s, %ld bytes a call: %.0f MB/s, sender %.3f CPU-s/GB\n", mode, chunk, (double)size / seconds / 1e6,
           cpu / ((double)size / 1e9));
    return 0;
}
