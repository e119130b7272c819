"""Kafka semantics that librdkafka's own regression suite checks (issue #41), each against the
real broker: pipelined requests applied in order, fetch.max.bytes as a response-wide budget,
static-member fencing, Empty groups that stay consumer groups, ListOffsets MAX_TIMESTAMP inside
a batch, APPEND/SUBTRACT on list configs, admin commits to an active group, authorized
operations, Kafka's dynamic broker configs, and the topic id `sluice topics --describe` prints."""
import os
import socket
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                   OffsetSpec)

from conftest import BINARY, wait_for

FAST = ["group.initial.rebalance.delay.ms=0"]


def admin(s):
    return AdminClient({"bootstrap.servers": s.bootstrap})


def create(s, topic, partitions=1, config=None):
    a = admin(s)  # kept alive until the futures are done
    for f in a.create_topics([NewTopic(topic, partitions, 1, config=config or {})]).values():
        f.result(15)


def group_member(s, topic, group):
    """A consumer in `group`, subscribed to `topic`, once it holds an assignment."""
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    wait_for(lambda: c.poll(0.2) is None and c.assignment(), timeout=30, what=f"an assignment in {group}")
    return c


# --- raw requests (non-flexible versions, so they can be written by hand and pipelined) --------

def string(text):
    b = text.encode()
    return struct.pack(">h", len(b)) + b


def request(api_key, version, correlation, body):
    data = struct.pack(">hhi", api_key, version, correlation) + string("pipeline") + body
    return struct.pack(">i", len(data)) + data


def offset_commit_v2(correlation, group, topic, offset):
    body = string(group) + struct.pack(">i", -1) + string("") + struct.pack(">q", -1)
    body += struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1) + struct.pack(">iq", 0, offset) + string("")
    return request(8, 2, correlation, body)


def offset_fetch_v1(correlation, group, topic):
    body = string(group) + struct.pack(">i", 1) + string(topic) + struct.pack(">ii", 1, 0)
    return request(9, 1, correlation, body)


def delete_groups_v0(correlation, group):
    return request(42, 0, correlation, struct.pack(">i", 1) + string(group))


class Reader:
    def __init__(self, conn):
        self.conn = conn

    def exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            assert chunk, "broker closed the connection"
            data += chunk
        return data

    def response(self):
        size = struct.unpack(">i", self.exactly(4))[0]
        data = self.exactly(size)
        return struct.unpack(">i", data[:4])[0], data[4:]


def commit_error(body):
    """OffsetCommit v2 response, one topic, one partition: the partition's error code."""
    name_len = struct.unpack(">h", body[4:6])[0]
    pos = 6 + name_len + 4 + 4
    return struct.unpack(">h", body[pos:pos + 2])[0]


def fetched_offset(body):
    """OffsetFetch v1 response, one topic, one partition: the committed offset."""
    name_len = struct.unpack(">h", body[4:6])[0]
    pos = 6 + name_len + 4 + 4
    return struct.unpack(">q", body[pos:pos + 8])[0]


def test_pipelined_offset_commits_apply_in_order_and_fetches_see_each(sluice):
    """100 OffsetCommits written in one go, with an OffsetFetch after every tenth: the responses
    come back in order, every fetch sees exactly the commit before it, and the last commit wins
    (the commits used to run side by side off the event loop and land out of order)."""
    create(sluice, "pipe")
    for round_ in range(3):
        group = f"pipeline-{round_}"
        frames, expected = [], []
        correlation = 0
        for i in range(1, 101):
            correlation += 1
            frames.append(offset_commit_v2(correlation, group, "pipe", i))
            expected.append((correlation, "commit", i))
            if i % 10 == 0:
                correlation += 1
                frames.append(offset_fetch_v1(correlation, group, "pipe"))
                expected.append((correlation, "fetch", i))
        with socket.create_connection(("127.0.0.1", sluice.port), timeout=30) as conn:
            conn.sendall(b"".join(frames))
            reader = Reader(conn)
            for want_correlation, kind, offset in expected:
                got_correlation, body = reader.response()
                assert got_correlation == want_correlation
                if kind == "commit":
                    assert commit_error(body) == 0
                else:
                    assert fetched_offset(body) == offset, f"round {round_}: fetch after commit {offset}"


def test_pipelined_delete_groups_sees_the_commit_before_it(sluice):
    """OffsetCommit, DeleteGroups, OffsetFetch in one write: the delete runs after the commit is
    stored (so it deletes it), and the fetch after the delete finds nothing."""
    create(sluice, "pipe-del")
    with socket.create_connection(("127.0.0.1", sluice.port), timeout=30) as conn:
        conn.sendall(offset_commit_v2(1, "g-del", "pipe-del", 7) + delete_groups_v0(2, "g-del")
                     + offset_fetch_v1(3, "g-del", "pipe-del"))
        reader = Reader(conn)
        assert commit_error(reader.response()[1]) == 0
        correlation, body = reader.response()
        assert correlation == 2
        assert struct.unpack(">h", body[-2:])[0] == 0, "DeleteGroups must find the committed group"
        assert fetched_offset(reader.response()[1]) == -1


def test_async_commits_from_confluent_kafka_leave_the_last_offset(sluice):
    """librdkafka's test 0030 in small: 50 asynchronous commits on one connection, then
    committed() returns the last one."""
    create(sluice, "async-commits")
    for run in range(5):
        c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": f"async-{run}", "enable.auto.commit": False})
        for i in range(1, 51):
            c.commit(offsets=[TopicPartition("async-commits", 0, i)], asynchronous=True)
        c.poll(0.5)
        got = c.committed([TopicPartition("async-commits", 0)], timeout=15)[0].offset
        c.close()
        assert got == 50, f"run {run}: committed offset {got}"


def test_fetch_max_bytes_bounds_the_whole_response(sluice):
    """Two partitions each holding one ~900 KB batch, fetch.max.bytes=1000000: the first batch
    may exceed the budget, the second partition's must wait for the next fetch (a response of
    both is larger than the client accepts, and it would ask again forever)."""
    create(sluice, "budget", partitions=2)
    p = Producer({"bootstrap.servers": sluice.bootstrap, "linger.ms": 100, "batch.size": 2_000_000,
                  "message.max.bytes": 2_000_000, "compression.type": "none"})
    value = os.urandom(900_000)
    for part in (0, 1):
        p.produce("budget", value=value, partition=part)
    assert p.flush(30) == 0
    # Fetch v4 for both partitions with a response-wide budget of 1,000,000 bytes.
    body = struct.pack(">iiiib", -1, 0, 1, 1_000_000, 0) + struct.pack(">i", 1) + string("budget") + struct.pack(">i", 2)
    for part in (0, 1):
        body += struct.pack(">iqi", part, 0, 1_000_000)
    with socket.create_connection(("127.0.0.1", sluice.port), timeout=30) as conn:
        conn.sendall(request(1, 4, 1, body))
        _, response = Reader(conn).response()
    sizes = fetch_v4_record_sizes(response)
    assert sizes[0] > 900_000, "the first partition's batch may exceed the budget"
    assert sizes[1] == 0, f"the second partition's batch went past the budget: {sizes}"
    # And a real consumer with that budget reads both records.
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "budget", "auto.offset.reset": "earliest",
                  "fetch.max.bytes": 1_000_000, "max.partition.fetch.bytes": 1_000_000, "enable.auto.commit": False})
    c.subscribe(["budget"])
    got = set()
    deadline = time.time() + 30
    while len(got) < 2 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None:
            assert m.error() is None, m.error()
            assert len(m.value()) == 900_000
            got.add(m.partition())
    c.close()
    assert got == {0, 1}


def fetch_v4_record_sizes(body):
    """Fetch v4 response, one topic: {partition: bytes of records}."""
    pos = 4  # throttle
    assert struct.unpack(">i", body[pos:pos + 4])[0] == 1
    pos += 4
    pos += 2 + struct.unpack(">h", body[pos:pos + 2])[0]
    count = struct.unpack(">i", body[pos:pos + 4])[0]
    pos += 4
    sizes = {}
    for _ in range(count):
        partition, error = struct.unpack(">ih", body[pos:pos + 6])
        assert error == 0
        pos += 6 + 16
        aborted = struct.unpack(">i", body[pos:pos + 4])[0]
        pos += 4 + max(aborted, 0) * 16
        length = struct.unpack(">i", body[pos:pos + 4])[0]
        pos += 4 + max(length, 0)
        sizes[partition] = max(length, 0)
    return sizes


def test_a_replaced_static_member_is_fenced(make_sluice):
    """Two consumers with one group.instance.id: the later one takes the membership, the earlier
    one gets the fatal FENCED_INSTANCE_ID and stops, instead of re-joining and swapping back."""
    s = make_sluice(FAST).start()
    create(s, "static", partitions=2)
    conf = {"bootstrap.servers": s.bootstrap, "group.id": "static-g", "group.instance.id": "instance-1",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest"}
    errors = []
    first = Consumer({**conf, "error_cb": lambda e: errors.append(e)})
    first.subscribe(["static"])
    wait_for(lambda: first.poll(0.2) is None and first.assignment(), timeout=30, what="first consumer assigned")
    second = Consumer(conf)
    second.subscribe(["static"])
    fatal = None
    deadline = time.time() + 30
    while time.time() < deadline and fatal is None:
        second.poll(0.1)
        m = first.poll(0.1)
        for e in list(errors) + ([m.error()] if m is not None and m.error() else []):
            if e.code() == KafkaError._FATAL or e.fatal():
                fatal = e
    assert fatal is not None, f"the replaced member was never fenced; errors: {errors}"
    assert "FENCED_INSTANCE_ID" in str(fatal) or "fenced" in str(fatal).lower()
    # The new member keeps the membership.
    wait_for(lambda: second.poll(0.2) is None and len(second.assignment()) == 2, timeout=30, what="second consumer assigned")
    second.close()
    first.close()


def test_an_empty_consumer_group_keeps_its_protocol_type(make_sluice):
    s = make_sluice(FAST).start()
    create(s, "emptyg")
    c = group_member(s, "emptyg", "will-be-empty")
    c.commit(offsets=[TopicPartition("emptyg", 0, 0)], asynchronous=False)
    c.close()
    a = admin(s)
    described = a.describe_consumer_groups(["will-be-empty"])["will-be-empty"].result(15)
    assert described.state.name == "EMPTY"
    assert not described.is_simple_consumer_group, "an Empty consumer group lost protocol type 'consumer'"
    listed = {g.group_id: g for g in a.list_consumer_groups().result(15).valid}
    assert not listed["will-be-empty"].is_simple_consumer_group
    from kafka import KafkaAdminClient
    k = KafkaAdminClient(bootstrap_servers=s.bootstrap)
    try:
        groups = k.list_groups()
    finally:
        k.close()
    types = {(g["group_id"] if isinstance(g, dict) else g[0]): (g["protocol_type"] if isinstance(g, dict) else g[1]) for g in groups}
    assert types["will-be-empty"] == "consumer"


def test_list_offsets_max_timestamp_finds_the_record_inside_the_batch(sluice):
    """Three records in one batch with timestamps +100, +400, +250: MAX_TIMESTAMP is offset 1
    (KIP-734; Kafka answered the batch's last offset until KAFKA-16310)."""
    create(sluice, "maxts")
    base = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": sluice.bootstrap, "linger.ms": 500})
    for delta in (100, 400, 250):
        p.produce("maxts", value=b"v", partition=0, timestamp=base + delta)
    assert p.flush(15) == 0
    a = admin(sluice)
    result = a.list_offsets({TopicPartition("maxts", 0): OffsetSpec.max_timestamp()})[TopicPartition("maxts", 0)].result(15)
    assert (result.offset, result.timestamp) == (1, base + 400)


def test_incremental_alter_configs_append_and_subtract_list_configs(sluice):
    create(sluice, "listcfg")
    a = admin(sluice)
    res = ConfigResource("topic", "listcfg", incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
    a.incremental_alter_configs([res])[res].result(15)

    def policy():
        r = ConfigResource("topic", "listcfg")
        return a.describe_configs([r])[r].result(15)["cleanup.policy"].value
    assert policy() == "delete,compact"
    res = ConfigResource("topic", "listcfg", incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)])
    a.incremental_alter_configs([res])[res].result(15)
    assert policy() == "compact"
    # Not a list config: refused.
    res = ConfigResource("topic", "listcfg", incremental_configs=[
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([res])[res].result(15)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    # kafka-python's incremental call on the same config.
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType
    k = KafkaAdminClient(bootstrap_servers=sluice.bootstrap)
    try:
        k.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "listcfg", configs={"cleanup.policy": ("APPEND", "delete")})],
                        incremental=True)
    finally:
        k.close()
    assert policy() == "compact,delete"


def test_alter_configs_on_the_broker_replaces_the_dynamic_set(sluice):
    a = admin(sluice)
    broker = ConfigResource("broker", "1")
    # IncrementalAlterConfigs adds two dynamic configs Kafka allows (one of them per-broker).
    res = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("sasl.kerberos.min.time.before.relogin", "58000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(15)
    described = a.describe_configs([broker])[broker].result(15)
    assert described["sasl.kerberos.min.time.before.relogin"].value == "58000"
    assert described["log.retention.ms"].value == "7200000"
    # The legacy AlterConfigs replaces the whole set: what it does not name goes back to default.
    for f in a.alter_configs([ConfigResource("broker", "1", set_config={"log.retention.ms": "3600000"})]).values():
        f.result(15)
    described = a.describe_configs([broker])[broker].result(15)
    assert described["log.retention.ms"].value == "3600000"
    assert "sasl.kerberos.min.time.before.relogin" not in described
    # A per-broker config cannot be the cluster-wide default (resource name ""; neither Python
    # client will send that name, so the request is written by hand: IncrementalAlterConfigs v0).
    body = struct.pack(">ib", 1, 4) + string("") + struct.pack(">i", 1) + string("sasl.kerberos.min.time.before.relogin")
    body += struct.pack(">b", 0) + string("1") + struct.pack(">b", 0)
    with socket.create_connection(("127.0.0.1", sluice.port), timeout=30) as conn:
        conn.sendall(request(44, 0, 1, body))
        _, response = Reader(conn).response()
    assert struct.unpack(">h", response[8:10])[0] == 42  # INVALID_REQUEST
    res = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("no.such.broker.config", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([res])[res].result(15)
    assert e.value.args[0].name() == "INVALID_CONFIG"


def test_admin_commit_to_an_active_group_is_unknown_member(make_sluice):
    s = make_sluice(FAST).start()
    create(s, "activeg")
    c = group_member(s, "activeg", "active")
    from confluent_kafka import ConsumerGroupTopicPartitions
    a = admin(s)
    futures = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("active", [TopicPartition("activeg", 0, 3)])])
    result = futures["active"].result(15)
    assert [tp.error.name() if tp.error else None for tp in result.topic_partitions] == ["UNKNOWN_MEMBER_ID"]
    c.close()
    # Once the group is Empty, the same admin commit is stored.
    wait_for(lambda: a.describe_consumer_groups(["active"])["active"].result(15).state.name == "EMPTY",
             timeout=30, what="group Empty")
    result = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("active", [TopicPartition("activeg", 0, 3)])])["active"].result(15)
    assert [tp.error for tp in result.topic_partitions] == [None]


def test_authorized_operations_without_an_authorizer_are_all_of_the_resource(make_sluice):
    s = make_sluice(FAST).start()
    create(s, "authops")
    a = admin(s)
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AclOperation
    topic = a.describe_topics(TopicCollection(["authops"]), include_authorized_operations=True)["authops"].result(15)
    assert set(topic.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
        AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
    cluster = a.describe_cluster(include_authorized_operations=True).result(15)
    assert set(cluster.authorized_operations) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE}
    assert cluster.controller.id == 1 and [n.id for n in cluster.nodes] == [1]
    assert cluster.cluster_id
    # Not asked for: none reported.
    assert not a.describe_cluster().result(15).authorized_operations
    c = group_member(s, "authops", "authg")
    group = a.describe_consumer_groups(["authg"], include_authorized_operations=True)["authg"].result(15)
    assert set(group.authorized_operations) == {AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE}
    c.close()


def test_topics_describe_prints_the_topic_id(sluice):
    create(sluice, "withid")
    a = admin(sluice)
    topic = a.list_topics(timeout=10)  # Metadata carries the id
    from confluent_kafka import TopicCollection
    wanted = a.describe_topics(TopicCollection(["withid"]))["withid"].result(15).topic_id
    out = subprocess.run([BINARY, "topics", "--bootstrap-server", sluice.bootstrap, "--describe", "--topic", "withid"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # Kafka prints ids in URL-safe base64; librdkafka's string uses the standard alphabet.
    assert f"TopicId: {str(wanted).replace('+', '-').replace('/', '_')}" in out.stdout, out.stdout
    assert "AAAAAAAAAAAAAAAAAAAAAA" not in out.stdout
    assert topic.topics["withid"]


def offset_for_leader_epoch_v2(correlation, topic, current_epoch, epoch):
    body = struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1) + struct.pack(">iii", 0, current_epoch, epoch)
    return request(23, 2, correlation, body)


def test_offset_for_leader_epoch_answers_as_kafka(sluice):
    """Epoch 0 is this node's only leader epoch: its end offset is the log end; a requested epoch
    above it is -1/-1; a client with a newer currentLeaderEpoch gets UNKNOWN_LEADER_EPOCH (75)."""
    create(sluice, "ofle")
    p = Producer({"bootstrap.servers": sluice.bootstrap})
    for i in range(5):
        p.produce("ofle", value=b"%d" % i, partition=0)
    assert p.flush(15) == 0

    def ask(current_epoch, epoch):
        with socket.create_connection(("127.0.0.1", sluice.port), timeout=30) as conn:
            conn.sendall(offset_for_leader_epoch_v2(1, "ofle", current_epoch, epoch))
            _, body = Reader(conn).response()
        pos = 4 + 4 + 2 + len("ofle") + 4
        return struct.unpack(">hiiq", body[pos:pos + 18])  # error, partition, leader epoch, end offset

    assert ask(0, 0) == (0, 0, 0, 5)
    assert ask(-1, 0) == (0, 0, 0, 5)
    assert ask(0, 3) == (0, 0, -1, -1)
    assert ask(2, 0)[0] == 75


def nullable_string(text):
    return struct.pack(">h", -1) if text is None else string(text)


def test_a_pipelined_transaction_runs_in_the_order_it_was_sent(sluice):
    """AddPartitionsToTxn, a transactional Produce, EndTxn (commit) written back to back on one
    connection: the produce waits for the partition to be added (else it is refused), the commit
    for the produce, and a read_committed consumer then sees the records."""
    create(sluice, "pipe-txn")
    from kafka.record.default_records import DefaultRecordBatchBuilder
    with socket.create_connection(("127.0.0.1", sluice.port), timeout=30) as conn:
        reader = Reader(conn)
        # FindCoordinator v1 (transaction), then InitProducerId v0.
        conn.sendall(request(10, 1, 1, string("pipe-tid") + struct.pack(">b", 1)))
        assert struct.unpack(">h", reader.response()[1][4:6])[0] == 0
        conn.sendall(request(22, 0, 2, string("pipe-tid") + struct.pack(">i", 60000)))
        body = reader.response()[1]
        error, producer_id, epoch = struct.unpack(">hqh", body[4:16])
        assert error == 0
        batch = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=True, producer_id=producer_id,
                                          producer_epoch=epoch, base_sequence=0, batch_size=1 << 20)
        for i in range(3):
            batch.append(i, int(time.time() * 1000), None, b"txn-%d" % i, [])
        records = bytes(batch.build())
        add = string("pipe-tid") + struct.pack(">qh", producer_id, epoch) + struct.pack(">i", 1) + string("pipe-txn")
        add += struct.pack(">ii", 1, 0)
        produce = nullable_string("pipe-tid") + struct.pack(">hi", -1, 10000) + struct.pack(">i", 1) + string("pipe-txn")
        produce += struct.pack(">iii", 1, 0, len(records)) + records
        end = string("pipe-tid") + struct.pack(">qhb", producer_id, epoch, 1)
        conn.sendall(request(24, 0, 3, add) + request(0, 3, 4, produce) + request(26, 0, 5, end))
        add_body = reader.response()[1]
        assert struct.unpack(">h", add_body[-2:])[0] == 0, "AddPartitionsToTxn"
        produce_body = reader.response()[1]
        pos = 4 + 2 + len("pipe-txn") + 4 + 4
        assert struct.unpack(">h", produce_body[pos:pos + 2])[0] == 0, "the transactional produce was refused"
        assert struct.unpack(">h", reader.response()[1][4:6])[0] == 0, "EndTxn"
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "pipe-txn-check", "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed", "enable.partition.eof": True})
    c.assign([TopicPartition("pipe-txn", 0, 0)])
    values = []
    deadline = time.time() + 20
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF and len(values) >= 3:
                break
            continue
        values.append(m.value())
    c.close()
    assert values == [b"txn-0", b"txn-1", b"txn-2"]


def test_group_configs_are_described_and_altered(sluice):
    """Config resources of type GROUP (KIP-848; librdkafka's 0081 with Kafka 4.0): Kafka's group
    configs with their defaults, set and deleted with IncrementalAlterConfigs, range-checked."""
    from confluent_kafka.admin import ResourceType
    a = admin(sluice)
    group = ConfigResource(ResourceType.GROUP, "cfg-group")
    described = a.describe_configs([group])[group].result(15)
    assert described["consumer.session.timeout.ms"].value == "45000"
    assert described["consumer.heartbeat.interval.ms"].value == "5000"
    res = ConfigResource(ResourceType.GROUP, "cfg-group", incremental_configs=[
        ConfigEntry("consumer.session.timeout.ms", "50000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(15)
    assert a.describe_configs([group])[group].result(15)["consumer.session.timeout.ms"].value == "50000"
    res = ConfigResource(ResourceType.GROUP, "cfg-group", incremental_configs=[
        ConfigEntry("consumer.session.timeout.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([res])[res].result(15)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    res = ConfigResource(ResourceType.GROUP, "cfg-group", incremental_configs=[
        ConfigEntry("consumer.session.timeout.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res])[res].result(15)
    assert a.describe_configs([group])[group].result(15)["consumer.session.timeout.ms"].value == "45000"
