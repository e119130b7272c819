// powercut-fs: a pass-through FUSE file system over a backing directory that loses, when it is
// unmounted, every change to file contents that was not fsynced: what a power cut does to a
// disk (in the spirit of Jepsen's LazyFS).
//
//   powercut-fs BACKING MOUNTPOINT      (foreground; unmount with fusermount3 -u MOUNTPOINT)
//
// Writes, truncations and allocations go through to the backing file at once, so reads see them;
// each also records what it replaced (an undo entry: the old bytes and the old size). fsync and
// fdatasync of a file sync the backing file and forget its undo entries. At unmount the entries
// left are undone, newest first, so each file holds exactly what its last fsync made durable.
// Directory entries (creates, renames, unlinks) are passed through and kept: this models lost
// data, not lost names (the storage simulation in Tests/LogStorageTests models those).
//
// Build: cc -O2 -Wall -o powercut-fs powercut-fs.c $(pkg-config fuse3 --cflags --libs)
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int backing = -1;  // the backing directory, every path is opened relative to it

// One change not yet made durable by an fsync: the range it overwrote (old bytes) and the
// file's size before it.
struct undo {
    struct undo *prev;
    off_t offset;
    size_t length;
    off_t old_size;
    unsigned char bytes[];
};

// Undo chains per backing inode (renames keep the inode), in a small open-hashed table.
struct file_undo {
    struct file_undo *next;
    ino_t ino;
    char path[4096];   // where to find the file at unmount (updated by rename)
    struct undo *last;
    size_t entries;
};

#define BUCKETS 4096
static struct file_undo *table[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long lost_writes;

static const char *rel(const char *path) { return path[1] ? path + 1 : "."; }

static struct file_undo *lookup(ino_t ino, const char *path, int create) {
    struct file_undo **slot = &table[ino % BUCKETS];
    for (struct file_undo *f = *slot; f; f = f->next)
        if (f->ino == ino) return f;
    if (!create) return NULL;
    struct file_undo *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->ino = ino;
    snprintf(f->path, sizeof f->path, "%s", rel(path));
    f->next = *slot;
    *slot = f;
    return f;
}

// Records what [offset, offset + length) of `fd` holds now, and its size, before a change.
static int remember(int fd, const char *path, off_t offset, size_t length) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    size_t old = 0;
    if (offset < st.st_size) {
        off_t end = offset + (off_t)length < st.st_size ? offset + (off_t)length : st.st_size;
        old = (size_t)(end - offset);
    }
    struct undo *u = malloc(sizeof *u + old);
    if (!u) return -ENOMEM;
    u->offset = offset;
    u->length = old;
    u->old_size = st.st_size;
    if (old && pread(fd, u->bytes, old, offset) != (ssize_t)old) {
        free(u);
        return -EIO;
    }
    pthread_mutex_lock(&lock);
    struct file_undo *f = lookup(st.st_ino, path, 1);
    if (!f) {
        pthread_mutex_unlock(&lock);
        free(u);
        return -ENOMEM;
    }
    u->prev = f->last;
    f->last = u;
    f->entries++;
    pthread_mutex_unlock(&lock);
    return 0;
}

static void forget(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    pthread_mutex_lock(&lock);
    struct file_undo *f = lookup(st.st_ino, "/", 0);
    if (f) {
        for (struct undo *u = f->last, *p; u; u = p) { p = u->prev; free(u); }
        f->last = NULL;
        f->entries = 0;
    }
    pthread_mutex_unlock(&lock);
}

static int truncate_fd(int fd, const char *path, off_t size);

static int pc_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    int r = fi ? fstat((int)fi->fh, st) : fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int pc_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
    (void)offset; (void)fi; (void)flags;
    int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return -errno; }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) fill(buf, e->d_name, NULL, 0, 0);
    closedir(d);
    return 0;
}

static int pc_open(const char *path, struct fuse_file_info *fi) {
    // O_DIRECT is not passed on: the backing file's page cache is where unsynced data waits.
    int fd = openat(backing, rel(path), fi->flags & ~(O_DIRECT | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC));
    if (fd < 0) return -errno;
    fi->fh = (uint64_t)fd;
    // Opening with O_TRUNC empties the file: an undoable truncation like any other.
    return (fi->flags & O_TRUNC) ? truncate_fd(fd, path, 0) : 0;
}

static int pc_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
    int fd = openat(backing, rel(path), (fi->flags | O_CREAT) & ~(O_DIRECT | O_TRUNC), mode);
    if (fd < 0) return -errno;
    fi->fh = (uint64_t)fd;
    return (fi->flags & O_TRUNC) ? truncate_fd(fd, path, 0) : 0;
}

static int pc_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    ssize_t n = pread((int)fi->fh, buf, size, offset);
    return n < 0 ? -errno : (int)n;
}

static int pc_write(const char *path, const char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    int r = remember((int)fi->fh, path, offset, size);
    if (r) return r;
    ssize_t n = pwrite((int)fi->fh, buf, size, offset);
    return n < 0 ? -errno : (int)n;
}

static int truncate_fd(int fd, const char *path, off_t size) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    // Shrinking loses the bytes past `size`; growing only changes the size.
    int r = remember(fd, path, size, size < st.st_size ? (size_t)(st.st_size - size) : 0);
    if (r) return r;
    return ftruncate(fd, size) == 0 ? 0 : -errno;
}

static int pc_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
    if (fi) return truncate_fd((int)fi->fh, path, size);
    int fd = openat(backing, rel(path), O_WRONLY);
    if (fd < 0) return -errno;
    int r = truncate_fd(fd, path, size);
    close(fd);
    return r;
}

static int pc_fallocate(const char *path, int mode, off_t offset, off_t length, struct fuse_file_info *fi) {
    // Allocation that may grow the file: undoable by restoring the size.
    int r = remember((int)fi->fh, path, offset, 0);
    if (r) return r;
    return fallocate((int)fi->fh, mode, offset, length) == 0 ? 0 : -errno;
}

static int pc_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
    (void)path;
    int fd = (int)fi->fh;
    if ((datasync ? fdatasync(fd) : fsync(fd)) != 0) return -errno;
    forget(fd);
    return 0;
}

static int pc_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi) {
    (void)datasync; (void)fi;
    int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -errno;
    int r = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return r;
}

static int pc_release(const char *path, struct fuse_file_info *fi) {
    (void)path;
    close((int)fi->fh);
    return 0;
}

static int pc_unlink(const char *path) {
    struct stat st;
    if (fstatat(backing, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_nlink == 1) {
        // The file is gone: nothing of it to undo.
        pthread_mutex_lock(&lock);
        struct file_undo *f = lookup(st.st_ino, path, 0);
        if (f) {
            for (struct undo *u = f->last, *p; u; u = p) { p = u->prev; free(u); }
            f->last = NULL;
            f->entries = 0;
            f->path[0] = 0;
        }
        pthread_mutex_unlock(&lock);
    }
    return unlinkat(backing, rel(path), 0) == 0 ? 0 : -errno;
}

static int pc_rename(const char *from, const char *to, unsigned int flags) {
    if (flags) return -EINVAL;
    struct stat st;
    int have = fstatat(backing, rel(from), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (renameat(backing, rel(from), backing, rel(to)) != 0) return -errno;
    if (have) {
        pthread_mutex_lock(&lock);
        struct file_undo *f = lookup(st.st_ino, from, 0);
        if (f) snprintf(f->path, sizeof f->path, "%s", rel(to));
        pthread_mutex_unlock(&lock);
    }
    return 0;
}

static int pc_mkdir(const char *path, mode_t mode) { return mkdirat(backing, rel(path), mode) == 0 ? 0 : -errno; }
static int pc_rmdir(const char *path) { return unlinkat(backing, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno; }

static int pc_statfs(const char *path, struct statvfs *st) {
    (void)path;
    return fstatvfs(backing, st) == 0 ? 0 : -errno;
}

static int pc_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
    int r = fi ? futimens((int)fi->fh, tv) : utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int pc_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
    int r = fi ? fchmod((int)fi->fh, mode) : fchmodat(backing, rel(path), mode, 0);
    return r == 0 ? 0 : -errno;
}

static int pc_access(const char *path, int mask) { return faccessat(backing, rel(path), mask, 0) == 0 ? 0 : -errno; }

static void *pc_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    (void)conn;
    // Attributes and data come from the backing files each time: nothing cached in the kernel
    // outlives the unmount that undoes the unsynced changes.
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->kernel_cache = 0;
    cfg->use_ino = 1;
    return NULL;
}

// The power cut: every change not fsynced is undone, newest first.
static void pc_destroy(void *data) {
    (void)data;
    unsigned long long files = 0;
    for (int b = 0; b < BUCKETS; b++) {
        for (struct file_undo *f = table[b]; f; f = f->next) {
            if (!f->last || !f->path[0]) continue;
            int fd = openat(backing, f->path, O_WRONLY);
            if (fd < 0) continue;
            files++;
            for (struct undo *u = f->last, *p; u; u = p) {
                p = u->prev;
                if (u->length && pwrite(fd, u->bytes, u->length, u->offset) != (ssize_t)u->length) perror("undo");
                if (ftruncate(fd, u->old_size) != 0) perror("undo size");
                lost_writes++;
                free(u);
            }
            f->last = NULL;
            fsync(fd);
            close(fd);
        }
    }
    fprintf(stderr, "powercut-fs: power cut: %llu unsynced changes undone in %llu files\n", lost_writes, files);
}

static const struct fuse_operations ops = {
    .getattr = pc_getattr, .readdir = pc_readdir, .open = pc_open, .create = pc_create, .read = pc_read,
    .write = pc_write, .truncate = pc_truncate, .fallocate = pc_fallocate, .fsync = pc_fsync,
    .fsyncdir = pc_fsyncdir, .release = pc_release, .unlink = pc_unlink, .rename = pc_rename,
    .mkdir = pc_mkdir, .rmdir = pc_rmdir, .statfs = pc_statfs, .utimens = pc_utimens, .chmod = pc_chmod,
    .access = pc_access, .init = pc_init, .destroy = pc_destroy,
};

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s BACKING MOUNTPOINT\n", argv[0]);
        return 2;
    }
    backing = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (backing < 0) { perror(argv[1]); return 1; }
    char *fuse_argv[] = {argv[0], argv[2], "-f", "-o", "default_permissions,max_threads=16", NULL};
    return fuse_main(5, fuse_argv, &ops, NULL);
}
