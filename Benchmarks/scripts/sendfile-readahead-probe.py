#!/usr/bin/env python3
"""Does a pread before each sendfile, on the same open file, cost the kernel's read-ahead? No
broker: a file of MIB MiB of random bytes is written under DIR, its pages dropped from the page
cache, then sent to a local socket in 1 MiB sendfiles (a thread drains the other end), one
round per mode, repeated ROUNDS times:

  same     a 64 KiB pread at each chunk's start on the file sendfile reads (as a Sluice fetch
           reads batch headers before sending the batches)
  second   the same preads on a second open of the file
  none     no preads

Prints MB/s and the process's CPU-s/GB (both threads) per run. Benchmarks/README.md,
"Catching up from the disk", has the figures.

Usage: Benchmarks/scripts/sendfile-readahead-probe.py DIR [MIB [ROUNDS]]   (default 1024 MiB, 3 rounds)
"""
import os
import resource
import socket
import sys
import threading
import time

CHUNK = 1 << 20


def run(path, mode):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    header_fd = os.open(path, os.O_RDONLY) if mode == "second" else fd
    a, b = socket.socketpair()

    def drain():
        received = 0
        while received < size:
            data = b.recv(CHUNK)
            if not data:
                break
            received += len(data)
    reader = threading.Thread(target=drain)
    reader.start()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
    position = 0
    try:
        while position < size:
            if mode != "none":
                os.pread(header_fd, 64 << 10, position)
            sent = 0
            while sent < CHUNK and position + sent < size:
                sent += os.sendfile(a.fileno(), fd, position + sent, CHUNK - sent)
            position += sent
        reader.join()
    finally:
        a.close()
        b.close()
        if header_fd != fd:
            os.close(header_fd)
        os.close(fd)
    seconds, r1 = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return size / seconds / 1e6, cpu / (size / 1e9)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    path = os.path.join(sys.argv[1], f"sendfile-probe-{os.getpid()}.bin")
    try:
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(CHUNK))
        for _ in range(rounds):
            for mode in ("same", "none", "second"):
                mb_s, cpu = run(path, mode)
                print(f"{mode:6}  {mb_s:7.0f} MB/s  {cpu:.2f} CPU-s/GB", flush=True)
    finally:
        os.remove(path)


if __name__ == "__main__":
    main()
