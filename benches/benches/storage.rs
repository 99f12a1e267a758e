//! Storage engine throughput against the disk's own limits, in one run.
//!
//! Every iteration moves the same bytes: 160 batches of 100 x 1 KiB records
//! (16 MB). Baselines write those bytes with plain `pwrite` (and with an
//! `fdatasync` after each batch) to the same directory. Run with
//! `cargo bench -p ferry-bench --bench storage`; the last lines print each
//! figure in MB/s and as a ratio to its baseline.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use ferry_bench::{baseline, batches, report};
use ferry_storage::vfs::OsFs;
use ferry_storage::{Flusher, FsyncPolicy, Log, LogConfig};

const BATCHES: usize = 160;
const RECORDS: usize = 100;
const VALUE_BYTES: usize = 1024;
const GROUP: &str = "storage";

fn bench_dir() -> tempfile::TempDir {
    // Same file system as the build (and, by default, as a broker's data).
    let base = report::criterion_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir_in(base)
        .expect("temp dir")
}

fn open_log(dir: &Path, fsync: FsyncPolicy, flusher: &Flusher) -> Log {
    let config = LogConfig {
        fsync,
        ..LogConfig::default()
    };
    Log::open(Arc::new(OsFs::new()), dir, "bench-0", config, flusher).expect("open log")
}

/// Appends every batch from `appenders` concurrent tasks, each waiting for
/// its batch to be durable before sending the next.
fn append_concurrently(
    runtime: &tokio::runtime::Runtime,
    log: &Log,
    data: &[Bytes],
    appenders: usize,
) {
    runtime.block_on(async {
        let mut tasks = Vec::with_capacity(appenders);
        for a in 0..appenders {
            let log = log.clone();
            let mine: Vec<Bytes> = data.iter().skip(a).step_by(appenders).cloned().collect();
            tasks.push(tokio::spawn(async move {
                for batch in mine {
                    let info = log.append(&batch).expect("append");
                    log.wait_durable(info.last_offset + 1)
                        .await
                        .expect("durable");
                }
            }));
        }
        for task in tasks {
            task.await.expect("appender");
        }
    });
}

fn storage(c: &mut Criterion) {
    let data = batches(BATCHES, RECORDS, VALUE_BYTES);
    let total_bytes: u64 = data.iter().map(|b| b.len() as u64).sum();
    let batch_bytes = data[0].len();
    let dir = bench_dir();
    let flusher = Flusher::start(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Bytes(total_bytes));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.warm_up_time(Duration::from_secs(1));

    group.bench_function("raw_write", |b| {
        b.iter(|| {
            baseline::sequential_write(dir.path(), batch_bytes, BATCHES, false).expect("write")
        })
    });
    group.bench_function("raw_write_fdatasync", |b| {
        b.iter(|| {
            baseline::sequential_write(dir.path(), batch_bytes, BATCHES, true).expect("write")
        })
    });
    group.bench_function("append_fsync_never", |b| {
        b.iter_batched(
            || tempfile::tempdir_in(dir.path()).expect("dir"),
            |log_dir| {
                let log = open_log(log_dir.path(), FsyncPolicy::Never, &flusher);
                for batch in &data {
                    log.append(batch).expect("append");
                }
                log_dir
            },
            BatchSize::PerIteration,
        )
    });
    for appenders in [1usize, 4, 16] {
        group.bench_function(format!("append_fsync_always_{appenders}"), |b| {
            b.iter_batched(
                || {
                    let log_dir = tempfile::tempdir_in(dir.path()).expect("dir");
                    let log = open_log(log_dir.path(), FsyncPolicy::Always, &flusher);
                    (log_dir, log)
                },
                |(log_dir, log)| {
                    append_concurrently(&runtime, &log, &data, appenders);
                    (log_dir, log)
                },
                BatchSize::PerIteration,
            )
        });
    }
    let read_dir = tempfile::tempdir_in(dir.path()).expect("dir");
    let log = open_log(read_dir.path(), FsyncPolicy::Never, &flusher);
    for batch in &data {
        log.append(batch).expect("append");
    }
    group.bench_function("read_sequential", |b| {
        b.iter(|| {
            let mut offset = 0;
            let mut bytes = 0usize;
            while offset < log.end_offset() {
                let read = log.read(offset, 1024 * 1024).expect("read");
                bytes += read.data.len();
                offset = read.next_offset;
            }
            assert_eq!(bytes as u64, total_bytes);
        })
    });
    group.finish();
}

fn print_ratios() {
    let total_bytes: u64 = batches(1, RECORDS, VALUE_BYTES)[0].len() as u64 * BATCHES as u64;
    let mbps =
        |bench: &str| report::mean_ns(GROUP, bench).map(|ns| total_bytes as f64 / 1e6 / (ns / 1e9));
    let (Some(raw), Some(raw_sync)) = (mbps("raw_write"), mbps("raw_write_fdatasync")) else {
        return;
    };
    println!("\nstorage figures (16 MB per iteration, 1 KiB records, batches of 100)");
    println!(
        "{:<28} {:>10} {:>22}",
        "scenario", "MB/s", "ratio to baseline"
    );
    println!("{:<28} {:>10.0} {:>22}", "raw_write", raw, "(baseline)");
    println!(
        "{:<28} {:>10.0} {:>22}",
        "raw_write_fdatasync", raw_sync, "(durable baseline)"
    );
    let rows = [
        ("append_fsync_never", raw, "raw_write"),
        ("append_fsync_always_1", raw_sync, "raw_write_fdatasync"),
        ("append_fsync_always_4", raw_sync, "raw_write_fdatasync"),
        ("append_fsync_always_16", raw_sync, "raw_write_fdatasync"),
        ("read_sequential", raw, "raw_write"),
    ];
    for (bench, base, base_name) in rows {
        if let Some(value) = mbps(bench) {
            println!(
                "{bench:<28} {value:>10.0} {:>14.2} x {base_name}",
                value / base
            );
        }
    }
}

criterion_group!(benches, storage);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
