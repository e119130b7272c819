#!/usr/bin/env python3
"""Sluice's fault-injection harness: runs real workloads against real broker processes,
injects faults on a seeded schedule, then checks the history (Tests/Chaos/checker.py).

    python Tests/Chaos/chaos.py --seed 7 --duration 120
    python Tests/Chaos/chaos.py --faults kill,stop --workloads append,txn

Workloads (confluent-kafka, an independent client): `append` (idempotent producer, acks=all,
unique values, drained at the end), `queue` (a consumer group of two members committing after
each record), `txn` (transactions that commit or abort at random). Faults: `kill` (SIGKILL, then
restart), `stop` (SIGSTOP longer than the clients' request timeout, then SIGCONT), `diskfull`
(the log directory is a small ext4 file system of its own on a loop device: filled, held, freed), `torn` (SIGKILL, then a torn
batch appended to a segment tail, then restart), `slow` (slowloris and abandoned connections).

Every run prints its seed, its fault schedule and one JSON summary line; the full history goes
to --out. Brokers are `Node`s (one process each, addresses injectable with --bootstrap for an
external cluster, where no faults are injected), so several brokers can join later.
Exit status: 0 when no anomaly was found, 1 otherwise.
"""
import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checker import anomalies, check_append, check_queue, check_txn  # noqa: E402

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAULTS = ("kill", "stop", "diskfull", "torn", "slow")
WORKLOADS = ("append", "queue", "txn")
# Client timeouts the faults are sized against: a SIGSTOP outlasts the request timeout.
CLIENT = {"socket.timeout.ms": 4000, "request.timeout.ms": 4000, "reconnect.backoff.max.ms": 500,
          "retry.backoff.ms": 100, "message.timeout.ms": 60000, "log_level": 2}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One broker process with its own log directory: with `disk_mb`, a small ext4 file system of
    its own (an image on a loop device), so that a full disk is real and fsyncs reach a disk."""

    def __init__(self, binary, workdir, index, overrides, disk_mb=None):
        self.binary = binary
        self.index = index
        self.port = free_port()
        self.log_dir = os.path.join(workdir, f"node{index}")
        os.makedirs(self.log_dir, exist_ok=True)
        self.own_disk = False
        if disk_mb:
            image = os.path.join(workdir, f"node{index}.ext4")
            steps = [["truncate", "-s", f"{disk_mb}M", image], ["mkfs.ext4", "-q", "-F", image],
                     ["mount", "-o", "loop", image, self.log_dir]]
            for step in steps:
                r = subprocess.run(step, capture_output=True, text=True)
                if r.returncode != 0:
                    log(f"node{index}: cannot make an ext4 disk ({' '.join(step[:2])}: {r.stderr.strip()}); "
                        "the diskfull fault is skipped")
                    break
            else:
                self.own_disk = True
        self.overrides = overrides
        self.proc = None
        self.stopped = False
        self.output = open(os.path.join(workdir, f"node{index}.log"), "a")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=60):
        args = [self.binary, "server", "--override", f"log.dirs={self.log_dir}",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}"]
        for o in self.overrides:
            args += ["--override", o]
        self.proc = subprocess.Popen(args, stdout=self.output, stderr=subprocess.STDOUT)
        self.stopped = False
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node{self.index} exited during start (see its log)")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"node{self.index} did not start")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            if self.stopped:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self):
        if self.alive():
            if self.stopped:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def cleanup(self):
        self.terminate()
        if self.own_disk:
            subprocess.run(["umount", "-l", self.log_dir])


class Cluster:
    def __init__(self, nodes, bootstrap=None):
        self.nodes = nodes
        self._bootstrap = bootstrap

    @property
    def bootstrap(self):
        return self._bootstrap or ",".join(n.bootstrap for n in self.nodes)


# MARK: - faults

class Faults:
    def __init__(self, cluster, rng, workdir):
        self.cluster = cluster
        self.rng = rng
        self.workdir = workdir
        self.injected = []
        self.skipped = []

    def node(self):
        return self.rng.choice(self.cluster.nodes)

    def run(self, kind, hold):
        n = self.node()
        started = time.time()
        detail = getattr(self, "_" + kind)(n, hold)
        entry = {"fault": kind, "node": n.index, "at": round(started, 3), "hold_s": hold, **(detail or {})}
        (self.skipped if entry.get("skipped") else self.injected).append(entry)

    def _kill(self, n, hold):
        log(f"fault: SIGKILL node{n.index}, restart after {hold:.1f}s")
        n.kill()
        time.sleep(hold)
        n.start()

    def _stop(self, n, hold):
        log(f"fault: SIGSTOP node{n.index} for {hold:.1f}s")
        n.pause()
        time.sleep(hold)
        n.resume()

    def _diskfull(self, n, hold):
        if not n.own_disk:
            log("fault: diskfull skipped (no disk of its own)")
            return {"skipped": True}
        ballast = os.path.join(n.log_dir, "ballast")
        log(f"fault: disk full on node{n.index} for {hold:.1f}s")
        subprocess.run(["dd", "if=/dev/zero", f"of={ballast}", "bs=1M"], capture_output=True)
        time.sleep(hold)
        os.remove(ballast)
        return {}

    def _torn(self, n, hold):
        log(f"fault: SIGKILL node{n.index}, tear a segment tail, restart")
        n.kill()
        segments = []
        for d in os.listdir(n.log_dir):
            if d.startswith("chaos-"):
                logs = sorted(f for f in os.listdir(os.path.join(n.log_dir, d)) if f.endswith(".log"))
                if logs:
                    segments.append(os.path.join(n.log_dir, d, logs[-1]))
        detail = {}
        if segments:
            path = self.rng.choice(sorted(segments))
            size = os.path.getsize(path)
            # A torn write of a batch nobody was told about: a plausible header (next offset,
            # a length past the end) followed by part of its bytes.
            with open(path, "ab") as f:
                header = struct.pack(">qi", 1 << 40, 4096) + bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(1, 200)))
                f.write(header)
            detail = {"file": os.path.relpath(path, n.log_dir), "at_byte": size}
        time.sleep(hold)
        n.start()
        return detail

    def _slow(self, n, hold):
        log(f"fault: 30 slowloris + 30 abandoned connections on node{n.index} for {hold:.1f}s")
        socks = []
        for _ in range(30):
            try:
                c = socket.create_connection(("127.0.0.1", n.port), timeout=2)
                c.sendall(struct.pack(">i", 64) + b"\x00\x12")  # abandoned mid-header
                socks.append(c)
            except OSError:
                pass
        slow = []
        for _ in range(30):
            try:
                slow.append(socket.create_connection(("127.0.0.1", n.port), timeout=2))
            except OSError:
                pass
        end = time.time() + hold
        payload = struct.pack(">i", 1 << 16) + b"\x01" * 1024
        i = 0
        while time.time() < end and i < len(payload):
            for c in slow:
                try:
                    c.sendall(payload[i:i + 1])
                except OSError:
                    pass
            i += 1
            time.sleep(0.05)
        for c in socks + slow:
            c.close()
        return {}


# MARK: - workloads

class Workload(threading.Thread):
    def __init__(self, cluster, stop):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop_event = stop
        self.error = None

    def run(self):
        try:
            self.body()
        except Exception as e:  # noqa: BLE001 - reported in the summary
            self.error = repr(e)
            log(f"{self.name}: {e!r}")


def paced(p, topic, prefix, rate, stop, report):
    """Produces `prefix-<n>` values at `rate` records/s until `stop`; returns how many."""
    seq, tick = 0, 0.05
    next_at = time.monotonic()
    while not stop.is_set():
        for _ in range(max(1, int(rate * tick))):
            try:
                p.produce(topic, value=b"%s-%d" % (prefix, seq), on_delivery=report)
                seq += 1
            except BufferError:
                break
        next_at += tick
        while (left := next_at - time.monotonic()) > 0 and not stop.is_set():
            p.poll(left)
    return seq


def produce_acked(w, prefix):
    """An idempotent acks=all producer for workload `w` (its `acked` and `failed` record the
    outcome of every value) until `w.stop_event`; returns how many values were sent."""
    p = Producer({"bootstrap.servers": w.cluster.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, **CLIENT})

    def report(err, msg):
        if err is None:
            w.acked[msg.value()] = (msg.partition(), msg.offset())
        else:
            w.failed.append(msg.value())

    sent = paced(p, w.topic, prefix, w.rate, w.stop_event, report)
    p.flush(120)
    return sent


class AppendWorkload(Workload):
    topic = "chaos-append"

    def __init__(self, cluster, stop, rate):
        super().__init__(cluster, stop)
        self.name = "append"
        self.rate = rate
        self.acked, self.failed = {}, []

    def body(self):
        self.sent = produce_acked(self, b"a")


class QueueWorkload(Workload):
    topic = "chaos-queue"

    def __init__(self, cluster, stop, rate):
        super().__init__(cluster, stop)
        self.name = "queue"
        self.rate = rate
        self.acked, self.failed, self.consumed = {}, [], []
        self.lock = threading.Lock()
        self.producing_done = threading.Event()

    def member(self, i, final_offsets):
        c = Consumer({"bootstrap.servers": self.cluster.bootstrap, "group.id": "chaos-queue-group",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000, **{k: v for k, v in CLIENT.items()
                                                                                      if k != "message.timeout.ms"}})
        c.subscribe([self.topic])
        idle_since = time.time()
        while True:
            m = c.poll(0.2)
            if m is None or m.error():
                if self.producing_done.is_set() and final_offsets.get("done") and time.time() - idle_since > 8:
                    break
                continue
            idle_since = time.time()
            with self.lock:
                self.consumed.append((m.partition(), m.offset(), m.value()))
            try:
                c.commit(message=m, asynchronous=False)
            except KafkaException:
                pass  # a commit lost to a fault: the record is redelivered, which is allowed
        c.close()

    def body(self):
        final = {}
        members = [threading.Thread(target=self.member, args=(i, final), daemon=True) for i in range(2)]
        for t in members:
            t.start()
        produce_acked(self, b"q")
        self.producing_done.set()
        final["done"] = True
        for t in members:
            t.join(180)


class TxnWorkload(Workload):
    topic = "chaos-txn"

    def __init__(self, cluster, stop, rng):
        super().__init__(cluster, stop)
        self.name = "txn"
        self.rng = rng
        self.transactions = []

    def producer(self):
        while not self.stop_event.is_set():
            p = Producer({"bootstrap.servers": self.cluster.bootstrap, "transactional.id": "chaos-txn-id",
                          "linger.ms": 5, **CLIENT, "transaction.timeout.ms": 15000,
                          "message.timeout.ms": 15000})
            try:
                p.init_transactions(30)
                return p
            except KafkaException as e:
                log(f"txn: init_transactions failed ({e}); retrying")
                time.sleep(1)
        return None

    def body(self):
        p = self.producer()
        n = 0
        while p is not None and not self.stop_event.is_set():
            values = [b"t%d-%d" % (n, i) for i in range(self.rng.randint(1, 6))]
            n += 1
            want_commit = self.rng.random() < 0.75
            outcome = "unknown"
            try:
                p.begin_transaction()
                for i, v in enumerate(values):
                    p.produce(self.topic, value=v, partition=i % 3)
                p.flush(30)
                if want_commit:
                    p.commit_transaction(30)
                    outcome = "committed"
                else:
                    p.abort_transaction(30)
                    outcome = "aborted"
            except KafkaException as e:
                err = e.args[0]
                if err.txn_requires_abort():
                    try:
                        p.abort_transaction(30)
                        outcome = "aborted"
                    except KafkaException:
                        pass
                if outcome == "unknown":
                    # Fatal, or a commit whose result we never learned: start over (the new
                    # producer fences the old one, which settles the transaction).
                    p = self.producer()
            self.transactions.append((outcome, values))
            time.sleep(0.02)


# MARK: - run

def ensure_topics(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1)
                              for t, n in (("chaos-append", 3), ("chaos-queue", 2), ("chaos-txn", 3))])
    for f in fs.values():
        try:
            f.result(30)
        except KafkaException:
            pass


def drain(bootstrap, topic, isolation="read_uncommitted", timeout=120):
    """Every record of `topic` from offset 0 to the end offsets read first: {partition: [(offset, value)]}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-drain-{time.time()}", "enable.auto.commit": False,
                  "isolation.level": isolation})
    md = c.list_topics(topic, timeout=30).topics[topic]
    parts = sorted(md.partitions)
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out = {p: [] for p in parts}
    positions = {p: 0 for p in parts}
    deadline = time.time() + timeout
    while any(positions[p] < ends[p] for p in parts) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out[m.partition()].append((m.offset(), m.value()))
        positions[m.partition()] = m.offset() + 1
        if isolation == "read_committed":
            # Control records and aborted data are skipped: the position may jump past them.
            for p in parts:
                pos = c.position([TopicPartition(topic, p)])[0].offset
                if pos >= 0:
                    positions[p] = max(positions[p], pos)
    c.close()
    return out


def schedule(rng, faults, duration, interval):
    """Fault times and holds. Every fault kind comes once (in a seeded order) before any repeats."""
    plan, t = [], interval * rng.uniform(0.5, 1.0)
    first = list(faults)
    rng.shuffle(first)
    while t < duration - 5:
        kind = first.pop(0) if first else rng.choice(faults)
        hold = {"kill": rng.uniform(0.2, 2.0), "stop": rng.uniform(5.0, 9.0), "diskfull": rng.uniform(3.0, 6.0),
                "torn": rng.uniform(0.2, 1.0), "slow": rng.uniform(3.0, 6.0)}[kind]
        plan.append((round(t, 1), kind, round(hold, 1)))
        t += hold + interval * rng.uniform(0.6, 1.4)
    return plan


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--duration", type=float, default=120, help="seconds of workload with faults (default 120)")
    ap.add_argument("--interval", type=float, default=10, help="mean seconds between faults")
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--rate", type=int, default=400, help="records/s per producing workload")
    ap.add_argument("--binary", default=os.environ.get("SLUICE_BIN", os.path.join(ROOT, ".build", "debug", "sluice")))
    ap.add_argument("--bootstrap", help="an externally run cluster (no faults are injected)")
    ap.add_argument("--brokers", type=int, default=1)
    ap.add_argument("--disk-mb", type=int, default=512, help="size of each node's own ext4 log disk (diskfull fault)")
    ap.add_argument("--durability", default="ack")
    ap.add_argument("--override", action="append", default=[], metavar="K=V",
                    help="a broker property for every node (repeatable), e.g. sluice.io.buffered.submit=ring")
    ap.add_argument("--out", default=None, help="directory for history.json and broker logs")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    rng = random.Random(seed)
    faults = [f for f in args.faults.split(",") if f]
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(faults) - set(FAULTS) | set(workloads) - set(WORKLOADS)
    if unknown:
        ap.error(f"unknown fault or workload: {sorted(unknown)}")
    plan = schedule(rng, faults, args.duration, args.interval) if not args.bootstrap and faults else []
    out = args.out or tempfile.mkdtemp(prefix="sluice-chaos-")
    os.makedirs(out, exist_ok=True)
    print(f"seed {seed}", flush=True)
    print("schedule " + json.dumps([{"t": t, "fault": k, "hold_s": h} for t, k, h in plan]), flush=True)

    nodes = []
    if not args.bootstrap:
        overrides = [f"sluice.durability={args.durability}", "offsets.topic.num.partitions=5",
                     "transaction.state.log.num.partitions=5", "group.initial.rebalance.delay.ms=0",
                     "transaction.abort.timed.out.transaction.cleanup.interval.ms=2000"] + args.override
        disk = args.disk_mb if "diskfull" in faults else None
        nodes = [Node(args.binary, out, i, overrides, disk) for i in range(args.brokers)]
        for n in nodes:
            n.start()
    cluster = Cluster(nodes, args.bootstrap)
    summary = {"seed": seed}
    try:
        ensure_topics(cluster.bootstrap)
        stop = threading.Event()
        running = []
        if "append" in workloads:
            running.append(AppendWorkload(cluster, stop, args.rate))
        if "queue" in workloads:
            running.append(QueueWorkload(cluster, stop, args.rate // 2))
        if "txn" in workloads:
            running.append(TxnWorkload(cluster, stop, random.Random(rng.random())))
        for w in running:
            w.start()
        injector = Faults(cluster, rng, out)
        started = time.time()
        for at, kind, hold in plan:
            time.sleep(max(0, started + at - time.time()))
            injector.run(kind, hold)
        time.sleep(max(0, started + args.duration - time.time()))
        log("workloads stopping; healing and draining")
        stop.set()
        for n in nodes:
            if n.stopped:
                n.resume()
            if not n.alive():
                n.start()
        for w in running:
            w.join(300)
        results = {}
        for w in running:
            if isinstance(w, AppendWorkload):
                results["append"] = check_append(w.acked, drain(cluster.bootstrap, w.topic))
                results["append"]["unacked"] = len(w.failed)
            elif isinstance(w, QueueWorkload):
                results["queue"] = check_queue(w.acked, w.consumed, drain(cluster.bootstrap, w.topic))
            elif isinstance(w, TxnWorkload):
                committed = drain(cluster.bootstrap, w.topic, "read_committed")
                results["txn"] = check_txn(w.transactions, [v for p in committed.values() for _, v in p])
            if w.error:
                results.setdefault(w.name, {})["workload_error"] = w.error
        total = sum(anomalies(r) for r in results.values())
        summary.update({
            "faults_injected": len(injector.injected),
            "faults_skipped": len(injector.skipped),
            "faults": dict(sorted({k: sum(1 for f in injector.injected if f["fault"] == k) for k in faults}.items())),
            "acked": sum(r.get("acked", 0) for r in results.values()) + results.get("txn", {}).get("committed", 0),
            "lost": sum(r.get("lost", 0) for r in results.values()),
            "duplicated": sum(r.get("duplicated", 0) for r in results.values()),
            "offset_conflicts": sum(r.get("offset_conflicts", 0) for r in results.values()),
            "non_monotonic": sum(r.get("non_monotonic", 0) for r in results.values()),
            "phantom_reads": sum(r.get("phantom_reads", 0) for r in results.values()),
            "aborted_reads": sum(r.get("aborted_reads", 0) for r in results.values()),
            "partial_transactions": sum(r.get("partial", 0) for r in results.values()),
            "anomalies": total,
            "ok": total == 0 and not any("workload_error" in r for r in results.values()),
            "workloads": results,
        })
        with open(os.path.join(out, "history.json"), "w") as f:
            json.dump({"summary": summary, "faults": injector.injected}, f, indent=1, default=str)
    finally:
        for n in nodes:
            n.cleanup()
    print(json.dumps(summary), flush=True)
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
