"""Restarts and crashes: nothing acknowledged is lost."""
import os
import random
import signal
import threading
import time

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


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


@pytest.mark.parametrize("io_mode", ["buffered", "direct"])
def test_kill_9_under_ack_durability_loses_no_acknowledged_record(make_sluice, io_mode):
    s = make_sluice(["sluice.durability=ack", f"sluice.io.mode={io_mode}"]).start()
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
