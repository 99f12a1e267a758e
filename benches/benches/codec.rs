//! Micro-benchmarks of the hot byte paths: batch encode, validate (CRC plus
//! record walk), CRC alone and record iteration, uncompressed and with each
//! compression codec (the `compressed` group).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_protocol::batch::{
    self, BatchBuilder, Compression, NewRecord, RecordIter, BATCH_BYTES_LIMIT,
};

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

/// Text-like values (a counter in repeated words), so every codec has
/// something to compress.
fn text_records(count: usize, value_bytes: usize) -> Vec<NewRecord> {
    (0..count)
        .map(|i| {
            let mut value = format!("event {i} user {} ", i % 17).repeat(value_bytes / 16 + 1);
            value.truncate(value_bytes);
            NewRecord {
                timestamp_ms: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(value)),
                headers: Vec::new(),
            }
        })
        .collect()
}

fn build(input: &[NewRecord], codec: Compression) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.set_compression(codec);
    input.iter().for_each(|r| builder.push(r));
    builder.finish()
}

/// Encode, validate and iterate with each codec; throughput is counted in
/// uncompressed bytes, so the codecs compare with each other and with
/// `none`.
fn compressed(c: &mut Criterion) {
    let input = text_records(100, 1024);
    let plain = build(&input, Compression::None);
    let mut group = c.benchmark_group("compressed");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    for codec in Compression::ALL {
        let encoded = build(&input, codec);
        let header = batch::check_batch(&encoded, BATCH_BYTES_LIMIT).expect("valid");
        group.bench_function(format!("encode_{codec}_100x1KiB"), |b| {
            b.iter(|| build(&input, codec))
        });
        group.bench_function(format!("validate_{codec}_100x1KiB"), |b| {
            b.iter(|| batch::validate_batch(&encoded, BATCH_BYTES_LIMIT).expect("valid"))
        });
        group.bench_function(format!("iterate_{codec}_100x1KiB"), |b| {
            b.iter(|| {
                RecordIter::new(encoded.clone(), header)
                    .filter(|r| r.is_ok())
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec, compressed);
criterion_main!(benches);
