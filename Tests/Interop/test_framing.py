"""Request framing on a live socket: large produce requests split at awkward places, pipelined
back to back, dribbled in small pieces, in both socket receive modes (`frames` reads a large body
straight into a buffer of its own; `cumulation` is NIO's ByteToMessageHandler). Whatever the
split, every record comes back byte for byte through a real consumer."""
import os
import random
import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def batch_of(values):
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=64 << 20)
    for i, v in enumerate(values):
        b.append(i, 1_700_000_000_000 + i, None, v, [])
    return bytes(b.build())


def produce_frame(topic, batch, correlation):
    """A Produce v3 request frame (acks 1) carrying `batch` for partition 0 of `topic`."""
    t = topic.encode()
    body = struct.pack(">hhih", 0, 3, correlation, -1) + struct.pack(">hhi", -1, 1, 10000)
    body += struct.pack(">ih", 1, len(t)) + t + struct.pack(">iii", 1, 0, len(batch)) + batch
    return struct.pack(">i", len(body)) + body


def read_responses(conn, count):
    """Reads `count` Produce responses; returns (correlation id, error code) of each."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            assert chunk, "broker closed the connection"
            data += chunk
        return data
    out = []
    for _ in range(count):
        size = struct.unpack(">i", exactly(4))[0]
        data = exactly(size)
        correlation = struct.unpack(">i", data[:4])[0]
        name_len = struct.unpack(">h", data[8:10])[0]
        pos = 4 + 4 + 2 + name_len + 4 + 4
        out.append((correlation, struct.unpack(">h", data[pos:pos + 2])[0]))
    return out


def create(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)


def consume_all(bootstrap, topic, count, timeout=60):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "framing-" + topic, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20})
    c.subscribe([topic])
    values = []
    deadline = time.time() + timeout
    while len(values) < count and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            values.append(m.value())
    c.close()
    return values


@pytest.mark.parametrize("mode", ["frames", "cumulation"])
def test_large_requests_split_anywhere_arrive_intact(make_sluice, mode):
    s = make_sluice([f"sluice.socket.receive={mode}", "message.max.bytes=8388608"]).start()
    create(s.bootstrap, "split")
    rng = random.Random(20261122)
    requests, expected = [], []
    for i in range(12):
        values = [os.urandom(rng.choice([100, 1000, 16384, 70000])) for _ in range(rng.randint(1, 60))]
        expected += values
        requests.append(produce_frame("split", batch_of(values), 100 + i))
    stream = b"".join(requests)

    # A normal client keeps producing on its own connection meanwhile.
    other = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 1})
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pos = 0
        cuts = [1, 3, 4, 5, 7, 4096, 65536, 200_000]
        while pos < len(stream):
            size = min(len(stream) - pos, rng.choice(cuts))
            conn.sendall(stream[pos:pos + size])
            pos += size
            if rng.random() < 0.3:
                other.produce("side", value=b"x" * 100)
                other.poll(0)
                time.sleep(0.002)  # let the broker read what is there: a short read, not a sync point
        answers = read_responses(conn, len(requests))
    assert answers == [(100 + i, 0) for i in range(len(requests))]
    assert other.flush(15) == 0

    got = consume_all(s.bootstrap, "split", len(expected))
    assert len(got) == len(expected)
    assert got == expected


def test_pipelined_large_requests_in_one_write(make_sluice):
    s = make_sluice(["message.max.bytes=8388608"]).start()
    create(s.bootstrap, "pipelined")
    values = [bytes([i]) * 300_000 for i in range(8)]
    frames = [produce_frame("pipelined", batch_of([v]), i) for i, v in enumerate(values)]
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as conn:
        conn.sendall(b"".join(frames))
        assert read_responses(conn, len(frames)) == [(i, 0) for i in range(len(frames))]
    assert consume_all(s.bootstrap, "pipelined", len(values)) == values


def test_truncated_large_frame_then_eof_leaves_the_broker_serving(make_sluice):
    s = make_sluice(["message.max.bytes=8388608"]).start()
    frame = produce_frame("cut", batch_of([b"v" * 500_000]), 1)
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as conn:
        conn.sendall(frame[:len(frame) // 2])
    p = Producer({"bootstrap.servers": s.bootstrap})
    p.produce("cut", value=b"after")
    assert p.flush(15) == 0
    assert consume_all(s.bootstrap, "cut", 1) == [b"after"]
