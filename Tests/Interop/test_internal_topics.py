"""__consumer_offsets and __transaction_state as Kafka shows them: listed (flagged internal) once
used, readable, described with their own settings, and closed to producers, deletion and
partition changes. Real clients: confluent-kafka and kafka-python."""
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic)
from kafka import KafkaAdminClient, KafkaConsumer

from conftest import wait_for

OFFSETS = "__consumer_offsets"


def commit_one(s, topic, group):
    """Produces one record, then consumes it in `group` and commits: the group uses the
    offsets topic."""
    p = Producer({"bootstrap.servers": s.bootstrap})
    p.produce(topic, b"v")
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    deadline = time.time() + 30
    got = None
    while time.time() < deadline and got is None:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got = m
    assert got is not None, "the record never arrived"
    c.commit(got, asynchronous=False)
    c.close()


def committed(s, topic, group):
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=15)[0].offset
    finally:
        c.close()


def results(futures):
    """The error of every future (None where it succeeded)."""
    out = []
    for f in futures.values():
        try:
            f.result(15)
            out.append(None)
        except KafkaException as e:
            out.append(e.args[0])
    return out


def test_the_offsets_topic_is_listed_as_internal_once_a_group_uses_it(sluice):
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    p.produce("plain", b"x")
    assert p.flush(15) == 0
    # As on a fresh Kafka: no group has run, so there is no offsets topic to list.
    assert OFFSETS not in a.list_topics(timeout=10).topics
    commit_one(sluice, "plain", "lister")
    md = a.list_topics(timeout=10)
    assert OFFSETS in md.topics
    assert len(md.topics[OFFSETS].partitions) == 50
    # kafka-python reads the internal flag, and its pattern subscriptions leave such topics out.
    kp = KafkaAdminClient(bootstrap_servers=sluice.bootstrap)
    try:
        described = {t["name"]: t for t in kp.describe_topics([OFFSETS, "plain"])}
        assert described[OFFSETS]["is_internal"] is True
        assert described["plain"]["is_internal"] is False
        # DescribeLogDirs lists the offsets topic's partitions with the user topic's.
        listed = {t["name"]: t["partitions"] for t in kp.describe_log_dirs()[0]["log_dirs"][0]["topics"]}
        assert len(listed[OFFSETS]) == 50 and len(listed["plain"]) == 1
    finally:
        kp.close()
    consumer = KafkaConsumer(bootstrap_servers=sluice.bootstrap, group_id="pattern", auto_offset_reset="earliest",
                             consumer_timeout_ms=20000)
    try:
        consumer.subscribe(pattern=".*")
        first = next(iter(consumer))
        assert first.topic == "plain"
        assert all(tp.topic == "plain" for tp in consumer.assignment()), consumer.assignment()
    finally:
        consumer.close()


def test_producers_cannot_write_to_the_offsets_topic(sluice):
    commit_one(sluice, "guarded", "keeper")
    assert committed(sluice, "guarded", "keeper") == 1
    errors = []
    p = Producer({"bootstrap.servers": sluice.bootstrap, "message.timeout.ms": 10000, "retries": 0})
    p.produce(OFFSETS, key=b"\x00\x01garbage", value=b"not an offset", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == 17, errors[0]  # INVALID_TOPIC_EXCEPTION, as Kafka answers
    # Nothing reached the log: the coordinator reloads it after a restart as before.
    sluice.restart()
    assert committed(sluice, "guarded", "keeper") == 1


def test_internal_topics_cannot_be_created_deleted_or_repartitioned(sluice):
    commit_one(sluice, "kept", "stays")
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    [created] = results(a.create_topics([NewTopic(OFFSETS, 1, 1)]))
    assert created is not None and created.name() == "TOPIC_ALREADY_EXISTS"
    [deleted] = results(a.delete_topics([OFFSETS]))
    assert deleted is not None and deleted.name() == "INVALID_REQUEST"
    [grown] = results(a.create_partitions([NewPartitions(OFFSETS, 60)]))
    assert grown is not None and grown.name() == "INVALID_REQUEST"
    # DeleteRecords would drop the commits: Kafka answers INVALID_TOPIC_EXCEPTION.
    probe = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "probe"})
    partition = next(p for p in range(50) if probe.get_watermark_offsets(TopicPartition(OFFSETS, p), timeout=10)[1] > 0)
    probe.close()
    [trimmed] = results(a.delete_records([TopicPartition(OFFSETS, partition, -1)]))
    assert trimmed is not None and trimmed.code() == 17, trimmed
    md = a.list_topics(timeout=10)
    assert len(md.topics[OFFSETS].partitions) == 50
    assert committed(sluice, "kept", "stays") == 1


def test_the_offsets_topic_keeps_its_own_settings_when_broker_defaults_change(sluice):
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    # Before any group used it, the topic does not exist for clients (as on a fresh Kafka).
    [unknown] = results(a.describe_configs([ConfigResource("topic", OFFSETS)]))
    assert unknown is not None and unknown.name() == "UNKNOWN_TOPIC_OR_PART"
    commit_one(sluice, "settings", "cfg")

    def offsets_configs():
        return list(a.describe_configs([ConfigResource("topic", OFFSETS)]).values())[0].result(15)

    before = offsets_configs()
    assert before["cleanup.policy"].value == "compact"
    assert before["segment.bytes"].value == str(100 * 1024 * 1024)  # offsets.topic.segment.bytes
    # Changing a user-topic default must not reach the offsets logs (a short retention there
    # would delete committed offsets).
    change = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("log.cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)])
    assert results(a.incremental_alter_configs([change])) == [None]
    user = list(a.describe_configs([ConfigResource("topic", "settings")]).values())[0].result(15)
    assert user["retention.ms"].value == "60000"
    after = offsets_configs()
    assert after["cleanup.policy"].value == "compact"
    assert after["retention.ms"].value == before["retention.ms"].value
    sluice.restart()
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    assert offsets_configs()["cleanup.policy"].value == "compact"
    # Altering an internal topic's own configs is refused with a reason.
    [altered] = results(a.alter_configs([ConfigResource("topic", OFFSETS, set_config={"retention.ms": "1000"})]))
    assert altered is not None and altered.name() == "INVALID_REQUEST"


def test_the_offsets_topic_can_be_read(sluice):
    commit_one(sluice, "readable", "visible-group")
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "offsets-reader", "enable.auto.commit": False})
    c.assign([TopicPartition(OFFSETS, p, 0) for p in range(50)])
    found = []
    deadline = time.time() + 20
    while time.time() < deadline and not found:
        for m in c.consume(100, 0.5):
            assert m.error() is None, m.error()
            # An offset commit's key (version 1): int16 version, string group, string topic, int32 partition.
            if m.key() and m.key()[:2] == b"\x00\x01" and b"visible-group" in m.key():
                found.append(m)
    c.close()
    assert found, "no offset commit record read from __consumer_offsets"


def test_a_user_topic_with_a_double_underscore_works_like_any_other(sluice):
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    p.produce("__mine", b"hello")
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "under", "auto.offset.reset": "earliest"})
    c.subscribe(["__mine"])
    got = []
    wait_for(lambda: got.extend(m for m in [c.poll(0.5)] if m is not None and not m.error()) or got,
             timeout=30, what="the record on __mine")
    c.close()
    assert got[0].value() == b"hello"


def test_the_transaction_state_topic_is_listed_once_a_transactional_producer_runs(sluice):
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    assert "__transaction_state" not in a.list_topics(timeout=10).topics
    p = Producer({"bootstrap.servers": sluice.bootstrap, "transactional.id": "lister-txn"})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("txn-listed", b"v")
    p.commit_transaction(30)
    md = a.list_topics(timeout=10)
    assert "__transaction_state" in md.topics
    assert "__cluster_metadata" not in md.topics
    # And it survives a restart (its logs now hold the transaction's states).
    sluice.restart()
    a = AdminClient({"bootstrap.servers": sluice.bootstrap})
    assert "__transaction_state" in a.list_topics(timeout=10).topics
