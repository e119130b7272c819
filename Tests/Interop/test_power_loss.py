"""A power cut under the running broker. Its log directory is on powercut-fs (Tests/PowerLoss), a
FUSE pass-through that, when unmounted, undoes every write no fsync made durable. An idempotent
acks=all producer writes while the broker is killed with SIGKILL and the file system is cut;
after a remount and a restart, every record acknowledged under `sluice.durability=ack` must be
read back at its offset. The same run with durability `none` (acknowledged before any fsync)
must lose records, which shows the check can fail."""
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ROOT, SluiceProcess, wait_for

SOURCE = os.path.join(ROOT, "Tests", "PowerLoss", "powercut-fs.c")
BINARY = os.path.join(ROOT, ".build", "powercut-fs")


def build_fs():
    if os.path.exists(BINARY) and os.path.getmtime(BINARY) >= os.path.getmtime(SOURCE):
        return BINARY
    flags = subprocess.run(["pkg-config", "fuse3", "--cflags", "--libs"], capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-Wall", "-o", BINARY, SOURCE] + flags, check=True)
    return BINARY


class PowercutFS:
    def __init__(self, workdir):
        self.backing = os.path.join(workdir, "disk")
        self.mount = os.path.join(workdir, "mnt")
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.mount, exist_ok=True)
        self.proc = None
        self.report = ""

    def up(self):
        self.proc = subprocess.Popen([build_fs(), self.backing, self.mount], stderr=subprocess.PIPE, text=True)
        wait_for(lambda: os.path.ismount(self.mount) or self.proc.poll() is not None, timeout=10, what="the mount")
        assert os.path.ismount(self.mount), self.proc.stderr.read()
        return self

    def cut(self):
        """Unmounts: every change not fsynced is undone (the FS's destroy runs before it exits)."""
        subprocess.run(["fusermount3", "-u", self.mount], check=True)
        self.proc.wait(30)
        self.report = self.proc.stderr.read()
        assert "power cut" in self.report, self.report

    def down(self):
        if self.proc and self.proc.poll() is None:
            subprocess.run(["fusermount3", "-u", "-z", self.mount])
            self.proc.wait(10)


@pytest.fixture
def workdir():
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None or os.geteuid() != 0:
        pytest.skip("needs /dev/fuse, fusermount3 (Debian's fuse3) and root")
    d = tempfile.mkdtemp(prefix="sluice-powercut-", dir="/var/tmp")
    yield d
    subprocess.run(["fusermount3", "-u", "-z", os.path.join(d, "mnt")], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def produce_until_killed(broker, topic, partitions):
    """Produces from a thread, kills the broker with SIGKILL once enough is acknowledged, and
    returns {(partition, offset): value} of every acknowledged record."""
    acked = {}
    lock = threading.Lock()

    def delivered(err, msg):
        if err is None:
            with lock:
                acked[(msg.partition(), msg.offset())] = msg.value()

    stop = threading.Event()

    def run():
        p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all",
                      "linger.ms": 2, "message.timeout.ms": 5000, "log_level": 0})
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=b"v-%08d" % i + b"." * 200, partition=i % partitions, on_delivery=delivered)
                i += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0)
        p.flush(8)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_for(lambda: len(acked) >= 3000, timeout=60, what="3000 acknowledged records")
    at_kill = len(acked)
    broker.kill()  # mid-stream: requests in flight, writes not yet synced
    print(f"killed with {at_kill} acknowledged")
    stop.set()
    t.join(30)
    with lock:
        return dict(acked)


def read_back(broker, topic, partitions):
    found = {}
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "powercut-check", "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    ended = set()
    deadline = time.time() + 60
    while len(ended) < partitions and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:
                ended.add(m.partition())
                continue
            raise AssertionError(m.error())
        found[(m.partition(), m.offset())] = m.value()
    c.close()
    assert len(ended) == partitions, "did not reach the end of every partition"
    return found


def run_power_cut(workdir, durability):
    fs = PowercutFS(workdir).up()
    log_dir = os.path.join(fs.mount, "logs")
    # Small segments, so the cut comes after rolls too (new segment files, the roll's flush).
    overrides = [f"sluice.durability={durability}", "log.segment.bytes=262144"]
    broker = SluiceProcess(log_dir, overrides).start()
    topic, partitions = "powercut", 3
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)
    try:
        acked = produce_until_killed(broker, topic, partitions)
        fs.cut()
        fs.up()
        broker.start()
        found = read_back(broker, topic, partitions)
        broker.stop()
    finally:
        broker.kill()
        fs.down()
    lost = sorted(k for k, v in acked.items() if found.get(k) != v)
    return acked, lost, fs.report


def test_power_cut_loses_no_acknowledged_record_under_durability_ack(workdir):
    acked, lost, report = run_power_cut(workdir, "ack")
    print(f"acked {len(acked)}, lost {len(lost)}; {report.strip()}")
    assert len(acked) >= 3000
    assert lost == [], f"{len(lost)} of {len(acked)} acknowledged records lost, e.g. {lost[:5]}; {report}"


def test_the_power_cut_check_fails_when_acknowledgements_precede_fsync(workdir):
    acked, lost, report = run_power_cut(workdir, "none")
    print(f"acked {len(acked)}, lost {len(lost)}; {report.strip()}")
    assert len(acked) >= 3000
    assert lost, f"durability none lost nothing of {len(acked)} records: the power cut did not bite; {report}"
