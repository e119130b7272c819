#!/usr/bin/env python3
"""What a small acks=all workload makes the broker write: for each set of overrides, a fresh
broker takes 3,000 x 1 KiB records at linger.ms=0 over 2 partitions (the produce-1k workload of
docs/experiments/smoke.json), and this prints the broker's /proc/<pid>/io write_bytes (counted
when a page is dirtied) and what reached the device (sectors written in /sys/block/DEV/stat,
the whole machine's, read one second after the run), each per byte of record value.

Usage: Benchmarks/scripts/write-bytes-ab.py [--binary PATH] [--device vda] OVERRIDES ...
  each OVERRIDES argument is one set, several overrides separated by spaces, e.g.
  "sluice.durability=ack sluice.zero.ahead.bytes=0" "sluice.durability=ack"
  --binary .build/debug/sluice runs a debug broker (slow enough for zero-ahead's rate rule).
Needs `make release` unless --binary is given.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402

RECORDS, SIZE = 3000, 1024


def device_sectors(dev):
    return int(open(f"/sys/block/{dev}/stat").read().split()[6])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary")
    ap.add_argument("--device", default="vda")
    ap.add_argument("sets", nargs="+")
    args = ap.parse_args()
    broker, libdir = C.release_broker("write-bytes-ab")
    if args.binary:
        broker = C.sluice(os.path.abspath(args.binary), broker.data_dir)
    value_bytes = RECORDS * SIZE
    for overrides in args.sets:
        broker.start(overrides.split())
        try:
            with open(f"/proc/{broker.proc.pid}/io") as f:
                before = {k: int(v) for k, v in (line.split(":") for line in f)}
            d0 = device_sectors(args.device)
            out = C.kperf("produce", broker.bootstrap, ["-t", "wb", "-n", str(RECORDS), "-s", str(SIZE), "--acks", "all",
                                                        "--linger-ms", "0", "--batch-bytes", "16384", "--partitions", "2"], libdir)
            with open(f"/proc/{broker.proc.pid}/io") as f:
                after = {k: int(v) for k, v in (line.split(":") for line in f)}
            time.sleep(1)
            d1 = device_sectors(args.device)
        finally:
            broker.stop()
        if out.get("rc") != 0:
            sys.exit(f"write-bytes-ab: kperf failed (rc {out.get('rc')}): {out.get('stderr', '')}")
        wb = after["write_bytes"] - before["write_bytes"]
        dev = (d1 - d0) * 512
        print(f"{overrides:55} write_bytes {wb / 1e6:6.2f} MB ({wb / value_bytes:.2f}x)  device {dev / 1e6:6.2f} MB "
              f"({dev / value_bytes:.2f}x)  {out.get('records_per_s')} records/s", flush=True)


if __name__ == "__main__":
    main()
