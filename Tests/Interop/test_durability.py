"""Restarts and crashes: nothing acknowledged is lost."""
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BINARY, wait_for


def read_values(bootstrap, topic, partitions, timeout=30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False})
    highs = {}
    for p in range(partitions):
        highs[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = {p: [] for p in range(partitions)}
    deadline = time.time() + timeout
    while sum(len(v) for v in out.values()) < sum(highs.values()) and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            out[m.partition()].append((m.offset(), m.value()))
    c.close()
    return out


def test_clean_restart_reads_everything_back(sluice):
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    for f in a.create_topics([NewTopic("restart", 3, 1)]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": sluice.bootstrap, "compression.type": "lz4"})
    for i in range(3000):
        p.produce("restart", value=b"r%d" % i, partition=i % 3)
    assert p.flush(20) == 0
    before = read_values(sluice.bootstrap, "restart", 3)
    assert sum(len(v) for v in before.values()) == 3000
    assert sluice.stop() == 0
    assert os.path.exists(os.path.join(sluice.log_dir, ".kafka_cleanshutdown"))
    sluice.start()
    after = read_values(sluice.bootstrap, "restart", 3)
    assert after == before
    # Appends continue at the old end.
    reports = []
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    p.produce("restart", value=b"next", partition=0, on_delivery=lambda e, m: reports.append(m.offset()))
    p.flush(10)
    assert reports == [1000]


@pytest.mark.parametrize("io_mode,durability", [("buffered", "ack"), ("direct", "ack"), ("direct", "none"),
                                               ("ring", "ack"), ("ring", "none")])
def test_kill_9_loses_no_acknowledged_record(make_sluice, io_mode, durability):
    """SIGKILL mid-stream. With durability `ack` every acknowledged record was fsynced; with
    `none` a process crash (not a power cut) must still keep them, because an acknowledgement
    waits until the record is in the file: a write-behind (direct mode, or buffered appends
    with sluice.io.buffered.submit=ring) answers only once its write completed."""
    mode = ["sluice.io.buffered.submit=ring"] if io_mode == "ring" else [f"sluice.io.mode={io_mode}"]
    s = make_sluice([f"sluice.durability={durability}"] + mode).start()
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    for f in a.create_topics([NewTopic("crash", 2, 1)]).values():
        f.result(15)
    acked = set()
    lock = threading.Lock()

    def on_delivery(err, msg):
        if err is None:
            with lock:
                acked.add(msg.value())

    stop = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": s.bootstrap, "acks": "all", "linger.ms": 2,
                      "message.timeout.ms": 5000, "retries": 0})
        i = 0
        while not stop.is_set():
            try:
                p.produce("crash", value=b"c%d" % i, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0)
        p.flush(6)

    t = threading.Thread(target=produce)
    t.start()
    # Let some thousands of acknowledgements happen, then kill the broker mid-stream.
    deadline = time.time() + 30
    while len(acked) < 3000 and time.time() < deadline:
        time.sleep(0.05)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    stop.set()
    t.join(30)
    with lock:
        acknowledged = set(acked)
    assert len(acknowledged) >= 3000
    assert not os.path.exists(os.path.join(s.log_dir, ".kafka_cleanshutdown"))
    s.start()
    values = read_values(s.bootstrap, "crash", 2)
    stored = [v for part in values.values() for (_, v) in part]
    missing = acknowledged - set(stored)
    assert not missing, f"{len(missing)} acknowledged records lost"
    for part in values.values():
        assert [o for o, _ in part] == list(range(len(part))), "offsets stay contiguous after recovery"


def test_direct_io_as_a_topic_config(sluice):
    """sluice.io.mode is a topic config too: a direct-I/O topic next to a buffered one."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    for f in a.create_topics([NewTopic("direct-topic", 1, 1, config={"sluice.io.mode": "direct"})]).values():
        f.result(15)
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, "direct-topic")
    described = list(a.describe_configs([res]).values())[0].result(15)
    assert described["sluice.io.mode"].value == "direct"
    p = KafkaProducer(bootstrap_servers=sluice.bootstrap, acks="all")
    values = [os.urandom(random.choice([1, 100, 3000, 5000, 9000])) for _ in range(500)]
    for v in values:
        p.send("direct-topic", v)
    p.flush(20)
    p.close()
    seg = os.path.join(sluice.log_dir, "direct-topic-0", "00000000000000000000.log")
    assert os.path.getsize(seg) % 4096 == 0, "the active direct-I/O segment is padded to whole blocks"
    c = KafkaConsumer(bootstrap_servers=sluice.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    c.assign([KTP("direct-topic", 0)])
    got = [m.value for m in c][:len(values)]
    c.close()
    assert got == values


def test_ring_submission_as_a_topic_config_writes_on_the_commit_threads(make_sluice):
    """sluice.io.buffered.submit is a topic config: produce to a ring topic is written by the
    group-commit threads' io_uring (sluice_log_write_behind_writes_total moves), produce to an inline
    topic is not, and both read back whole after a restart."""
    import urllib.request
    from confluent_kafka.admin import ConfigResource
    from conftest import free_port

    port = free_port()
    s = make_sluice([f"sluice.metrics.port={port}"]).start()

    def writes_behind():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        return int(next(l for l in text.splitlines() if l.startswith("sluice_log_write_behind_writes_total ")).split()[1])

    a = AdminClient({"bootstrap.servers": s.bootstrap})
    for f in a.create_topics([NewTopic("ring-topic", 1, 1, config={"sluice.io.buffered.submit": "ring"}),
                              NewTopic("inline-topic", 1, 1)]).values():
        f.result(15)
    described = {t: a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t)])
                 for t in ("ring-topic", "inline-topic")}
    values = {t: list(r.values())[0].result(15)["sluice.io.buffered.submit"].value for t, r in described.items()}
    assert values == {"ring-topic": "ring", "inline-topic": "inline"}
    p = Producer({"bootstrap.servers": s.bootstrap, "acks": "all", "linger.ms": 0})
    payload = [b"%05d" % i + b"r" * (i % 700) for i in range(500)]
    for v in payload:
        p.produce("inline-topic", v)
    assert p.flush(15) == 0
    before = writes_behind()
    assert before == 0, "an inline topic was written on the ring"
    for v in payload:
        p.produce("ring-topic", v)
    assert p.flush(15) == 0
    assert writes_behind() > 0, "the ring topic's appends were not written on the commit threads"
    s.stop()
    s.start()
    for t in ("ring-topic", "inline-topic"):
        assert [v for _, v in read_values(s.bootstrap, t, 1)[0]] == payload
    # After the restart the active segments reopen with their topic's I/O settings (once they
    # opened with the broker defaults until the next roll): the ring topic's .log has the commit
    # threads' second descriptor, and its appends are written behind again.
    def log_descriptors(topic):
        return _files_open_into(s.proc.pid, os.path.join(s.log_dir, f"{topic}-0", "0" * 20 + ".log"))
    assert log_descriptors("ring-topic") == 2
    assert log_descriptors("inline-topic") == 1
    after_restart = writes_behind()
    p = Producer({"bootstrap.servers": s.bootstrap, "acks": "all", "linger.ms": 0})
    for v in payload[:50]:
        p.produce("ring-topic", v)
    assert p.flush(15) == 0
    assert writes_behind() > after_restart, "after a restart the ring topic was written inline"


def test_ring_as_the_broker_default_leaves_the_internal_topics_inline(make_sluice):
    """With sluice.io.buffered.submit=ring as the broker default, user topics write behind and
    __consumer_offsets keeps inline writes (its appends are never deferred, and inline writes
    survive a full disk); a committed offset reads back after a restart."""
    from confluent_kafka.admin import ConfigResource

    s = make_sluice(["sluice.io.buffered.submit=ring"]).start()
    p = Producer({"bootstrap.servers": s.bootstrap})
    for i in range(50):
        p.produce("by-default", b"v%d" % i)
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "g-ring", "enable.auto.commit": False})
    c.assign([TopicPartition("by-default", 0, 0)])
    got = 0
    deadline = time.time() + 20
    while got < 50 and time.time() < deadline:
        m = c.poll(0.5)
        got += m is not None and m.error() is None
    assert got == 50
    c.commit(asynchronous=False)
    c.close()
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "by-default")])
    assert list(res.values())[0].result(15)["sluice.io.buffered.submit"].value == "ring"
    # A written-behind active segment has a second descriptor on its .log (the commit threads'
    # write-only one); an inline one has only its own.
    def log_descriptors(partition_dir):
        return _files_open_into(s.proc.pid, os.path.join(s.log_dir, partition_dir, "0" * 20 + ".log"))
    assert log_descriptors("by-default-0") == 2
    offsets = [d for d in os.listdir(s.log_dir) if d.startswith("__consumer_offsets-")]
    assert offsets and all(log_descriptors(d) == 1 for d in offsets), \
        {d: log_descriptors(d) for d in offsets if log_descriptors(d) != 1}
    s.stop()
    s.start()
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "g-ring"})
    committed = c.committed([TopicPartition("by-default", 0)], timeout=15)
    c.close()
    assert committed[0].offset == 50


def test_internal_logs_keep_their_own_settings_after_a_restart(make_sluice):
    """The metadata log fsyncs every record before it counts, and __consumer_offsets writes
    inline, also after a restart: the logs open with their own settings, not the broker's
    defaults (once they did, and a restarted broker's metadata appends were never fsynced)."""
    import urllib.request
    from conftest import free_port

    port = free_port()
    s = make_sluice([f"sluice.metrics.port={port}", "sluice.io.buffered.submit=ring"]).start()

    def fsyncs():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        return int(next(l for l in text.splitlines() if l.startswith("sluice_log_fsyncs_total ")).split()[1])

    a = AdminClient({"bootstrap.servers": s.bootstrap})
    for f in a.create_topics([NewTopic("before-restart", 1, 1)]).values():
        f.result(15)
    s.stop()
    s.start()
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    before = fsyncs()
    for f in a.create_topics([NewTopic("after-restart", 1, 1)]).values():
        f.result(15)
    assert fsyncs() > before, "creating a topic after a restart fsynced nothing: the metadata log lost its durability"
    offsets = [d for d in os.listdir(s.log_dir) if d.startswith("__consumer_offsets-")]
    counts = {d: _files_open_into(s.proc.pid, os.path.join(s.log_dir, d, "0" * 20 + ".log")) for d in offsets}
    assert offsets and all(n == 1 for n in counts.values()), counts


def _files_open_into(pid, directory):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(directory):
                n += 1
        except OSError:
            pass
    return n


def test_open_segment_files_are_bounded_and_reopened_for_consumers(make_sluice):
    """sluice.segments.open.max: many rolled segments, few open files; every record still reads."""
    limit, partitions = 8, 3
    s = make_sluice([f"sluice.segments.open.max={limit}"]).start()
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    for f in a.create_topics([NewTopic("many-segments", partitions, 1, config={"segment.bytes": "4096"})]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    sent = {q: [] for q in range(partitions)}
    for i in range(1500):
        v = b"%05d-" % i + os.urandom(200).hex().encode()
        p.produce("many-segments", value=v, partition=i % partitions)
        sent[i % partitions].append(v)
        if i % 100 == 0:
            p.flush(10)
    assert p.flush(20) == 0
    segments = sum(1 for root, _, files in os.walk(s.log_dir) for f in files if f.endswith(".log") and "many-segments" in root)
    assert segments > 10 * limit, f"only {segments} segments: the topic did not roll enough to test the bound"
    for _ in range(2):  # the second pass reopens what the first closed
        got = read_values(s.bootstrap, "many-segments", partitions)
        assert {q: [v for _, v in got[q]] for q in got} == sent
    data_dir = os.path.join(s.log_dir, "many-segments-")
    open_files = _files_open_into(s.proc.pid, data_dir)
    # Each open segment holds its .log and two index descriptors; the active ones are extra.
    assert open_files <= 3 * (limit + limit // 8 + 1 + partitions), f"{open_files} open files for {segments} segments"


def _allocated_bytes(path):
    return os.stat(path).st_blocks * 512


def test_preallocate_reserves_user_segments_but_not_the_internal_topics(make_sluice):
    """log.preallocate=true fallocates each new user segment to segment.bytes; the 100 internal
    partitions created at start are left alone (they once reserved 100 GiB and filled the disk)."""
    segment = 32 << 20
    s = make_sluice(["log.preallocate=true", f"log.segment.bytes={segment}"]).start()
    p = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 0})
    values = [b"pre-%04d-" % i + os.urandom(100).hex().encode() for i in range(300)]
    for v in values:
        p.produce("prealloc", value=v, partition=0)
    assert p.flush(20) == 0
    active = os.path.join(s.log_dir, "prealloc-0", "0" * 20 + ".log")
    assert _allocated_bytes(active) >= segment, "the user segment was not preallocated"
    assert os.path.getsize(active) < segment, "preallocation must not change the file's size"
    internal = [os.path.join(root, f) for root, _, files in os.walk(s.log_dir) for f in files
                if f.endswith(".log") and ("__consumer_offsets" in root or "__transaction_state" in root)]
    assert len(internal) == 100, f"expected 50 + 50 internal partitions, found {len(internal)} logs"
    assert sum(_allocated_bytes(f) for f in internal) < (1 << 20), "internal topics were preallocated"
    got = read_values(s.bootstrap, "prealloc", 1)
    assert [v for _, v in got[0]] == values


@pytest.mark.parametrize("mode", ["whole", "step"])
def test_rolled_segments_give_back_the_blocks_preallocation_reserved(make_sluice, mode):
    """preallocate=true (the whole segment) or sluice.preallocate.step.bytes (ahead of the end
    by a step, or by as much as the segment holds when that is less, 64 KiB at least), set as
    topic configs: the active segment holds the reservation, and once rolled it holds only its
    data (sealing once kept every segment's whole reservation)."""
    segment, step = 32 << 20, 4 << 20
    s = make_sluice().start()
    knob, value = ("preallocate", "true") if mode == "whole" else ("sluice.preallocate.step.bytes", str(step))
    config = {"segment.bytes": str(segment), "segment.ms": "300", knob: value}
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    for f in a.create_topics([NewTopic("reserve", 1, 1, config=config)]).values():
        f.result(15)
    from confluent_kafka.admin import ConfigResource
    described = list(a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "reserve")]).values())[0].result(15)
    assert described[knob].value == value
    p = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 0})
    values = [b"r-%04d-" % i + os.urandom(200).hex().encode() for i in range(200)]
    for v in values[:100]:
        p.produce("reserve", value=v, partition=0)
    assert p.flush(20) == 0
    first = os.path.join(s.log_dir, "reserve-0", "0" * 20 + ".log")
    reserved = _allocated_bytes(first)
    data = os.path.getsize(first)
    if mode == "whole":
        assert reserved >= segment, f"reserved only {reserved} bytes"
    else:
        # About 47 KB of data: 64 KiB reserved ahead of it, not the whole 4 MiB step.
        assert data + (60 << 10) <= reserved < step, f"{reserved} bytes held for {data} of data"
    assert os.path.getsize(first) < 1 << 20, "the file size is the data's"
    # Once segment.ms has passed, the next record rolls the segment.
    part = os.path.join(s.log_dir, "reserve-0")
    sent = 100

    def rolled():
        nonlocal sent
        if sent < len(values):
            p.produce("reserve", value=values[sent], partition=0)
            sent += 1
            assert p.flush(20) == 0
        return len([f for f in os.listdir(part) if f.endswith(".log")]) >= 2
    wait_for(rolled, timeout=10, what="a roll")
    for v in values[sent:]:
        p.produce("reserve", value=v, partition=0)
    assert p.flush(20) == 0
    size = os.path.getsize(first)
    assert _allocated_bytes(first) <= (size + 4095) // 4096 * 4096 + (64 << 10), \
        f"the rolled segment still holds {_allocated_bytes(first)} bytes for {size} bytes of data"
    got = read_values(s.bootstrap, "reserve", 1)
    assert [v for _, v in got[0]] == values


@pytest.mark.parametrize("write_behind", [{"sluice.io.mode": "direct"}, {"sluice.io.buffered.submit": "ring"}],
                         ids=["direct", "ring"])
def test_consumer_tailing_a_direct_topic_sees_every_record_whole_and_in_order(sluice, write_behind):
    """Direct mode, and buffered mode with sluice.io.buffered.submit=ring, write behind: a
    record is readable (and the high watermark covers it) only once its write landed. A consumer
    reading while a producer writes must get every value, in order, with intact CRCs (librdkafka
    checks them with check.crcs), never bytes still on their way to the file."""
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    for f in a.create_topics([NewTopic("tail-direct", 2, 1, config={**write_behind, "segment.bytes": "1048576"})]).values():
        f.result(15)
    rng = random.Random(11)
    values = [b"%06d-" % i + os.urandom(rng.choice([10, 700, 3000, 9000])) for i in range(12000)]
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "tail", "enable.auto.commit": False,
                  "check.crcs": True, "fetch.wait.max.ms": 10})
    c.assign([TopicPartition("tail-direct", p, 0) for p in range(2)])
    got = {0: [], 1: []}

    def produce():
        p = Producer({"bootstrap.servers": sluice.bootstrap, "linger.ms": 1, "acks": "1"})
        for i, v in enumerate(values):
            while True:
                try:
                    p.produce("tail-direct", value=v, partition=i % 2)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        assert p.flush(30) == 0

    t = threading.Thread(target=produce)
    t.start()
    deadline = time.time() + 60
    while sum(len(v) for v in got.values()) < len(values) and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got[m.partition()].append((m.offset(), m.value()))
    t.join(30)
    c.close()
    for p in range(2):
        assert [o for o, _ in got[p]] == list(range(len(got[p])))
        assert [v for _, v in got[p]] == values[p::2]


def _batches_end(path):
    """Where the record batches in a segment file end (each is baseOffset, length, then length
    bytes), and the file's bytes."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
        if length <= 0:
            break
        pos += 12 + length
    return pos, data


@pytest.mark.parametrize("ending", ["restart", "kill"])
def test_zero_ahead_keeps_zeros_past_the_end_that_nobody_reads(make_sluice, ending):
    """With durability ack the active segment keeps zeros written ahead of its end
    (sluice.zero.ahead.bytes), so that the fdatasync an acknowledgement waits for overwrites
    blocks the file already has. Consumers never see them; a clean shutdown truncates them, and
    after a crash recovery stops at them: every acknowledged record is read back once, in order,
    and appends go on after them. A topic with sluice.zero.ahead.bytes=0 keeps none."""
    s = make_sluice(["sluice.durability=ack"]).start()
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    for f in a.create_topics([NewTopic("zeros", 1, 1), NewTopic("nozeros", 1, 1, config={"sluice.zero.ahead.bytes": "0"})]).values():
        f.result(15)
    # The appending thread writes the zeros, so the setting is bounded (16 MiB).
    from confluent_kafka import KafkaException
    with pytest.raises(KafkaException) as e:
        for f in a.create_topics([NewTopic("hugezeros", 1, 1, config={"sluice.zero.ahead.bytes": str(1 << 30)})]).values():
            f.result(15)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    p = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 0, "acks": "all"})
    values = [b"z-%04d-" % i + os.urandom(100).hex().encode() for i in range(300)]
    for v in values[:200]:
        p.produce("zeros", value=v, partition=0)
        p.produce("nozeros", value=v, partition=0)
    assert p.flush(20) == 0
    first = lambda topic: os.path.join(s.log_dir, f"{topic}-0", "0" * 20 + ".log")
    end, data = _batches_end(first("zeros"))
    assert end > 200 * 200, f"batches end at {end}"
    assert len(data) - end >= 32 << 10, f"{len(data) - end} bytes past the batches (no zeros ahead)"
    assert data[end:] == bytes(len(data) - end), "past the batches the file holds zeros only"
    nend, ndata = _batches_end(first("nozeros"))
    assert len(ndata) == nend, "sluice.zero.ahead.bytes=0 keeps the file at its data"
    # Our kafka-dump-log names the zeros for what they are, not an invalid batch.
    dumped = subprocess.run([BINARY, "dump-log", "--files", first("zeros")], capture_output=True, text=True, timeout=60).stdout
    counts = [int(line.split(" count: ")[1].split()[0]) for line in dumped.splitlines() if line.startswith("baseOffset:")]
    assert sum(counts) == 200 and "bytes of zeros past the last batch" in dumped, dumped[-500:]
    assert "invalid batch" not in dumped and "partial batch" not in dumped
    got = read_values(s.bootstrap, "zeros", 1)[0]
    assert [v for _, v in got] == values[:200]
    if ending == "restart":
        assert s.stop() == 0
        end, data = _batches_end(first("zeros"))
        assert len(data) == end, "a clean shutdown leaves no zeros behind"
        s.start()
    else:
        s.kill()
        s.start()
        # Recovery says it cut zeros, not records (no data-loss warning for them).
        lines = [line for line in s.output if "zeros-0/" in line and "recovery" in line]
        assert lines and all("bytes of zeros past the last batch" in line for line in lines), lines
    p = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 0, "acks": "all"})
    for v in values[200:]:
        p.produce("zeros", value=v, partition=0)
    assert p.flush(20) == 0
    got = read_values(s.bootstrap, "zeros", 1)[0]
    assert [o for o, _ in got] == list(range(300))
    assert [v for _, v in got] == values
