//! Shared pieces of Ferry's benchmarks: the physical baselines every figure
//! is compared with (raw sequential write, with and without fdatasync, to
//! the same directory; loopback TCP), latency statistics, the load
//! scenarios, workload files, spawning a broker (plaintext or TLS), the
//! target the load goes to, and reading criterion's results back to report
//! ratios measured in the same run.

pub mod baseline;
pub mod compression;
pub mod report;
pub mod scenarios;
pub mod spawn;
pub mod stats;
pub mod target;
pub mod workload;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, NewRecord};

/// `count` batches of `records` records with `value_bytes`-byte values.
pub fn batches(count: usize, records: usize, value_bytes: usize) -> Vec<Bytes> {
    (0..count)
        .map(|b| {
            let mut builder = BatchBuilder::with_capacity(records * (value_bytes + 16));
            for r in 0..records {
                let mut value = vec![0u8; value_bytes];
                let tag = ((b * records + r) as u64).to_be_bytes();
                let n = tag.len().min(value_bytes);
                value[..n].copy_from_slice(&tag[..n]);
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
