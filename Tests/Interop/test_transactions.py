"""Transactions with real clients: commit and abort across partitions, read_committed versus
read_uncommitted, send_offsets_to_transaction, fencing, timeouts, restarts, and the operator APIs."""
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_for


def make_topic(s, name, partitions=3):
    admin = AdminClient({"bootstrap.servers": s.bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    fs[name].result(15)


def txn_producer(s, tid, **extra):
    conf = {"bootstrap.servers": s.bootstrap, "transactional.id": tid, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(15)
    return p


def drain(s, topic, isolation, expect_at_least=0, timeout=15, group=None):
    """Every value a fresh consumer reads from the start (until `expect_at_least` seen and then
    the end of every partition)."""
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": group or f"g-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "isolation.level": isolation,
                  "enable.partition.eof": True, "enable.auto.commit": False})
    c.subscribe([topic])
    values, eof = [], set()
    import time
    deadline = time.monotonic() + timeout
    parts = None
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if parts is None:
            a = c.assignment()
            parts = {tp.partition for tp in a} if a else None
        if m is None:
            if parts and eof >= parts and len(values) >= expect_at_least:
                break
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
                continue
            raise KafkaException(m.error())
        eof.discard(m.partition())
        values.append(m.value())
    c.close()
    return values


def test_commit_and_abort_across_partitions(sluice):
    make_topic(sluice, "tx-a", 3)
    p = txn_producer(sluice, "tid-a")
    p.begin_transaction()
    for i in range(30):
        p.produce("tx-a", value=b"c%d" % i, partition=i % 3)
    p.commit_transaction(15)
    p.begin_transaction()
    for i in range(30):
        p.produce("tx-a", value=b"x%d" % i, partition=i % 3)
    p.flush(10)
    p.abort_transaction(15)
    p.begin_transaction()
    p.produce("tx-a", value=b"last", partition=0)
    p.commit_transaction(15)

    committed = drain(sluice, "tx-a", "read_committed", expect_at_least=31)
    assert sorted(committed) == sorted([b"c%d" % i for i in range(30)] + [b"last"])
    everything = drain(sluice, "tx-a", "read_uncommitted", expect_at_least=61)
    assert sorted(everything) == sorted([b"c%d" % i for i in range(30)] + [b"x%d" % i for i in range(30)] + [b"last"])


def test_read_committed_stops_at_an_open_transaction(sluice):
    make_topic(sluice, "tx-open", 1)
    plain = Producer({"bootstrap.servers": sluice.bootstrap})
    plain.produce("tx-open", value=b"before")
    plain.flush(10)
    p = txn_producer(sluice, "tid-open")
    p.begin_transaction()
    p.produce("tx-open", value=b"pending")
    p.flush(10)
    plain.produce("tx-open", value=b"after")
    plain.flush(10)
    # The open transaction holds back everything from its first record on.
    assert drain(sluice, "tx-open", "read_committed", expect_at_least=1) == [b"before"]
    assert drain(sluice, "tx-open", "read_uncommitted", expect_at_least=3) == [b"before", b"pending", b"after"]
    # ListOffsets: latest is the LSO for read_committed, the high watermark otherwise.
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "lso", "isolation.level": "read_committed"})
    assert c.get_watermark_offsets(TopicPartition("tx-open", 0), timeout=10, cached=False) == (0, 1)
    c.close()
    p.commit_transaction(15)
    assert drain(sluice, "tx-open", "read_committed", expect_at_least=3) == [b"before", b"pending", b"after"]


def test_send_offsets_to_transaction(sluice):
    make_topic(sluice, "tx-in", 1)
    make_topic(sluice, "tx-out", 1)
    src = Producer({"bootstrap.servers": sluice.bootstrap})
    for i in range(10):
        src.produce("tx-in", value=b"%d" % i)
    src.flush(10)
    consumer = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "eos-group", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.subscribe(["tx-in"])
    got = []
    wait_for(lambda: (lambda m: m is not None and not m.error() and got.append(m) is None and len(got) >= 5)(consumer.poll(0.5)),
             timeout=20, what="five input records")
    p = txn_producer(sluice, "tid-eos")

    def process(abort):
        p.begin_transaction()
        for m in got[:5]:
            p.produce("tx-out", value=b"out-" + m.value())
        p.send_offsets_to_transaction([TopicPartition("tx-in", 0, got[4].offset() + 1)], consumer.consumer_group_metadata(), 15)
        if abort:
            p.abort_transaction(15)
        else:
            p.commit_transaction(15)

    def committed_offset():
        return consumer.committed([TopicPartition("tx-in", 0)], timeout=10)[0].offset

    process(abort=True)
    assert committed_offset() < 0  # aborted: the offset never became visible
    process(abort=False)
    assert committed_offset() == got[4].offset() + 1
    consumer.close()
    assert drain(sluice, "tx-out", "read_committed", expect_at_least=5) == [b"out-%d" % i for i in range(5)]


def test_same_transactional_id_fences_the_older_producer(sluice):
    make_topic(sluice, "tx-fence", 1)
    old = txn_producer(sluice, "tid-fence")
    old.begin_transaction()
    old.produce("tx-fence", value=b"zombie")
    old.flush(10)
    new = txn_producer(sluice, "tid-fence")  # aborts old's transaction and bumps the epoch
    new.begin_transaction()
    new.produce("tx-fence", value=b"fresh")
    new.commit_transaction(15)
    with pytest.raises(KafkaException) as e:
        old.produce("tx-fence", value=b"more")
        old.commit_transaction(15)
    assert e.value.args[0].fatal() or "fenced" in str(e.value).lower()
    assert drain(sluice, "tx-fence", "read_committed", expect_at_least=1) == [b"fresh"]


def test_kafka_python_transactions(sluice):
    from kafka import KafkaConsumer, KafkaProducer
    make_topic(sluice, "tx-kpy", 2)
    p = KafkaProducer(bootstrap_servers=sluice.bootstrap, transactional_id="tid-kpy")
    p.init_transactions()
    p.begin_transaction()
    for i in range(10):
        p.send("tx-kpy", value=b"k%d" % i, partition=i % 2)
    p.commit_transaction()
    p.begin_transaction()
    for i in range(10):
        p.send("tx-kpy", value=b"a%d" % i, partition=i % 2)
    p.flush()
    p.abort_transaction()
    p.close()
    c = KafkaConsumer("tx-kpy", bootstrap_servers=sluice.bootstrap, auto_offset_reset="earliest",
                      isolation_level="read_committed", consumer_timeout_ms=4000)
    values = sorted(m.value for m in c)
    c.close()
    assert values == sorted(b"k%d" % i for i in range(10))
    c = KafkaConsumer("tx-kpy", bootstrap_servers=sluice.bootstrap, auto_offset_reset="earliest",
                      isolation_level="read_uncommitted", consumer_timeout_ms=4000)
    assert len([m for m in c]) == 20  # control records never reach the application
    c.close()


def test_timed_out_transaction_is_aborted(make_sluice):
    s = make_sluice(["transaction.abort.timed.out.transaction.cleanup.interval.ms=200"]).start()
    make_topic(s, "tx-timeout", 1)
    p = txn_producer(s, "tid-timeout", **{"transaction.timeout.ms": 1000})
    p.begin_transaction()
    p.produce("tx-timeout", value=b"never")
    p.flush(10)
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "lso2", "isolation.level": "read_committed"})
    # Once the coordinator aborts it, the LSO passes the marker.
    wait_for(lambda: c.get_watermark_offsets(TopicPartition("tx-timeout", 0), timeout=5, cached=False)[1] == 2,
             timeout=20, what="the timed-out transaction to be aborted")
    c.close()
    assert drain(s, "tx-timeout", "read_committed") == []


@pytest.mark.parametrize("commit", [True, False])
def test_restart_in_the_middle_ends_consistently(make_sluice, commit):
    s = make_sluice(["sluice.durability=ack"]).start()
    make_topic(s, "tx-restart", 2)
    p = txn_producer(s, "tid-restart")
    p.begin_transaction()
    for i in range(20):
        p.produce("tx-restart", value=b"r%d" % i, partition=i % 2)
    p.flush(10)
    s.kill()
    s.start()
    # The producer reconnects; its transaction is completed as asked (its records were fsynced
    # before they were acknowledged, and the coordinator's state survives the restart).
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
    everything = sorted(b"r%d" % i for i in range(20))
    values = drain(s, "tx-restart", "read_committed", expect_at_least=20 if commit else 0)
    assert sorted(values) == (everything if commit else [])
    # read_uncommitted sees the records either way: the outcome is the marker, not their absence.
    assert sorted(drain(s, "tx-restart", "read_uncommitted", expect_at_least=20)) == everything


def test_list_and_describe_transactions(sluice):
    from kafka import KafkaAdminClient
    make_topic(sluice, "tx-ops", 2)
    p = txn_producer(sluice, "tid-ops")
    p.begin_transaction()
    p.produce("tx-ops", value=b"v", partition=1)
    p.flush(10)
    admin = KafkaAdminClient(bootstrap_servers=sluice.bootstrap)
    listed = [t for ts in admin.list_transactions().values() for t in ts]
    ours = [t for t in listed if t.transactional_id == "tid-ops"]
    assert len(ours) == 1 and str(ours[0].state.value) == "Ongoing"
    assert [t for ts in admin.list_transactions(state_filters=["CompleteCommit"]).values() for t in ts
            if t.transactional_id == "tid-ops"] == []
    d = admin.describe_transactions(["tid-ops"])["tid-ops"]
    assert str(d.state.value) == "Ongoing"
    assert {(tp.topic, tp.partition) for tp in d.topic_partitions} == {("tx-ops", 1)}
    assert d.producer_id == ours[0].producer_id
    p.abort_transaction(15)
    d = admin.describe_transactions(["tid-ops"])["tid-ops"]
    assert str(d.state.value) == "CompleteAbort" and not d.topic_partitions
    admin.close()


def test_kafka_python_send_offsets_and_fencing(sluice):
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata
    from kafka import TopicPartition as KTP
    from kafka.errors import KafkaError
    make_topic(sluice, "kpy-in", 1)
    make_topic(sluice, "kpy-out", 1)
    src = Producer({"bootstrap.servers": sluice.bootstrap})
    for i in range(4):
        src.produce("kpy-in", value=b"%d" % i)
    src.flush(10)
    c = KafkaConsumer("kpy-in", bootstrap_servers=sluice.bootstrap, group_id="kpy-eos", auto_offset_reset="earliest",
                      enable_auto_commit=False, isolation_level="read_committed", consumer_timeout_ms=5000)
    records = []
    for m in c:
        records.append(m)
        if len(records) == 4:
            break
    p = KafkaProducer(bootstrap_servers=sluice.bootstrap, transactional_id="tid-kpy-eos")
    p.init_transactions()
    p.begin_transaction()
    for m in records:
        p.send("kpy-out", value=b"out-" + m.value)
    p.send_offsets_to_transaction({KTP("kpy-in", 0): OffsetAndMetadata(4, "", -1)}, "kpy-eos")
    p.commit_transaction()
    assert c.committed(KTP("kpy-in", 0)) == 4
    c.close()
    # A second producer with the same id fences the first.
    p2 = KafkaProducer(bootstrap_servers=sluice.bootstrap, transactional_id="tid-kpy-eos")
    p2.init_transactions()
    with pytest.raises(KafkaError):
        p.begin_transaction()
        p.send("kpy-out", value=b"zombie").get(timeout=10)
        p.commit_transaction()
    p2.close()
    p.close(timeout=1)
    assert drain(sluice, "kpy-out", "read_committed", expect_at_least=4) == [b"out-%d" % i for i in range(4)]


def test_aiokafka_transactions(sluice):
    import asyncio
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    make_topic(sluice, "aio-tx", 2)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=sluice.bootstrap, transactional_id="tid-aio")
        await p.start()
        try:
            async with p.transaction():
                for i in range(6):
                    await p.send("aio-tx", value=b"ok%d" % i, partition=i % 2)
            await p.begin_transaction()
            for i in range(6):
                await p.send("aio-tx", value=b"no%d" % i, partition=i % 2)
            await p.abort_transaction()
        finally:
            await p.stop()
        c = AIOKafkaConsumer("aio-tx", bootstrap_servers=sluice.bootstrap, auto_offset_reset="earliest",
                             isolation_level="read_committed")
        await c.start()
        got = []
        try:
            deadline = asyncio.get_event_loop().time() + 15
            while len(got) < 6 and asyncio.get_event_loop().time() < deadline:
                batch = await c.getmany(timeout_ms=500)
                for msgs in batch.values():
                    got.extend(m.value for m in msgs)
            # Nothing aborted arrives later either.
            batch = await c.getmany(timeout_ms=1000)
            for msgs in batch.values():
                got.extend(m.value for m in msgs)
        finally:
            await c.stop()
        return got

    assert sorted(asyncio.run(run())) == sorted(b"ok%d" % i for i in range(6))


def test_list_offsets_max_timestamp_and_by_time_stop_at_the_last_stable_offset(sluice):
    """ListOffsets MAX_TIMESTAMP (-3) names the record with the largest timestamp; like a
    timestamp lookup it answers nothing (-1) when that record is beyond what the isolation level
    may read: the LSO under read_committed, as Kafka does."""
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import OffsetSpec
    make_topic(sluice, "tx-max", 1)
    admin = AdminClient({"bootstrap.servers": sluice.bootstrap})
    tp = TopicPartition("tx-max", 0)

    def lookup(spec, isolation):
        r = admin.list_offsets({tp: spec}, isolation_level=isolation, request_timeout=15)[tp].result(15)
        return r.offset, r.timestamp

    plain = Producer({"bootstrap.servers": sluice.bootstrap, "linger.ms": 0})
    for ts in (5_000, 9_000, 7_000):  # one batch each; the largest timestamp is at offset 1
        plain.produce("tx-max", value=b"v%d" % ts, timestamp=ts)
        plain.flush(10)
    for iso in (IsolationLevel.READ_UNCOMMITTED, IsolationLevel.READ_COMMITTED):
        assert lookup(OffsetSpec.max_timestamp(), iso) == (1, 9_000)
        assert lookup(OffsetSpec.for_timestamp(8_000), iso) == (1, 9_000)
    # An open transaction's record with a later timestamp: visible to read_uncommitted only.
    p = txn_producer(sluice, "tid-max", **{"linger.ms": 0})
    p.begin_transaction()
    p.produce("tx-max", value=b"pending", timestamp=20_000)
    p.flush(10)
    assert lookup(OffsetSpec.max_timestamp(), IsolationLevel.READ_UNCOMMITTED) == (3, 20_000)
    assert lookup(OffsetSpec.for_timestamp(15_000), IsolationLevel.READ_UNCOMMITTED) == (3, 20_000)
    assert lookup(OffsetSpec.max_timestamp(), IsolationLevel.READ_COMMITTED)[0] == -1
    assert lookup(OffsetSpec.for_timestamp(15_000), IsolationLevel.READ_COMMITTED)[0] == -1
    p.commit_transaction(15)
    # Committed (the marker after it carries the coordinator's clock, so it now holds the
    # largest timestamp, as in Kafka): the record is found by time under read_committed too.
    assert lookup(OffsetSpec.for_timestamp(15_000), IsolationLevel.READ_COMMITTED) == (3, 20_000)
    assert lookup(OffsetSpec.max_timestamp(), IsolationLevel.READ_COMMITTED)[0] == 4
