"""Consumer groups with real clients: assignors, rebalances on leave and on session expiry,
committed offsets that survive restarts, admin views of groups."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_for

FAST = ["group.initial.rebalance.delay.ms=0"]


def setup_topic(bootstrap, topic, partitions=6, count=600):
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        p.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert p.flush(20) == 0


def run_confluent_group(bootstrap, topic, group, strategy, n, total, extra=None):
    """Members consume and commit each record; returns every (partition, offset) delivered, the
    shares once all are in, and the records whose commit failed (a rebalance in between: Kafka
    then delivers them again to the partition's next owner, which is at-least-once as designed)."""
    seen, assignments, stop, uncommitted = [], {}, threading.Event(), set()
    lock = threading.Lock()

    def member(name):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                      "partition.assignment.strategy": strategy, "enable.auto.commit": False, **(extra or {})})
        c.subscribe([topic])
        while not stop.is_set():
            m = c.poll(0.2)
            with lock:
                assignments[name] = sorted(tp.partition for tp in c.assignment())
            if m is not None and m.error() is None:
                with lock:
                    seen.append((m.partition(), m.offset()))
                try:
                    c.commit(m, asynchronous=False)
                except KafkaException as e:  # e.g. REBALANCE_IN_PROGRESS between Join and Sync
                    assert e.args[0].code() in (22, 25, 27), e
                    with lock:
                        uncommitted.add((m.partition(), m.offset()))
        c.close()

    threads = [threading.Thread(target=member, args=(f"m{i}",), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(set(seen)) >= total, timeout=60, what=f"{total} records")
        # The shares while all members are in the group (before any leaves).
        wait_for(lambda: len(assignments) == n and all(len(v) == 6 // n for v in dict(assignments).values()),
                 timeout=30, what="an even split")
        final = dict(assignments)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return seen, final, uncommitted


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_confluent_three_consumers_share_six_partitions(make_sluice, strategy):
    s = make_sluice(FAST).start()
    setup_topic(s.bootstrap, "shared")
    seen, assignments, uncommitted = run_confluent_group(s.bootstrap, "shared", f"g-{strategy}", strategy, 3, 600)
    assert set(seen) == {(p, o) for p in range(6) for o in range(100)}, "every record delivered"
    # Delivered twice only where the commit had failed (and the partition then moved).
    twice = {x for x in seen if seen.count(x) > 1}
    assert twice <= uncommitted, f"records delivered again although their commit succeeded: {sorted(twice - uncommitted)}"
    assert sorted(p for parts in assignments.values() for p in parts) == list(range(6))
    assert all(len(parts) == 2 for parts in assignments.values()), assignments
    # The group's committed offsets cover everything.
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": f"g-{strategy}"})
    committed = c.committed([TopicPartition("shared", p) for p in range(6)], timeout=10)
    assert [tp.offset for tp in committed] == [100] * 6
    c.close()


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "sticky"])
def test_kafka_python_group(make_sluice, assignor):
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
    cls = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor, "sticky": StickyPartitionAssignor}[assignor]
    # Kafka's initial rebalance delay (3 s), not FAST: with no delay the first generation forms
    # before kafka-python's leader has the topic's metadata, so it assigns nothing and re-joins
    # (which the broker answers with a new generation, as Kafka does; ConsumerGroupTests covers
    # it). kafka-python 3.0.12 can lose that re-join: when its poll timer runs out between the
    # leader's assignment and the SyncGroup response, `need_rejoin()` is already false, so the
    # finished join is never applied; the member keeps no partitions and sends no heartbeats
    # until its session expires (seen in about 1 run in 30; the broker had answered every
    # JoinGroup and SyncGroup of it).
    s = make_sluice().start()
    setup_topic(s.bootstrap, "kpg")
    seen, assignments, stop, lock = [], {}, threading.Event(), threading.Lock()

    def member(name):
        c = KafkaConsumer("kpg", bootstrap_servers=s.bootstrap, group_id="kp-" + assignor, auto_offset_reset="earliest",
                          partition_assignment_strategy=[cls], enable_auto_commit=False)
        while not stop.is_set():
            batch = c.poll(timeout_ms=200)
            with lock:
                assignments[name] = sorted(tp.partition for tp in c.assignment())
            for msgs in batch.values():
                with lock:
                    seen.extend((m.partition, m.offset) for m in msgs)
            if batch:
                try:
                    c.commit()
                except Exception:  # CommitFailedError during a rebalance: the records come again
                    pass
        c.close()

    threads = [threading.Thread(target=member, args=(f"m{i}",), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(seen) >= 600, timeout=90, what="600 records")
        try:
            wait_for(lambda: len(assignments) == 3 and all(len(v) == 2 for v in dict(assignments).values()),
                     timeout=30, what="an even split")
        except AssertionError:
            with lock:
                raise AssertionError(f"no even split within 30 s; assignments: {dict(assignments)}")
        final = dict(assignments)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert len(set(seen)) == 600
    assert sorted(p for parts in final.values() for p in parts) == list(range(6))
    assert all(len(parts) == 2 for parts in final.values()), final


def test_aiokafka_group_commit_and_resume(make_sluice):
    import asyncio
    from aiokafka import AIOKafkaConsumer
    s = make_sluice(FAST).start()
    setup_topic(s.bootstrap, "aiog", partitions=2, count=100)

    async def consume(limit):
        c = AIOKafkaConsumer("aiog", bootstrap_servers=s.bootstrap, group_id="aio", auto_offset_reset="earliest",
                             enable_auto_commit=False)
        await c.start()
        got = []
        try:
            deadline = time.time() + 30
            while len(got) < limit and time.time() < deadline:
                batch = await c.getmany(timeout_ms=500, max_records=limit - len(got))
                for msgs in batch.values():
                    got.extend(m.value for m in msgs)
            await c.commit()
        finally:
            await c.stop()
        return got

    first = asyncio.run(consume(60))
    second = asyncio.run(consume(40))
    assert len(first) == 60 and len(second) == 40
    assert set(first).isdisjoint(second)
    assert len(set(first) | set(second)) == 100


KILLABLE = r'''
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "survivors", "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "enable.auto.commit": False})
c.subscribe(["expire"])
while True:
    m = c.poll(0.2)
    if c.assignment():
        print("assigned", flush=True)
'''


def test_killed_member_session_expires_and_the_others_take_over(make_sluice):
    s = make_sluice(FAST).start()
    setup_topic(s.bootstrap, "expire", partitions=4, count=0)
    victim = subprocess.Popen([sys.executable, "-c", KILLABLE, s.bootstrap], stdout=subprocess.PIPE, text=True)
    try:
        line = victim.stdout.readline()
        assert "assigned" in line
        c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "survivors", "auto.offset.reset": "earliest",
                      "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        c.subscribe(["expire"])

        def share():
            c.poll(0.2)
            return len(c.assignment())

        wait_for(lambda: share() == 2, timeout=30, what="an even split with the victim")
        victim.send_signal(signal.SIGKILL)  # no LeaveGroup: only the session timeout removes it
        victim.wait(10)
        killed_at = time.time()
        wait_for(lambda: share() == 4, timeout=30, what="the survivor owning every partition")
        assert time.time() - killed_at >= 3  # it took the session to expire, not a leave
        p = Producer({"bootstrap.servers": s.bootstrap})
        for i in range(40):
            p.produce("expire", value=b"%d" % i, partition=i % 4)
        p.flush(10)
        got = []
        deadline = time.time() + 20
        while len(got) < 40 and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m.value())
        assert sorted(got) == sorted(b"%d" % i for i in range(40))
        c.close()
    finally:
        victim.kill()


def test_committed_offsets_survive_restart_and_kill(make_sluice):
    s = make_sluice(FAST).start()
    setup_topic(s.bootstrap, "keep", partitions=2, count=20)
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "keeper", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("keep", 0, 7), TopicPartition("keep", 1, 3)], asynchronous=False)
    c.close()
    s.stop()
    s.start()
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "keeper"})
    assert [tp.offset for tp in c.committed([TopicPartition("keep", 0), TopicPartition("keep", 1)], timeout=10)] == [7, 3]
    c.commit(offsets=[TopicPartition("keep", 0, 9)], asynchronous=False)
    c.close()
    s.kill()
    s.start()
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "keeper", "auto.offset.reset": "earliest"})
    assert [tp.offset for tp in c.committed([TopicPartition("keep", 0), TopicPartition("keep", 1)], timeout=10)] == [9, 3]
    # A group member resumes from the committed offsets.
    c.subscribe(["keep"])
    got = []
    deadline = time.time() + 30
    while len(got) < 11 + 7 and time.time() < deadline:  # 20-9 + 10-3
        m = c.poll(0.3)
        if m is not None and m.error() is None:
            got.append((m.partition(), m.offset()))
    assert min(o for p, o in got if p == 0) == 9
    assert min(o for p, o in got if p == 1) == 3
    c.close()


def test_auto_offset_reset_latest_and_two_groups_independent(make_sluice):
    s = make_sluice(FAST).start()
    setup_topic(s.bootstrap, "resets", partitions=1, count=10)
    latest = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "late", "auto.offset.reset": "latest"})
    latest.subscribe(["resets"])
    wait_for(lambda: latest.poll(0.2) is None and latest.assignment(), timeout=20, what="assignment")
    p = Producer({"bootstrap.servers": s.bootstrap})
    p.produce("resets", value=b"new")
    p.flush(10)
    m = None
    deadline = time.time() + 15
    while m is None and time.time() < deadline:
        m = latest.poll(0.3)
        if m is not None and m.error() is not None:
            m = None
    assert m is not None and m.value() == b"new" and m.offset() == 10
    latest.close()
    early = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "early", "auto.offset.reset": "earliest"})
    early.subscribe(["resets"])
    got = []
    deadline = time.time() + 20
    while len(got) < 11 and time.time() < deadline:
        m = early.poll(0.3)
        if m is not None and m.error() is None:
            got.append(m.offset())
    assert got == list(range(11))
    early.close()


def test_admin_lists_and_describes_groups(make_sluice):
    s = make_sluice(FAST).start()
    setup_topic(s.bootstrap, "desc", partitions=2, count=10)
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "described", "auto.offset.reset": "earliest",
                  "client.id": "describer"})
    c.subscribe(["desc"])
    wait_for(lambda: c.poll(0.2) is not None or len(c.assignment()) == 2, timeout=20, what="assignment")
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    listed = a.list_consumer_groups().result(10)
    assert "described" in [g.group_id for g in listed.valid]
    described = a.describe_consumer_groups(["described"])["described"].result(10)
    assert str(described.state).endswith("STABLE")
    assert len(described.members) == 1 and described.members[0].client_id == "describer"
    c.close()
    wait_for(lambda: str(a.describe_consumer_groups(["described"])["described"].result(10).state).endswith("EMPTY"),
             timeout=20, what="the group to empty")
    res = a.delete_consumer_groups(["described"])
    for f in res.values():
        f.result(10)


def test_static_member_restart_keeps_its_partitions_without_a_rebalance(make_sluice):
    s = make_sluice(FAST).start()
    setup_topic(s.bootstrap, "static", partitions=4, count=0)
    revoked = []

    def consumer(instance=None, on_revoke=None):
        conf = {"bootstrap.servers": s.bootstrap, "group.id": "statics", "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 500, "partition.assignment.strategy": "range"}
        if instance:
            conf["group.instance.id"] = instance
        c = Consumer(conf)
        c.subscribe(["static"], on_revoke=on_revoke or (lambda c, p: None))
        return c

    a = consumer("static-a")
    b = consumer(on_revoke=lambda c, parts: revoked.append([p.partition for p in parts]))

    def both_assigned():
        a.poll(0.1)
        b.poll(0.1)
        return len(a.assignment()) == 2 and len(b.assignment()) == 2

    wait_for(both_assigned, timeout=30, what="a 2/2 split")
    a_parts = sorted(p.partition for p in a.assignment())
    revocations_before = len(revoked)
    a.close()  # a static member does not send LeaveGroup
    a2 = consumer("static-a")
    wait_for(lambda: (a2.poll(0.1), b.poll(0.1)) and len(a2.assignment()) == 2, timeout=20, what="the restarted static member")
    assert sorted(p.partition for p in a2.assignment()) == a_parts
    for _ in range(10):
        b.poll(0.1)
    assert len(revoked) == revocations_before, "the other member saw no rebalance"
    a2.close()
    b.close()


def test_offset_delete_and_offsets_retention(make_sluice):
    s = make_sluice(FAST + ["offsets.retention.ms=1500"]).start()
    setup_topic(s.bootstrap, "od", partitions=2, count=4)
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "od-group"})
    c.commit(offsets=[TopicPartition("od", 0, 1), TopicPartition("od", 1, 2)], asynchronous=False)
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KTopicPartition
    admin = KafkaAdminClient(bootstrap_servers=s.bootstrap)
    admin.delete_group_offsets("od-group", [KTopicPartition("od", 0)])
    admin.close()
    committed = c.committed([TopicPartition("od", 0), TopicPartition("od", 1)], timeout=10)
    assert [tp.offset for tp in committed] == [-1001, 2]  # -1001: no committed offset
    # An empty group's offsets expire after offsets.retention.
    wait_for(lambda: c.committed([TopicPartition("od", 1)], timeout=10)[0].offset == -1001, timeout=20,
             what="the offset to expire")
    c.close()


def test_kafka_python_describe_log_dirs(sluice):
    from kafka import KafkaAdminClient, KafkaProducer
    p = KafkaProducer(bootstrap_servers=sluice.bootstrap)
    p.send("dirs", value=b"x" * 100)
    p.flush(10)
    p.close()
    admin = KafkaAdminClient(bootstrap_servers=sluice.bootstrap)
    brokers = admin.describe_log_dirs()
    admin.close()
    assert [b["broker"] for b in brokers] == [1]
    [log_dir] = brokers[0]["log_dirs"]
    assert log_dir["error_code"] == 0 and log_dir["log_dir"] == sluice.log_dir
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"]
    [topic] = [t for t in log_dir["topics"] if t["name"] == "dirs"]
    [partition] = topic["partitions"]
    # One batch of one 100-byte record: the 61-byte batch header, the record's own framing.
    assert partition["partition_index"] == 0 and 170 <= partition["partition_size"] < 200


def test_offsets_topic_partitions_is_configurable(make_sluice):
    s = make_sluice(FAST + ["offsets.topic.num.partitions=3"]).start()
    dirs = sorted(d for d in os.listdir(s.log_dir) if d.startswith("__consumer_offsets-"))
    assert dirs == ["__consumer_offsets-0", "__consumer_offsets-1", "__consumer_offsets-2"]
    setup_topic(s.bootstrap, "few", partitions=1, count=1)
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "few-g"})
    c.commit(offsets=[TopicPartition("few", 0, 1)], asynchronous=False)
    s.stop()
    s.start()
    assert c.committed([TopicPartition("few", 0)], timeout=10)[0].offset == 1
    c.close()


def test_offsets_topic_segment_bytes_rolls_the_offsets_log(make_sluice):
    """offsets.topic.segment.bytes sizes __consumer_offsets' segments (not log.segment.bytes):
    with 16 KiB segments, a few hundred commits roll it, and the last commit survives a restart."""
    s = make_sluice(FAST + ["offsets.topic.num.partitions=1", "offsets.topic.segment.bytes=16384"]).start()
    setup_topic(s.bootstrap, "seg", partitions=1, count=1)
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "seg-g"})
    for i in range(1, 401):
        c.commit(offsets=[TopicPartition("seg", 0, i, metadata="m" * 40)], asynchronous=False)
    logs = [f for f in os.listdir(os.path.join(s.log_dir, "__consumer_offsets-0")) if f.endswith(".log")]
    assert len(logs) >= 3, f"400 commits of ~100 bytes did not roll 16 KiB segments: {logs}"
    s.stop()
    s.start()
    assert c.committed([TopicPartition("seg", 0)], timeout=10)[0].offset == 400
    c.close()
