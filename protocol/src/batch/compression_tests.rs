//! Tests of compressed batches and the codecs under them: round trips of
//! every codec through builder, validation and iteration; each codec's
//! wire framing; the decompressed-size limit (exact boundary, bombs and the
//! memory they cost); corrupt, truncated and random payloads; raw snappy.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use proptest::prelude::*;

use super::compression::{compress, decompress, Compression};
use super::*;

/// Counts the bytes each thread has allocated, so a test can measure the
/// peak memory one call costs on its own thread.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + delta);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

// SAFETY: every call is passed to `System` unchanged; the counters are
// const-initialised thread locals without destructors, which never
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `run` returns, and the most bytes live on this thread during it
/// beyond what was live before.
fn peak_bytes<T>(run: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = run();
    let peak = PEAK.with(Cell::get);
    (result, (peak - before).max(0) as usize)
}

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn arb_codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(Compression::ALL.to_vec())
}

fn arb_record() -> impl Strategy<Value = NewRecord> {
    super::tests::arb_record_keyed(0..=3)
}

fn build_with(codec: Compression, records: &[NewRecord]) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.set_compression(codec);
    for record in records {
        builder.push(record);
    }
    builder.finish()
}

/// Many records of every kind: keys, null keys and values, headers (one
/// with a null value), repeated text that compresses.
fn varied_records(count: usize) -> Vec<NewRecord> {
    (0..count)
        .map(|i| NewRecord {
            timestamp_ms: 1_700_000_000_000 + (i % 7) as i64,
            key: (i % 3 != 0).then(|| Bytes::from(format!("key-{}", i % 10))),
            value: (i % 5 != 0).then(|| Bytes::from(format!("value {i} ").repeat(i % 40))),
            headers: (0..i % 3)
                .map(|h| RecordHeader {
                    key: format!("h{h}"),
                    value: (h != 1).then(|| Bytes::from(vec![h as u8; i % 9])),
                })
                .collect(),
        })
        .collect()
}

fn decode(batch: Bytes) -> Result<Vec<Record>, ProtocolError> {
    let header = check_batch(&batch, BATCH_BYTES_LIMIT)?;
    RecordIter::new(batch, header).collect()
}

fn assert_same_records(got: &[Record], want: &[NewRecord]) {
    assert_eq!(got.len(), want.len());
    for (index, (got, want)) in got.iter().zip(want).enumerate() {
        assert_eq!(got.offset_delta, index as u64);
        assert_eq!(got.timestamp_ms, want.timestamp_ms, "record {index}");
        assert_eq!(got.key, want.key, "record {index}");
        assert_eq!(got.value, want.value, "record {index}");
        assert_eq!(got.headers, want.headers, "record {index}");
    }
}

/// A batch with `attributes` whose records region is `region`, length and
/// CRC made right.
fn batch_around(records: &[NewRecord], attributes: u16, region: &[u8]) -> Vec<u8> {
    let mut bytes = build_with(Compression::None, records).to_vec();
    bytes.truncate(BATCH_HEADER_BYTES);
    bytes.extend_from_slice(region);
    let length = (bytes.len() - BATCH_LENGTH_PREFIX_BYTES) as u32;
    bytes[OFFSET_LENGTH..OFFSET_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    bytes[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    update_crc(&mut bytes);
    bytes
}

proptest! {
    #[test]
    fn compressed_batches_round_trip(
        records in proptest::collection::vec(arb_record(), 1..20),
        codec in arb_codec(),
        base in 0u64..1 << 40,
    ) {
        let plain = build_with(Compression::None, &records);
        let mut bytes = build_with(codec, &records).to_vec();
        set_base_offset(&mut bytes, base);
        let bytes = Bytes::from(bytes);
        let header = validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
        prop_assert_eq!(header.compression(), codec.attribute());
        prop_assert_eq!(header.codec().unwrap(), codec);
        // The header is the uncompressed batch's but for length, attributes
        // and CRC; the records region decompresses to its records.
        prop_assert_eq!(&bytes[OFFSET_MAGIC..OFFSET_CRC], &plain[OFFSET_MAGIC..OFFSET_CRC]);
        prop_assert_eq!(&bytes[OFFSET_LAST_OFFSET_DELTA..BATCH_HEADER_BYTES], &plain[OFFSET_LAST_OFFSET_DELTA..BATCH_HEADER_BYTES]);
        let region = decompress(codec, &bytes[BATCH_HEADER_BYTES..], BATCH_BYTES_LIMIT).unwrap();
        prop_assert_eq!(&region[..], &plain[BATCH_HEADER_BYTES..]);
        let decoded: Vec<Record> = RecordIter::new(bytes, header).collect::<Result<_, _>>().unwrap();
        assert_same_records(&decoded, &records);
        prop_assert!(decoded.iter().enumerate().all(|(i, r)| r.offset == base + i as u64));
    }

    #[test]
    fn codecs_round_trip_any_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        codec in arb_codec(),
    ) {
        let compressed = compress(codec, &data);
        prop_assert_eq!(decompress(codec, &compressed, data.len()).unwrap(), data);
    }

    #[test]
    fn random_compressed_payloads_never_panic(
        codec in 1u16..=7,
        count in 1u32..4,
        region in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = batch_around(&[NewRecord::default()], codec, &region);
        super::tests::set_record_count(&mut bytes, count);
        let bytes = Bytes::from(bytes);
        let validated = validate_batch(&bytes, BATCH_BYTES_LIMIT);
        if let Ok(header) = check_batch(&bytes, BATCH_BYTES_LIMIT) {
            let decoded: Result<Vec<Record>, _> = RecordIter::new(bytes, header).collect();
            if validated.is_ok() {
                prop_assert_eq!(decoded.unwrap().len(), count as usize);
            }
        }
    }

    #[test]
    fn random_bytes_after_each_codecs_magic_never_panic(
        codec in proptest::sample::select(CODECS.to_vec()),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        // A real stream's first bytes, so the decoders get past their magic.
        let mut data = compress(codec, b"records records records")[..8].to_vec();
        data.extend_from_slice(&tail);
        let _ = decompress(codec, &data, 1 << 16);
    }

    #[test]
    fn truncated_compressed_batches_are_refused(
        codec in proptest::sample::select(CODECS.to_vec()),
        cut in any::<prop::sample::Index>(),
    ) {
        let records = varied_records(60);
        let built = build_with(codec, &records);
        let region = &built[BATCH_HEADER_BYTES..];
        let kept = cut.index(region.len());
        let bytes = batch_around(&records, codec.attribute(), &region[..kept]);
        prop_assert!(validate_batch(&bytes, BATCH_BYTES_LIMIT).is_err());
        prop_assert!(decode(Bytes::from(bytes)).is_err());
    }

    #[test]
    fn corrupted_compressed_records_never_panic(
        codec in proptest::sample::select(CODECS.to_vec()),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let records = varied_records(30);
        let mut bytes = build_with(codec, &records).to_vec();
        let index = BATCH_HEADER_BYTES + at.index(bytes.len() - BATCH_HEADER_BYTES);
        bytes[index] ^= flip;
        prop_assert!(validate_batch(&bytes, BATCH_BYTES_LIMIT).is_err(), "CRC");
        update_crc(&mut bytes);
        // What validates iterates (iteration checks less: not the offset
        // deltas or timestamps).
        if validate_batch(&bytes, BATCH_BYTES_LIMIT).is_ok() {
            prop_assert!(decode(Bytes::from(bytes)).is_ok());
        }
    }
}

#[test]
fn every_codec_round_trips_many_varied_records() {
    let records = varied_records(2000);
    let plain = build_with(Compression::None, &records);
    for codec in CODECS {
        let built = build_with(codec, &records);
        assert!(built.len() < plain.len() / 2, "{codec}: {}", built.len());
        let header = validate_batch(&built, BATCH_BYTES_LIMIT).unwrap();
        assert_eq!(header.compression(), codec.attribute(), "{codec}");
        assert_eq!(header.record_count, 2000);
        assert_same_records(&decode(built).unwrap(), &records);
    }
}

#[test]
fn seek_works_in_compressed_batches() {
    let records = varied_records(300);
    for codec in CODECS {
        let mut bytes = build_with(codec, &records).to_vec();
        set_base_offset(&mut bytes, 1000);
        let bytes = Bytes::from(bytes);
        let header = check_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
        let mut iter = RecordIter::new(bytes, header);
        iter.seek(1234).unwrap();
        let record = iter.next().unwrap().unwrap();
        assert_eq!(record.offset, 1234, "{codec}");
        assert_eq!(record.value, records[234].value, "{codec}");
        iter.seek(1299).unwrap();
        assert_eq!(iter.next().unwrap().unwrap().offset, 1299);
        assert!(iter.next().is_none());
    }
}

#[test]
fn an_uncompressed_batch_is_the_same_bytes_as_before() {
    let records = varied_records(50);
    let mut builder = BatchBuilder::new();
    records.iter().for_each(|r| builder.push(r));
    assert_eq!(builder.compression(), Compression::None);
    let default = builder.finish();
    let explicit = build_with(Compression::None, &records);
    assert_eq!(default, explicit);
    assert_eq!(default[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2], [0, 0]);
    // The records region is the records themselves.
    let header = validate_batch(&default, BATCH_BYTES_LIMIT).unwrap();
    assert_eq!(header.total_bytes(), default.len());
    let second = RecordIter::new(default.clone(), header)
        .nth(1)
        .unwrap()
        .unwrap();
    let value = second.value.unwrap();
    let at = value.as_ptr() as usize - default.as_ptr() as usize;
    assert!(
        at > BATCH_HEADER_BYTES && at < default.len(),
        "zero-copy slice"
    );
}

#[test]
fn size_bytes_reports_the_uncompressed_size() {
    let records = varied_records(100);
    let mut plain = BatchBuilder::new();
    let mut zstd = BatchBuilder::new();
    zstd.set_compression(Compression::Zstd);
    for record in &records {
        plain.push(record);
        zstd.push(record);
    }
    assert_eq!(plain.size_bytes(), zstd.size_bytes());
    let plain = plain.finish();
    assert_eq!(zstd.size_bytes(), plain.len());
    assert!(zstd.finish().len() < plain.len() / 2);
}

/// One record whose value is `bytes` of zeros.
fn zeros(bytes: usize) -> NewRecord {
    NewRecord {
        value: Some(Bytes::from(vec![0u8; bytes])),
        ..NewRecord::default()
    }
}

#[test]
fn a_decompression_bomb_is_refused_in_little_memory() {
    const LIMIT: usize = 1 << 20;
    const EXPANDED: usize = 16 << 20;
    let bomb = [zeros(EXPANDED)];
    for codec in CODECS {
        let built = build_with(codec, &bomb);
        assert!(built.len() < LIMIT, "{codec}: {} bytes", built.len());
        let (result, peak) = peak_bytes(|| validate_batch(&built, LIMIT));
        match result.unwrap_err() {
            ProtocolError::TooLarge { what, limit, .. } => {
                assert_eq!(
                    (what, limit),
                    ("decompressed records", LIMIT as u64),
                    "{codec}"
                );
            }
            err => panic!("{codec}: {err}"),
        }
        // The limit's worth of output and the decoder's own buffers, never
        // the 16 MiB. (libzstd allocates with C's malloc, not counted here:
        // its window is capped by `window_log_max`, see the test below.)
        assert!(peak <= LIMIT + LIMIT / 4, "{codec}: {peak} bytes at peak");
        // Within the batch limit it is a (large) valid batch.
        assert!(validate_batch(&built, BATCH_BYTES_LIMIT).is_ok(), "{codec}");
    }
}

#[test]
fn decompress_stops_at_the_limit_and_reads_exactly_up_to_it() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    for codec in Compression::ALL {
        let compressed = compress(codec, &data);
        assert_eq!(decompress(codec, &compressed, data.len()).unwrap(), data);
        let err = decompress(codec, &compressed, data.len() - 1).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::TooLarge { what: "decompressed records", limit, .. }
                    if limit == data.len() as u64 - 1
            ),
            "{codec}: {err}"
        );
    }
}

#[test]
fn a_bomb_costs_about_its_limit_whatever_it_expands_to() {
    let data = vec![0u8; 64 << 20];
    for codec in CODECS {
        let compressed = compress(codec, &data);
        let (result, peak) = peak_bytes(|| decompress(codec, &compressed, 4 << 20));
        assert!(
            matches!(result, Err(ProtocolError::TooLarge { .. })),
            "{codec}"
        );
        assert!(peak <= (5 << 20), "{codec}: {peak} bytes at peak");
    }
}

#[test]
fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
    // Streamed with no content size and a 128 MiB window: the frame header
    // asks the decoder for a window that large.
    let data = vec![9u8; 1 << 16];
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.window_log(27).unwrap();
    std::io::Write::write_all(&mut encoder, &data).unwrap();
    let frame = encoder.finish().unwrap();
    assert_eq!(
        decompress(Compression::Zstd, &frame, 1 << 20).unwrap_err(),
        ProtocolError::Malformed("corrupt zstd frame")
    );
    // A limit of 128 MiB grants it.
    assert_eq!(
        decompress(Compression::Zstd, &frame, 128 << 20).unwrap(),
        data
    );
}

#[test]
fn raw_unframed_snappy_is_accepted() {
    let records = varied_records(40);
    let plain = build_with(Compression::None, &records);
    let raw = snap::raw::Encoder::new()
        .compress_vec(&plain[BATCH_HEADER_BYTES..])
        .unwrap();
    let bytes = Bytes::from(batch_around(&records, COMPRESSION_SNAPPY, &raw));
    let header = validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
    assert_eq!(header.codec().unwrap(), Compression::Snappy);
    assert_same_records(&decode(bytes).unwrap(), &records);
}

#[test]
fn raw_snappy_declaring_more_than_the_limit_allocates_nothing() {
    // A raw block's length varint claiming 1 GiB, then a literal.
    let mut block = Vec::new();
    crate::varint::put_uvarint(&mut block, 1 << 30);
    block.extend_from_slice(&[0, b'x']);
    let (result, peak) = peak_bytes(|| decompress(Compression::Snappy, &block, 1 << 20));
    assert!(
        matches!(result, Err(ProtocolError::Malformed(_))),
        "{result:?}"
    );
    assert!(peak < 4096, "{peak}");
    // Within what its bytes could hold but past the limit: too large.
    let mut block = Vec::new();
    crate::varint::put_uvarint(&mut block, 2000);
    block.resize(200, 0);
    let err = decompress(Compression::Snappy, &block, 1000).unwrap_err();
    assert!(matches!(err, ProtocolError::TooLarge { .. }), "{err}");
}

#[test]
fn snappy_is_written_with_xerial_framing() {
    let data = vec![7u8; 100_000];
    let framed = compress(Compression::Snappy, &data);
    assert_eq!(&framed[..8], b"\x82SNAPPY\x00");
    assert_eq!(&framed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
    // 100 000 bytes in 32 KiB blocks: four of them, each length-prefixed.
    let mut rest = &framed[16..];
    let mut blocks = 0;
    while !rest.is_empty() {
        let length = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let block = &rest[4..4 + length];
        let expanded = snap::raw::Decoder::new().decompress_vec(block).unwrap();
        assert!(expanded.len() <= 32 * 1024);
        rest = &rest[4 + length..];
        blocks += 1;
    }
    assert_eq!(blocks, 4);
    // Broken framing is refused, each way.
    for broken in [&framed[..12], &framed[..18], &framed[..framed.len() - 1]] {
        assert!(decompress(Compression::Snappy, broken, 1 << 20).is_err());
    }
    let mut old = framed.clone();
    old[8..12].copy_from_slice(&0i32.to_be_bytes());
    assert!(decompress(Compression::Snappy, &old, 1 << 20).is_err());
}

#[test]
fn each_codec_writes_its_kafka_wire_format() {
    let data = b"some records some records some records".repeat(10);
    let gzip = compress(Compression::Gzip, &data);
    assert_eq!(&gzip[..3], &[0x1f, 0x8b, 8], "gzip magic, deflate");
    let lz4 = compress(Compression::Lz4, &data);
    assert_eq!(&lz4[..4], &0x184D_2204u32.to_le_bytes(), "LZ4 frame magic");
    assert_eq!(lz4[4] & 0b0010_0000, 0b0010_0000, "independent blocks");
    assert_eq!(lz4[5], 0x40, "64 KiB blocks");
    let zstd = compress(Compression::Zstd, &data);
    assert_eq!(
        &zstd[..4],
        &0xFD2F_B528u32.to_le_bytes(),
        "zstd frame magic"
    );
    assert_eq!(compress(Compression::None, &data), data);
}

#[test]
fn garbage_after_a_stream_or_a_wrong_stream_is_refused() {
    let data = b"payload payload payload".repeat(20);
    for codec in CODECS {
        let mut compressed = compress(codec, &data);
        compressed.extend_from_slice(b"trailing garbage");
        let result = decompress(codec, &compressed, 1 << 20);
        assert!(
            matches!(result, Err(ProtocolError::Malformed(_))),
            "{codec}: {result:?}"
        );
        for other in CODECS.into_iter().filter(|o| *o != codec) {
            let wrong = compress(other, &data);
            assert!(
                decompress(codec, &wrong, 1 << 20).is_err(),
                "{other} as {codec}"
            );
        }
        assert!(decompress(codec, b"", 1 << 20).map_or(true, |out| out.is_empty()));
    }
}

#[test]
fn a_batch_that_does_not_decompress_fails_its_first_record_and_seek() {
    let records = varied_records(5);
    let bytes = Bytes::from(batch_around(&records, COMPRESSION_GZIP, b"not gzip at all"));
    let err = validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap_err();
    assert_eq!(err, ProtocolError::Malformed("corrupt gzip records"));
    let header = check_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
    let mut iter = RecordIter::new(bytes.clone(), header);
    assert_eq!(iter.seek(3), Err(err.clone()));
    assert_eq!(iter.next(), Some(Err(err)));
    assert_eq!(iter.next(), None);
}

#[test]
fn undefined_codecs_are_refused_everywhere() {
    for codec in 5u16..=7 {
        let bytes = batch_around(&[NewRecord::default()], codec, &[]);
        let want = ProtocolError::Unsupported {
            what: "compression codec (undefined)",
            value: u64::from(codec),
        };
        assert_eq!(validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap_err(), want);
        assert_eq!(Compression::from_attributes(codec).unwrap_err(), want);
    }
}

#[test]
fn codec_names_and_attributes() {
    for (codec, name, attribute) in [
        (Compression::None, "none", 0),
        (Compression::Gzip, "gzip", 1),
        (Compression::Snappy, "snappy", 2),
        (Compression::Lz4, "lz4", 3),
        (Compression::Zstd, "zstd", 4),
    ] {
        assert_eq!(codec.to_string(), name);
        assert_eq!(name.parse::<Compression>().unwrap(), codec);
        assert_eq!(name.to_uppercase().parse::<Compression>().unwrap(), codec);
        assert_eq!(codec.attribute(), attribute);
        // Other attribute bits do not change the codec.
        assert_eq!(
            Compression::from_attributes(attribute | 0xfff8).unwrap(),
            codec
        );
    }
    assert_eq!(Compression::default(), Compression::None);
    let err = "brotli".parse::<Compression>().unwrap_err().to_string();
    for name in ["none", "gzip", "snappy", "lz4", "zstd"] {
        assert!(err.contains(name), "{err}");
    }
}

/// One record (key "key", value "ferry " 40 times, header "h" = "x"),
/// built by kafka-python 2.0.2 with each codec (`tests/interop/kafka_v2.py`;
/// its lz4 frame carries a content size, its zstd frame is single-segment).
const KAFKA_PYTHON_BATCHES: [(Compression, &str); 5] = [
    (Compression::Gzip, "00000000000000000000005d00000000028ad95dc80001000000000000018bcfe568000000018bcfe56800ffffffffffffffffffffffffffff000000011f8b08007b69116b02fffbc3ccc0c0c0969d5af980392db5a8a85261e4904c4c194c1500b8b0380f00010000"),
    (Compression::Snappy, "00000000000000000000006b00000000025cba59270002000000000000018bcfe568000000018bcfe56800ffffffffffffffffffffffffffff0000000182534e4150505900000000010000000100000026800240fc03000000066b6579e003666572727920fe0600fe0600fe0600a60600100202680278"),
    (Compression::Lz4, "0000000000000000000000640000000002728ce8ab0003000000000000018bcfe568000000018bcfe56800ffffffffffffffffffffffffffff0000000104224d1868400001000000000000af1c000000ff02fc03000000066b6579e0036665727279200600d750020268027800000000"),
    (Compression::Zstd, "0000000000000000000000580000000002e160d5d10004000000000000018bcfe568000000018bcfe56800ffffffffffffffffffffffffffff0000000128b52ffd600000ed0000b0fc03000000066b6579e00366657272792002026802780100cfa1ca12"),
    // Raw snappy: one block, no xerial framing.
    (Compression::Snappy, "0000000000000000000000570000000002a121bb070002000000000000018bcfe568000000018bcfe56800ffffffffffffffffffffffffffff00000001800240fc03000000066b6579e003666572727920fe0600fe0600fe0600a60600100202680278"),
];

#[test]
fn batches_kafka_python_compressed_validate_and_iterate() {
    let want = NewRecord {
        timestamp_ms: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"key")),
        value: Some(Bytes::from("ferry ".repeat(40))),
        headers: vec![RecordHeader {
            key: "h".into(),
            value: Some(Bytes::from_static(b"x")),
        }],
    };
    for (codec, hex) in KAFKA_PYTHON_BATCHES {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let bytes = Bytes::from(bytes);
        let header = validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
        assert_eq!(header.codec().unwrap(), codec);
        assert_same_records(&decode(bytes).unwrap(), std::slice::from_ref(&want));
    }
}
