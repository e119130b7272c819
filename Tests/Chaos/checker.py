"""The history checker of the chaos harness: pure functions over what the clients saw.

A history records, per workload, what the producers were told (acknowledged with a partition
and offset, failed, or unknown) and what consumers read. `check_*` return a dict of anomaly
counts and examples; a run passes when every anomaly count is zero.
"""
from collections import Counter, defaultdict


def _examples(items, n=5):
    return sorted(items)[:n]


def check_append(acked, log):
    """acked: {value: (partition, offset)} for every acknowledged record (idempotent producer,
    acks=all). log: {partition: [(offset, value), ...]} read from the start after the run.

    lost: acknowledged but not in the log. duplicated: in the log more than once (idempotence
    forbids it). offset_conflicts: the log holds another value at an acknowledged offset.
    misplaced: an acknowledged value found, but not where it was acknowledged (a consumer that
    stored the acknowledged offset would skip or re-read it). non_monotonic: offsets not
    strictly increasing in a partition, or one producer's values out of produce order (values
    end in a per-producer sequence number)."""
    where = {}
    counts = Counter()
    conflicts, non_monotonic = [], []
    for partition, entries in log.items():
        last = -1
        last_seq = {}
        for offset, value in entries:
            counts[value] += 1
            where[value] = (partition, offset)
            if offset <= last:
                non_monotonic.append((partition, offset))
            last = offset
            producer, seq = value.rsplit(b"-", 1)
            seq = int(seq)
            if producer in last_seq and seq <= last_seq[producer]:
                non_monotonic.append((partition, offset))
            last_seq[producer] = seq
    by_offset = {(p, o): v for p, entries in log.items() for o, v in entries}
    lost = [v for v in acked if v not in where]
    for value, (partition, offset) in acked.items():
        found = by_offset.get((partition, offset))
        if found is not None and found != value:
            conflicts.append((partition, offset))
    misplaced = _misplaced(acked, log)
    duplicated = [v for v, n in counts.items() if n > 1]
    return {
        "acked": len(acked), "read": sum(counts.values()),
        "lost": len(lost), "duplicated": len(duplicated), "offset_conflicts": len(conflicts),
        "misplaced": len(misplaced), "non_monotonic": len(non_monotonic),
        "examples": {"lost": _examples(v.decode() for v in lost), "duplicated": _examples(v.decode() for v in duplicated),
                     "offset_conflicts": _examples(conflicts), "misplaced": _examples(v.decode() for v in misplaced),
                     "non_monotonic": _examples(non_monotonic)},
    }


def _misplaced(acked, log):
    """Acknowledged values present in the log at a place other than the acknowledged one (every
    place counts: a value held twice is misplaced if either copy is elsewhere)."""
    places = defaultdict(set)
    for partition, entries in log.items():
        for offset, value in entries:
            places[value].add((partition, offset))
    return [v for v, at in acked.items() if places.get(v) and places[v] != {at}]


def _duplicated(log):
    counts = Counter(v for entries in log.values() for _, v in entries)
    return [v for v, n in counts.items() if n > 1]


def check_queue(acked, consumed, log):
    """acked: {value: (partition, offset)}; consumed: [(partition, offset, value)] as group
    members received them (with commits, so at-least-once: re-deliveries are fine);
    log: the final log as in `check_append`.

    lost: acknowledged, never delivered to the group. offset_conflicts: one offset delivered
    with two values, or with a value other than the log's. phantom_reads: a delivered record the
    final log does not hold (read above the high watermark, then lost). duplicated: a value the
    final log holds twice (the producers are idempotent), so the group was handed it at two
    offsets. misplaced: as in `check_append`."""
    seen = defaultdict(set)
    for partition, offset, value in consumed:
        seen[(partition, offset)].add(value)
    by_offset = {(p, o): v for p, entries in log.items() for o, v in entries}
    delivered = {v for _, _, v in consumed}
    lost = [v for v in acked if v not in delivered]
    conflicts = [k for k, vs in seen.items() if len(vs) > 1 or (k in by_offset and by_offset[k] not in vs)]
    phantom = [k for k in seen if k not in by_offset]
    redelivered = len(consumed) - len(seen)
    duplicated = _duplicated(log)
    misplaced = _misplaced(acked, log)
    return {
        "acked": len(acked), "delivered": len(consumed), "redelivered": redelivered,
        "lost": len(lost), "offset_conflicts": len(conflicts), "phantom_reads": len(phantom),
        "duplicated": len(duplicated), "misplaced": len(misplaced),
        "examples": {"lost": _examples(v.decode() for v in lost), "offset_conflicts": _examples(conflicts),
                     "phantom_reads": _examples(phantom), "duplicated": _examples(v.decode() for v in duplicated),
                     "misplaced": _examples(v.decode() for v in misplaced)},
    }


def check_txn(transactions, committed_log):
    """transactions: [(outcome, [values])] with outcome "committed", "aborted" or "unknown";
    committed_log: every value a read_committed consumer read from the start.

    lost: a value of a committed transaction missing. aborted_reads: a value of an aborted
    transaction visible. partial: a transaction of unknown outcome partly visible (atomicity).
    duplicated: a value visible twice."""
    counts = Counter(committed_log)
    lost, aborted_reads, partial = [], [], []
    for outcome, values in transactions:
        present = [v for v in values if counts[v] > 0]
        if outcome == "committed":
            lost += [v for v in values if counts[v] == 0]
        elif outcome == "aborted":
            aborted_reads += present
        elif present and len(present) != len(values):
            partial.append(values[0])
    duplicated = [v for v, n in counts.items() if n > 1]
    outcomes = Counter(o for o, _ in transactions)
    return {
        "transactions": len(transactions), "committed": outcomes["committed"], "aborted": outcomes["aborted"],
        "unknown": outcomes["unknown"],
        "lost": len(lost), "aborted_reads": len(aborted_reads), "partial": len(partial), "duplicated": len(duplicated),
        "examples": {"lost": _examples(v.decode() for v in lost), "aborted_reads": _examples(v.decode() for v in aborted_reads),
                     "partial": _examples(v.decode() for v in partial)},
    }


ANOMALIES = ("lost", "duplicated", "offset_conflicts", "misplaced", "non_monotonic", "phantom_reads", "aborted_reads",
             "partial")


def anomalies(result):
    return sum(result.get(k, 0) for k in ANOMALIES)
