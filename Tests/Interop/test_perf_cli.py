"""`sluice perf produce|consume` against the real server: the flags and output of Kafka's
kafka-producer-perf-test / kafka-consumer-perf-test, with what they wrote checked by
confluent-kafka."""
import glob
import os
import re
import subprocess

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BINARY

TOTAL = re.compile(r"^(\d+)( steady state)? records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
                   r"[\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$")


def perf(*args, check=True, timeout=120):
    return subprocess.run([BINARY, "perf", *args], capture_output=True, text=True, timeout=timeout, check=check)


def create(sluice, topic, partitions):
    admin = AdminClient({"bootstrap.servers": sluice.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


def read_all(sluice, topic, partitions, expected, isolation="read_uncommitted"):
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": f"check-{topic}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    for _ in range(400):
        for m in c.consume(1000, timeout=0.5):
            assert m.error() is None, m.error()
            out.append(m)
        if len(out) >= expected:
            break
    c.close()
    return out


def end_offsets(sluice, topic, partitions):
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "offsets"})
    ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    c.close()
    return ends


def test_produce_batches_across_partitions_with_random_values(sluice):
    create(sluice, "spread", 3)
    out = perf("produce", "--topic", "spread", "--num-records", "30000", "--record-size", "100", "--throughput", "-1",
               "--producer-props", f"bootstrap.servers={sluice.bootstrap}", "acks=all", "linger.ms=5",
               "--print-metrics").stdout
    totals = [line for line in out.splitlines() if TOTAL.match(line)]
    assert len(totals) == 1 and totals[0].startswith("30000 records sent,"), out
    assert re.search(r"^producer-metrics:record-send-total:\{client-id=perf-producer-client\} +: 30000\.000$", out, re.M), out
    records = read_all(sluice, "spread", 3, 30000)
    assert len(records) == 30000
    # Sticky batches: every partition got some; the values are random upper-case letters, not one payload.
    assert {m.partition() for m in records} == {0, 1, 2}
    values = [m.value() for m in records]
    assert all(len(v) == 100 and re.fullmatch(rb"[A-Z]+", v) for v in values)
    assert len(set(values)) > 29000
    # With acks=all the producer is idempotent, as Kafka's is by default: one producer id, and
    # each partition's batches carry sequences that follow on from each other from 0.
    sluice.stop()
    for p in range(3):
        log = glob.glob(os.path.join(sluice.log_dir, f"spread-{p}", "*.log"))[0]
        dump = subprocess.run([BINARY, "dump-log", "--files", log], capture_output=True, text=True, check=True).stdout
        batches = [re.search(r"baseSequence: (-?\d+) lastSequence: (-?\d+) producerId: (-?\d+)", line).groups()
                   for line in dump.splitlines() if line.startswith("baseOffset:")]
        assert batches and {b[2] for b in batches} == {batches[0][2]} and int(batches[0][2]) >= 0
        assert [int(b[0]) for b in batches] == [0] + [int(b[1]) + 1 for b in batches[:-1]]


def test_produce_payload_file_monotonic_and_warmup(sluice, tmp_path):
    payloads = tmp_path / "payloads.txt"
    payloads.write_text("alpha|beta|gamma")
    out = perf("produce", "--topic", "words", "--num-records", "300", "--payload-file", str(payloads),
               "--payload-delimiter", "|", "--throughput", "-1", "--bootstrap-server", sluice.bootstrap).stdout
    assert "Number of messages read: 3" in out
    # Each record takes one of the file's payloads at random: over 300 records, all three.
    assert {m.value() for m in read_all(sluice, "words", 1, 300)} == {b"alpha", b"beta", b"gamma"}

    out = perf("produce", "--topic", "counting", "--num-records", "1000", "--payload-monotonic", "--throughput", "-1",
               "--warmup-records", "200", "--command-property", f"bootstrap.servers={sluice.bootstrap}", "acks=1").stdout
    lines = [line for line in out.splitlines() if TOTAL.match(line)]
    assert lines[0].startswith("1000 records sent,") and lines[1].startswith("800 steady state records sent,"), out
    assert [m.value() for m in read_all(sluice, "counting", 1, 1000)] == [str(i).encode() for i in range(1000)]


def test_produce_throughput_is_throttled(sluice):
    perf("produce", "--topic", "slow", "--num-records", "3000", "--record-size", "50", "--throughput", "2000",
         "--producer-props", f"bootstrap.servers={sluice.bootstrap}")
    stamps = sorted(m.timestamp()[1] for m in read_all(sluice, "slow", 1, 3000))
    assert len(stamps) == 3000
    # 3,000 records at 2,000/s: the last is created about 1.5 s after the first (never much sooner).
    assert stamps[-1] - stamps[0] >= 1300


def test_produce_in_transactions(sluice, tmp_path):
    create(sluice, "txn", 2)
    config = tmp_path / "producer.properties"
    config.write_text(f"# as Kafka's tools read it\nbootstrap.servers={sluice.bootstrap}\nbatch.size: 4096\n")
    out = perf("produce", "--topic", "txn", "--num-records", "6000", "--record-size", "200", "--throughput", "3000",
               "--producer.config", str(config), "--transactional-id", "perf-txn", "--transaction-duration-ms", "500").stdout
    assert any(line.startswith("6000 records sent,") for line in out.splitlines()), out
    assert len(read_all(sluice, "txn", 2, 6000, isolation="read_committed")) == 6000
    # Commit markers take offsets of their own: about four transactions of 0.5 s, each marked on both partitions.
    assert sum(end_offsets(sluice, "txn", 2)) >= 6000 + 6


def test_produce_acks_0_and_broker_errors(sluice):
    out = perf("produce", "--topic", "fire", "--num-records", "2000", "--record-size", "64", "--throughput", "-1",
               "--producer-props", f"bootstrap.servers={sluice.bootstrap}", "acks=0").stdout
    assert any(line.startswith("2000 records sent,") for line in out.splitlines()), out
    assert len(read_all(sluice, "fire", 1, 2000)) == 2000
    # Batches the broker refuses are not counted as sent, and the error is named on stderr.
    admin = AdminClient({"bootstrap.servers": sluice.bootstrap})
    admin.create_topics([NewTopic("small", 1, 1, config={"max.message.bytes": "1000"})])["small"].result(10)
    r = perf("produce", "--topic", "small", "--num-records", "20", "--record-size", "4000", "--throughput", "-1",
             "--producer-props", f"bootstrap.servers={sluice.bootstrap}", "acks=1")
    assert any(line.startswith("0 records sent,") for line in r.stdout.splitlines()), r.stdout
    assert "20 records failed: MESSAGE_TOO_LARGE" in r.stderr, r.stderr
    assert end_offsets(sluice, "small", 1) == [0]


def test_produce_rejects_two_payload_sources(sluice, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("x")
    r = perf("produce", "--topic", "t", "--num-records", "10", "--record-size", "10", "--payload-file", str(f),
             "--producer-props", f"bootstrap.servers={sluice.bootstrap}", check=False)
    assert r.returncode != 0 and "exactly one of --record-size, --payload-file or --payload-monotonic" in r.stderr
    r = perf("produce", "--topic", "t", "--num-records", "10", "--record-size", "10",
             "--producer-props", f"bootstrap.servers={sluice.bootstrap}", "batch.size=lots", check=False)
    assert r.returncode != 0 and "batch.size must be a whole number" in r.stderr


def test_consume_group_commits_and_resumes(sluice):
    create(sluice, "backlog", 2)
    perf("produce", "--topic", "backlog", "--num-records", "4000", "--record-size", "64", "--throughput", "-1",
         "--producer-props", f"bootstrap.servers={sluice.bootstrap}", "acks=1")
    out = perf("consume", "--bootstrap-server", sluice.bootstrap, "--topic", "backlog", "--messages", "4000",
               "--group", "perf-g").stdout
    header, row = out.strip().splitlines()[-2:]
    assert header == ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
                      "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
    assert row.split(", ")[4] == "4000"
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "perf-g"})
    committed = c.committed([TopicPartition("backlog", 0), TopicPartition("backlog", 1)], timeout=10)
    c.close()
    assert [tp.offset for tp in committed] == end_offsets(sluice, "backlog", 2)
    # The group resumes where it stopped: nothing is left, so it waits out the timeout and says so.
    out = perf("consume", "--bootstrap-server", sluice.bootstrap, "--topic", "backlog", "--messages", "10",
               "--group", "perf-g", "--timeout", "1500", "--hide-header").stdout
    assert "WARNING: Exiting before consuming the expected number of messages" in out
    assert "start.time" not in out and out.strip().splitlines()[-1].split(", ")[4] == "0"
    # Another group starts from the beginning; --from-latest starts at the end.
    out = perf("consume", "--bootstrap-server", sluice.bootstrap, "--topic", "backlog", "--num-records", "4000",
               "--group", "other").stdout
    assert out.strip().splitlines()[-1].split(", ")[4] == "4000"
    out = perf("consume", "--bootstrap-server", sluice.bootstrap, "--topic", "backlog", "--messages", "10",
               "--from-latest", "--timeout", "1000").stdout
    assert out.strip().splitlines()[-1].split(", ")[4] == "0"


def test_consume_detailed_stats_and_metrics(sluice):
    create(sluice, "detail", 2)
    perf("produce", "--topic", "detail", "--num-records", "4000", "--record-size", "64", "--throughput", "-1",
         "--producer-props", f"bootstrap.servers={sluice.bootstrap}", "acks=1")
    # Small fetches make the read take many round trips, so 1 ms intervals pass while it runs.
    out = perf("consume", "--bootstrap-server", sluice.bootstrap, "--topic", "detail", "--messages", "4000",
               "--fetch-size", "1024", "--show-detailed-stats", "--reporting-interval", "1", "--date-format", "yyyy",
               "--print-metrics").stdout
    lines = out.strip().splitlines()
    assert lines[0] == ("time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
                        "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
    rows = [line.split(", ") for line in lines[1:] if re.match(r"^\d{4}, 0, ", line)]
    assert rows and all(len(r) == 10 for r in rows), out
    # The record counts of the rows grow and stop short of the total; no summary row follows them.
    counts = [int(r[4]) for r in rows]
    assert counts == sorted(counts) and counts[-1] <= 4000
    assert not any(line.count(", ") == 9 and not re.match(r"^\d{4}, 0, ", line) for line in lines[1:])
    assert re.search(r"^consumer-fetch-manager-metrics:records-consumed-total:\{client-id=perf-consumer-client\} +: 4000\.000$",
                     out, re.M), out


def test_consume_resets_a_committed_offset_outside_the_log(sluice):
    perf("produce", "--topic", "reset", "--num-records", "100", "--record-size", "16", "--throughput", "-1",
         "--producer-props", f"bootstrap.servers={sluice.bootstrap}", "acks=1")
    c = Consumer({"bootstrap.servers": sluice.bootstrap, "group.id": "stale"})
    c.commit(offsets=[TopicPartition("reset", 0, 5000)], asynchronous=False)
    c.close()
    # 5000 is past the end of the log: like Kafka's consumer, start from the earliest offset instead.
    out = perf("consume", "--bootstrap-server", sluice.bootstrap, "--topic", "reset", "--messages", "100",
               "--group", "stale").stdout
    assert out.strip().splitlines()[-1].split(", ")[4] == "100"
