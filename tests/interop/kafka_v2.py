"""Kafka RecordBatch v2 through an independent implementation (kafka-python).

Ferry stores Kafka's v2 layout byte for byte; this script is the other side
of tests/tests/kafka_format.rs:

  kafka_v2.py build DIR   writes case-N.bin (one batch each, built by
                          kafka-python) and case-N.json (what it holds)
  kafka_v2.py read FILE   decodes the batches in FILE (as a broker served
                          them), checks each CRC, prints their records as
                          JSON on stdout

Bytes travel as hex in JSON; a null key or value is null.
"""

import json
import os
import sys

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

BATCH_SIZE_LIMIT = 1 << 20

# Each case: records of (timestamp_ms, key, value, headers).
CASES = [
    [(1_700_000_000_000, b"order-1", b'{"total": 12}', [])],
    [(1_700_000_000_001, None, b"no key", []), (1_700_000_000_002, b"k", None, [])],
    [
        (1_700_000_000_003, b"with-headers", b"v", [("trace", b"abc"), ("empty", b"")]),
        (1_700_000_000_010, b"k2", b"\x00\xff binary", [("n", None)]),
    ],
    [(1_700_000_000_100 + i, None, bytes([i]) * i, []) for i in range(50)],
]


def hexed(data):
    return None if data is None else data.hex()


def describe(records):
    return [
        {
            "timestamp_ms": ts,
            "key": hexed(key),
            "value": hexed(value),
            "headers": [[k, hexed(v)] for k, v in headers],
        }
        for ts, key, value, headers in records
    ]


def build(out_dir):
    for number, records in enumerate(CASES):
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=0,
            is_transactional=False,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=BATCH_SIZE_LIMIT,
        )
        for offset, (ts, key, value, headers) in enumerate(records):
            builder.append(offset, timestamp=ts, key=key, value=value, headers=headers)
        with open(os.path.join(out_dir, f"case-{number}.bin"), "wb") as out:
            out.write(bytes(builder.build()))
        with open(os.path.join(out_dir, f"case-{number}.json"), "w") as out:
            json.dump(describe(records), out)


def read(path):
    with open(path, "rb") as source:
        data = source.read()
    batches = []
    position = 0
    while position + 12 <= len(data):
        length = int.from_bytes(data[position + 8 : position + 12], "big")
        end = position + 12 + length
        batch = DefaultRecordBatch(data[position:end])
        if not batch.validate_crc():
            sys.exit(f"batch at byte {position}: CRC does not match")
        records = [(r.timestamp, r.key, r.value, r.headers) for r in batch]
        batches.append(
            {
                "base_offset": batch.base_offset,
                "magic": batch.magic,
                "compression": batch.compression_type,
                "offsets": [r.offset for r in DefaultRecordBatch(data[position:end])],
                "records": describe(records),
            }
        )
        position = end
    json.dump(batches, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("build", "read"):
        sys.exit(__doc__)
    {"build": build, "read": read}[sys.argv[1]](sys.argv[2])
