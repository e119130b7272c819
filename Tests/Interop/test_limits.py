"""Kafka's connection and request limits on live sockets, slow and stuck clients, and the
broker's memory staying bounded while a normal client keeps producing and consuming."""
import socket
import struct
import threading
import time

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import wait_for
from test_hostile import still_serves


def rss_mb(s):
    with open(f"/proc/{s.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def api_versions_v0(correlation):
    body = struct.pack(">hhih", 18, 0, correlation, -1)
    return struct.pack(">i", len(body)) + body


def read_frame(c):
    head = b""
    while len(head) < 4:
        chunk = c.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    size = struct.unpack(">i", head)[0]
    data = b""
    while len(data) < size:
        chunk = c.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def accepted(port, source="127.0.0.1"):
    """Opens a connection and proves it is served (an ApiVersions answer), or returns None."""
    c = socket.socket()
    c.settimeout(5)
    c.bind((source, 0))
    c.connect(("127.0.0.1", port))
    try:
        c.sendall(api_versions_v0(1))
        if read_frame(c) is None:
            c.close()
            return None
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        c.close()
        return None
    return c


def produce_and_consume(s, topic="limits"):
    p = Producer({"bootstrap.servers": s.bootstrap})
    for i in range(100):
        p.produce(topic, value=b"v%d" % i)
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "limits-check", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    deadline = time.time() + 15
    while got < 100 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    c.close()
    assert got >= 100


def test_max_connections(make_sluice):
    s = make_sluice(["max.connections=4"]).start()
    conns = [accepted(s.port) for _ in range(4)]
    assert all(conns)
    assert accepted(s.port) is None  # the fifth is closed at once
    conns.pop().close()
    wait_for(lambda: (lambda c: c.close() or True if c else False)(accepted(s.port)), timeout=10,
             what="a slot to free up after a close")
    for c in conns:
        c.close()


def test_max_connections_changes_at_run_time(sluice):
    """max.connections set with IncrementalAlterConfigs (a dynamic broker config in Kafka) limits
    the connections accepted from then on; deleting it lifts the limit again."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    def alter(op, value=None):
        a = AdminClient({"bootstrap.servers": sluice.bootstrap})
        res = ConfigResource("broker", "1", incremental_configs=[ConfigEntry("max.connections", value, incremental_operation=op)])
        a.incremental_alter_configs([res])[res].result(15)
    def capacity():
        """Connections accepted until one is refused (then all closed again)."""
        conns = []
        while len(conns) < 10:
            c = accepted(sluice.port)
            if c is None:
                break
            conns.append(c)
        for c in conns:
            c.close()
        time.sleep(0.2)  # the broker counts a close when it sees it
        return len(conns)
    alter(AlterConfigOpType.SET, "3")
    # Once the admin client's own connection is gone, exactly three are accepted.
    wait_for(lambda: capacity() == 3, timeout=15, what="three connections accepted with max.connections=3")
    alter(AlterConfigOpType.DELETE)
    more = [accepted(sluice.port) for _ in range(6)]
    assert all(more)
    for c in more:
        c.close()


def test_max_connections_per_ip(make_sluice):
    s = make_sluice(["max.connections.per.ip=2"]).start()
    mine = [accepted(s.port), accepted(s.port)]
    assert all(mine)
    assert accepted(s.port) is None
    other = accepted(s.port, source="127.0.0.2")  # another address has its own budget
    assert other is not None
    for c in mine + [other]:
        c.close()


def test_pipelining_past_queued_max_requests(make_sluice):
    s = make_sluice(["queued.max.requests=4"]).start()
    n = 2000
    with socket.create_connection(("127.0.0.1", s.port), timeout=20) as c:
        c.sendall(b"".join(api_versions_v0(i) for i in range(n)))
        for i in range(n):
            frame = read_frame(c)
            assert frame is not None, f"connection closed after {i} responses"
            assert struct.unpack(">i", frame[:4])[0] == i  # in request order, none dropped
    still_serves(s)


def test_truncated_frame_then_silence_is_closed_when_idle(make_sluice):
    s = make_sluice(["connections.max.idle.ms=1000"]).start()
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(struct.pack(">i", 100) + b"\x00" * 10)
        started = time.time()
        assert c.recv(10) == b""  # closed by the broker, not by us
        assert time.time() - started < 8
    still_serves(s)


def test_slowloris_and_abandoned_connections_do_not_starve_others(make_sluice):
    s = make_sluice(["connections.max.idle.ms=5000"]).start()
    before = rss_mb(s)
    stop = threading.Event()
    slow = []

    def trickle(c):
        payload = struct.pack(">i", 1 << 20) + b"\x01" * 4096
        for b in payload:
            if stop.is_set():
                return
            try:
                c.sendall(bytes([b]))
            except OSError:
                return
            time.sleep(0.02)

    for _ in range(40):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        slow.append(c)
        threading.Thread(target=trickle, args=(c,), daemon=True).start()
    # Abandoned: half a request header, then the client vanishes without closing.
    abandoned = []
    for _ in range(100):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(struct.pack(">i", 64) + b"\x00\x12")
        abandoned.append(c)
    try:
        produce_and_consume(s)
        assert s.alive()
        assert rss_mb(s) - before < 200, f"RSS grew from {before:.0f} MB to {rss_mb(s):.0f} MB"
    finally:
        stop.set()
        for c in slow + abandoned:
            c.close()


def test_memory_stays_bounded_under_hostile_frames(sluice):
    before = rss_mb(sluice)
    for _ in range(200):
        with socket.create_connection(("127.0.0.1", sluice.port), timeout=10) as c:
            # Claims a 100 MB frame, sends 64 KiB of it, and disappears.
            try:
                c.sendall(struct.pack(">i", 100 * 1024 * 1024) + b"\x00" * 65536)
            except OSError:
                pass
    produce_and_consume(sluice, "limits2")
    assert rss_mb(sluice) - before < 200, f"RSS grew from {before:.0f} MB to {rss_mb(sluice):.0f} MB"


def test_queued_max_request_bytes_bounds_request_memory(make_sluice):
    """24 connections each declare a 32 MiB request and push 24 MiB of it at once. With
    queued.max.request.bytes=64 MiB the broker takes two frames' worth into memory and stops
    reading the rest (their bytes wait in the kernel); without the budget it read all 576 MiB.
    Once those connections close, a normal client produces and consumes."""
    s = make_sluice(["queued.max.request.bytes=67108864"]).start()
    before = rss_mb(s)
    conns = [socket.create_connection(("127.0.0.1", s.port), timeout=15) for _ in range(24)]

    def push(c):
        try:
            c.sendall(struct.pack(">i", 32 << 20) + b"\x01" * (24 << 20))
        except OSError:
            pass

    threads = [threading.Thread(target=push, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    peak = before
    deadline = time.time() + 8
    while time.time() < deadline:
        peak = max(peak, rss_mb(s))
        time.sleep(0.1)
    try:
        assert peak - before < 200, f"RSS grew from {before:.0f} MB to {peak:.0f} MB"
    finally:
        for c in conns:
            c.close()
    still_serves(s)
    produce_and_consume(s, "budget")


def test_partitions_max_holds_on_every_path_that_creates_partitions(make_sluice):
    """sluice.partitions.max=3 with num.partitions=2: CreateTopics, CreatePartitions and a
    producer's auto-creating Metadata request all stop at the limit (auto-create used to skip it)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
    s = make_sluice(["sluice.partitions.max=3", "num.partitions=2"]).start()
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    a.create_topics([NewTopic("first", 2, 1)])["first"].result(15)
    p = Producer({"bootstrap.servers": s.bootstrap})
    md = p.list_topics("auto-one", timeout=10)  # the producer's Metadata allows auto-create
    assert md.topics["auto-one"].error is not None and md.topics["auto-one"].error.name() == "POLICY_VIOLATION"
    assert "auto-one" not in a.list_topics(timeout=10).topics
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("second", 2, 1)])["second"].result(15)
    assert e.value.args[0].name() == "POLICY_VIOLATION"
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions("first", 4)])["first"].result(15)
    assert e.value.args[0].name() == "POLICY_VIOLATION"
    a.create_partitions([NewPartitions("first", 3)])["first"].result(15)
    assert len(a.list_topics(timeout=10).topics["first"].partitions) == 3
