"""Writes record batches built by kafka-python (another implementation than ours) for every
codec, with keys, null keys and values, empty values and headers. Run with the project's venv:
    .venv/bin/python Tests/RecordsTests/Fixtures/make-batches.py
Needs kafka-python, cramjam (snappy), lz4 and zstandard."""
import os
from kafka.record.default_records import DefaultRecordBatchBuilder

here = os.path.dirname(os.path.abspath(__file__))
codecs = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
for name, code in codecs.items():
    b = DefaultRecordBatchBuilder(magic=2, compression_type=code, is_transactional=False,
                                  producer_id=1000, producer_epoch=3, base_sequence=7, batch_size=1 << 20)
    ts = 1_700_000_000_000
    b.append(0, ts, b"key-0", b"value-0", [])
    b.append(1, ts + 5, None, b"null key", [("h1", b"v1"), ("h2", None)])
    b.append(2, ts + 9, b"k2", None, [])
    b.append(3, ts + 2, b"", b"", [])
    b.append(4, ts + 1, b"big", b"x" * 5000, [])
    data = bytes(b.build())
    with open(os.path.join(here, f"batch-{name}.bin"), "wb") as f:
        f.write(data)
    print(name, len(data))
