#!/usr/bin/env python3
"""How fast this disk and file system take small appends that each wait for an fdatasync,
depending on what the file already holds past the write position: nothing (every sync commits a
new file size to the journal), zeros written and synced beforehand, or fallocated (unwritten)
space. One thread per file, each appending 16,321-byte writes (a 16 KiB batch) and syncing;
prints the rate and the fdatasync latency percentiles.

It explains the group-commit row of storage-vs-fio.sh: on ext4 the syncs of extending files
queue behind journal commits, so more partitions add little.

Usage: Benchmarks/scripts/fdatasync-probe.py [DIR] [SECONDS]   (default /var/tmp, 3 s per run;
needs 8 x 256 MiB of free space in DIR)
"""
import os
import shutil
import sys
import tempfile
import threading
import time

WRITE = 16321
PREFILL = 256 << 20


def run(directory, mode, files, seconds):
    d = tempfile.mkdtemp(prefix="fdatasync-probe-", dir=directory)
    try:
        fds = [os.open(os.path.join(d, f"f{i}"), os.O_CREAT | os.O_WRONLY, 0o644) for i in range(files)]
        zeros = bytes(1 << 20)
        for fd in fds:
            if mode == "zeroed":
                for k in range(PREFILL >> 20):
                    os.pwrite(fd, zeros, k << 20)
                os.fsync(fd)
            elif mode == "fallocated":
                os.posix_fallocate(fd, 0, PREFILL)
                os.fsync(fd)
        os.sync()
        payload = os.urandom(WRITE)
        counts = [0] * files
        latencies = [[] for _ in range(files)]
        stop = time.monotonic() + seconds

        def append(i):
            offset = 0
            while time.monotonic() < stop and offset + WRITE <= PREFILL:
                os.pwrite(fds[i], payload, offset)
                start = time.perf_counter()
                os.fdatasync(fds[i])
                latencies[i].append(time.perf_counter() - start)
                offset += WRITE
                counts[i] += 1

        threads = [threading.Thread(target=append, args=(i,)) for i in range(files)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for fd in fds:
            os.close(fd)
        return sum(counts) / seconds, sorted(x for per in latencies for x in per)
    finally:
        shutil.rmtree(d)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    print(f"pwrite {WRITE} B + fdatasync, one thread per file, under {directory}")
    for mode in ("extending", "zeroed", "fallocated"):
        for files in (1, 8):
            rate, lat = run(directory, mode, files, seconds)

            def pct(p):
                return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
            print(f"{mode:10} files={files}: {rate:8.0f} fdatasyncs/s  {rate * WRITE / 1e6:6.1f} MB/s  "
                  f"fdatasync p50 {pct(0.5):.2f} ms  p99 {pct(0.99):.2f} ms  p99.9 {pct(0.999):.2f} ms", flush=True)


if __name__ == "__main__":
    main()
