#!/usr/bin/env python3
"""Does writing or deleting gigabytes on the data disk slow durable acknowledgements after it?

One run, on fresh release brokers with sluice.durability=ack, kperf e2e at 10,000 records/s
(acks=all, linger.ms=0, 1 KiB, ten seconds each), ROUNDS runs in each of these disk states, in
this order:
  quiet     nothing written by this script yet
  written   just after writing CHURN_GB (default 3) GB to a file next to the data directory,
            fsynced and kept
  deleted   just after deleting that file (on a filesystem mounted with `discard`, the delete
            sends the freed blocks to the device as discards)
  trimmed   after `fstrim` of the filesystem, if it is mounted without `discard`; skipped
            otherwise
Prints p50/p99/p99.9 per run and each state's median p99, and the device's discard counters
(/sys/block/DEV/stat fields 12-15) around each step.

Usage: Benchmarks/scripts/churn-e2e.py [ROUNDS]   (default 3; needs `make release`)
"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402


def device_of(path):
    src = subprocess.run(["findmnt", "-no", "SOURCE,OPTIONS", "--target", path], capture_output=True, text=True).stdout.split()
    dev = os.path.basename(src[0]) if src else ""
    return dev, (src[1] if len(src) > 1 else "")


def discards(dev):
    try:
        f = open(f"/sys/block/{dev}/stat").read().split()
        return {"discards": int(f[11]), "discard_sectors": int(f[13]), "discard_ms": int(f[14])}
    except (OSError, IndexError, ValueError):
        return {}


def write_file(path, gb):
    block = b"\xa5" * (8 << 20)
    with open(path, "wb") as f:
        for _ in range(gb * 128):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    gb = int(os.environ.get("CHURN_GB", "3"))
    broker, libdir = C.release_broker("churn-e2e")
    dev, options = device_of(C.WORK)
    print(f"data under {C.WORK} on {dev or '?'} ({options})", flush=True)
    churn = os.path.join(C.WORK, f"churn-e2e-{os.getpid()}.bin")
    results = {}

    def runs(state):
        results[state] = []
        for _ in range(rounds):
            broker.start(["sluice.durability=ack"])
            try:
                out = C.kperf("e2e", broker.bootstrap, ["-t", "e2e", "-n", "100000", "-s", "1024", "--rate", "10000",
                                                        "--partitions", "3", "--linger-ms", "0"], libdir)
            finally:
                broker.stop()
            results[state].append(out)
            print(f"{state:8} p50 {out.get('e2e_ms_p50')} ms  p99 {out.get('e2e_ms_p99')} ms  "
                  f"p99.9 {out.get('e2e_ms_p999')} ms  {discards(dev)}", flush=True)

    try:
        runs("quiet")
        t = time.monotonic()
        write_file(churn, gb)
        print(f"wrote {gb} GB in {time.monotonic() - t:.1f} s  {discards(dev)}", flush=True)
        runs("written")
        t = time.monotonic()
        os.remove(churn)
        os.sync()
        print(f"deleted it in {time.monotonic() - t:.1f} s  {discards(dev)}", flush=True)
        runs("deleted")
        if "discard" not in options.split(","):
            subprocess.run(["fstrim", "-v", C.WORK], check=False)
            runs("trimmed")
    finally:
        if os.path.exists(churn):
            os.remove(churn)
    for state, got in results.items():
        got = [x for x in got if x.get("e2e_ms_p99") is not None]
        if got:
            print(f"median of {len(got)}: {state}: p50 {statistics.median(x['e2e_ms_p50'] for x in got):.3f} ms, "
                  f"p99 {statistics.median(x['e2e_ms_p99'] for x in got):.3f} ms", flush=True)


if __name__ == "__main__":
    main()
