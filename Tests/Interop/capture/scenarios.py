"""Client workloads for capturing golden bytes: each client produces with every codec it
supports, consumes in a group and commits, lists offsets, and runs admin calls. Every step is
best-effort (the broker behind the proxy may not support all of it): the request bytes are what
we keep. Usage: scenarios.py CLIENT BOOTSTRAP   (CLIENT: confluent | kafka-python | aiokafka)"""
import asyncio
import sys
import time
import traceback

client, bootstrap = sys.argv[1], sys.argv[2]
topic = f"golden-{client}"


def step(name, fn):
    try:
        fn()
        print(f"{client}: {name} ok", flush=True)
    except Exception as e:  # keep going: we want the bytes of every step
        print(f"{client}: {name} failed: {e!r}", flush=True)


def confluent():
    from confluent_kafka import Producer, Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource, NewPartitions
    admin = AdminClient({"bootstrap.servers": bootstrap})
    step("create", lambda: [f.result(10) for f in admin.create_topics([NewTopic(topic, 2, 1)]).values()])
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        def produce(codec=codec):
            p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "enable.idempotence": codec == "lz4"})
            for i in range(5):
                p.produce(topic, key=f"k{i}", value=f"{codec}-{i}" * 10, headers=[("h", b"v")])
            p.flush(10)
        step(f"produce {codec}", produce)
    def consume():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{client}", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        c.subscribe([topic])
        deadline = time.time() + 15
        got = 0
        while time.time() < deadline and got < 25:
            m = c.poll(1)
            if m is not None and not m.error():
                got += 1
        c.commit(asynchronous=False)
        c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
        c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=5)
        c.close()
    step("consume", consume)
    step("describe configs", lambda: [f.result(10) for f in admin.describe_configs([ConfigResource("topic", topic)]).values()])
    step("create partitions", lambda: [f.result(10) for f in admin.create_partitions([NewPartitions(topic, 3)]).values()])
    step("list groups", lambda: admin.list_consumer_groups().result(10))
    step("delete", lambda: [f.result(10) for f in admin.delete_topics([topic]).values()])


def kafka_python():
    from kafka import KafkaProducer, KafkaConsumer, KafkaAdminClient
    from kafka.admin import NewTopic, ConfigResource, ConfigResourceType
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    step("create", lambda: admin.create_topics([NewTopic(topic, 2, 1)]))
    for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
        def produce(codec=codec):
            p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, request_timeout_ms=10000)
            for i in range(5):
                p.send(topic, key=f"k{i}".encode(), value=f"{codec}-{i}".encode() * 10, headers=[("h", b"v")])
            p.flush(10)
            p.close(5)
        step(f"produce {codec}", produce)
    def consume():
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{client}", auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=8000)
        for _ in c:
            pass
        c.commit()
        c.close()
    step("consume", consume)
    step("describe configs", lambda: admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
    step("list groups", lambda: admin.list_consumer_groups())
    step("delete", lambda: admin.delete_topics([topic]))
    admin.close()


def aiokafka_client():
    from aiokafka import AIOKafkaProducer, AIOKafkaConsumer

    async def run():
        for codec in [None, "gzip", "lz4"]:
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec)
            await p.start()
            try:
                for i in range(5):
                    await p.send_and_wait(topic, key=f"k{i}".encode(), value=f"{codec}-{i}".encode() * 10, headers=[("h", b"v")])
            finally:
                await p.stop()
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{client}", auto_offset_reset="earliest",
                             enable_auto_commit=False)
        await c.start()
        try:
            await asyncio.wait_for(c.getmany(timeout_ms=5000), 10)
            await c.commit()
        finally:
            await c.stop()
    step("produce+consume", lambda: asyncio.run(run()))


try:
    {"confluent": confluent, "kafka-python": kafka_python, "aiokafka": aiokafka_client}[client]()
except Exception:
    traceback.print_exc()
