//! Arbitrary bytes as a record batch (Kafka v2 layout) and as a run of
//! batches: validation and record iteration must return errors, never panic
//! or over-read, and a batch that validates must iterate to exactly its
//! record count. Each input is also tried with its length, magic,
//! attributes, record count, last offset delta, timestamps, producer fields
//! and CRC fixed up, so the fuzzer reaches the record walk (lying nested
//! lengths, bad zigzag varints, negative lengths and counts): once with no
//! compression, and once with the codec its attributes byte picks among the
//! five, so corrupt gzip, snappy (xerial or raw), lz4 and zstd payloads reach
//! the decompressors; and once with its tail compressed for real by that
//! codec, so the walk runs over decompressed records too.
#![no_main]

use bytes::Bytes;
use ferry_protocol::batch::{
    compress, update_crc, validate_batch, BatchIter, Compression, RecordIter, BATCH_BYTES_LIMIT,
    BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES, BATCH_MAGIC,
};
use libfuzzer_sys::fuzz_target;

fn check(bytes: Bytes) {
    if let Ok(header) = validate_batch(&bytes, BATCH_BYTES_LIMIT) {
        let records = RecordIter::new(bytes.clone(), header)
            .filter(|r| r.is_ok())
            .count();
        assert_eq!(records as u32, header.record_count);
    }
    for (header, batch) in BatchIter::new(bytes, BATCH_BYTES_LIMIT).flatten() {
        for record in RecordIter::new(batch, header) {
            let _ = record;
        }
    }
}

/// The codec the input's attributes byte picks, defined ones only.
fn codec_of(data: &[u8]) -> Compression {
    Compression::ALL[usize::from(data[22]) % Compression::ALL.len()]
}

/// `data` with a header that passes every check but the record walk, and
/// `codec` in its attributes.
fn fixed_up(data: &[u8], codec: Compression) -> Vec<u8> {
    let mut fixed = data.to_vec();
    let length = (fixed.len() - BATCH_LENGTH_PREFIX_BYTES) as u32;
    fixed[8..12].copy_from_slice(&length.to_be_bytes());
    fixed[16] = BATCH_MAGIC;
    fixed[21..23].copy_from_slice(&codec.attribute().to_be_bytes());
    let count = u32::from_be_bytes([fixed[57], fixed[58], fixed[59], fixed[60]]) % 64 + 1;
    fixed[57..61].copy_from_slice(&count.to_be_bytes());
    fixed[23..27].copy_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    let base = fixed[27..35].to_vec();
    fixed[35..43].copy_from_slice(&base); // max timestamp = base
    fixed[43..61 - 4].fill(0xff); // producer id, epoch, base sequence: -1
    update_crc(&mut fixed);
    fixed
}

fuzz_target!(|data: &[u8]| {
    check(Bytes::copy_from_slice(data));
    if data.len() >= BATCH_HEADER_BYTES {
        let codec = codec_of(data);
        check(Bytes::from(fixed_up(data, Compression::None)));
        check(Bytes::from(fixed_up(data, codec)));
        let mut packed = data[..BATCH_HEADER_BYTES].to_vec();
        packed.extend_from_slice(&compress(codec, &data[BATCH_HEADER_BYTES..]));
        check(Bytes::from(fixed_up(&packed, codec)));
    }
});
