//! Arbitrary bytes as a record batch and as a run of batches: validation
//! and record iteration must return errors, never panic or over-read, and a
//! batch that validates must iterate to exactly its record count. Each input
//! is also tried with its length, magic, compression and CRC fixed up, so
//! the fuzzer reaches the record walk (lying nested lengths, bad varints).
#![no_main]

use bytes::Bytes;
use ferry_protocol::batch::{
    compute_crc, validate_batch, BatchIter, RecordIter, BATCH_BYTES_LIMIT, BATCH_HEADER_BYTES,
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

fuzz_target!(|data: &[u8]| {
    check(Bytes::copy_from_slice(data));
    if data.len() >= BATCH_HEADER_BYTES {
        let mut fixed = data.to_vec();
        let length = (fixed.len() - 12) as u32;
        fixed[8..12].copy_from_slice(&length.to_be_bytes());
        fixed[16] = 1; // magic
        fixed[17] = 0; // attributes: no compression
        fixed[18] = 0;
        let count = u32::from_be_bytes([fixed[19], fixed[20], fixed[21], fixed[22]]) % 64 + 1;
        fixed[19..23].copy_from_slice(&count.to_be_bytes());
        let first = fixed[23..31].to_vec();
        fixed[31..39].copy_from_slice(&first); // max timestamp = first
        let crc = compute_crc(&fixed);
        fixed[12..16].copy_from_slice(&crc.to_be_bytes());
        check(Bytes::from(fixed));
    }
});
