"""The Prometheus endpoint, with Kafka's metric names."""
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import free_port, wait_for


def scrape(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_prometheus_endpoint_counts_traffic(make_sluice):
    port = free_port()
    s = make_sluice([f"sluice.metrics.port={port}"]).start()
    p = Producer({"bootstrap.servers": s.bootstrap})
    for i in range(25):
        p.produce("metered", value=b"x" * 100)
    assert p.flush(10) == 0
    # Kafka's PartitionCount: the partitions hosted here; no group has used the offsets topic yet.
    wait_for(lambda: value(scrape(port), "kafka_server_replicamanager_partitioncount") == 1, timeout=10, what="the partition gauge")
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "m"})
    c.assign([TopicPartition("metered", 0, 0)])
    got = 0
    while got < 25:
        m = c.poll(5)
        assert m is not None
        got += m.error() is None
    c.close()
    text = scrape(port)
    assert value(text, "kafka_server_brokertopicmetrics_messagesin_total") == 25
    assert value(text, "kafka_server_brokertopicmetrics_bytesin_total") >= 2500
    assert value(text, "kafka_server_brokertopicmetrics_bytesout_total") >= 2500
    assert 'kafka_network_requestmetrics_requests_total{request="Produce"}' in text
    assert 'kafka_network_requestmetrics_totaltimems' in text
    # A committed offset puts the group's offsets topic in use: its 50 partitions count too.
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "m", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("metered", 0, 25)], asynchronous=False)
    c.close()
    wait_for(lambda: value(scrape(port), "kafka_server_replicamanager_partitioncount") == 51, timeout=10,
             what="the partition gauge with __consumer_offsets")
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).status == 200


def histogram(text, name, request):
    """The buckets (upper bound in the metric's unit -> cumulative count), sum and count of one
    request's histogram."""
    buckets, total, count = {}, None, None
    for line in text.splitlines():
        if f'request="{request}"' not in line:
            continue
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum{"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_count{"):
            count = float(line.rsplit(" ", 1)[1])
    return buckets, total, count


def test_request_times_are_milliseconds(make_sluice):
    """kafka_network_requestmetrics_totaltimems is in milliseconds, as Kafka's TotalTimeMs: a
    fetch that long-polls an empty partition for fetch.wait.max.ms=300 counts about 300, and a
    produce on loopback lands in a bucket below 25 ms (buckets in seconds would hold every
    request in their first, 5 ms one)."""
    port = free_port()
    s = make_sluice([f"sluice.metrics.port={port}"]).start()
    p = Producer({"bootstrap.servers": s.bootstrap})
    p.produce("timed", value=b"x")
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "t", "fetch.wait.max.ms": 300})
    c.assign([TopicPartition("timed", 0, 1)])  # at the end: every fetch waits the whole 300 ms
    name = "kafka_network_requestmetrics_totaltimems"

    def long_polls():
        buckets, total, count = histogram(scrape(port), name, "Fetch")
        assert buckets, "no Fetch histogram"
        c.poll(0.2)
        return count - buckets.get(250.0, count) >= 2 and total >= 500

    wait_for(long_polls, timeout=20, what="two fetches counted at over 250 ms")
    c.close()
    buckets, total, count = histogram(scrape(port), name, "Produce")
    assert count >= 1 and buckets.get(25.0, 0) >= 1, (buckets, count)
    assert 0.001 < total / count < 25, total / count
    fbuckets, _, fcount = histogram(scrape(port), name, "Fetch")
    assert fbuckets[1000.0] == fcount, "a 300 ms long poll counted above a second"
