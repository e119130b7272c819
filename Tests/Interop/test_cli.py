"""Our own CLI (topics, console-producer, console-consumer, consumer-groups, dump-log) against
the real server, cross-checked with a third-party client."""
import glob
import os
import subprocess

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import BINARY


def cli(*args, input=None, check=True):
    return subprocess.run([BINARY, *args], input=input, capture_output=True, text=True, timeout=60, check=check)


def test_topics_console_round_trip_and_java_partitioning(sluice):
    b = sluice.bootstrap
    cli("topics", "--bootstrap-server", b, "--create", "--topic", "cli", "--partitions", "3", "--config", "retention.ms=86400000")
    assert "cli" in cli("topics", "--bootstrap-server", b, "--list").stdout.split()
    described = cli("topics", "--bootstrap-server", b, "--describe", "--topic", "cli").stdout
    assert "PartitionCount: 3" in described and "retention.ms=86400000" in described
    lines = "".join(f"user-{i}:event-{i}\n" for i in range(30))
    cli("console-producer", "--bootstrap-server", b, "--topic", "cli", "--property", "parse.key=true",
        "--property", "key.separator=:", input=lines)
    out = cli("console-consumer", "--bootstrap-server", b, "--topic", "cli", "--from-beginning", "--max-messages", "30",
              "--property", "print.key=true", "--property", "key.separator=:").stdout
    assert sorted(out.splitlines()) == sorted(lines.splitlines())
    # Keys land where the Java client (murmur2, as librdkafka's murmur2_random) puts them.
    p = Producer({"bootstrap.servers": b, "partitioner": "murmur2_random"})
    reports = {}
    for i in range(30):
        p.produce("cli", key=f"user-{i}", value=b"x", on_delivery=lambda e, m: reports.__setitem__(m.key().decode(), m.partition()))
    p.flush(10)
    c = Consumer({"bootstrap.servers": b, "group.id": "cli-check"})
    c.assign([TopicPartition("cli", q, 0) for q in range(3)])
    ours = {}
    while len(ours) < 30:
        m = c.poll(5)
        assert m is not None
        if m.value() != b"x":
            ours[m.key().decode()] = m.partition()
    c.close()
    assert ours == reports
    cli("topics", "--bootstrap-server", b, "--alter", "--topic", "cli", "--partitions", "4")
    assert "PartitionCount: 4" in cli("topics", "--bootstrap-server", b, "--describe", "--topic", "cli").stdout
    cli("topics", "--bootstrap-server", b, "--delete", "--topic", "cli")
    assert "cli" not in cli("topics", "--bootstrap-server", b, "--list").stdout.split()


def test_consumer_groups_lag_and_resets(sluice):
    b = sluice.bootstrap
    cli("topics", "--bootstrap-server", b, "--create", "--topic", "lag", "--partitions", "1")
    cli("console-producer", "--bootstrap-server", b, "--topic", "lag", input="".join(f"m{i}\n" for i in range(10)))
    # The console consumer with --group commits where it stopped.
    out = cli("console-consumer", "--bootstrap-server", b, "--topic", "lag", "--group", "lagger", "--from-beginning",
              "--max-messages", "4").stdout
    assert out.split() == ["m0", "m1", "m2", "m3"]
    assert "lagger" in cli("consumer-groups", "--bootstrap-server", b, "--list").stdout.split()
    # The group used the offsets topic: listed as kafka-topics.sh lists it, unless excluded.
    assert "__consumer_offsets" in cli("topics", "--bootstrap-server", b, "--list").stdout.split()
    assert cli("topics", "--bootstrap-server", b, "--list", "--exclude-internal").stdout.split() == ["lag"]
    table = cli("consumer-groups", "--bootstrap-server", b, "--describe", "--group", "lagger").stdout
    row = [line.split() for line in table.splitlines() if line.startswith("lagger")][0]
    assert row[1:6] == ["lag", "0", "4", "10", "6"]
    # Resets, checked by what a third-party client then reads.
    dry = cli("consumer-groups", "--bootstrap-server", b, "--reset-offsets", "--group", "lagger", "--topic", "lag",
              "--to-offset", "7", "--dry-run").stdout
    assert "7" in dry
    c = Consumer({"bootstrap.servers": b, "group.id": "lagger"})
    assert c.committed([TopicPartition("lag", 0)], timeout=10)[0].offset == 4  # dry run changed nothing
    cli("consumer-groups", "--bootstrap-server", b, "--reset-offsets", "--group", "lagger", "--topic", "lag",
        "--shift-by", "-2", "--execute")
    assert c.committed([TopicPartition("lag", 0)], timeout=10)[0].offset == 2
    cli("consumer-groups", "--bootstrap-server", b, "--reset-offsets", "--group", "lagger", "--topic", "lag",
        "--to-latest", "--execute")
    assert c.committed([TopicPartition("lag", 0)], timeout=10)[0].offset == 10
    cli("consumer-groups", "--bootstrap-server", b, "--reset-offsets", "--group", "lagger", "--topic", "lag",
        "--to-earliest", "--execute")
    c.subscribe(["lag"])
    first = None
    while first is None:
        m = c.poll(5)
        assert m is not None
        if m.error() is None:
            first = m.offset()
    assert first == 0
    c.close()
    cli("consumer-groups", "--bootstrap-server", b, "--delete", "--group", "lagger")
    assert "lagger" not in cli("consumer-groups", "--bootstrap-server", b, "--list").stdout.split()


def test_dump_log_reads_segments_and_indexes(sluice):
    b = sluice.bootstrap
    cli("console-producer", "--bootstrap-server", b, "--topic", "dump", input="alpha\nbeta\n")
    sluice.stop()
    log = glob.glob(os.path.join(sluice.log_dir, "dump-0", "*.log"))[0]
    out = cli("dump-log", "--files", log, "--print-data-log").stdout
    assert "isvalid: true" in out and "payload: alpha" in out and "payload: beta" in out


def test_perf_produce_and_consume(sluice):
    out = cli("perf", "produce", "--topic", "perf", "--num-records", "5000", "--record-size", "100",
              "--producer-props", f"bootstrap.servers={sluice.bootstrap}", "acks=all", "compression.type=lz4").stdout
    final = out.strip().splitlines()[-1]
    assert final.startswith("5000 records sent,") and "records/sec" in final and "ms 99.9th." in final
    out = cli("perf", "consume", "--bootstrap-server", sluice.bootstrap, "--topic", "perf", "--messages", "5000").stdout
    header, row = out.strip().splitlines()[-2:]
    assert header.startswith("start.time, end.time, data.consumed.in.MB")
    assert row.split(", ")[4] == "5000"
    # A third-party client agrees on what is there.
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "perf-check"})
    assert c.get_watermark_offsets(TopicPartition("perf", 0), timeout=10) == (0, 5000)
    c.close()
