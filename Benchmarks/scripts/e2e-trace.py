#!/usr/bin/env python3
"""Where an end-to-end latency tail comes from: one kperf e2e run (acks=all, 1 KiB, linger.ms=0,
3 partitions) against a fresh release broker, with kperf's per-record trace (KPERF_E2E_TRACE).
For the records above the p99 it prints how much of their latency was the produce answer (ack)
and how much came after it (high watermark to fetch to delivery), and whether they cluster in
time (stalls) or are spread out (queueing).

Usage: Benchmarks/scripts/e2e-trace.py [RATE [OVERRIDE ...]]   (default 10000, sluice.durability=ack)
Needs `make release`.
"""
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402


def main():
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    overrides = sys.argv[2:] or ["sluice.durability=ack"]
    broker, libdir = C.release_broker("e2e-trace")
    trace = tempfile.NamedTemporaryFile(prefix="e2e-trace-", suffix=".txt", delete=False).name
    os.environ["KPERF_E2E_TRACE"] = trace
    broker.start(overrides)
    try:
        out = C.kperf("e2e", broker.bootstrap, ["-t", "e2e", "-n", str(rate * 10), "-s", "1024", "--rate", str(rate),
                                                "--partitions", "3", "--linger-ms", "0"], libdir)
    finally:
        broker.stop()
    print(f"{' '.join(overrides)}: p50 {out.get('e2e_ms_p50')} p99 {out.get('e2e_ms_p99')} "
          f"p99.9 {out.get('e2e_ms_p999')} max {out.get('e2e_ms_max')} ms")
    if out.get("rc") != 0 or not os.path.exists(trace):
        os.path.exists(trace) and os.unlink(trace)
        sys.exit(f"e2e-trace: kperf failed (rc {out.get('rc')}): {out.get('stderr', '')}")
    rows = []
    with open(trace) as f:
        for line in f:
            seq, at, ack, e2e, part = (int(x) for x in line.split())
            if e2e > 0:
                rows.append((at, ack, e2e, part))
    os.unlink(trace)
    if not rows:
        sys.exit("e2e-trace: no record was consumed")
    e2e = sorted(r[2] for r in rows)
    p99 = e2e[int(len(e2e) * 0.99)]
    slow = [r for r in rows if r[2] >= p99]
    after = [max(0, r[2] - r[1]) for r in slow]
    print(f"{len(rows)} records; {len(slow)} at or above p99 ({p99 / 1000:.2f} ms)")
    print(f"  of those: median ack {statistics.median(r[1] for r in slow) / 1000:.2f} ms, "
          f"median after the ack {statistics.median(after) / 1000:.2f} ms")
    print(f"  all records: median ack {statistics.median(r[1] for r in rows) / 1000:.2f} ms, "
          f"median after the ack {statistics.median(max(0, r[2] - r[1]) for r in rows) / 1000:.2f} ms")
    # Clusters: slow records within 20 ms of each other form one episode.
    episodes = []
    for r in sorted(slow):
        if episodes and r[0] - episodes[-1][-1][0] <= 20_000:
            episodes[-1].append(r)
        else:
            episodes.append([r])
    print(f"  {len(episodes)} episodes (slow records within 20 ms of each other):")
    for ep in episodes[:40]:
        start, end = ep[0][0], ep[-1][0]
        parts = sorted({r[3] for r in ep})
        print(f"    t={start / 1e6:7.3f}s span {(end - start) / 1000:6.1f} ms, {len(ep):4} records, "
              f"worst {max(r[2] for r in ep) / 1000:6.2f} ms, ack part {max(r[1] for r in ep) / 1000:6.2f} ms, partitions {parts}")


if __name__ == "__main__":
    main()
