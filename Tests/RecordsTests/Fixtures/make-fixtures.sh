#!/usr/bin/env bash
# Regenerates the compression fixtures with other implementations than ours:
# the gzip, lz4 and zstd command-line tools, and kafka-python's snappy codec (raw and xerial).
# Needs: gzip, lz4, zstd, and a Python with kafka-python and cramjam (see scripts/setup-python.sh).
set -euo pipefail
cd "$(dirname "$0")"
python="${PYTHON:-../../../.venv/bin/python}"
# The plain text: deterministic, repetitive enough to compress, 100 KiB so snappy's xerial
# framing needs several 32 KiB blocks.
"$python" - <<'PY'
import hashlib
lines = []
i = 0
while sum(len(l) for l in lines) < 100 * 1024:
    lines.append(f"record {i:06d} key=user-{i % 97} value={hashlib.sha256(str(i % 13).encode()).hexdigest()}\n")
    i += 1
open("plain.txt", "w").write("".join(lines)[: 100 * 1024])
PY
gzip -9 -n -c plain.txt > plain.txt.gz
lz4 -q -f -9 plain.txt plain.txt.lz4
zstd -q -f -19 plain.txt -o plain.txt.zst
"$python" - <<'PY'
from kafka import codec
data = open("plain.txt", "rb").read()
open("plain.txt.snappy-raw", "wb").write(codec.snappy_encode(data, xerial_compatible=False))
open("plain.txt.snappy-xerial", "wb").write(codec.snappy_encode(data, xerial_compatible=True, xerial_blocksize=32 * 1024))
PY
ls -l plain.txt*
