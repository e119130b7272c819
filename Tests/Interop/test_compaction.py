"""Log compaction against the real server: compacted topics read back by confluent-kafka and
kafka-python after the cleaner ran (every codec), tombstones, null keys refused, the internal
topics compacted, and kill -9 in the middle of cleanings."""
import os
import random
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from conftest import wait_for

CLEANER = ["log.cleaner.backoff.ms=100"]
TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.bytes": "8192", "min.cleanable.dirty.ratio": "0.01",
                "segment.ms": "200", "delete.retention.ms": "100"}


def create(s, name, config=None):
    admin = AdminClient({"bootstrap.servers": s.bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config=config or TOPIC_CONFIG)])[name].result(15)


def read_all(s, topic):
    """(offset, key, value) of every record from offset 0 to the end."""
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "compaction-check", "enable.partition.eof": True})
    end = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.time() + 20
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:
                break
            raise KafkaException(m.error())
        out.append((m.offset(), m.key(), m.value()))
        if m.offset() + 1 >= end:
            break
    c.close()
    return out


def roll(p, topic):
    """Waits past segment.ms, then one filler record rolls the active segment, so everything
    written so far becomes cleanable."""
    time.sleep(0.3)
    p.produce(topic, key=b"~filler", value=b"x")
    assert p.flush(10) == 0


def produce_history(s, topic, codec, rounds=30, keys=20, seed=1):
    rng = random.Random(seed)
    p = Producer({"bootstrap.servers": s.bootstrap, "compression.type": codec, "linger.ms": 2})
    latest = {}
    for r in range(rounds):
        for k in rng.sample(range(keys), keys // 2):
            key = b"key-%02d" % k
            value = None if rng.random() < 0.08 else b"%s=%d" % (key, r) + b"." * rng.randint(0, 300)
            p.produce(topic, key=key, value=value)
            latest[key] = value
        assert p.flush(10) == 0
    roll(p, topic)
    return latest


def compacted_view(records):
    """Every key with its last value, and whether each key appears once (the cleaned log)."""
    seen = {}
    for _, k, v in records:
        seen.setdefault(k, []).append(v)
    return {k: vs[-1] for k, vs in seen.items()}, all(len(vs) == 1 for vs in seen.values())


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compacted_topic_reads_back_latest_values(make_sluice, codec):
    s = make_sluice(CLEANER).start()
    topic = f"compact-{codec}"
    # Held back (a ratio of 1 is never exceeded) until the history is written and measured.
    create(s, topic, {**TOPIC_CONFIG, "min.cleanable.dirty.ratio": "1"})
    latest = produce_history(s, topic, codec)
    live = {k: v for k, v in latest.items() if v is not None}
    part = os.path.join(s.log_dir, f"{topic}-0")

    def log_bytes():
        return sum(os.path.getsize(os.path.join(part, f)) for f in os.listdir(part) if f.endswith(".log"))
    written = log_bytes()
    assert len(read_all(s, topic)) > 30 * 20 // 2, "the history was cleaned before the cleaner was let go"
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("min.cleanable.dirty.ratio", "0.01", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(15)

    def cleaned():
        records = [r for r in read_all(s, topic) if r[1] != b"~filler"]
        view, unique = compacted_view(records)
        # Tombstones may linger until delete.retention.ms after their first cleaning.
        return unique and {k: v for k, v in view.items() if v is not None} == live and records

    records = wait_for(cleaned, timeout=30, interval=0.3, what="the cleaner to compact the topic")
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(offsets) < 30 * 10  # original offsets, gaps allowed
    # kafka-python sees the same compacted log.
    from kafka import KafkaConsumer
    kc = KafkaConsumer(bootstrap_servers=s.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=4000)
    from kafka import TopicPartition as KTP
    kc.assign([KTP(topic, 0)])
    kpy = [(m.offset, m.key, m.value) for m in kc if m.key != b"~filler"]
    kc.close()
    assert {k: v for k, v in compacted_view(kpy)[0].items() if v is not None} == live
    # The cleaner's work shows on disk too: the segments hold well under half of what was written
    # (20 live keys of 600 records), and its progress is checkpointed.
    assert log_bytes() < written / 2, f"{log_bytes()} bytes of segments after cleaning, {written} before"
    wait_for(lambda: os.path.exists(os.path.join(s.log_dir, "cleaner-offset-checkpoint")), timeout=5,
             what="cleaner-offset-checkpoint")


def test_tombstones_disappear_after_delete_retention(make_sluice):
    s = make_sluice(CLEANER).start()
    create(s, "tomb")
    p = Producer({"bootstrap.servers": s.bootstrap})
    for i in range(200):
        p.produce("tomb", key=b"k%d" % (i % 5), value=b"v%d" % i + b"." * 100)
    for k in range(5):
        p.produce("tomb", key=b"k%d" % k, value=None)
    p.flush(10)
    roll(p, "tomb")

    def gone():
        # After the first cleaning the tombstones carry a horizon (delete.retention.ms=100);
        # a later cleaning (new dirty data) removes them.
        roll(p, "tomb")
        return [r for r in read_all(s, "tomb") if r[1] != b"~filler"] == []

    wait_for(gone, timeout=40, interval=0.5, what="tombstones past their horizon to be removed")


def test_null_key_refused_on_compacted_topic(sluice):
    create(sluice, "nokeys", {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    errors = []
    p.produce("nokeys", value=b"no key", on_delivery=lambda e, m: errors.append(e))
    p.flush(10)
    assert errors and errors[0] is not None and errors[0].code() == 87  # INVALID_RECORD


def test_kill_9_during_cleaning_leaves_a_consistent_log(make_sluice):
    # A throttled cleaner makes each cleaning take a while, so kills land in the middle.
    s = make_sluice(CLEANER + ["log.cleaner.io.max.bytes.per.second=200000"]).start()
    create(s, "crashy", dict(TOPIC_CONFIG, **{"segment.bytes": "32768"}))
    p = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 2})
    latest = {}
    rng = random.Random(7)
    for kill in range(4):
        for i in range(3000):
            key = b"key-%03d" % rng.randrange(200)
            value = b"%s=%d.%d" % (key, kill, i) + b"." * 50
            p.produce("crashy", key=key, value=value)
            latest[key] = value
        assert p.flush(20) == 0
        roll(p, "crashy")
        time.sleep(rng.uniform(0.2, 1.5))
        s.kill()
        part = os.path.join(s.log_dir, "crashy-0")
        leftovers = [d for d in os.listdir(part) if d.startswith("cleaner-")]
        s.start()
        assert not [d for d in os.listdir(part) if d.startswith("cleaner-")], f"unresolved {leftovers}"
        p = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 2})
        # Compaction never moves the log start offset (a cleaning that emptied the first
        # segment once did, at the next start, and reading from 0 got OFFSET_OUT_OF_RANGE).
        c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "watermarks"})
        assert c.get_watermark_offsets(TopicPartition("crashy", 0), timeout=10, cached=False)[0] == 0, f"after kill {kill}"
        c.close()
        records = [r for r in read_all(s, "crashy") if r[1] != b"~filler"]
        offsets = [o for o, _, _ in records]
        assert offsets == sorted(set(offsets))
        assert compacted_view(records)[0] == latest, f"after kill {kill}"
