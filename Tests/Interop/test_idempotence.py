"""Idempotent producers: raw-protocol checks of the sequence rules, and their survival across
restarts and kill -9."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.record.default_records import DefaultRecordBatchBuilder

from test_hostile import produce_raw


def batch(pid, epoch, seq, values):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=pid,
                                  producer_epoch=epoch, base_sequence=seq, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, 1000 + i, None, v, [])
    return bytes(b.build())


def end_offset(s, topic):
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "idem-check"})
    high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    c.close()
    return high


def create(s, topic):
    p = Producer({"bootstrap.servers": s.bootstrap})
    p.produce(topic, value=b"seed")  # auto-creates the topic
    assert p.flush(10) == 0


def test_duplicate_gap_and_fenced_epoch(sluice):
    create(sluice, "idem")
    first = batch(4242, 0, 0, [b"a", b"b"])
    assert produce_raw(sluice.port, "idem", first, 7, with_offset=True) == (0, 1)
    # The same batch again (a retry): success with the original offset, appended once.
    assert produce_raw(sluice.port, "idem", first, 7, with_offset=True) == (0, 1)
    assert end_offset(sluice, "idem") == 3
    # The next sequence is 2; 5 is a gap.
    assert produce_raw(sluice.port, "idem", batch(4242, 0, 5, [b"x"]), 7) == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert produce_raw(sluice.port, "idem", batch(4242, 0, 2, [b"c"]), 7) == 0
    # A new epoch starts at 0; the old epoch is then fenced.
    assert produce_raw(sluice.port, "idem", batch(4242, 1, 0, [b"d"]), 7) == 0
    assert produce_raw(sluice.port, "idem", batch(4242, 0, 3, [b"e"]), 7) == 47  # INVALID_PRODUCER_EPOCH
    # A producer we never saw must start at 0.
    assert produce_raw(sluice.port, "idem", batch(777, 0, 9, [b"f"]), 7) == 59  # UNKNOWN_PRODUCER_ID
    assert end_offset(sluice, "idem") == 5


def test_producer_state_survives_restart_and_kill_9(make_sluice):
    s = make_sluice(["sluice.durability=ack"]).start()
    create(s, "idem2")
    b0 = batch(99, 0, 0, [b"one"])
    assert produce_raw(s.port, "idem2", b0, 7, with_offset=True) == (0, 1)
    s.stop()
    s.start()
    assert produce_raw(s.port, "idem2", b0, 7, with_offset=True) == (0, 1)  # still a duplicate
    b1 = batch(99, 0, 1, [b"two"])
    assert produce_raw(s.port, "idem2", b1, 7, with_offset=True) == (0, 2)
    s.kill()
    s.start()
    assert produce_raw(s.port, "idem2", b1, 7, with_offset=True) == (0, 2)
    assert produce_raw(s.port, "idem2", batch(99, 0, 2, [b"three"]), 7) == 0
    assert end_offset(s, "idem2") == 4


def test_confluent_idempotent_producer_exactly_once_in_order(make_sluice):
    s = make_sluice(["sluice.durability=ack"]).start()
    p = Producer({"bootstrap.servers": s.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 1})
    acked = []
    for i in range(2000):
        p.produce("exact", value=b"%06d" % i, on_delivery=lambda e, m: acked.append(m.value()) if e is None else None)
        if i % 100 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "exact", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("exact", 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < 2000 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert got == [b"%06d" % i for i in range(2000)]
    assert sorted(acked) == got


def test_idle_producer_state_expires(make_sluice):
    s = make_sluice(["producer.id.expiration.ms=500"]).start()
    create(s, "idem3")
    assert produce_raw(s.port, "idem3", batch(55, 0, 0, [b"a"]), 7) == 0
    # Continuing the sequence works while the producer is remembered...
    assert produce_raw(s.port, "idem3", batch(55, 0, 1, [b"b"]), 7) == 0
    # ...and after the expiration the broker no longer knows it.
    deadline = time.time() + 10
    while produce_raw(s.port, "idem3", batch(55, 0, 7, [b"x"]), 7) != 59:  # UNKNOWN_PRODUCER_ID
        assert time.time() < deadline, "producer state never expired"
        time.sleep(0.2)


def test_producer_snapshot_written_in_kafkas_format(make_sluice):
    import os
    import struct
    from kafka.record.util import calc_crc32c
    s = make_sluice().start()
    create(s, "idem-snap")
    assert produce_raw(s.port, "idem-snap", batch(31, 2, 0, [b"a", b"b", b"c"]), 7) == 0
    s.stop()
    part = os.path.join(s.log_dir, "idem-snap-0")
    snaps = sorted(f for f in os.listdir(part) if f.endswith(".snapshot"))
    assert snaps == ["%020d.snapshot" % 4]  # named by the next offset it covers
    data = open(os.path.join(part, snaps[0]), "rb").read()
    version, crc, count = struct.unpack(">hIi", data[:10])
    assert version == 1 and count == 1 and crc == calc_crc32c(data[6:])
    pid, epoch, last_seq, last_off, delta, _ts, _coord, txn_first = struct.unpack(">qhiqiqiq", data[10:56])
    assert (pid, epoch, last_seq, last_off, delta, txn_first) == (31, 2, 2, 3, 2, -1)
    # After a restart from the snapshot the last batch is still recognised as a duplicate, and a
    # kill -9 later (state from snapshot + replay) changes nothing.
    s.start()
    assert produce_raw(s.port, "idem-snap", batch(31, 2, 0, [b"a", b"b", b"c"]), 7, with_offset=True) == (0, 1)
    assert produce_raw(s.port, "idem-snap", batch(31, 2, 3, [b"d"]), 7) == 0
    s.kill()
    s.start()
    assert produce_raw(s.port, "idem-snap", batch(31, 2, 3, [b"d"]), 7, with_offset=True) == (0, 4)
    assert produce_raw(s.port, "idem-snap", batch(31, 2, 5, [b"x"]), 7) == 45
    assert end_offset(s, "idem-snap") == 5


def test_confluent_idempotent_producer_across_broker_kill_9(make_sluice):
    """acks=all with durability `ack`, the broker SIGKILLed and restarted twice mid-stream: every
    acknowledged record is in the log exactly once, and the log keeps the produce order."""
    s = make_sluice(["sluice.durability=ack"]).start()
    p = Producer({"bootstrap.servers": s.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 2,
                  "message.timeout.ms": 60000, "retry.backoff.ms": 50, "reconnect.backoff.max.ms": 200})
    acked, failed = [], []

    def report(err, msg):
        (acked if err is None else failed).append(msg.value())

    total = 6000
    for i in range(total):
        p.produce("exact-kill", value=b"%06d" % i, on_delivery=report)
        p.poll(0)
        if i in (2000, 4000):
            p.flush(30)
            # Keep some requests in flight while the broker dies.
            for j in range(200):
                p.produce("exact-kill", value=b"%06d-x%03d" % (i, j), on_delivery=report)
            p.poll(0)
            s.kill()
            s.start()
    assert p.flush(60) == 0
    assert failed == []
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "exact-kill", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("exact-kill", 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < len(acked) and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    assert len(got) == len(set(got)), "duplicates in the log"
    assert set(acked) <= set(got), "acknowledged records missing"
    assert got == sorted(got), "records out of produce order"


def test_start_and_new_topics_write_no_needless_snapshots(make_sluice):
    """A producer snapshot bounds the replay of the next load to the active segment, so one is
    due after a roll, not for an empty partition or one whose snapshot already reaches the
    active segment: before, every start and every new topic wrote and fsynced one file per
    partition at the first housekeeping pass."""
    import os
    from confluent_kafka.admin import AdminClient, NewTopic
    # With fsync before ack the recovery points move with every produce, so a changed
    # recovery-point checkpoint shows that a housekeeping pass ran after it.
    s = make_sluice(["sluice.durability=ack"]).start()
    admin = AdminClient({"bootstrap.servers": s.bootstrap})
    admin.create_topics([NewTopic("snap-quiet", num_partitions=2, replication_factor=1)])["snap-quiet"].result(10)
    checkpoint = os.path.join(s.log_dir, "recovery-point-offset-checkpoint")
    p = Producer({"bootstrap.servers": s.bootstrap, "acks": "all"})

    def produce_and_await_housekeeping(end):
        """Produces to partition 0 until its end offset is `end`, then waits for two passes
        that saw it (passes do not overlap, so the first one's snapshots are written)."""
        p.produce("snap-quiet", value=b"v", partition=0)
        assert p.flush(10) == 0
        for passes in range(2):
            line = f"snap-quiet 0 {end + passes}"
            deadline = time.time() + 15
            while not (os.path.exists(checkpoint) and line in open(checkpoint).read()):
                assert time.time() < deadline, f"no housekeeping pass wrote {line!r}"
                time.sleep(0.05)
            if passes == 0:
                p.produce("snap-quiet", value=b"v", partition=0)
                assert p.flush(10) == 0

    def snapshots():
        found = {}
        for part in ("snap-quiet-0", "snap-quiet-1"):
            d = os.path.join(s.log_dir, part)
            for f in os.listdir(d):
                if f.endswith(".snapshot"):
                    st = os.stat(os.path.join(d, f))
                    found[f"{part}/{f}"] = (st.st_ino, st.st_mtime_ns)
        return found

    produce_and_await_housekeeping(1)
    assert snapshots() == {}, "a snapshot was written for a one-segment or empty partition"
    # A clean stop writes every partition's snapshot; the next start loads them and keeps them.
    p.flush(10)
    assert s.stop() == 0
    written = snapshots()
    assert sorted(written) == ["snap-quiet-0/%020d.snapshot" % 2, "snap-quiet-1/%020d.snapshot" % 0]
    s.start()
    p = Producer({"bootstrap.servers": s.bootstrap, "acks": "all"})
    produce_and_await_housekeeping(3)
    assert snapshots() == written, "a start rewrote snapshots that already reach the active segment"
    assert end_offset(s, "snap-quiet") == 4
