"""The storage engine alone under SIGKILL: a child process appends with durability `ack` and
prints each acknowledged offset; it is killed at random moments. After each kill, recovery
must keep every acknowledged offset, and an independent parser (here, in Python, with its own
CRC-32C) must find a valid log: intact CRCs, contiguous offsets, every index entry on a batch."""
import glob
import os
import random
import signal
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY


def crc32c(data, _table=[]):
    if not _table:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = _table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def check_partition(directory):
    """Returns (first offset, next offset) after verifying every batch and index entry."""
    expected = None
    first = None
    for path in sorted(glob.glob(os.path.join(directory, "*.log"))):
        base = int(os.path.basename(path)[:20])
        data = open(path, "rb").read()
        pos = 0
        starts = {}
        while pos < len(data):
            assert pos + 61 <= len(data), f"{path}: partial batch header at {pos}"
            offset, length = struct.unpack(">qi", data[pos:pos + 12])
            total = length + 12
            assert data[pos + 16] == 2 and pos + total <= len(data), f"{path}: bad batch at {pos}"
            stored = struct.unpack(">I", data[pos + 17:pos + 21])[0]
            assert crc32c(data[pos + 21:pos + total]) == stored, f"{path}: CRC mismatch at {pos}"
            delta = struct.unpack(">i", data[pos + 23:pos + 27])[0]
            if expected is not None:
                assert offset == expected, f"{path}: offset {offset}, expected {expected}"
            if first is None:
                first = offset
            starts[pos] = offset
            expected = offset + delta + 1
            pos += total
        index = open(path[:-4] + ".index", "rb").read()
        for i in range(0, len(index) - len(index) % 8, 8):
            rel, position = struct.unpack(">II", index[i:i + 8])
            if rel == 0 and position == 0 and i > 0:
                continue
            assert starts.get(position) == base + rel, f"{path}.index entry {i // 8} does not point at its batch"
    return first, expected


def _supports_o_direct(directory):
    path = os.path.join(directory, "o-direct-probe")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o644))
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(path):
            os.unlink(path)


@pytest.mark.parametrize("io_mode", ["buffered", "direct"])
def test_sigkill_during_ack_appends_loses_no_acknowledged_offset(io_mode):
    """Both I/O modes; direct mode (O_DIRECT, rewritten tail blocks, zero padding) runs on the
    real disk under /var/tmp, which supports O_DIRECT (tmpfs would fall back to buffered)."""
    rng = random.Random(int(os.environ.get("SLUICE_CRASH_SEED", "20261122")))
    with tempfile.TemporaryDirectory(prefix="sluice-crash-", dir="/var/tmp") as d:
        if io_mode == "direct" and not _supports_o_direct(d):
            pytest.skip(f"the file system under {d} refuses O_DIRECT (the engine would fall back to buffered)")
        acked_max = -1
        for round_ in range(4):
            child = subprocess.Popen([BINARY, "storage", "stress", "--log-dir", d, "--durability", "ack",
                                      "--io-mode", io_mode, "--segment-bytes", "65536"], stdout=subprocess.PIPE, text=True)
            deadline = time.time() + rng.uniform(0.3, 1.2)
            last = None
            while time.time() < deadline:
                line = child.stdout.readline()
                if not line:
                    break
                last = int(line.split()[1])
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            # Lines already printed were acknowledged, even if we had not read them yet.
            for line in child.stdout.read().splitlines():
                if line.startswith("acked "):
                    last = int(line.split()[1])
            assert last is not None, "the child acknowledged nothing"
            if io_mode == "direct":
                # O_DIRECT writes whole blocks: the killed child's active segment ends on one.
                active = sorted(glob.glob(os.path.join(d, "stress-0", "*.log")))[-1]
                assert os.path.getsize(active) % 4096 == 0, f"{active} is not block-padded: direct mode was not used"
            acked_max = max(acked_max, last)
            out = subprocess.run([BINARY, "storage", "check", "--log-dir", d], capture_output=True, text=True,
                                 check=True, timeout=60).stdout
            assert "clean-shutdown: false" in out
            end = int(out.split("stress-0 logStartOffset=0 logEndOffset=")[1].split()[0])
            assert end >= acked_max + 1, f"round {round_}: acknowledged {acked_max} but the log ends at {end}"
            first, nxt = check_partition(os.path.join(d, "stress-0"))
            assert first == 0 and nxt == end
