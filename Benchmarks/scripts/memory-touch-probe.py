#!/usr/bin/env python3
"""How fast this machine hands out memory: touches N GiB of fresh anonymous memory with memset,
twice in a row, then again after an idle pause. On a VM whose balloon driver reports free pages
to the host, memory freed a few seconds ago has gone back to the host and the next touch is
slow again; a benchmark run that grows the page cache pays the same (Benchmarks/README.md).

Usage: Benchmarks/scripts/memory-touch-probe.py [GIB [PAUSE_SECONDS]]   (default 8 GiB, 20 s)
"""
import ctypes
import mmap
import sys
import time


def touch(gib):
    """Seconds to memset `gib` GiB of a fresh private mapping, which is then unmapped (freed)."""
    size = gib << 30
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        buf = (ctypes.c_char * size).from_buffer(m)
        started = time.monotonic()
        ctypes.memset(ctypes.addressof(buf), 1, size)
        took = time.monotonic() - started
        del buf
    finally:
        m.close()
    return took


def main():
    gib = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    try:
        with open("/sys/module/page_reporting/parameters/page_reporting_order") as f:
            print(f"page_reporting_order: {f.read().strip()}")
    except OSError:
        print("page_reporting_order: not available (no free-page reporting in this kernel)")
    for label, wait in (("first touch", 0), ("again at once", 0), (f"again after {pause:g} s idle", pause)):
        time.sleep(wait)
        took = touch(gib)
        print(f"{label:24} {gib} GiB in {took:6.2f} s: {gib / took:.2f} GiB/s", flush=True)


if __name__ == "__main__":
    main()
