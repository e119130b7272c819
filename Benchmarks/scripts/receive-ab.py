#!/usr/bin/env python3
"""Side by side, one run: broker CPU with `sluice.socket.receive=frames` (large request bodies
read from the socket into buffers of their own) and `=cumulation` (NIO's ByteToMessageHandler,
which copies every frame that spans reads). The modes alternate, each run on a fresh broker, so
drift on a shared machine hits both alike.

Any two broker overrides can be compared the same way, e.g. the I/O modes:
    Benchmarks/scripts/receive-ab.py 3 sluice.io.mode=buffered sluice.io.mode=direct

Usage: Benchmarks/scripts/receive-ab.py [ROUNDS [OVERRIDE_A OVERRIDE_B]]   (default 3 rounds of
sluice.socket.receive=frames against =cumulation; needs `make release`)
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


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if len(sys.argv) not in (1, 2, 4):
        sys.exit(__doc__)
    a, b = sys.argv[2:4] if len(sys.argv) == 4 else ("sluice.socket.receive=frames", "sluice.socket.receive=cumulation")
    binary = os.path.join(C.ROOT, ".build", "release", "sluice")
    if not os.path.exists(binary):
        sys.exit("receive-ab: build the release binary first (make release)")
    C.ensure_kperf()
    libdir = C.librdkafka_dir()
    broker = C.sluice(binary, os.path.join("/var/tmp", f"sluice-receive-ab-{os.getpid()}"))
    for name, args in WORKLOADS:
        results = {a: [], b: []}
        for r in range(rounds):
            for mode in (a, b) if r % 2 == 0 else (b, a):
                broker.start([mode])
                try:
                    C.kperf("produce", broker.bootstrap, ["-t", "warm", "-n", "20000", "-s", "100", "--acks", "1"], libdir)
                    before = broker.cpu_seconds()
                    out = C.kperf("produce", broker.bootstrap, ["-t", "ab"] + args + COMMON, libdir)
                    cpu = broker.cpu_seconds() - before
                finally:
                    broker.stop()
                per_record = 1e6 * cpu / out["records"]
                per_gb = cpu / (out["bytes"] / 1e9)
                results[mode].append((out["mb_per_s"], per_record, per_gb))
                print(f"{name:24} {mode:34} {out['mb_per_s']:8.1f} MB/s  broker CPU {per_record:.3f} us/record  "
                      f"{per_gb:.3f} s/GB", flush=True)
        f = [statistics.mean(x[2] for x in results[a]), statistics.mean(x[0] for x in results[a])]
        c = [statistics.mean(x[2] for x in results[b]), statistics.mean(x[0] for x in results[b])]
        print(f"{name}: mean CPU-s/GB {a} {f[0]:.3f} vs {b} {c[0]:.3f} (ratio {f[0] / c[0]:.2f}); "
              f"MB/s {f[1]:.0f} vs {c[1]:.0f}", flush=True)


if __name__ == "__main__":
    main()
