"""The chaos checker must see every anomaly it claims to look for (else a green chaos run
means nothing): fed histories with one planted anomaly each, it reports exactly that one."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Chaos"))
from checker import anomalies, check_append, check_queue, check_txn  # noqa: E402


def good():
    acked = {b"p1-1": (0, 0), b"p1-2": (0, 1), b"p1-3": (1, 0)}
    log = {0: [(0, b"p1-1"), (1, b"p1-2")], 1: [(0, b"p1-3")]}
    return acked, log


def test_clean_history_passes():
    acked, log = good()
    assert anomalies(check_append(acked, log)) == 0
    assert anomalies(check_queue(acked, [(0, 0, b"p1-1"), (0, 1, b"p1-2"), (1, 0, b"p1-3"), (0, 1, b"p1-2")], log)) == 0
    assert anomalies(check_txn([("committed", [b"t-1", b"t-2"]), ("aborted", [b"t-3"]), ("unknown", [b"t-4"])],
                               [b"t-1", b"t-2"])) == 0


def test_append_anomalies():
    acked, log = good()
    r = check_append(acked, {0: [(0, b"p1-1")], 1: [(0, b"p1-3")]})
    assert (r["lost"], anomalies(r)) == (1, 1)
    r = check_append(acked, {0: [(0, b"p1-1"), (1, b"p1-2"), (2, b"p1-2")], 1: [(0, b"p1-3")]})
    assert r["duplicated"] == 1
    r = check_append(acked, {0: [(0, b"p1-1"), (1, b"xx-9")], 1: [(0, b"p1-3"), (1, b"p1-2")]})
    assert r["offset_conflicts"] == 1 and r["lost"] == 0
    r = check_append({b"p1-2": (0, 0), b"p1-1": (0, 1)}, {0: [(0, b"p1-2"), (1, b"p1-1")]})
    assert r["non_monotonic"] == 1
    # An acknowledged value held at another offset than the one it was acknowledged with.
    r = check_append(acked, {0: [(0, b"p1-1"), (2, b"p1-2")], 1: [(0, b"p1-3")]})
    assert (r["misplaced"], r["lost"], r["offset_conflicts"], anomalies(r)) == (1, 0, 0, 1)


def test_queue_anomalies():
    acked, log = good()
    r = check_queue(acked, [(0, 0, b"p1-1"), (1, 0, b"p1-3")], log)
    assert r["lost"] == 1
    r = check_queue(acked, [(0, 0, b"p1-1"), (0, 1, b"p1-2"), (1, 0, b"p1-3"), (0, 0, b"zz")], log)
    assert r["offset_conflicts"] == 1
    r = check_queue(acked, [(0, 0, b"p1-1"), (0, 1, b"p1-2"), (1, 0, b"p1-3"), (1, 5, b"ghost")], log)
    assert r["phantom_reads"] == 1
    # The log holds one value twice: duplicated (and misplaced, the second copy being elsewhere).
    twice = {0: [(0, b"p1-1"), (1, b"p1-2"), (2, b"p1-2")], 1: [(0, b"p1-3")]}
    r = check_queue(acked, [(0, 0, b"p1-1"), (0, 1, b"p1-2"), (0, 2, b"p1-2"), (1, 0, b"p1-3")], twice)
    assert (r["duplicated"], r["misplaced"], r["lost"]) == (1, 1, 0)
    moved = {0: [(0, b"p1-1"), (3, b"p1-2")], 1: [(0, b"p1-3")]}
    r = check_queue(acked, [(0, 0, b"p1-1"), (0, 3, b"p1-2"), (1, 0, b"p1-3")], moved)
    assert (r["misplaced"], r["duplicated"], anomalies(r)) == (1, 0, 1)


def test_txn_anomalies():
    assert check_txn([("committed", [b"a", b"b"])], [b"a"])["lost"] == 1
    assert check_txn([("aborted", [b"a", b"b"])], [b"a"])["aborted_reads"] == 1
    assert check_txn([("unknown", [b"a", b"b"])], [b"b"])["partial"] == 1
    assert check_txn([("committed", [b"a"])], [b"a", b"a"])["duplicated"] == 1
