#!/usr/bin/env python3
"""Where a fresh release broker's CPU goes during one kperf run: `perf record -g` on the broker
process while kperf runs, then the share of samples per binary (kernel, sluice, Swift runtime,
libc) and the top symbols.

Usage: Benchmarks/scripts/profile-broker.py [produce|small|e2e|catchup] [RATE] [OVERRIDE ...]
  produce (default): 1M x 1 KiB acks=all, linger.ms=5, as `make bench`'s 1 KiB acks=all row.
  small: 100 B acks=1, linger.ms=5, as `make bench`'s 100 B row, but 8M records so that the
  sampled window falls inside the run.
  e2e: 1 KiB acks=all at RATE records/s (default 311000) for 10 s, linger.ms=0.
  catchup: a backlog of 120,000 x 16 KiB (acks=1, outside the profile), then one kperf consumer
  reads it from the start, as `make bench`'s catch-up row but three times longer.
  PROFILE_DELAY_S (default 0.3 for produce, 3 for e2e) and PROFILE_SECONDS (default 4 and 5)
  place the sampled window. Needs `make release` and perf (apt-get install linux-perf).
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402


def main():
    args = sys.argv[1:]
    mode = args.pop(0) if args and args[0] in ("produce", "small", "e2e", "catchup") else "produce"
    rate = int(args.pop(0)) if args and args[0].isdigit() else 311_000
    if not shutil.which("perf"):
        sys.exit("profile-broker: perf is not installed (apt-get install linux-perf)")
    broker, libdir = C.release_broker("profile")
    delay = float(os.environ.get("PROFILE_DELAY_S", "3" if mode == "e2e" else "0.3"))
    seconds = float(os.environ.get("PROFILE_SECONDS", "5" if mode == "e2e" else "4"))
    data = f"/tmp/sluice-profile-{os.getpid()}.data"
    topic = "e" if mode == "e2e" else "p"
    mode_kperf = {"small": "produce", "catchup": "consume"}.get(mode, mode)
    if mode == "produce":
        kargs = ["-n", "1000000", "-s", "1024", "--linger-ms", "5", "--batch-bytes", "1048576", "--partitions", "3",
                 "--acks", "all"]
    elif mode == "small":
        kargs = ["-n", "8000000", "-s", "100", "--linger-ms", "5", "--batch-bytes", "1048576", "--partitions", "3",
                 "--acks", "1"]
    elif mode == "catchup":
        kargs = ["-n", "120000"]
    else:
        kargs = ["-n", str(rate * 10), "-s", "1024", "--rate", str(rate), "--partitions", "3", "--linger-ms", "0"]
    broker.start(args)
    client = None
    try:
        # The topic's creation and the first connections stay outside the measured run.
        C.kperf("produce", broker.bootstrap, ["-t", topic, "-n", "1000", "-s", "1024", "--partitions", "3", "--acks", "1"],
                libdir)
        if mode == "catchup":
            C.kperf("produce", broker.bootstrap, ["-t", topic, "-n", "119000", "-s", "16384", "--linger-ms", "5",
                                                  "--batch-bytes", "1048576", "--partitions", "3", "--acks", "1"], libdir)
        cpu = broker.cpu_seconds()
        client = subprocess.Popen([C.KPERF, mode_kperf, "-b", broker.bootstrap, "-t", topic] + kargs, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, LD_LIBRARY_PATH=libdir))
        time.sleep(delay)  # not a synchronisation: where in the run the sampled window starts
        rec = subprocess.run(["perf", "record", "-F", "999", "-g", "-p", str(broker.proc.pid), "-o", data, "--",
                              "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if rec.returncode != 0:
            if os.path.exists(data):
                os.remove(data)
            sys.exit(f"profile-broker: perf record failed ({rec.stderr.strip()[-300:]}); "
                     "see /proc/sys/kernel/perf_event_paranoid")
        out, _ = client.communicate(timeout=300)
        cpu = broker.cpu_seconds() - cpu
    finally:
        if client and client.poll() is None:
            client.kill()
            client.wait()
        broker.stop()
    try:
        lines = [x for x in out.splitlines() if x.startswith("{")]
        result = json.loads(lines[-1]) if lines else {}
        print("kperf:", lines[-1][:300] if lines else f"(no result; exit status {client.returncode})")
        if result.get("bytes"):  # what kperf moved, which a failed or cut-short run makes less than asked for
            print(f"broker CPU over the run: {cpu:.2f} s, {cpu / (result['bytes'] / 1e9):.3f} CPU-s/GB")
        for sort, top in (("dso", 6), ("sym", 15)):
            r = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none"],
                               capture_output=True, text=True)
            rows = [x for x in r.stdout.splitlines() if x.strip() and not x.startswith("#")]
            print(f"\nbroker samples by {sort}:")
            print("\n".join(rows[:top]))
    finally:
        os.remove(data)


if __name__ == "__main__":
    main()
