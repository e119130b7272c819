"""Drop-behind (sluice.cache.drop.behind.bytes): a log keeps only its tail in the page cache,
and nothing it dropped is lost to a consumer."""
import ctypes
import mmap
import os
import subprocess

import pytest

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from conftest import BINARY, wait_for

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20


def resident_pages(path):
    """Which pages of the file are in the page cache now (mincore over a shared read-only map)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vec = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return [v & 1 for v in vec]
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def produce_values(s, topic, count):
    """`count` values of about 1 KiB (numbered, then random) produced to partition 0 of `topic`
    with acks=all; returns them once all are acknowledged."""
    p = Producer({"bootstrap.servers": s.bootstrap, "acks": "all", "linger.ms": 5})
    values = [b"%06d-" % i + os.urandom(1000) for i in range(count)]
    for v in values:
        p.produce(topic, value=v, partition=0)
        p.poll(0)
    assert p.flush(60) == 0
    return values


def read_from_start(s, topic, count):
    """The first `count` values of partition 0 of `topic`, read by a consumer assigned at offset 0."""
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": "pc-" + topic, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    try:
        while len(got) < count:
            msgs = c.consume(1000, timeout=20)
            assert msgs, f"{topic}: no records after {len(got)}"
            for m in msgs:
                assert m.error() is None, m.error()
                got.append(m.value())
    finally:
        c.close()
    return got


def test_drop_behind_keeps_only_the_tail_cached_and_loses_nothing(make_sluice):
    """A broker started with sluice.cache.drop.behind.bytes=4 MiB writes back and drops from
    the page cache what lies more than 4 MiB behind a log's end; a topic that sets it to 0 keeps
    everything cached (the kernel's way). A consumer reads every record of both back from the
    start, the dropped part from the disk. Values below 4 MiB (other than 0) are INVALID_CONFIG."""
    s = make_sluice(["sluice.cache.drop.behind.bytes=4194304"]).start()
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    for f in a.create_topics([NewTopic("dropped", 1, 1),
                              NewTopic("cached", 1, 1, config={"sluice.cache.drop.behind.bytes": "0"})]).values():
        f.result(15)
    with pytest.raises(KafkaException) as e:
        for f in a.create_topics([NewTopic("tiny", 1, 1, config={"sluice.cache.drop.behind.bytes": str(MIB)})]).values():
            f.result(15)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    too_small = ConfigResource(ConfigResource.Type.TOPIC, "cached", incremental_configs=[
        ConfigEntry("sluice.cache.drop.behind.bytes", str(MIB), incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        for f in a.incremental_alter_configs([too_small]).values():
            f.result(15)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    described = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "dropped")])
    config = list(described.values())[0].result(15)
    assert config["sluice.cache.drop.behind.bytes"].value == "4194304"

    p = Producer({"bootstrap.servers": s.bootstrap, "acks": "all", "linger.ms": 5})
    values = [b"%06d-" % i + os.urandom(1000) for i in range(24_000)]  # about 24 MiB per topic
    for v in values:
        p.produce("dropped", value=v, partition=0)
        p.produce("cached", value=v, partition=0)
        p.poll(0)
    assert p.flush(60) == 0

    def pages(topic):
        return resident_pages(os.path.join(s.log_dir, f"{topic}-0", "0" * 20 + ".log"))
    dropped, cached = pages("dropped"), pages("cached")
    assert len(dropped) * PAGE > 20 * MIB and len(cached) * PAGE > 20 * MIB
    # What the last passes could not drop yet (pages still under writeback) stays at most a few
    # steps of 1 MiB past the 4 MiB window.
    assert sum(dropped) * PAGE <= 10 * MIB, f"{sum(dropped) * PAGE / MIB:.1f} MiB of {len(dropped) * PAGE / MIB:.1f} cached"
    assert sum(dropped[-(2 * MIB // PAGE):]) == 2 * MIB // PAGE, "the newest 2 MiB stay cached for tail reads"
    assert sum(cached) >= 0.9 * len(cached), f"only {sum(cached)} of {len(cached)} pages cached without drop-behind"

    for topic in ("dropped", "cached"):
        assert read_from_start(s, topic, len(values)) == values, f"{topic}: records read back differ"


def test_a_broker_default_below_the_minimum_is_refused_at_start(tmp_path):
    """sluice.cache.drop.behind.bytes as a broker default is checked like the topic config: the
    server does not start, and says which property and why."""
    r = subprocess.run([BINARY, "server", "--override", f"log.dirs={tmp_path}", "--override",
                        "listeners=PLAINTEXT://127.0.0.1:0", "--override", "sluice.cache.drop.behind.bytes=1048576"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "sluice.cache.drop.behind.bytes" in r.stderr and "4194304" in r.stderr, r.stderr[-500:]


def test_a_catch_up_on_dropped_data_reads_every_record_and_drops_what_it_read(make_sluice):
    """A consumer that starts from the beginning of a log whose older part drop-behind has
    dropped (4 MiB kept) reads it from the disk and gets every record, in order; the pages the
    broker read for it are dropped again once the consumer has moved 8 MiB past them. After
    reading 48 MiB, only the last stretch of the file is cached, where a broker that left its
    reads in the page cache would hold all of it."""
    s = make_sluice(["sluice.cache.drop.behind.bytes=4194304"]).start()
    a = AdminClient({"bootstrap.servers": s.bootstrap})
    for f in a.create_topics([NewTopic("backlog", 1, 1)]).values():
        f.result(15)
    values = produce_values(s, "backlog", 48_000)  # about 48 MiB
    path = os.path.join(s.log_dir, "backlog-0", "0" * 20 + ".log")
    before = resident_pages(path)
    assert len(before) * PAGE > 45 * MIB
    assert sum(before) * PAGE <= 12 * MIB, f"{sum(before) * PAGE / MIB:.1f} MiB cached before the catch-up"

    assert read_from_start(s, "backlog", len(values)) == values, "records read back differ"
    after = resident_pages(path)
    # Without the drops behind the reader every page read would stay: about 48 MiB.
    assert sum(after) * PAGE <= 28 * MIB, f"{sum(after) * PAGE / MIB:.1f} MiB of {len(after) * PAGE / MIB:.1f} cached after the catch-up"
    assert sum(after[:len(after) // 2]) * PAGE <= 2 * MIB, "the first half of the file is cached again"


def uncached_log(make_sluice, topic):
    """A broker restarted on about 40 MiB produced to partition 0 of `topic`, whose segment's
    pages were dropped from the page cache while it was down (as after a reboot): the broker,
    the values and the segment's path."""
    s = make_sluice().start()
    values = produce_values(s, topic, 40_000)
    s.stop()
    path = os.path.join(s.log_dir, f"{topic}-0", "0" * 20 + ".log")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert sum(resident_pages(path)) * PAGE <= MIB, "the log's pages were not dropped"
    return s.start(), values, path


def test_a_catch_up_after_a_restart_with_nothing_cached_reads_every_record(make_sluice):
    """The read-ahead of uncached data (the segment's pages dropped while the broker was down,
    as after a reboot): a consumer from offset 0 of a 40 MiB log, far more than 8 MiB behind its
    end, gets every record in order, and the whole file is in the page cache afterwards (the
    default keeps what it read; only drop-behind drops it again)."""
    s, values, path = uncached_log(make_sluice, "cold")
    assert read_from_start(s, "cold", len(values)) == values, "records read back differ"
    cached = resident_pages(path)
    assert sum(cached) >= 0.9 * len(cached), f"only {sum(cached)} of {len(cached)} pages cached after reading"


def test_a_first_fetch_of_uncached_data_requests_the_next_8_mib_from_the_disk(make_sluice):
    """The read-ahead itself: one fetch of 1 MiB (kafka-python, one poll of one record, so no
    further fetch is sent) at the start of a 40 MiB log whose pages are not cached makes the
    broker request 8 MiB past it from the disk, so the file's pages up to about 9 MiB come into
    the page cache. The kernel's own read-ahead for that one read stops after a few MiB."""
    s, values, path = uncached_log(make_sluice, "first")
    c = KafkaConsumer(bootstrap_servers=s.bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=MIB)
    try:
        tp = KafkaPythonPartition("first", 0)
        c.assign([tp])
        c.seek(tp, 0)
        got = wait_for(lambda: c.poll(timeout_ms=500, max_records=1).get(tp), what="the first record")
        assert got[0].value == values[0]
        stretch = slice(6 * MIB // PAGE, 8 * MIB // PAGE)
        wait_for(lambda: sum(resident_pages(path)[stretch]) >= 0.9 * (2 * MIB // PAGE), timeout=10,
                 what="6-8 MiB into the file to be read into the page cache")
    finally:
        c.close()
