"""Kafka RecordBatch v2 through an independent implementation (kafka-python).

Ferry stores Kafka's v2 layout byte for byte; this script is the other side
of tests/tests/kafka_format.rs:

  kafka_v2.py build DIR   writes case-N.bin (one batch each, built by
                          kafka-python) and case-N.json (its codec, the
                          attributes kafka-python wrote, its records)
  kafka_v2.py read FILE   decodes the batches in FILE (as a broker served
                          them), checks each CRC, prints their compression
                          codec and records as JSON on stdout

Bytes travel as hex in JSON; a null key or value is null. Compressed cases
need kafka-python's codec packages: lz4, zstandard and python-snappy.
"""

import json
import os
import sys

import kafka.codec
import kafka.record.default_records as default_records
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

BATCH_SIZE_LIMIT = 1 << 20

# kafka-python's codec numbers (the attribute bits 0-2), by name.
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

# Records that compress well: kafka-python sends a batch uncompressed when
# compressing does not make it smaller. Keys, null keys and values, headers.
COMPRESSIBLE = [
    (
        1_700_000_000_000 + i,
        b"user-%d" % (i % 5) if i % 4 else None,
        b'{"event": "click", "n": %d} ' % i * 3 if i % 7 else None,
        [("trace", b"t-%d" % i), ("null", None)] if i % 3 == 0 else [],
    )
    for i in range(60)
]

# Each case: codec name, records of (timestamp_ms, key, value, headers).
# "snappy-raw" is snappy without xerial framing (one raw block), as some
# producers send it.
CASES = [
    ("none", [(1_700_000_000_000, b"order-1", b'{"total": 12}', [])]),
    ("none", [(1_700_000_000_001, None, b"no key", []), (1_700_000_000_002, b"k", None, [])]),
    (
        "none",
        [
            (1_700_000_000_003, b"with-headers", b"v", [("trace", b"abc"), ("empty", b"")]),
            (1_700_000_000_010, b"k2", b"\x00\xff binary", [("n", None)]),
        ],
    ),
    ("none", [(1_700_000_000_100 + i, None, bytes([i]) * i, []) for i in range(50)]),
    ("gzip", COMPRESSIBLE),
    ("snappy", COMPRESSIBLE),
    ("lz4", COMPRESSIBLE),
    ("zstd", COMPRESSIBLE),
    ("snappy-raw", COMPRESSIBLE),
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


def raw_snappy(data):
    return kafka.codec.snappy_encode(data, xerial_compatible=False)


def build_batch(codec, records):
    """One batch built by kafka-python's builder with `codec`."""
    xerial = default_records.snappy_encode
    if codec == "snappy-raw":
        default_records.snappy_encode = raw_snappy
    try:
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=CODECS[codec.replace("-raw", "")],
            is_transactional=False,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=BATCH_SIZE_LIMIT,
        )
        for offset, (ts, key, value, headers) in enumerate(records):
            builder.append(offset, timestamp=ts, key=key, value=value, headers=headers)
        return bytes(builder.build())
    finally:
        default_records.snappy_encode = xerial


def build(out_dir):
    for number, (codec, records) in enumerate(CASES):
        batch = build_batch(codec, records)
        attributes = int.from_bytes(batch[21:23], "big")
        with open(os.path.join(out_dir, f"case-{number}.bin"), "wb") as out:
            out.write(batch)
        with open(os.path.join(out_dir, f"case-{number}.json"), "w") as out:
            case = {
                "codec": codec,
                "attributes": attributes,
                "framing": "xerial" if batch[61:62] == b"\x82" else "other",
                "records": describe(records),
            }
            json.dump(case, out)


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
