// File and io_uring helpers that Swift cannot import directly (GNU-only declarations and
// liburing's inline accessors).
#define _GNU_SOURCE
#include "csluice.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

int sluice_o_direct(void) { return O_DIRECT; }
int sluice_falloc_keep_size(void) { return FALLOC_FL_KEEP_SIZE; }
int sluice_falloc_punch_hole(void) { return FALLOC_FL_PUNCH_HOLE; }

int sluice_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    return fallocate(fd, mode, (off_t)offset, (off_t)length) == 0 ? 0 : -errno;
}

int sluice_sync_file_range_write(int fd, int64_t offset, int64_t length) {
    return sync_file_range(fd, (off_t)offset, (off_t)length, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : -errno;
}

int sluice_page_cached(int fd, int64_t offset) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    ssize_t r = preadv2(fd, &iov, 1, (off_t)offset, RWF_NOWAIT);
    if (r >= 0) return 1;
    return errno == EAGAIN ? 0 : -errno;
}

int64_t sluice_splice(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t length,
                      unsigned int flags) {
    loff_t in = off_in ? *off_in : 0, out = off_out ? *off_out : 0;
    ssize_t r = splice(fd_in, off_in ? &in : NULL, fd_out, off_out ? &out : NULL, length, flags);
    if (r < 0) return -errno;
    if (off_in) *off_in = in;
    if (off_out) *off_out = out;
    return r;
}

int sluice_io_uring_disabled_sysctl(void) {
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (!f) return -1;
    int v = -1;
    if (fscanf(f, "%d", &v) != 1) v = -1;
    fclose(f);
    return v;
}

void sluice_sqe_set_data64(struct io_uring_sqe *sqe, uint64_t data) { sqe->user_data = data; }
uint64_t sluice_cqe_get_data64(const struct io_uring_cqe *cqe) { return cqe->user_data; }
void sluice_sqe_set_flags(struct io_uring_sqe *sqe, unsigned flags) { sqe->flags = (uint8_t)flags; }
unsigned sluice_iosqe_io_link(void) { return IOSQE_IO_LINK; }
unsigned sluice_iosqe_fixed_file(void) { return IOSQE_FIXED_FILE; }
unsigned sluice_ioring_fsync_datasync(void) { return IORING_FSYNC_DATASYNC; }

int sluice_uring_probe(struct io_uring *ring, uint8_t *supported, int count) {
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    if (!probe) return -ENOMEM;
    for (int op = 0; op < count; op++) supported[op] = (uint8_t)io_uring_opcode_supported(probe, op);
    io_uring_free_probe(probe);
    return 0;
}
