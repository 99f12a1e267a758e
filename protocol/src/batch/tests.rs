//! Tests of the record batch format: round trips, exact Kafka v2 bytes,
//! corruption and garbage, and every refusal of what Ferry does not support.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn arb_record() -> impl Strategy<Value = NewRecord> {
    arb_record_keyed(0..=u8::MAX)
}

/// Rewrites a batch's record count (and last offset delta to match), then
/// its CRC: a header that lies only about its records.
pub(super) fn set_record_count(bytes: &mut [u8], count: u32) {
    bytes[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    bytes[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&(count - 1).to_be_bytes());
    update_crc(bytes);
}

/// Records whose key bytes are drawn from `key_bytes` (a narrow range
/// makes them compressible).
pub(super) fn arb_record_keyed(
    key_bytes: std::ops::RangeInclusive<u8>,
) -> impl Strategy<Value = NewRecord> {
    (
        0i64..1_000_000_000,
        proptest::option::of(proptest::collection::vec(key_bytes, 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::collection::vec(
            (
                "[a-z-]{0,8}",
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
            ),
            0..3,
        ),
    )
        .prop_map(|(timestamp_ms, key, value, headers)| NewRecord {
            timestamp_ms,
            key: key.map(Bytes::from),
            value: value.map(Bytes::from),
            headers: headers
                .into_iter()
                .map(|(key, value)| RecordHeader {
                    key,
                    value: value.map(Bytes::from),
                })
                .collect(),
        })
}

fn build(records: &[NewRecord]) -> Bytes {
    let mut builder = BatchBuilder::new();
    for record in records {
        builder.push(record);
    }
    builder.finish()
}

fn one_value(value: &'static [u8]) -> NewRecord {
    NewRecord {
        value: Some(Bytes::from_static(value)),
        ..NewRecord::default()
    }
}

proptest! {
    #[test]
    fn batch_round_trips(records in proptest::collection::vec(arb_record(), 1..20), base in 0u64..1 << 40) {
        let mut bytes = build(&records).to_vec();
        set_base_offset(&mut bytes, base);
        let bytes = Bytes::from(bytes);
        let header = validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
        prop_assert_eq!(header.base_offset, base);
        prop_assert_eq!(header.record_count as usize, records.len());
        prop_assert_eq!(header.last_offset_delta as usize, records.len() - 1);
        prop_assert_eq!(header.magic, BATCH_MAGIC);
        prop_assert_eq!(header.partition_leader_epoch, NO_PARTITION_LEADER_EPOCH);
        prop_assert_eq!(
            (header.producer_id, header.producer_epoch, header.base_sequence),
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE)
        );
        prop_assert_eq!(header.base_timestamp_ms, records[0].timestamp_ms);
        let max = records.iter().map(|r| r.timestamp_ms).max().unwrap();
        prop_assert_eq!(header.max_timestamp_ms, max);
        let decoded: Vec<Record> = RecordIter::new(bytes, header).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded.len(), records.len());
        for (index, (want, got)) in records.iter().zip(&decoded).enumerate() {
            prop_assert_eq!(got.offset, base + index as u64);
            prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
            prop_assert_eq!(&got.key, &want.key);
            prop_assert_eq!(&got.value, &want.value);
            prop_assert_eq!(&got.headers, &want.headers);
        }
    }

    #[test]
    fn record_size_is_a_tight_upper_bound(record in arb_record()) {
        let mut builder = BatchBuilder::new();
        builder.push(&record);
        let estimate = BATCH_HEADER_BYTES + BatchBuilder::record_size_bytes(&record);
        prop_assert!(builder.size_bytes() <= estimate);
        prop_assert!(estimate - builder.size_bytes() <= 13);
    }

    #[test]
    fn corrupted_batches_are_refused_without_panic(records in proptest::collection::vec(arb_record(), 1..5), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = build(&records).to_vec();
        let index = at.index(bytes.len());
        bytes[index] ^= flip;
        let result = validate_batch(&Bytes::from(bytes), BATCH_BYTES_LIMIT);
        // Outside the CRC: the base offset and the leader epoch (both
        // assigned by the broker); the length and magic are checked by value.
        if index >= 8 && !(12..16).contains(&index) {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let bytes = Bytes::from(bytes);
        let _ = validate_batch(&bytes, BATCH_BYTES_LIMIT);
        for item in BatchIter::new(bytes, BATCH_BYTES_LIMIT) {
            let _ = item;
        }
    }

    #[test]
    fn garbage_records_behind_a_valid_header_never_panic(
        count in 1u32..8,
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = build(&[NewRecord::default()]).to_vec();
        bytes.truncate(BATCH_HEADER_BYTES);
        bytes.extend_from_slice(&body);
        let length = (bytes.len() - BATCH_LENGTH_PREFIX_BYTES) as u32;
        bytes[OFFSET_LENGTH..OFFSET_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        set_record_count(&mut bytes, count);
        let bytes = Bytes::from(bytes);
        let validated = validate_batch(&bytes, BATCH_BYTES_LIMIT);
        let header = check_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
        let decoded: Result<Vec<Record>, _> = RecordIter::new(bytes, header).collect();
        // What validates is exactly what iterates.
        if validated.is_ok() {
            prop_assert_eq!(decoded.unwrap().len(), count as usize);
        }
    }
}

/// CRC-32C one bit at a time (reflected polynomial 0x82F63B78): a reference
/// that shares nothing with the crate the format uses.
fn crc32c_bitwise(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn the_crc_is_castagnoli() {
    // The standard check value of CRC-32C over "123456789".
    assert_eq!(crc32c_bitwise(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let mut batch = vec![0u8; BATCH_PREFIX_BYTES];
    batch.extend_from_slice(b"123456789");
    batch.resize(BATCH_HEADER_BYTES, 0);
    let covered = &batch[BATCH_PREFIX_BYTES..];
    assert_eq!(compute_crc(&batch), crc32c_bitwise(covered));
}

/// One record, key "k", value "v", one header "h" = "x", written out by
/// hand from Kafka's RecordBatch v2 description.
#[test]
fn a_batch_is_kafka_v2_byte_for_byte() {
    let record = NewRecord {
        timestamp_ms: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(b"v")),
        headers: vec![RecordHeader {
            key: "h".into(),
            value: Some(Bytes::from_static(b"x")),
        }],
    };
    #[rustfmt::skip]
    let mut expected: Vec<u8> = vec![
        0, 0, 0, 0, 0, 0, 0, 0,             // baseOffset 0 (the broker assigns it)
        0, 0, 0, 62,                        // batchLength: 74 bytes - 12
        0xff, 0xff, 0xff, 0xff,             // partitionLeaderEpoch -1
        2,                                  // magic
        0, 0, 0, 0,                         // crc, filled in below
        0, 0,                               // attributes: no compression, create time
        0, 0, 0, 0,                         // lastOffsetDelta 0
        0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // baseTimestamp 1_700_000_000_000
        0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // maxTimestamp
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producerId -1
        0xff, 0xff,                         // producerEpoch -1
        0xff, 0xff, 0xff, 0xff,             // baseSequence -1
        0, 0, 0, 1,                         // recordCount 1
        // The record; every varint zigzag: n >= 0 is 2n, -1 is 1.
        24,                                 // length 12
        0,                                  // attributes
        0,                                  // timestampDelta 0
        0,                                  // offsetDelta 0
        2, b'k',                            // keyLength 1, key
        2, b'v',                            // valueLength 1, value
        2,                                  // headerCount 1
        2, b'h',                            // headerKeyLength 1, headerKey
        2, b'x',                            // headerValueLength 1, headerValue
    ];
    assert_eq!(expected.len(), 74);
    let crc = crc32c::crc32c(&expected[21..]);
    assert_eq!(crc, crc32c_bitwise(&expected[21..]));
    // And what kafka-python's record batch builder writes for this record
    // (its bytes are these but for the leader epoch: it sends 0).
    assert_eq!(crc, 0x5e93_538d);
    expected[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut builder = BatchBuilder::new();
    builder.push(&record);
    let built = builder.finish();
    assert_eq!(&built[..], &expected[..]);
    let header = validate_batch(&built, BATCH_BYTES_LIMIT).unwrap();
    assert_eq!(header.crc, crc);
    let decoded: Vec<Record> = RecordIter::new(built, header)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].timestamp_ms, record.timestamp_ms);
    assert_eq!(decoded[0].headers, record.headers);
}

#[test]
fn a_null_key_and_value_are_minus_one() {
    let built = build(&[NewRecord {
        headers: vec![RecordHeader {
            key: String::new(),
            value: None,
        }],
        ..NewRecord::default()
    }]);
    // length 8: attributes, deltas, key -1, value -1, one header: key "", value -1.
    assert_eq!(&built[BATCH_HEADER_BYTES..], &[16, 0, 0, 0, 1, 1, 2, 0, 1]);
    let header = validate_batch(&built, BATCH_BYTES_LIMIT).unwrap();
    let record = RecordIter::new(built, header).next().unwrap().unwrap();
    assert_eq!((record.key, record.value), (None, None));
    assert_eq!(record.headers[0].value, None);
}

#[test]
fn seek_skips_to_the_wanted_record() {
    let records: Vec<NewRecord> = (0..50)
        .map(|i| NewRecord {
            value: Some(Bytes::from(format!("v{i}"))),
            ..NewRecord::default()
        })
        .collect();
    let mut bytes = build(&records).to_vec();
    set_base_offset(&mut bytes, 100);
    let bytes = Bytes::from(bytes);
    let header = check_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
    let mut iter = RecordIter::new(bytes, header);
    iter.seek(137).unwrap();
    let record = iter.next().unwrap().unwrap();
    assert_eq!(
        (record.offset, record.value.unwrap()),
        (137, Bytes::from("v37"))
    );
    iter.seek(149).unwrap();
    assert_eq!(iter.next().unwrap().unwrap().offset, 149);
    assert!(iter.next().is_none());
}

#[test]
fn lying_nested_length_is_refused_even_with_a_valid_crc() {
    let mut bytes = build(&[one_value(b"hello")]).to_vec();
    // The value length sits after: length, attributes, timestamp delta,
    // offset delta, key length (-1).
    let value_len_at = BATCH_HEADER_BYTES + 5;
    assert_eq!(bytes[value_len_at], 10); // zigzag(5)
    bytes[value_len_at] = 200; // claims 100 bytes
    update_crc(&mut bytes);
    let err = validate_batch(&Bytes::from(bytes), BATCH_BYTES_LIMIT).unwrap_err();
    assert!(matches!(err, ProtocolError::TooLarge { .. }), "{err}");
}

#[test]
fn oversized_declared_length_is_refused_before_use() {
    let mut bytes = build(&[NewRecord::default()]).to_vec();
    bytes[OFFSET_LENGTH..OFFSET_LENGTH + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        BatchHeader::parse(&bytes, 1024).unwrap_err(),
        ProtocolError::TooLarge { .. }
    ));
}

#[test]
fn offset_deltas_must_count_up_from_zero() {
    let mut bytes = build(&[one_value(b"a"), one_value(b"b")]).to_vec();
    // The first record is 8 bytes (length 7); the second's offset delta
    // follows its length, attributes and timestamp delta.
    let second = BATCH_HEADER_BYTES + 8;
    assert_eq!(bytes[second + 3], 2); // zigzag(1)
    bytes[second + 3] = 0;
    update_crc(&mut bytes);
    let err = validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::Malformed("record offset deltas are not 0, 1, 2, ...")
    );
}

#[test]
fn last_offset_delta_must_match_the_record_count() {
    let mut bytes = build(&[one_value(b"a"), one_value(b"b")]).to_vec();
    bytes[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&5u32.to_be_bytes());
    update_crc(&mut bytes);
    assert!(matches!(
        check_batch(&bytes, BATCH_BYTES_LIMIT).unwrap_err(),
        ProtocolError::Malformed(_)
    ));
}

fn with_attributes(attributes: u16) -> Vec<u8> {
    let mut bytes = build(&[one_value(b"a")]).to_vec();
    bytes[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    update_crc(&mut bytes);
    bytes
}

#[test]
fn unsupported_attributes_are_refused_each_by_name() {
    let cases = [
        (5, "compression codec (undefined)"),
        (6, "compression codec (undefined)"),
        (7, "compression codec (undefined)"),
        (ATTRIBUTE_LOG_APPEND_TIME, "log-append-time"),
        (ATTRIBUTE_TRANSACTIONAL, "transactional"),
        (ATTRIBUTE_CONTROL, "control"),
        (ATTRIBUTE_TRANSACTIONAL | ATTRIBUTE_CONTROL, "transactional"),
        (1 << 6, "attribute bits"),
    ];
    for (attributes, named) in cases {
        let err = check_batch(&with_attributes(attributes), BATCH_BYTES_LIMIT).unwrap_err();
        assert!(
            matches!(err, ProtocolError::Unsupported { .. }) && err.to_string().contains(named),
            "attributes {attributes:#x}: {err}"
        );
    }
    for codec in [
        COMPRESSION_NONE,
        COMPRESSION_GZIP,
        COMPRESSION_SNAPPY,
        COMPRESSION_LZ4,
        COMPRESSION_ZSTD,
    ] {
        assert!(check_batch(&with_attributes(codec), BATCH_BYTES_LIMIT).is_ok());
    }
}

#[test]
fn idempotent_batches_carry_all_three_producer_fields_or_none() {
    let mut builder = BatchBuilder::new();
    builder.set_producer(7, 0, 0);
    builder.push(&one_value(b"a"));
    let bytes = builder.finish();
    let header = validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (7, 0, 0)
    );
    for (id, epoch, sequence) in [(NO_PRODUCER_ID, 0, NO_SEQUENCE), (7, -1, 0), (7, 0, -5)] {
        let mut half = BatchBuilder::new();
        half.set_producer(id, epoch, sequence);
        half.push(&one_value(b"a"));
        assert!(matches!(
            validate_batch(&half.finish(), BATCH_BYTES_LIMIT).unwrap_err(),
            ProtocolError::Malformed(_)
        ));
    }
}

#[test]
fn record_attributes_must_be_zero() {
    let mut bytes = build(&[one_value(b"a")]).to_vec();
    bytes[BATCH_HEADER_BYTES + 1] = 1;
    update_crc(&mut bytes);
    assert!(matches!(
        validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap_err(),
        ProtocolError::Unsupported { .. }
    ));
}

#[test]
fn other_magics_are_refused() {
    let mut bytes = build(&[one_value(b"a")]).to_vec();
    for magic in [0u8, 1, 3] {
        bytes[OFFSET_MAGIC] = magic;
        let err = BatchHeader::parse(&bytes, BATCH_BYTES_LIMIT).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::Unsupported {
                what: "record batch magic (format version; Ferry reads 2)",
                value: u64::from(magic),
            }
        );
    }
}

#[test]
fn the_broker_prefix_assigns_offset_and_epoch_without_touching_the_crc() {
    let built = build(&[one_value(b"a"), one_value(b"b")]);
    let prefix = assigned_prefix(&built, 42, 3);
    let mut stored = prefix.to_vec();
    stored.extend_from_slice(&built[BATCH_ASSIGNED_BYTES..]);
    let header = validate_batch(&stored, BATCH_BYTES_LIMIT).unwrap();
    assert_eq!((header.base_offset, header.partition_leader_epoch), (42, 3));
    assert_eq!(header.total_bytes(), built.len());
    set_partition_leader_epoch(&mut stored, NO_PARTITION_LEADER_EPOCH);
    assert_eq!(
        check_batch(&stored, BATCH_BYTES_LIMIT)
            .unwrap()
            .partition_leader_epoch,
        NO_PARTITION_LEADER_EPOCH
    );
}

#[test]
fn a_huge_header_count_allocates_nothing_before_failing() {
    let mut bytes = build(&[one_value(b"a")]).to_vec();
    // Header count (last byte but one is the value; the count is last).
    let count_at = bytes.len() - 1;
    assert_eq!(bytes[count_at], 0);
    bytes.truncate(count_at);
    bytes.extend_from_slice(&[0x80, 0x10]); // zigzag 1024: the limit
    bytes[BATCH_HEADER_BYTES] += 2; // the record is one byte longer
    let length = (bytes.len() - BATCH_LENGTH_PREFIX_BYTES) as u32;
    bytes[OFFSET_LENGTH..OFFSET_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    update_crc(&mut bytes);
    let bytes = Bytes::from(bytes);
    let header = check_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
    let err = RecordIter::new(bytes, header).next().unwrap().unwrap_err();
    assert!(matches!(err, ProtocolError::Malformed(_)), "{err}");
}
