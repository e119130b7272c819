#!/usr/bin/env python3
"""Disk-layout experiments: a plan of knob sets x workloads, each run on a fresh broker and a
fresh data directory, into a report directory (results.json, report.md, PNG plots).

    make experiment PLAN=docs/experiments/io-mode.yaml            # report in experiments/<plan>-<time>/
    make experiment PLAN=... OUT=/tmp/report SLUICE_BIN=.build/debug/sluice

The plan format is documented in docs/experiments/README.md. The same plan (and seed) runs the
same commands in the same order; the figures vary only as the machine does.

Per run it measures, from the broker process alone (/proc/<pid>/stat and /proc/<pid>/io) and
from the clients (kperf, librdkafka): throughput, produce and end-to-end latency percentiles,
broker CPU-seconds per GB, bytes written to storage per byte of record value (write
amplification), fdatasyncs per second (the broker's sluice_log_fsyncs_total counter), index
bytes on disk, and for recovery workloads the time from restart to ready after kill -9.
"""
import argparse
import itertools
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402  (shared broker lifecycle, kperf, fio, loopback, machine facts)

ROOT = C.ROOT

# Topic config names a plan may use for knobs, and the broker properties that set their
# defaults (the workloads' topics are created by the client, so knobs are broker defaults).
TOPIC_TO_BROKER = {
    "segment.bytes": "log.segment.bytes", "segment.ms": "log.roll.ms",
    "segment.index.bytes": "log.index.size.max.bytes", "index.interval.bytes": "log.index.interval.bytes",
    "retention.ms": "log.retention.ms", "retention.bytes": "log.retention.bytes",
    "flush.messages": "log.flush.interval.messages", "flush.ms": "log.flush.interval.ms",
    "preallocate": "log.preallocate", "max.message.bytes": "message.max.bytes",
}
# Short names accepted for Sluice's own knobs.
ALIASES = {"io.mode": "sluice.io.mode", "durability": "sluice.durability", "storage.threads": "sluice.storage.threads",
           "commit.backend": "sluice.storage.commit.backend", "preallocate.step.bytes": "sluice.preallocate.step.bytes",
           "buffered.submit": "sluice.io.buffered.submit"}
# A knob that is not a broker property: the partitions of every workload's topic.
PARTITIONS = "partitions"
KINDS = ("produce", "catchup", "recovery")
WORKLOAD_DEFAULTS = {
    "records": 100_000, "record_bytes": 1024, "partitions": 3, "acks": "all", "linger_ms": 5,
    "batch_bytes": 1 << 20, "compression": "none", "payload": "random", "key_space": 0,
    # end to end after the throughput step: at this fraction of the measured rate, for this long
    "e2e_fraction": 0.5, "e2e_seconds": 10,
}


class PlanError(Exception):
    pass


# MARK: - the plan

def load_plan(path):
    with open(path) as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise PlanError("YAML plans need PyYAML (scripts/install-deps.sh installs it); or write the plan as JSON")
        plan = yaml.safe_load(text)
    else:
        plan = json.loads(text)
    if not isinstance(plan, dict):
        raise PlanError("a plan is a mapping with at least `workloads` and `knobs` or `sets`")
    plan.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return normalize(plan)


def broker_property(name):
    name = ALIASES.get(name, name)
    return TOPIC_TO_BROKER.get(name, name)


def value_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def normalize(plan):
    """Checks a plan and expands it: `knobs` (a matrix: every combination) and/or `sets`
    (named knob sets), each merged over `base`; `workloads` filled with defaults."""
    known = {"name", "description", "seed", "repeat", "scale", "base", "knobs", "sets", "workloads", "baseline"}
    unknown = set(plan) - known
    if unknown:
        raise PlanError(f"unknown plan fields: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    out = {"name": str(plan["name"]), "description": str(plan.get("description", "")).strip(),
           "seed": int(plan.get("seed", 0)), "repeat": int(plan.get("repeat", 1)), "scale": int(plan.get("scale", 1)),
           "baseline": bool(plan.get("baseline", True))}
    if out["repeat"] < 1 or out["scale"] < 1:
        raise PlanError("repeat and scale must be at least 1")
    base = {broker_property(k): value_text(v) for k, v in (plan.get("base") or {}).items()}
    sets = []
    knobs = plan.get("knobs") or {}
    if not isinstance(knobs, dict):
        raise PlanError("`knobs` maps a knob name to a list of values")
    if knobs:
        names = list(knobs)
        values = [v if isinstance(v, list) else [v] for v in knobs.values()]
        if any(len(v) == 0 for v in values):
            raise PlanError("every knob needs at least one value")
        for combo in itertools.product(*values):
            config = dict(zip(names, combo))
            label = " ".join(f"{k}={value_text(v)}" for k, v in config.items())
            sets.append({"name": label, "config": config})
    for s in plan.get("sets") or []:
        if not isinstance(s, dict) or "name" not in s:
            raise PlanError("each entry of `sets` needs a `name` (and a `config` mapping)")
        sets.append({"name": str(s["name"]), "config": dict(s.get("config") or {})})
    if not sets:
        raise PlanError("a plan needs `knobs` or `sets`")
    if len({s["name"] for s in sets}) != len(sets):
        raise PlanError("knob set names must be unique")
    for s in sets:
        props = dict(base)
        partitions = None
        for k, v in s["config"].items():
            if k == PARTITIONS:
                partitions = int(v)
            else:
                props[broker_property(k)] = value_text(v)
        s["properties"] = props
        s["partitions"] = partitions
    out["sets"] = sets
    workloads = plan.get("workloads") or []
    if not workloads:
        raise PlanError("a plan needs at least one workload")
    seen = set()
    out["workloads"] = []
    for w in workloads:
        if not isinstance(w, dict) or "name" not in w or "kind" not in w:
            raise PlanError("each workload needs a `name` and a `kind`")
        if w["kind"] not in KINDS:
            raise PlanError(f"workload {w['name']}: kind must be one of {', '.join(KINDS)}")
        if w["name"] in seen:
            raise PlanError(f"workload names must be unique ({w['name']})")
        seen.add(w["name"])
        bad = set(w) - set(WORKLOAD_DEFAULTS) - {"name", "kind", "e2e"}
        if bad:
            raise PlanError(f"workload {w['name']}: unknown fields {', '.join(sorted(bad))}")
        full = dict(WORKLOAD_DEFAULTS)
        full["e2e"] = w["kind"] == "produce"
        full.update(w)
        full["records"] = max(1, int(full["records"]) // out["scale"])
        if str(full["acks"]) not in ("0", "1", "all", "-1"):
            raise PlanError(f"workload {w['name']}: acks must be 0, 1 or all")
        out["workloads"].append(full)
    return out


def schedule(plan):
    """Every (set, workload, repeat) once, in an order shuffled by the seed (so that drift of
    the machine during the experiment does not favour the sets that run first)."""
    runs = [(s["name"], w["name"], r) for r in range(plan["repeat"]) for s in plan["sets"] for w in plan["workloads"]]
    random.Random(plan["seed"]).shuffle(runs)
    return runs


# MARK: - progress

class Progress:
    """One status line, refreshed every second on a terminal (every 15 s otherwise)."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.started = time.time()
        self.run_started = time.time()
        self.label = ""
        self.step = ""
        self.tty = sys.stdout.isatty()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def line(self):
        elapsed = time.time() - self.started
        eta = ""
        if self.done:
            eta = f", ~{(elapsed / self.done) * (self.total - self.done) / 60:.1f} min left"
        return (f"[{self.done + 1}/{self.total}] {self.label} | {self.step} "
                f"{time.time() - self.run_started:.0f}s (total {elapsed / 60:.1f} min{eta})")

    def _loop(self):
        last = 0
        while not self.stop.wait(1.0):
            if self.tty:
                sys.stdout.write("\r\033[K" + self.line())
                sys.stdout.flush()
            elif time.time() - last >= 15:
                print(self.line(), flush=True)
                last = time.time()

    def begin(self, label):
        self.label = label
        self.step = "starting"
        self.run_started = time.time()

    def say(self, text):
        if self.tty:
            sys.stdout.write("\r\033[K")
        print(text, flush=True)

    def finish(self):
        self.done += 1

    def close(self):
        self.stop.set()
        self.thread.join()
        if self.tty:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()


# MARK: - one run

class Sluice:
    """A Sluice process with its own data directory, metrics port and /proc readings."""

    def __init__(self, binary, data_dir, properties):
        self.binary = binary
        self.data_dir = data_dir
        self.properties = properties
        self.proc = None

    def start(self, fresh=True):
        if fresh:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            os.makedirs(self.data_dir)
        self.port = C.free_port()
        self.metrics_port = C.free_port()
        argv = [self.binary, "server", "--override", f"log.dirs={self.data_dir}",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", "sluice.log.level=warning", "--override", f"sluice.metrics.port={self.metrics_port}"]
        for k, v in self.properties.items():
            argv += ["--override", f"{k}={v}"]
        started = time.time()
        self.stderr = open(os.path.join(os.path.dirname(self.data_dir), "broker.stderr"), "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        # The broker prints its ready line after recovery and once it listens.
        deadline = time.time() + 300
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"sluice exited during start (rc {self.proc.wait()}); see {self.stderr.name}")
            if line.startswith("Sluice is ready"):
                self.ready_seconds = time.time() - started
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # drain
                return self
        raise RuntimeError("sluice did not become ready within 300 s")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / C.TICK

    def io(self):
        out = {}
        with open(f"/proc/{self.proc.pid}/io") as f:
            for line in f:
                k, v = line.split(":")
                out[k.strip()] = int(v)
        return out

    def fsyncs(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                m = re.search(r"^sluice_log_fsyncs_total (\d+)", r.read().decode(), re.M)
                return int(m.group(1)) if m else None
        except OSError:
            return None

    def sample(self):
        return {"t": time.time(), "cpu": self.cpu_seconds(), "io": self.io(), "fsyncs": self.fsyncs()}

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.stderr.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def delta(before, after, value_bytes):
    seconds = after["t"] - before["t"]
    cpu = after["cpu"] - before["cpu"]
    written = after["io"].get("write_bytes", 0) - before["io"].get("write_bytes", 0)
    out = {"seconds": round(seconds, 3), "broker_cpu_s": round(cpu, 3),
           "disk_write_bytes": written,
           "broker_cpu_s_per_gb": round(cpu / (value_bytes / 1e9), 3) if value_bytes else None,
           "write_amplification": round(written / value_bytes, 3) if value_bytes else None}
    if before["fsyncs"] is not None and after["fsyncs"] is not None and seconds > 0:
        out["fsyncs"] = after["fsyncs"] - before["fsyncs"]
        out["fsyncs_per_s"] = round(out["fsyncs"] / seconds, 1)
    return out


def disk_usage(data_dir):
    usage = {"index_bytes": 0, "log_bytes": 0, "segments": 0}
    for dirpath, _, files in os.walk(data_dir):
        if os.path.basename(dirpath).startswith("__"):
            continue
        for f in files:
            size = os.path.getsize(os.path.join(dirpath, f))
            if f.endswith((".index", ".timeindex")):
                usage["index_bytes"] += size
            elif f.endswith(".log"):
                usage["log_bytes"] += size
                usage["segments"] += 1
    return usage


def produce_args(w, topic, partitions, records=None):
    args = ["-t", topic, "-n", str(records or w["records"]), "-s", str(w["record_bytes"]), "--acks", str(w["acks"]),
            "--linger-ms", str(w["linger_ms"]), "--batch-bytes", str(w["batch_bytes"]), "--partitions", str(partitions),
            "--compression", w["compression"], "--payload", w["payload"]]
    if w["key_space"]:
        args += ["--key-space", str(w["key_space"])]
    return args


def run_one(binary, work, knob_set, w, libdir, progress):
    partitions = knob_set["partitions"] or w["partitions"]
    data = os.path.join(work, "data")
    broker = Sluice(binary, data, knob_set["properties"]).start()
    result = {"set": knob_set["name"], "workload": w["name"], "kind": w["kind"], "partitions": partitions,
              "start_seconds": round(broker.ready_seconds, 3), "commands": []}

    def kperf(kind, args, timeout=900):
        result["commands"].append(f"kperf {kind} -b HOST:PORT {' '.join(args)}")
        return C.kperf(kind, broker.bootstrap, args, libdir, timeout=timeout)

    try:
        progress.step = "produce"
        topic = "exp"
        before = broker.sample()
        r = kperf("produce", produce_args(w, topic, partitions))
        after = broker.sample()
        value_bytes = r.get("bytes", 0)
        result["produce"] = {k: r.get(k) for k in ("records", "bytes", "records_per_s", "mb_per_s", "lat_ms_p50", "lat_ms_p99",
                                                    "lat_ms_p999", "lat_ms_max", "ok", "rc", "stderr")}
        result["produce"].update(delta(before, after, value_bytes))
        if w["kind"] == "catchup":
            progress.step = "consume (catch-up)"
            before = broker.sample()
            r = kperf("consume", ["-t", topic, "-n", str(w["records"])])
            after = broker.sample()
            result["consume"] = {k: r.get(k) for k in ("records", "bytes", "records_per_s", "mb_per_s", "ok", "rc", "stderr")}
            result["consume"].update(delta(before, after, r.get("bytes", 0)))
        if w["kind"] == "produce" and w["e2e"] and (result["produce"].get("records_per_s") or 0) > 0:
            rate = max(50, int(result["produce"]["records_per_s"] * float(w["e2e_fraction"])))
            count = max(500, int(rate * float(w["e2e_seconds"])))
            progress.step = f"end to end at {rate} records/s"
            r = kperf("e2e", ["-t", "exp-e2e", "-n", str(count), "-s", str(w["record_bytes"]), "--rate", str(rate),
                              "--partitions", str(partitions)])
            result["e2e"] = {k: r.get(k) for k in ("records", "e2e_ms_p50", "e2e_ms_p99", "e2e_ms_p999", "e2e_ms_max", "ok", "rc")}
            result["e2e"]["rate"] = rate
        if w["kind"] == "recovery":
            progress.step = "kill -9 and restart"
            usage = disk_usage(data)
            broker.kill()
            broker.start(fresh=False)
            after_kill = broker.ready_seconds
            # The same directory after a clean shutdown starts without recovery: the difference
            # is what recovery cost.
            progress.step = "clean restart (for comparison)"
            broker.stop()
            broker.start(fresh=False)
            clean = broker.ready_seconds
            net = max(0.0, after_kill - clean)
            result["recovery"] = {"seconds": round(after_kill, 3), "clean_restart_seconds": round(clean, 3),
                                  "net_seconds": round(net, 3), "log_bytes": usage["log_bytes"],
                                  "seconds_per_gib": round(net / (usage["log_bytes"] / (1 << 30)), 3) if usage["log_bytes"] else None}
    finally:
        progress.step = "stopping"
        broker.stop()
    result.update(disk_usage(data))
    shutil.rmtree(data, ignore_errors=True)
    return result


# MARK: - report

def summarize(plan, runs):
    """Per (set, workload): the median over repeats of each figure, plus the runs themselves."""
    figures = {
        "mb_per_s": ("produce", "mb_per_s"), "records_per_s": ("produce", "records_per_s"),
        "lat_ms_p50": ("produce", "lat_ms_p50"), "lat_ms_p99": ("produce", "lat_ms_p99"),
        "lat_ms_p999": ("produce", "lat_ms_p999"),
        "e2e_ms_p50": ("e2e", "e2e_ms_p50"), "e2e_ms_p99": ("e2e", "e2e_ms_p99"), "e2e_ms_p999": ("e2e", "e2e_ms_p999"),
        "cpu_s_per_gb": ("produce", "broker_cpu_s_per_gb"), "write_amplification": ("produce", "write_amplification"),
        "fsyncs_per_s": ("produce", "fsyncs_per_s"), "consume_mb_per_s": ("consume", "mb_per_s"),
        "recovery_s": ("recovery", "seconds"), "recovery_net_s": ("recovery", "net_seconds"),
        "recovery_s_per_gib": ("recovery", "seconds_per_gib"),
        "index_bytes": (None, "index_bytes"), "log_bytes": (None, "log_bytes"), "segments": (None, "segments"),
    }
    table = []
    for w in plan["workloads"]:
        for s in plan["sets"]:
            mine = [r for r in runs if r["set"] == s["name"] and r["workload"] == w["name"]]
            row = {"set": s["name"], "workload": w["name"], "runs": len(mine)}
            for key, (section, field) in figures.items():
                vals = [(r.get(section) or {}).get(field) if section else r.get(field) for r in mine]
                vals = [v for v in vals if isinstance(v, (int, float))]
                row[key] = round(statistics.median(vals), 3) if vals else None
                if len(vals) > 1:
                    row[key + "_range"] = [min(vals), max(vals)]
            row["failed"] = any(((r.get("produce") or {}).get("rc") or 0) != 0 or "error" in r for r in mine)
            table.append(row)
    return table


def plots(plan, table, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    workloads = [w["name"] for w in plan["workloads"]]
    sets = [s["name"] for s in plan["sets"]]
    files = []

    def grouped(metric, ylabel, filename, title, log=False):
        rows = {(r["workload"], r["set"]): r for r in table}
        if not any(rows[(w, s)].get(metric) for w in workloads for s in sets):
            return
        fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(workloads) * max(1, len(sets)) ** 0.5 + 3), 4.4))
        width = 0.8 / len(sets)
        for i, s in enumerate(sets):
            vals = [rows[(w, s)].get(metric) or 0 for w in workloads]
            ax.bar([x + (i - (len(sets) - 1) / 2) * width for x in range(len(workloads))], vals, width, label=s)
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads, rotation=15, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, filename), dpi=110)
        plt.close(fig)
        files.append((filename, title))

    grouped("mb_per_s", "MiB/s of record values", "throughput.png", "Produce throughput per knob set (higher is better)")
    grouped("consume_mb_per_s", "MiB/s", "consume.png", "Catch-up consume throughput (higher is better)")
    grouped("cpu_s_per_gb", "broker CPU-seconds per GB", "cpu.png", "Broker CPU per GB produced (lower is better)")
    grouped("write_amplification", "bytes written / value byte", "write-amplification.png",
            "Write amplification (lower is better)")
    grouped("recovery_s", "seconds to ready after kill -9", "recovery.png", "Recovery time (lower is better)")

    # Latency: one panel per workload, percentiles on the x axis, one line per knob set.
    for prefix, name, title in (("lat_ms", "latency-produce.png", "Produce latency (includes client queueing)"),
                                ("e2e_ms", "latency-e2e.png", "End-to-end latency at a fixed rate")):
        with_data = [w for w in workloads if any(r.get(prefix + "_p99") for r in table if r["workload"] == w)]
        if not with_data:
            continue
        fig, axes = plt.subplots(1, len(with_data), figsize=(4.2 * len(with_data) + 1, 4), squeeze=False)
        for ax, w in zip(axes[0], with_data):
            for s in sets:
                r = next(r for r in table if r["workload"] == w and r["set"] == s)
                ys = [r.get(f"{prefix}_{p}") or 0 for p in ("p50", "p99", "p999")]
                ax.plot(["p50", "p99", "p99.9"], ys, marker="o", label=s)
            ax.set_yscale("log")
            ax.set_title(w, fontsize=9)
            ax.set_ylabel("ms (log)")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=110)
        plt.close(fig)
        files.append((name, title))
    return files


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def report(plan, results, table, pngs, out):
    m = results["machine"]
    lines = [f"# Experiment: {plan['name']}", ""]
    if plan["description"]:
        lines += [plan["description"], ""]
    lines += [
        f"Rerun: `make experiment PLAN={results['plan_path']}` (seed {plan['seed']}, {plan['repeat']} repeat(s),"
        f" record counts divided by {plan['scale']}). Every run started a fresh broker on an empty data directory;"
        " runs were in the seeded order listed in `results.json`.",
        "",
        "## Machine",
        "",
        f"- {m['cpus']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}; commit `{m['commit']}`, {m['date']}",
        f"- data directory on {results['work_dir']} ({results.get('filesystem', '?')})",
    ]
    lim = results.get("baseline")
    if lim:
        lines += [f"- fio, 1 MiB sequential writes, io_uring QD16: buffered {lim['fio'].get('buffered_mb_s')} MB/s,"
                  f" O_DIRECT {lim['fio'].get('direct_mb_s')} MB/s; 4 KiB write+fdatasync {lim['fio'].get('fdatasync_iops')} IOPS",
                  f"- loopback TCP, one stream: {lim['loopback_mb_s']} MB/s"]
    lines += ["", "## Knob sets", ""]
    for s in plan["sets"]:
        props = ", ".join(f"`{k}={v}`" for k, v in s["properties"].items()) or "broker defaults"
        part = f"; {s['partitions']} partitions" if s["partitions"] else ""
        lines.append(f"- **{s['name']}**: {props}{part}")
    lines += ["", "## Workloads", ""]
    for w in plan["workloads"]:
        extra = []
        if w["key_space"]:
            extra.append(f"{w['key_space']} keys")
        if w["compression"] != "none":
            extra.append(w["compression"])
        lines.append(f"- **{w['name']}** ({w['kind']}): {w['records']:,} × {w['record_bytes']} B, {w['partitions']} partition(s),"
                     f" acks={w['acks']}, linger.ms={w['linger_ms']}" + (", " + ", ".join(extra) if extra else ""))
    lines += ["", "## Results", "",
              "Throughput is MiB/s of record values; latencies in ms (produce latency includes client queueing,"
              " end-to-end is at a fixed fraction of the measured rate); CPU is the broker's alone; write"
              " amplification is bytes the broker wrote to storage (/proc/<pid>/io write_bytes) per byte of record value.", ""]
    for w in plan["workloads"]:
        rows = [r for r in table if r["workload"] == w["name"]]
        best = max(rows, key=lambda r: r.get("consume_mb_per_s") or r.get("mb_per_s") or 0)
        lines += [f"### {w['name']}", "",
                  "| knob set | MiB/s | records/s | p50 | p99 | p99.9 | e2e p50 | e2e p99 | e2e p99.9 | CPU-s/GB | write ampl. | fsync/s | index bytes | segments |"
                  + (" consume MiB/s |" if w["kind"] == "catchup" else "") + (" ready after kill -9, s | recovery cost, s | s/GiB |" if w["kind"] == "recovery" else ""),
                  "|---|" + "---:|" * 13 + ("---:|" if w["kind"] == "catchup" else "") + ("---:|---:|---:|" if w["kind"] == "recovery" else "")]
        for r in rows:
            name = f"**{r['set']}**" if r is best else r["set"]
            if r["failed"]:
                name += " (failed)"
            cells = [fmt(r["mb_per_s"]), fmt(r["records_per_s"], 0), fmt(r["lat_ms_p50"], 2), fmt(r["lat_ms_p99"], 2),
                     fmt(r["lat_ms_p999"], 2), fmt(r["e2e_ms_p50"], 2), fmt(r["e2e_ms_p99"], 2), fmt(r["e2e_ms_p999"], 2),
                     fmt(r["cpu_s_per_gb"], 2), fmt(r["write_amplification"], 3), fmt(r["fsyncs_per_s"]),
                     fmt(r["index_bytes"]), fmt(r["segments"])]
            if w["kind"] == "catchup":
                cells.append(fmt(r["consume_mb_per_s"]))
            if w["kind"] == "recovery":
                cells += [fmt(r["recovery_s"], 2), fmt(r["recovery_net_s"], 2), fmt(r["recovery_s_per_gib"], 2)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Plots", ""]
    for f, title in pngs:
        lines += [f"![{title}]({f})", ""]
    lines += ["## Commands", "",
              "The broker ran as `sluice server --override log.dirs=DIR --override listeners=... --override K=V...`"
              " with each set's properties; the clients were these kperf runs (librdkafka"
              f" {results.get('librdkafka', '?')}):", ""]
    seen = []
    for r in results["runs"]:
        for c in r.get("commands", []):
            generic = re.sub(r"-n \d+", "-n N", c)
            if generic not in seen:
                seen.append(generic)
    lines += [f"- `{c}`" for c in seen]
    lines.append("")
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))


def filesystem(path):
    r = C.sh(["df", "-T", path])
    try:
        return r.stdout.splitlines()[1].split()[1]
    except IndexError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("plan", help="a YAML or JSON plan (docs/experiments/README.md)")
    ap.add_argument("--out", help="report directory (default experiments/<plan>-<UTC time>)")
    ap.add_argument("--binary", default=os.environ.get("SLUICE_BIN", os.path.join(ROOT, ".build", "release", "sluice")))
    ap.add_argument("--work-dir", default=os.environ.get("EXPERIMENT_DIR", "/var/tmp"),
                    help="where the brokers' data directories go (the disk under test)")
    ap.add_argument("--dry-run", action="store_true", help="print the expanded plan and the run order, run nothing")
    args = ap.parse_args()
    try:
        plan = load_plan(args.plan)
    except (PlanError, ValueError, OSError) as e:
        sys.exit(f"experiment: {args.plan}: {e}")
    order = schedule(plan)
    if args.dry_run:
        print(json.dumps({"plan": plan, "order": order}, indent=1))
        return
    if not os.path.exists(args.binary):
        sys.exit(f"experiment: no sluice binary at {args.binary} (make release, or set SLUICE_BIN)")
    C.ensure_kperf()
    libdir = C.librdkafka_dir()
    out = args.out or os.path.join(ROOT, "experiments", f"{plan['name']}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    os.makedirs(out, exist_ok=True)
    work = os.path.join(args.work_dir, f"sluice-experiment-{os.getpid()}")
    os.makedirs(work, exist_ok=True)
    results = {"plan": plan, "plan_path": os.path.relpath(os.path.abspath(args.plan), ROOT), "machine": C.machine(),
               "work_dir": args.work_dir, "filesystem": filesystem(args.work_dir), "order": order, "runs": []}
    v = subprocess.run([C.KPERF, "--version"], capture_output=True, text=True, env=dict(os.environ, LD_LIBRARY_PATH=libdir))
    results["librdkafka"] = (v.stdout + v.stderr).strip().split("librdkafka")[-1].strip(" ()\n") or "?"
    print(f"experiment {plan['name']}: {len(plan['sets'])} knob sets × {len(plan['workloads'])} workloads"
          f" × {plan['repeat']} = {len(order)} runs; report in {out}", flush=True)
    if plan["baseline"]:
        print("baseline: fio (buffered, O_DIRECT, fdatasync) and loopback ...", flush=True)
        results["baseline"] = {"fio": C.fio(args.work_dir), "loopback_mb_s": C.loopback()}
        print(f"baseline: {json.dumps(results['baseline'])}", flush=True)
    sets = {s["name"]: s for s in plan["sets"]}
    workloads = {w["name"]: w for w in plan["workloads"]}
    progress = Progress(len(order))
    try:
        for set_name, workload_name, rep in order:
            label = f"{workload_name} on [{set_name}]" + (f" #{rep + 1}" if plan["repeat"] > 1 else "")
            progress.begin(label)
            try:
                r = run_one(args.binary, work, sets[set_name], workloads[workload_name], libdir, progress)
            except Exception as e:  # noqa: BLE001 - recorded; the experiment goes on
                r = {"set": set_name, "workload": workload_name, "error": repr(e)}
            r["repeat"] = rep
            results["runs"].append(r)
            p = r.get("produce") or {}
            summary = (f"{p.get('mb_per_s')} MiB/s, p99 {p.get('lat_ms_p99')} ms, CPU {p.get('broker_cpu_s_per_gb')} s/GB,"
                       f" write ampl. {p.get('write_amplification')}")
            if "e2e" in r:
                summary += f", e2e p99 {r['e2e'].get('e2e_ms_p99')} ms"
            if "consume" in r:
                summary += f", consume {r['consume'].get('mb_per_s')} MiB/s"
            if "recovery" in r:
                summary += f", recovery {r['recovery'].get('seconds')} s"
            progress.say(f"  done {label}: " + (r["error"] if "error" in r else summary))
            progress.finish()
            with open(os.path.join(out, "results.json"), "w") as f:  # partial results survive an interrupted run
                json.dump(results, f, indent=1)
    finally:
        progress.close()
        shutil.rmtree(work, ignore_errors=True)
    table = summarize(plan, results["runs"])
    results["summary"] = table
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    try:
        pngs = plots(plan, table, out)
    except ImportError:
        print("matplotlib missing: no plots (scripts/install-deps.sh installs it)")
        pngs = []
    report(plan, results, table, pngs, out)
    print(f"wrote {out}/report.md, results.json and {len(pngs)} plots")
    failed = [r for r in results["runs"] if "error" in r or ((r.get("produce") or {}).get("rc") or 0) != 0]
    if failed:
        print(f"{len(failed)} run(s) failed; see results.json", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
