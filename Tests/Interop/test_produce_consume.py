"""Produce and consume with real clients against the real sluice process."""
import asyncio
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def create(bootstrap, topic, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})]).values():
        f.result(15)


def consume_all(bootstrap, topic, partitions, expected, timeout=30, **extra):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "interop", "enable.auto.commit": False, **extra})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    deadline = time.time() + timeout
    while len(out) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_every_codec_keys_headers_nulls(sluice, codec):
    topic = f"codec-{codec}"
    create(sluice.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": sluice.bootstrap, "compression.type": codec, "linger.ms": 5})
    sent = []
    for i in range(200):
        key = None if i % 10 == 0 else f"key-{i}".encode()
        value = None if i % 17 == 0 else (b"" if i % 13 == 0 else f"{codec}-value-{i}".encode() * (1 + i % 5))
        headers = [("idx", str(i).encode()), ("empty", b"")] if i % 3 == 0 else None
        p.produce(topic, key=key, value=value, headers=headers, partition=i % 2)
        sent.append((i % 2, key, value, headers))
    assert p.flush(20) == 0
    got = consume_all(sluice.bootstrap, topic, 2, len(sent))
    assert len(got) == len(sent)
    by_partition = {0: [], 1: []}
    for m in got:
        by_partition[m.partition()].append(m)
    for part, msgs in by_partition.items():
        offsets = [m.offset() for m in msgs]
        assert offsets == list(range(len(msgs))), "offsets are contiguous per partition"
        expected = [s for s in sent if s[0] == part]
        for m, (_, key, value, headers) in zip(msgs, expected):
            assert m.key() == key
            assert m.value() == value
            if headers:
                assert m.headers() == headers


def test_large_record_one_mebibyte(sluice):
    topic = "big"
    create(sluice.bootstrap, topic, 1, {"max.message.bytes": str(4 << 20)})
    value = bytes(range(256)) * 4096  # 1 MiB
    p = Producer({"bootstrap.servers": sluice.bootstrap, "message.max.bytes": 4 << 20})
    p.produce(topic, value=value)
    assert p.flush(20) == 0
    got = consume_all(sluice.bootstrap, topic, 1, 1, **{"fetch.message.max.bytes": 4 << 20})
    assert [m.value() for m in got] == [value]


def test_record_over_max_message_bytes_is_refused(sluice):
    topic = "small-limit"
    create(sluice.bootstrap, topic, 1, {"max.message.bytes": "2000"})
    errors = []
    p = Producer({"bootstrap.servers": sluice.bootstrap, "message.max.bytes": 1 << 20})
    p.produce(topic, value=b"x" * 50_000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].name() == "MSG_SIZE_TOO_LARGE"


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(sluice, acks):
    topic = f"acks-{acks}"
    create(sluice.bootstrap, topic)
    reports = []
    p = Producer({"bootstrap.servers": sluice.bootstrap, "acks": acks})
    for i in range(100):
        p.produce(topic, value=str(i).encode(), on_delivery=lambda err, msg: reports.append((err, msg.offset())))
    assert p.flush(20) == 0
    assert all(err is None for err, _ in reports)
    if acks != "0":
        assert sorted(o for _, o in reports) == list(range(100))
    got = consume_all(sluice.bootstrap, topic, 1, 100)
    assert [m.value() for m in got] == [str(i).encode() for i in range(100)]


def test_list_offsets_by_timestamp(sluice):
    topic = "times"
    create(sluice.bootstrap, topic)
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    base = 1_700_000_000_000
    for i in range(10):
        p.produce(topic, value=str(i).encode(), timestamp=base + i * 1000)
        p.flush(10)
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "t"})
    found = c.offsets_for_times([TopicPartition(topic, 0, base + 4500)], timeout=10)
    assert found[0].offset == 5
    none = c.offsets_for_times([TopicPartition(topic, 0, base + 99_000)], timeout=10)
    assert none[0].offset == -1
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert (low, high) == (0, 10)
    c.close()


def test_kcat_round_trip_with_every_codec(sluice):
    for codec in CODECS:
        topic = f"kcat-{codec}"
        lines = "".join(f"k{i}:v{i}-{codec}\n" for i in range(50))
        subprocess.run(["kcat", "-b", sluice.bootstrap, "-P", "-t", topic, "-K:", "-z", codec],
                       input=lines, text=True, check=True, timeout=60)
        out = subprocess.run(["kcat", "-b", sluice.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                              "-f", "%k=%s@%o\\n"], capture_output=True, text=True, check=True, timeout=60).stdout
        assert out.splitlines() == [f"k{i}=v{i}-{codec}@{i}" for i in range(50)]


def test_kafka_python_producer_defaults_and_consumer(sluice):
    from kafka import KafkaConsumer, KafkaProducer
    producer = KafkaProducer(bootstrap_servers=sluice.bootstrap)  # idempotent by default in 3.x
    futures = [producer.send("kp", key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"x")]) for i in range(100)]
    producer.flush(20)
    assert sorted(f.get(10).offset for f in futures) == list(range(100))
    producer.close()
    for codec in ["gzip", "snappy", "lz4", "zstd"]:
        p = KafkaProducer(bootstrap_servers=sluice.bootstrap, compression_type=codec)
        for i in range(20):
            p.send("kp-" + codec, value=b"%s-%d" % (codec.encode(), i))
        p.flush(20)
        p.close()
        c = KafkaConsumer("kp-" + codec, bootstrap_servers=sluice.bootstrap, auto_offset_reset="earliest",
                          consumer_timeout_ms=5000, group_id=None)
        assert [m.value for m in c] == [b"%s-%d" % (codec.encode(), i) for i in range(20)]
        c.close()
    c = KafkaConsumer("kp", bootstrap_servers=sluice.bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=5000, group_id=None)
    msgs = list(c)
    assert [m.offset for m in msgs] == list(range(100))
    assert msgs[7].headers == [("h", b"x")]
    c.close()


def test_aiokafka_round_trip(sluice):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=sluice.bootstrap, compression_type="gzip")
        await p.start()
        try:
            for i in range(30):
                await p.send_and_wait("aio", key=b"k", value=b"a%d" % i)
        finally:
            await p.stop()
        c = AIOKafkaConsumer("aio", bootstrap_servers=sluice.bootstrap, auto_offset_reset="earliest", group_id=None)
        await c.start()
        got = []
        try:
            deadline = time.time() + 20
            while len(got) < 30 and time.time() < deadline:
                batch = await c.getmany(timeout_ms=1000)
                for msgs in batch.values():
                    got.extend(m.value for m in msgs)
        finally:
            await c.stop()
        return got

    assert asyncio.run(run()) == [b"a%d" % i for i in range(30)]


def test_long_poll_is_woken_by_new_data(sluice):
    topic = "longpoll"
    create(sluice.bootstrap, topic)
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "lp", "fetch.wait.max.ms": 5000})
    c.assign([TopicPartition(topic, 0, 0)])
    assert c.poll(1.0) is None  # nothing yet; the fetch is parked broker-side
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    start = time.time()
    p.produce(topic, value=b"wake")
    p.flush(10)
    m = None
    while m is None and time.time() - start < 10:
        m = c.poll(0.2)
    assert m is not None and m.value() == b"wake"
    # Woken by the append, not by the 5 s max wait.
    assert time.time() - start < 3
    c.close()


def test_log_append_time_topic(sluice):
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
    create(sluice.bootstrap, "lat", 1, {"message.timestamp.type": "LogAppendTime"})
    reports = []
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    before = int(time.time() * 1000)
    p.produce("lat", value=b"stamped", timestamp=1_000, on_delivery=lambda e, m: reports.append(m.timestamp()))
    assert p.flush(10) == 0
    got = consume_all(sluice.bootstrap, "lat", 1, 1)
    kind, ts = got[0].timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before - 5_000 <= ts <= int(time.time() * 1000) + 5_000  # the broker's clock, not the 1000 sent


@pytest.mark.parametrize("io_mode", ["buffered", "direct"])
def test_small_partition_fetch_limit_across_segment_rolls_skips_no_offset(sluice, io_mode):
    """A fetch whose max.partition.fetch.bytes cuts it short inside one segment must end there:
    continuing with the next segment's first batch would skip the batches left out (a consumer
    then never sees those offsets)."""
    import random
    topic = f"cut-{io_mode}"
    create(sluice.bootstrap, topic, 1, {"segment.bytes": "20000", "sluice.io.mode": io_mode})
    rng = random.Random(7)
    values = [bytes([65 + i % 26]) * rng.randint(500, 6000) for i in range(300)]
    p = Producer({"bootstrap.servers": sluice.bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for v in values:
        p.produce(topic, value=v, partition=0)
    assert p.flush(30) == 0
    got = consume_all(sluice.bootstrap, topic, 1, len(values), **{"max.partition.fetch.bytes": 9000})
    assert [m.offset() for m in got] == list(range(len(values)))
    assert [m.value() for m in got] == values
