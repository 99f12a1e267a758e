//! Micro-benchmarks of the hot byte paths: batch encode, validate (CRC plus
//! record walk), CRC alone and record iteration.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_protocol::batch::{self, BatchBuilder, NewRecord, RecordIter, BATCH_BYTES_LIMIT};

fn records(count: usize, value_bytes: usize) -> Vec<NewRecord> {
    (0..count)
        .map(|i| NewRecord {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![7u8; value_bytes])),
            headers: Vec::new(),
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let input = records(100, 1024);
    let encoded = {
        let mut builder = BatchBuilder::new();
        input.iter().for_each(|r| builder.push(r));
        builder.finish()
    };
    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode_100x1KiB", |b| {
        b.iter(|| {
            let mut builder = BatchBuilder::with_capacity(encoded.len());
            input.iter().for_each(|r| builder.push(r));
            builder.finish()
        })
    });
    group.bench_function("crc32_100x1KiB", |b| {
        b.iter(|| batch::compute_crc(&encoded))
    });
    group.bench_function("check_batch_100x1KiB", |b| {
        b.iter(|| batch::check_batch(&encoded, BATCH_BYTES_LIMIT).expect("valid"))
    });
    group.bench_function("validate_batch_100x1KiB", |b| {
        b.iter(|| batch::validate_batch(&encoded, BATCH_BYTES_LIMIT).expect("valid"))
    });
    group.bench_function("iterate_records_100x1KiB", |b| {
        let header = batch::check_batch(&encoded, BATCH_BYTES_LIMIT).expect("valid");
        b.iter(|| {
            RecordIter::new(encoded.clone(), header)
                .filter(|r| r.is_ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
