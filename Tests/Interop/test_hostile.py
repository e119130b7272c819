"""Malformed and hostile input on live sockets: the broker closes the offending connection,
allocates nothing unbounded, and keeps serving everyone else."""
import socket
import struct

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient


def still_serves(s):
    p = Producer({"bootstrap.servers": s.bootstrap})
    p.produce("alive", value=b"ok")
    assert p.flush(15) == 0


def produce_raw(port, topic, batch, version, with_offset=False):
    """Sends one Produce request (acks 1) carrying `batch` for partition 0 of `topic`, returns
    that partition's error code (and base offset with `with_offset`)."""
    topic = topic.encode()
    body = struct.pack(">hhih", 0, version, 5, -1) + struct.pack(">hhi", -1, 1, 5000)
    body += struct.pack(">ih", 1, len(topic)) + topic + struct.pack(">iii", 1, 0, len(batch)) + bytes(batch)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
        c.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", c.recv(4))[0]
        data = b""
        while len(data) < size:
            data += c.recv(size - len(data))
    # correlation id, topics[1], name, partitions[1], index, then the error code
    pos = 4 + 4 + 2 + len(topic) + 4 + 4
    error = struct.unpack(">h", data[pos:pos + 2])[0]
    return (error, struct.unpack(">q", data[pos + 2:pos + 10])[0]) if with_offset else error


def send_and_expect_close(s, payload, timeout=10):
    with socket.create_connection(("127.0.0.1", s.port), timeout=timeout) as c:
        c.sendall(payload)
        c.settimeout(timeout)
        try:
            data = c.recv(65536)
        except ConnectionResetError:
            data = b""
        assert data == b"", f"expected the broker to close the connection, got {data!r}"


@pytest.mark.parametrize("size", [-1, 0, 3, 2**31 - 1, 100 * 1024 * 1024 + 1])
def test_hostile_frame_sizes(sluice, size):
    send_and_expect_close(sluice, struct.pack(">i", size) + b"\x00" * 16)
    still_serves(sluice)
    assert sluice.alive()


def test_garbage_and_unknown_api(sluice):
    send_and_expect_close(sluice, struct.pack(">i", 12) + struct.pack(">hhi", 999, 0, 1) + b"\x00\x00\x00\x00")
    send_and_expect_close(sluice, struct.pack(">i", 12) + struct.pack(">hhi", 0, 99, 1) + b"\x00\x00\x00\x00")
    send_and_expect_close(sluice, struct.pack(">i", 40) + bytes(range(40)))
    still_serves(sluice)


def test_huge_array_count_in_a_small_frame(sluice):
    # Metadata v1 with a topics array count of 2^31-1 and nothing after it.
    body = struct.pack(">hhih", 3, 1, 7, -1) + struct.pack(">i", 2**31 - 1)
    send_and_expect_close(sluice, struct.pack(">i", len(body)) + body)
    still_serves(sluice)


def test_apiversions_from_the_future_gets_the_kip511_answer(sluice):
    body = struct.pack(">hhih", 18, 99, 42, -1) + b"\x00" + b"garbage"
    with socket.create_connection(("127.0.0.1", sluice.port), timeout=10) as c:
        c.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", c.recv(4))[0]
        data = b""
        while len(data) < size:
            data += c.recv(size - len(data))
    correlation, error = struct.unpack(">ih", data[:6])
    assert correlation == 42 and error == 35  # UNSUPPORTED_VERSION
    count = struct.unpack(">i", data[6:10])[0]
    keys = {struct.unpack(">hhh", data[10 + 6 * i:16 + 6 * i])[0] for i in range(count)}
    assert {0, 1, 3, 18} <= keys


def test_bad_crc_is_corrupt_message_and_nothing_is_appended(sluice):
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    b.append(0, 1000, None, b"value", [])
    batch = bytearray(b.build())
    batch[-1] ^= 0xFF  # break the CRC
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    p.produce("crc", value=b"first")
    assert p.flush(10) == 0
    assert produce_raw(sluice.port, "crc", batch, 3) == 2  # CORRUPT_MESSAGE
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "x"})
    assert c.get_watermark_offsets(TopicPartition("crc", 0), timeout=10)[1] == 1
    c.close()


def test_large_batch_crc_is_checked_across_its_whole_length(sluice):
    """Batches of 512 bytes and more take the broker's folded CRC-32C path (AVX-512 where the CPU
    has it). A 14 KB batch whose CRC kafka-python computed is accepted whole; a copy with one value
    byte flipped near its start, in its middle or in its last bytes (the fold's tail) is refused
    with CORRUPT_MESSAGE and appends nothing."""
    import os
    from kafka.record.default_records import DefaultRecordBatchBuilder
    values = [os.urandom(700) for _ in range(20)]
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i, value in enumerate(values):
        b.append(i, 1000 + i, None, value, [])
    batch = bytes(b.build())
    flips = [batch.index(values[0]) + 3, batch.index(values[10]) + 350, batch.index(values[-1]) + 698]
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": sluice.bootstrap})
    admin.create_topics([NewTopic("bigcrc", 1)])["bigcrc"].result(10)
    for position in flips:
        broken = bytearray(batch)
        broken[position] ^= 0x01
        assert produce_raw(sluice.port, "bigcrc", broken, 3) == 2, f"flip at byte {position} of {len(batch)}"
    assert produce_raw(sluice.port, "bigcrc", batch, 3) == 0
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "bigcrc", "auto.offset.reset": "earliest",
                  "check.crcs": True})
    assert c.get_watermark_offsets(TopicPartition("bigcrc", 0), timeout=10)[1] == len(values)
    c.assign([TopicPartition("bigcrc", 0, 0)])
    got = []
    while len(got) < len(values):
        message = c.poll(10)
        assert message is not None, f"only {len(got)} of {len(values)} records came back"
        assert message.error() is None, message.error()
        got.append(message.value())
    c.close()
    assert got == values


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_bomb_is_refused(make_sluice, codec):
    s = make_sluice(["sluice.decompressed.bytes.max=1048576", "message.max.bytes=10485760"]).start()
    from kafka.record.default_records import DefaultRecordBatchBuilder
    code = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
    b = DefaultRecordBatchBuilder(magic=2, compression_type=code, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=64 << 20)
    b.append(0, 1000, None, b"\x00" * (16 << 20), [])
    batch = bytes(b.build())
    assert len(batch) < 2 << 20
    p = Producer({"bootstrap.servers": s.bootstrap})
    p.produce("bomb", value=b"first")
    assert p.flush(10) == 0
    assert produce_raw(s.port, "bomb", batch, 7) in (18, 2)  # RECORD_LIST_TOO_LARGE
    still_serves(s)


def test_many_idle_connections_then_normal_clients(sluice):
    conns = [socket.create_connection(("127.0.0.1", sluice.port), timeout=10) for _ in range(300)]
    try:
        still_serves(sluice)
    finally:
        for c in conns:
            c.close()


def test_truncated_frame_then_eof(sluice):
    with socket.create_connection(("127.0.0.1", sluice.port), timeout=10) as c:
        c.sendall(struct.pack(">i", 100) + b"\x00" * 10)
    still_serves(sluice)
