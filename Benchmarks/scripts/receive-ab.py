#!/usr/bin/env python3
"""Side by side, one run: broker CPU with `sluice.socket.receive=frames` (large request bodies
read from the socket into buffers of their own) and `=cumulation` (NIO's ByteToMessageHandler,
which copies every frame that spans reads). The modes alternate, each run on a fresh broker, so
drift on a shared machine hits both alike.

Any two broker overrides can be compared the same way, e.g. the I/O modes:
    Benchmarks/scripts/receive-ab.py 3 sluice.io.mode=buffered sluice.io.mode=direct
A side may hold several overrides, separated by spaces (quote it), e.g. fsync before ack with
buffered appends written inline and on the commit threads' ring:
    Benchmarks/scripts/receive-ab.py 3 "sluice.durability=ack" "sluice.durability=ack sluice.io.buffered.submit=ring"

Usage: Benchmarks/scripts/receive-ab.py [ROUNDS [OVERRIDE_A OVERRIDE_B]]   (default 3 rounds of
sluice.socket.receive=frames against =cumulation; needs `make release`). AB_WORKLOAD=100 or
AB_WORKLOAD=1024 runs only the workload of that record size. AB_RECORDS=N changes the record
count of both workloads, e.g. a sustained 4 GB run that outgrows what this VM keeps backed:
    AB_RECORDS=4000000 AB_WORKLOAD=1024 Benchmarks/scripts/receive-ab.py 3 \
        sluice.cache.drop.behind.bytes=0 sluice.cache.drop.behind.bytes=268435456
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402

WORKLOADS = [
    ("2M x 100 B, acks=1", ["-n", "2000000", "-s", "100", "--acks", "1"]),
    ("1M x 1 KiB, acks=all", ["-n", "1000000", "-s", "1024", "--acks", "all"]),
]
COMMON = ["--linger-ms", "5", "--batch-bytes", "1048576", "--partitions", "3"]


def machine_busy_seconds():
    """CPU-seconds the whole machine spent busy (all processes and kernel threads: the client,
    and the kernel's writeback workers, which broker CPU does not count), from /proc/stat:
    user, nice, system, irq and softirq; not idle, iowait or steal (the host's time)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = [int(x) for x in f.readline().split()[1:8]]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if len(sys.argv) not in (1, 2, 4):
        sys.exit(__doc__)
    a, b = sys.argv[2:4] if len(sys.argv) == 4 else ("sluice.socket.receive=frames", "sluice.socket.receive=cumulation")
    broker, libdir = C.release_broker("receive-ab")
    only = os.environ.get("AB_WORKLOAD")
    records = os.environ.get("AB_RECORDS")
    for name, args in WORKLOADS:
        if only and args[args.index("-s") + 1] != only:
            continue
        if records:
            args = ["-n", records] + args[2:]
            name = f"{int(records):,} x {name.split(' x ', 1)[1]}"
        results = {a: [], b: []}
        # Round -1 warms up and is not counted: on this VM memory the guest freed a few seconds
        # earlier goes back to the host (free-page reporting), and the first run that needs more
        # page cache than the run before it freed paid for that (Benchmarks/README.md).
        for r in range(-1, rounds):
            for mode in ((a,) if r < 0 else (a, b) if r % 2 == 0 else (b, a)):
                broker.start(mode.split())
                try:
                    # The measured topic exists before the clock starts (creating it is not measured).
                    C.kperf("produce", broker.bootstrap, ["-t", "ab", "-n", "1000", "-s", "100", "--acks", "1", "--partitions", "3"], libdir)
                    before, machine = broker.cpu_seconds(), machine_busy_seconds()
                    out = C.kperf("produce", broker.bootstrap, ["-t", "ab"] + args + COMMON, libdir)
                    cpu = broker.cpu_seconds() - before
                    machine = machine_busy_seconds() - machine
                finally:
                    broker.stop()
                per_record = 1e6 * cpu / out["records"]
                per_gb = cpu / (out["bytes"] / 1e9)
                machine_per_gb = machine / (out["bytes"] / 1e9)
                if r >= 0:
                    results[mode].append((out["mb_per_s"], per_record, per_gb, machine_per_gb))
                print(f"{name:24} {mode if r >= 0 else 'warm-up, not counted':34} {out['mb_per_s']:8.1f} MB/s  broker CPU {per_record:.3f} us/record  "
                      f"{per_gb:.3f} s/GB  (whole machine, client included: {machine_per_gb:.3f} s/GB)", flush=True)
        f = [statistics.mean(x[i] for x in results[a]) for i in (2, 0, 3)]
        c = [statistics.mean(x[i] for x in results[b]) for i in (2, 0, 3)]
        print(f"{name}: mean CPU-s/GB {a} {f[0]:.3f} vs {b} {c[0]:.3f} (ratio {f[0] / c[0]:.2f}); "
              f"MB/s {f[1]:.0f} vs {c[1]:.0f}; whole machine {f[2]:.3f} vs {c[2]:.3f} s/GB", flush=True)


if __name__ == "__main__":
    main()
