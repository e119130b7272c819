"""Admin operations with confluent-kafka and kafka-python against the real sluice process."""
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions, NewTopic)


def admin(s):
    return AdminClient({"bootstrap.servers": s.bootstrap})


def test_create_describe_alter_delete(sluice):
    a = admin(sluice)
    for f in a.create_topics([NewTopic("adm", 3, 1, config={"retention.ms": "3600000", "cleanup.policy": "delete"})]).values():
        f.result(15)
    # Exists already.
    with pytest.raises(KafkaException) as e:
        for f in a.create_topics([NewTopic("adm", 1, 1)]).values():
            f.result(15)
    assert e.value.args[0].name() == "TOPIC_ALREADY_EXISTS"
    # Invalid names and replication factors.
    with pytest.raises(KafkaException) as e:
        for f in a.create_topics([NewTopic("bad name!", 1, 1)]).values():
            f.result(15)
    assert e.value.args[0].code() == 17  # INVALID_TOPIC_EXCEPTION
    with pytest.raises(KafkaException) as e:
        for f in a.create_topics([NewTopic("rf3", 1, 3)]).values():
            f.result(15)
    assert e.value.args[0].name() == "INVALID_REPLICATION_FACTOR"
    with pytest.raises(KafkaException) as e:
        for f in a.create_topics([NewTopic("badcfg", 1, 1, config={"no.such.config": "1"})]).values():
            f.result(15)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    # validate_only creates nothing.
    for f in a.create_topics([NewTopic("dry", 1, 1)], validate_only=True).values():
        f.result(15)
    md = a.list_topics(timeout=10)
    assert "dry" not in md.topics
    assert len(md.topics["adm"].partitions) == 3

    configs = list(a.describe_configs([ConfigResource("topic", "adm")]).values())[0].result(15)
    assert configs["retention.ms"].value == "3600000"
    assert configs["segment.bytes"].value == str(1 << 30)

    # AlterConfigs (what librdkafka sends) replaces the topic's overrides.
    for f in a.alter_configs([ConfigResource("topic", "adm", set_config={"retention.ms": "1000"})]).values():
        f.result(15)
    configs = list(a.describe_configs([ConfigResource("topic", "adm")]).values())[0].result(15)
    assert configs["retention.ms"].value == "1000"

    # Create partitions: only upwards.
    for f in a.create_partitions([NewPartitions("adm", 5)]).values():
        f.result(15)
    assert len(a.list_topics(timeout=10).topics["adm"].partitions) == 5
    with pytest.raises(KafkaException) as e:
        for f in a.create_partitions([NewPartitions("adm", 2)]).values():
            f.result(15)
    assert e.value.args[0].name() == "INVALID_PARTITIONS"

    for f in a.delete_topics(["adm"]).values():
        f.result(15)
    assert "adm" not in a.list_topics(timeout=10).topics
    with pytest.raises(KafkaException) as e:
        for f in a.delete_topics(["adm"]).values():
            f.result(15)
    assert e.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


def test_configs_survive_restart_and_broker_configs_describe(sluice):
    a = admin(sluice)
    for f in a.create_topics([NewTopic("persist", 2, 1, config={"retention.bytes": "123456789"})]).values():
        f.result(15)
    sluice.restart()
    a = admin(sluice)
    md = a.list_topics(timeout=10)
    assert len(md.topics["persist"].partitions) == 2
    configs = list(a.describe_configs([ConfigResource("topic", "persist")]).values())[0].result(15)
    assert configs["retention.bytes"].value == "123456789"
    broker = list(a.describe_configs([ConfigResource("broker", "1")]).values())[0].result(15)
    assert broker["node.id"].value == "1"


def test_kafka_python_incremental_alter_configs_and_delete_records(sluice):
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, NewTopic as KNewTopic
    kadmin = KafkaAdminClient(bootstrap_servers=sluice.bootstrap)
    kadmin.create_topics([KNewTopic("incr", 1, 1)])
    # IncrementalAlterConfigs, named explicitly (SET one config, DELETE another that was set).
    kadmin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "incr", configs={"segment.ms": ("SET", "700000")})],
                         incremental=True)
    kadmin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "incr",
                                          configs={"retention.ms": ("SET", "5000"), "segment.ms": ("DELETE", None)})],
                         incremental=True)
    described = kadmin.describe_configs([KConfigResource(ConfigResourceType.TOPIC, "incr")])["topic"]["incr"]
    assert described["retention.ms"]["value"] == "5000"
    assert described["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert "segment.ms" not in described  # deleted: back to the default, which kafka-python leaves out
    p = KafkaProducer(bootstrap_servers=sluice.bootstrap)
    for i in range(50):
        p.send("incr", value=b"%d" % i)
    p.flush(10)
    p.close()
    kadmin.close()
    # DeleteRecords through confluent-kafka, then the low watermark moves and reads start there.
    a = admin(sluice)
    res = a.delete_records([TopicPartition("incr", 0, 20)])
    for f in res.values():
        assert f.result(15).low_watermark == 20
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "dr", "auto.offset.reset": "earliest"})
    low, high = c.get_watermark_offsets(TopicPartition("incr", 0), timeout=10)
    assert (low, high) == (20, 50)
    c.assign([TopicPartition("incr", 0, 0)])  # below the log start: reset to earliest
    m = None
    for _ in range(40):
        m = c.poll(0.5)
        if m is not None:
            break
    assert m is not None and m.offset() == 20
    c.close()


def test_auto_create_follows_the_config_and_the_request_flag(make_sluice):
    s = make_sluice(["auto.create.topics.enable=false"]).start()
    p = Producer({"bootstrap.servers": s.bootstrap, "message.timeout.ms": 3000})
    errors = []
    p.produce("nope", value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None
    assert "nope" not in admin(s).list_topics(timeout=10).topics
    s2 = make_sluice(["num.partitions=4"]).start()
    p2 = Producer({"bootstrap.servers": s2.bootstrap})
    p2.produce("auto", value=b"x")
    assert p2.flush(10) == 0
    assert len(admin(s2).list_topics(timeout=10).topics["auto"].partitions) == 4
