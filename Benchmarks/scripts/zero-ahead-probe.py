#!/usr/bin/env python3
"""Would zero-filled preallocation make durability `ack` faster? An fdatasync that only
overwrites blocks already written and inside the file size commits no journal transaction, so it
is cheaper than one that extends the file or converts fallocated (unwritten) extents. This probe
measures whether writing zeros ahead of the appends pays for itself.

One file, 16,321-byte appends (a 16 KiB batch), one fdatasync per PER appends (8 by default,
about what a round of the group commit covers in `storage stress --in-flight 16`), for SECONDS:
  extending   appends grow the file;
  fallocated  16 MiB reserved ahead with fallocate(KEEP_SIZE) (sluice.preallocate.step.bytes);
  zeroahead   zeros written AHEAD bytes ahead in CHUNK pieces by the appending thread, each
              handed to writeback at once (sync_file_range WRITE);
  zero-bg     the same zeros written by a second thread.
Prints data MB/s and the fdatasync p50/p99 of each.

Measured here (session 10): the fdatasyncs get about twice as fast (p50 0.18 against 0.36 ms), but
the data rate falls (211-230 against 262-285 MB/s extending, 176-240 with a zeroing thread): writing the
zeros costs as much disk bandwidth as the data, and appends into pages under writeback wait. So
Sluice zeroes ahead only where latency, not bandwidth, is at stake: under durability `ack`, at
most 512 KiB ahead (an fdatasync flushes the whole file, so megabytes of zeros under writeback
delay it), synced in the background, and not while a segment grows faster than 32 MiB/s
(`sluice.zero.ahead.bytes` in docs/configuration.md has the end-to-end figures).

Usage: Benchmarks/scripts/zero-ahead-probe.py [DIR]   (default /var/tmp)
  environment: PER, AHEAD (4 MiB), CHUNK (1 MiB), PROBE_SECONDS (4)
"""
import ctypes
import os
import shutil
import sys
import tempfile
import threading
import time

libc = ctypes.CDLL("libc.so.6", use_errno=True)
SYNC_FILE_RANGE_WRITE = 2
FALLOC_FL_KEEP_SIZE = 1
BATCH = 16321
PER = int(os.environ.get("PER", "8"))
SECONDS = float(os.environ.get("PROBE_SECONDS", "4"))
AHEAD = int(os.environ.get("AHEAD", str(4 << 20)))
CHUNK = int(os.environ.get("CHUNK", str(1 << 20)))
STEP = 16 << 20


def start_writeback(fd, offset, length):
    libc.sync_file_range(ctypes.c_int(fd), ctypes.c_longlong(offset), ctypes.c_longlong(length),
                         ctypes.c_uint(SYNC_FILE_RANGE_WRITE))


def percentiles(latencies):
    latencies.sort()
    return 1000 * latencies[len(latencies) // 2], 1000 * latencies[int(len(latencies) * 0.99)]


def inline(directory, mode):
    d = tempfile.mkdtemp(prefix="zero-ahead-", dir=directory)
    fd = os.open(os.path.join(d, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
    payload, zeros = os.urandom(BATCH), bytes(CHUNK)
    offset = reserved = 0
    latencies = []
    stop = time.monotonic() + SECONDS
    try:
        while time.monotonic() < stop:
            for _ in range(PER):
                if mode == "fallocated" and offset + BATCH > reserved:
                    libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_longlong(reserved), ctypes.c_longlong(STEP))
                    reserved += STEP
                if mode == "zeroahead":
                    while reserved < offset + BATCH + AHEAD:
                        os.pwrite(fd, zeros, reserved)
                        start_writeback(fd, reserved, CHUNK)
                        reserved += CHUNK
                os.pwrite(fd, payload, offset)
                offset += BATCH
            t = time.perf_counter()
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        shutil.rmtree(d)
    return offset / SECONDS / 1e6, percentiles(latencies)


def background(directory):
    d = tempfile.mkdtemp(prefix="zero-ahead-", dir=directory)
    fd = os.open(os.path.join(d, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
    payload, zeros = os.urandom(BATCH), bytes(CHUNK)
    state = {"offset": 0, "zeroed": 0, "stop": False}
    cv = threading.Condition()

    def zeroer():
        while True:
            with cv:
                while not state["stop"] and state["zeroed"] >= state["offset"] + 2 * AHEAD:
                    cv.wait(0.01)
                if state["stop"]:
                    return
                at = state["zeroed"]
            os.pwrite(fd, zeros, at)
            start_writeback(fd, at, CHUNK)
            with cv:
                state["zeroed"] = at + CHUNK
                cv.notify_all()

    thread = threading.Thread(target=zeroer)
    thread.start()
    latencies = []
    stop = time.monotonic() + SECONDS
    try:
        while time.monotonic() < stop:
            for _ in range(PER):
                at = state["offset"]
                with cv:
                    while state["zeroed"] < at + BATCH:
                        cv.wait(0.01)
                os.pwrite(fd, payload, at)
                with cv:
                    state["offset"] = at + BATCH
                    cv.notify_all()
            t = time.perf_counter()
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - t)
    finally:
        with cv:
            state["stop"] = True
            cv.notify_all()
        thread.join()
        os.close(fd)
        shutil.rmtree(d)
    return state["offset"] / SECONDS / 1e6, percentiles(latencies)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"
    print(f"{BATCH}-byte appends, an fdatasync every {PER}, under {directory}")
    for _ in range(2):
        for mode in ("extending", "fallocated", "zeroahead", "zero-bg"):
            rate, (p50, p99) = background(directory) if mode == "zero-bg" else inline(directory, mode)
            print(f"{mode:10} {rate:7.1f} MB/s  fdatasync p50 {p50:.2f} ms  p99 {p99:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
