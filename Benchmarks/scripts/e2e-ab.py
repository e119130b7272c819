#!/usr/bin/env python3
"""End-to-end latency side by side, one run: two sets of broker overrides, alternating on fresh
brokers, each round one kperf e2e run (acks=all, 1 KiB records, producer and consumer in one
process) at a fixed rate. Prints p50/p99/p99.9 per run and the median of each side.

Usage: Benchmarks/scripts/e2e-ab.py [ROUNDS [RATE [OVERRIDES_A OVERRIDES_B]]]
  default: 4 rounds at 10,000 records/s of "sluice.durability=ack sluice.preallocate.step.bytes=0"
  against "sluice.durability=ack"; a side may hold several overrides separated by spaces.
  E2E_LINGER_MS (default 0) is the producer's linger.ms. E2E_PAUSE_S (default 0) idles that
  many seconds before each run, so that a run does not start right after the previous run's
  data (and its page cache) was deleted: on a VM that hands freed memory back to its host a few
  seconds after it is freed, back-to-back runs can reuse that memory and paused ones cannot
  (Benchmarks/README.md, "Why the first run is slow").
  Needs `make release`.
  E2E_BASE_BINARY=PATH runs side A on that binary (e.g. a build of an earlier commit) and side B
  on this checkout's, so two builds compare with the same or different overrides.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402


def main():
    if len(sys.argv) not in (1, 2, 3, 5):
        sys.exit(__doc__)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    a, b = (sys.argv[3:5] if len(sys.argv) == 5
            else ("sluice.durability=ack sluice.preallocate.step.bytes=0", "sluice.durability=ack"))
    linger = os.environ.get("E2E_LINGER_MS", "0")
    pause = float(os.environ.get("E2E_PAUSE_S", "0"))
    broker, libdir = C.release_broker("e2e-ab")
    brokers = {a: broker, b: broker}
    base = os.environ.get("E2E_BASE_BINARY")
    if base:
        a = "base: " + a
        brokers = {a: C.sluice(base, os.path.join("/var/tmp", f"sluice-e2e-ab-base-{os.getpid()}")), b: broker}
    count = max(2000, rate * 10)  # ten seconds at the rate
    results = {a: [], b: []}
    for r in range(rounds):
        for side in ((a, b) if r % 2 == 0 else (b, a)):
            if pause > 0:
                time.sleep(pause)  # not a synchronisation: the memory state under test
            brokers[side].start(side.removeprefix("base: ").split())
            try:
                cpu = brokers[side].cpu_seconds()
                out = C.kperf("e2e", brokers[side].bootstrap, ["-t", "e2e", "-n", str(count), "-s", "1024", "--rate", str(rate),
                                                        "--partitions", "3", "--linger-ms", linger], libdir)
                out["broker_cpu_s_per_gb"] = round((brokers[side].cpu_seconds() - cpu) / (count * 1024 / 1e9), 3)
            finally:
                brokers[side].stop()
            results[side].append(out)
            print(f"{side:60} p50 {out.get('e2e_ms_p50')} ms  p99 {out.get('e2e_ms_p99')} ms  p99.9 {out.get('e2e_ms_p999')} ms"
                  f"  broker {out['broker_cpu_s_per_gb']} CPU-s/GB", flush=True)
    for side in (a, b):
        got = [x for x in results[side] if x.get("e2e_ms_p99") is not None]
        if got:
            print(f"median of {len(got)}: {side}: p50 {statistics.median(x['e2e_ms_p50'] for x in got):.3f} ms, "
                  f"p99 {statistics.median(x['e2e_ms_p99'] for x in got):.3f} ms, "
                  f"broker {statistics.median(x['broker_cpu_s_per_gb'] for x in got):.3f} CPU-s/GB", flush=True)


if __name__ == "__main__":
    main()
