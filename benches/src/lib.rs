//! Shared pieces of Ferry's benchmarks: the physical baselines every figure
//! is compared with (raw sequential write, with and without fdatasync, to
//! the same directory), workload data, and reading criterion's results back
//! to report ratios measured in the same run.

pub mod baseline;
pub mod report;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, NewRecord};

/// `count` batches of `records` records with `value_bytes`-byte values.
pub fn batches(count: usize, records: usize, value_bytes: usize) -> Vec<Bytes> {
    (0..count)
        .map(|b| {
            let mut builder = BatchBuilder::with_capacity(records * (value_bytes + 16));
            for r in 0..records {
                let mut value = vec![0u8; value_bytes];
                value[..8.min(value_bytes)].copy_from_slice(
                    &((b * records + r) as u64).to_be_bytes()[..8.min(value_bytes)],
                );
                builder.push(&NewRecord {
                    timestamp_ms: 1_700_000_000_000 + b as i64,
                    value: Some(Bytes::from(value)),
                    ..NewRecord::default()
                });
            }
            builder.finish()
        })
        .collect()
}
