#!/usr/bin/env python3
"""Side by side, one run: two Sluice binaries (e.g. a commit before and after a change) through
the same kperf workload, 1M x 1 KiB acks=all by default, alternating on fresh brokers so that
drift on a shared machine hits both alike. Prints MB/s and broker CPU-seconds per GB per run and
the means.

    git worktree add /tmp/base <commit> && (cd /tmp/base && swift build -c release --product sluice)
    make release
    Benchmarks/scripts/build-ab.py /tmp/base/.build/release/sluice 4 sluice.io.mode=direct

With AB_WORKLOAD=catchup each run produces a backlog of 40,000 x 16 KiB (655 MB, acks=1, three
partitions) and then times one consumer reading it from the start; the figures are the consume
rate and the broker's CPU over the consume. With drop-behind on, most of the backlog is read
from the disk:
    Benchmarks/scripts/build-ab.py /tmp/base/.build/release/sluice 3 sluice.cache.drop.behind.bytes=67108864

AB_WORKLOAD=cold does the same with a restart between the two steps and the segment files'
pages dropped from the page cache while the broker is down (as after a reboot), so the whole
backlog is read from the disk with the default settings:
    AB_WORKLOAD=cold Benchmarks/scripts/build-ab.py /tmp/base/.build/release/sluice 4

Usage: [AB_WORKLOAD=catchup|cold] Benchmarks/scripts/build-ab.py BASE_BINARY [ROUNDS [OVERRIDE ...]]
(the overrides go to both brokers; the second binary is this checkout's .build/release/sluice)
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402

WORKLOAD = ["-n", "1000000", "-s", "1024", "--acks", "all", "--linger-ms", "5", "--batch-bytes", "1048576",
            "--partitions", "3"]
CATCHUP_RECORDS = 40_000
CATCHUP = ["-n", str(CATCHUP_RECORDS), "-s", "16384", "--acks", "1", "--linger-ms", "5", "--batch-bytes", "1048576",
           "--partitions", "3"]


def drop_cached_logs(directory):
    """fsyncs every segment file under `directory` and drops its pages from the page cache."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if name.endswith(".log"):
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def measured_run(broker, libdir, workload, overrides):
    """One counted run on a started broker: (MB/s, broker CPU-s/GB) of the produce, or of the
    consume that follows a catch-up backlog (after a restart with the logs uncached, for
    `cold`)."""
    if workload in ("catchup", "cold"):
        C.kperf("produce", broker.bootstrap, ["-t", "ab"] + CATCHUP, libdir)
        if workload == "cold":
            broker.stop(keep=True)
            drop_cached_logs(broker.data_dir)
            broker.start(overrides, fresh=False)
        before = broker.cpu_seconds()
        out = C.kperf("consume", broker.bootstrap, ["-t", "ab", "-n", str(CATCHUP_RECORDS)], libdir)
    else:
        C.kperf("produce", broker.bootstrap, ["-t", "warm", "-n", "20000", "-s", "100", "--acks", "1"], libdir)
        before = broker.cpu_seconds()
        out = C.kperf("produce", broker.bootstrap, ["-t", "ab"] + WORKLOAD, libdir)
    cpu = broker.cpu_seconds() - before
    if not out.get("bytes"):
        sys.exit(f"build-ab: the kperf run failed: {out}")
    return out["mb_per_s"], cpu / (out["bytes"] / 1e9)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binaries = {"base": sys.argv[1], "this": os.path.join(C.ROOT, ".build", "release", "sluice")}
    for name, path in binaries.items():
        if not os.path.exists(path):
            sys.exit(f"build-ab: no binary at {path} ({name})")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    overrides = sys.argv[3:]
    workload = os.environ.get("AB_WORKLOAD") or "produce"
    if workload not in ("produce", "catchup", "cold"):
        sys.exit("build-ab: AB_WORKLOAD is unset, catchup or cold")
    C.ensure_kperf()
    libdir = C.librdkafka_dir()
    results = {"base": [], "this": []}
    # Round -1 warms up and is not counted (see receive-ab.py: the first run after a pause paid
    # for memory the host had taken back).
    for r in range(-1, rounds):
        for name in (("this",) if r < 0 else ("base", "this") if r % 2 == 0 else ("this", "base")):
            broker = C.sluice(binaries[name], os.path.join("/var/tmp", f"sluice-build-ab-{os.getpid()}"))
            broker.start(overrides)
            try:
                run = measured_run(broker, libdir, workload, overrides)
            finally:
                broker.stop()
            if r >= 0:
                results[name].append(run)
            label = name if r >= 0 else "warm-up, not counted:"
            what = "produce" if workload == "produce" else "consume"
            print(f"{label:5} {' '.join(overrides) or '(defaults)'}  {what} {run[0]:8.1f} MB/s  {run[1]:.3f} CPU-s/GB", flush=True)
    for name, runs in results.items():
        print(f"{name:5} mean {statistics.mean(x[0] for x in runs):.0f} MB/s, {statistics.mean(x[1] for x in runs):.3f} CPU-s/GB "
              f"({binaries[name]})", flush=True)


if __name__ == "__main__":
    main()
