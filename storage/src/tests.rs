//! Specification tests of the log: what is written is read back, offsets are
//! dense, time look-ups are exact, recovery keeps exactly the intact prefix,
//! and power loss never takes an append acknowledged as durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, BatchIter, NewRecord, RecordIter, BATCH_BYTES_LIMIT};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::vfs::{OsFs, SimFs, SimOptions, Vfs};
use crate::{Flusher, FsyncPolicy, Log, LogConfig, StorageError};

pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

pub(crate) fn batch_of(values: &[Vec<u8>], timestamp_ms: i64) -> Bytes {
    let mut builder = BatchBuilder::new();
    for (i, value) in values.iter().enumerate() {
        builder.push(&NewRecord {
            timestamp_ms: timestamp_ms + i as i64,
            value: Some(Bytes::from(value.clone())),
            ..NewRecord::default()
        });
    }
    builder.finish()
}

pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        index_max_bytes: 4096,
        ..LogConfig::default()
    }
}

/// Every record of the log from `from`, as (offset, value).
pub(crate) fn read_all(log: &Log, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.end_offset() {
        let read = log.read(offset, 1000)?;
        assert!(
            read.next_offset > offset,
            "read made no progress at {offset}"
        );
        for item in BatchIter::new(read.data, BATCH_BYTES_LIMIT) {
            let (header, bytes) = item.expect("served batches are intact");
            for record in RecordIter::new(bytes, header) {
                let record = record.expect("records decode");
                if record.offset >= offset {
                    out.push((record.offset, record.value.unwrap_or_default().to_vec()));
                }
            }
        }
        offset = read.next_offset;
    }
    Ok(out)
}

/// The test partition on `fs`, with `small_config()`.
fn open_small(fs: &SimFs, flusher: &Flusher) -> Log {
    Log::open(Arc::new(fs.clone()), &dir(), "t-0", small_config(), flusher).unwrap()
}

pub(crate) fn dir() -> PathBuf {
    PathBuf::from("/data/p0")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn appends_read_back_exactly_with_dense_offsets_across_rolls(
        batches in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8), 1..60),
        start in 0u64..30,
    ) {
        let fs = SimFs::new(1);
        let flusher = Flusher::start(1);
        let log = open_small(&fs, &flusher);
        let mut expected = Vec::new();
        for (i, values) in batches.iter().enumerate() {
            let info = log.append(&batch_of(values, i as i64)).unwrap();
            prop_assert_eq!(info.base_offset, expected.len() as u64);
            for value in values {
                expected.push((expected.len() as u64, value.clone()));
            }
        }
        prop_assert_eq!(log.end_offset(), expected.len() as u64);
        let from = start.min(expected.len() as u64);
        prop_assert_eq!(read_all(&log, from).unwrap(), expected[from as usize..].to_vec());
    }

    #[test]
    fn time_lookup_finds_the_first_record_at_or_after(
        timestamps in proptest::collection::vec(0i64..1000, 1..200),
        probe in -10i64..1010,
    ) {
        let fs = SimFs::new(2);
        let flusher = Flusher::start(1);
        let log = open_small(&fs, &flusher);
        for chunk in timestamps.chunks(3) {
            let mut builder = BatchBuilder::new();
            for ts in chunk {
                builder.push(&NewRecord { timestamp_ms: *ts, value: Some(Bytes::from(vec![0u8; 100])), ..NewRecord::default() });
            }
            log.append(&builder.finish()).unwrap();
        }
        let want = timestamps.iter().position(|ts| *ts >= probe).map(|i| i as u64);
        prop_assert_eq!(log.offset_for_timestamp(probe).unwrap(), want);
    }
}

#[test]
fn reading_mid_batch_returns_the_whole_batch() {
    let flusher = Flusher::start(1);
    let log = open_small(&SimFs::new(3), &flusher);
    log.append(&batch_of(&[vec![1], vec![2], vec![3]], 0))
        .unwrap();
    let read = log.read(1, 10).unwrap();
    let (header, _) = BatchIter::new(read.data, BATCH_BYTES_LIMIT)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((header.base_offset, header.record_count), (0, 3));
    assert_eq!(read.next_offset, 3);
    assert!(log.read(3, 10).unwrap().data.is_empty());
    assert!(matches!(
        log.read(4, 10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn appends_stamp_offset_and_leader_epoch_over_what_the_producer_sent() {
    let flusher = Flusher::start(1);
    let log = open_small(&SimFs::new(3), &flusher);
    log.append(&batch_of(&[vec![1]], 0)).unwrap();
    let mut sent = batch_of(&[vec![2], vec![3]], 0).to_vec();
    // A Kafka client may send 0 (or anything) where Ferry's sends -1.
    ferry_protocol::batch::set_base_offset(&mut sent, 99);
    ferry_protocol::batch::set_partition_leader_epoch(&mut sent, 7);
    log.append(&Bytes::from(sent)).unwrap();
    let read = log.read(1, 1000).unwrap();
    let (header, _) = BatchIter::new(read.data, BATCH_BYTES_LIMIT)
        .next()
        .unwrap()
        .expect("the CRC still holds");
    assert_eq!(header.base_offset, 1);
    assert_eq!(header.partition_leader_epoch, crate::STORED_LEADER_EPOCH);
    assert_eq!(crate::STORED_LEADER_EPOCH, -1);
}

#[test]
fn clean_reopen_keeps_everything_and_continues() {
    let fs = SimFs::new(4);
    let flusher = Flusher::start(1);
    let log = open_small(&fs, &flusher);
    for i in 0..50u8 {
        log.append(&batch_of(&[vec![i; 100]], i64::from(i)))
            .unwrap();
    }
    let before = read_all(&log, 0).unwrap();
    log.close().unwrap();
    assert!(
        log.append(&batch_of(&[vec![0]], 0)).is_err(),
        "closed log refuses appends"
    );
    // A power loss right after a clean close loses nothing.
    let fs = fs.power_loss(77);
    let log = open_small(&fs, &flusher);
    assert_eq!(read_all(&log, 0).unwrap(), before);
    assert!(log.stats().segment_count > 1);
    assert_eq!(
        log.append(&batch_of(&[vec![9]], 99)).unwrap().base_offset,
        50
    );
}

/// Builds a log of `n` one-record batches on a real temp dir, returns the
/// path of its only segment and the byte position where each batch starts.
fn log_with_batches(vfs: Arc<dyn Vfs>, path: &Path, n: u8, flusher: &Flusher) -> Vec<u64> {
    let config = LogConfig {
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    let log = Log::open(vfs, path, "t-0", config, flusher).unwrap();
    let mut positions = vec![0u64];
    for i in 0..n {
        let batch = batch_of(&[vec![i; 40]], i64::from(i));
        positions.push(positions.last().unwrap() + batch.len() as u64);
        log.append(&batch).unwrap();
    }
    log.sync().unwrap();
    // Dropped without close: an unclean shutdown.
    positions
}

#[test]
fn torn_or_flipped_tail_recovers_exactly_the_intact_prefix() {
    let flusher = Flusher::start(1);
    let segment = dir().join("00000000000000000000.log");
    let base = SimFs::new(5);
    let positions = log_with_batches(Arc::new(base.clone()), &dir(), 20, &flusher);
    let image = base.read_file(&segment).unwrap();
    // The checkpoint is written at open only, so the whole segment is "tail".
    let config = LogConfig {
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    for cut in (0..image.len()).step_by(7) {
        for mode in 0..3 {
            let fs = base.power_loss(0);
            let mut bytes = image.clone();
            match mode {
                0 => bytes.truncate(cut),
                1 => bytes[cut] ^= 0x10,
                _ => bytes[cut..].iter_mut().for_each(|b| *b = 0),
            }
            // The intact prefix: leading batches whose bytes are all still there, unchanged.
            let intact = positions
                .windows(2)
                .take_while(|w| {
                    bytes.get(w[0] as usize..w[1] as usize)
                        == Some(&image[w[0] as usize..w[1] as usize])
                })
                .count();
            fs.write_file(&segment, bytes);
            // Remove the checkpoint written at first open so recovery scans from 0.
            let _ = fs.remove_file(&dir().join("recovery-checkpoint"));
            let log = Log::open(Arc::new(fs), &dir(), "t-0", config.clone(), &flusher).unwrap();
            let records = read_all(&log, 0).unwrap();
            assert_eq!(records.len(), intact, "mode {mode} cut {cut}");
            for (i, (offset, value)) in records.iter().enumerate() {
                assert_eq!((*offset, value.as_slice()), (i as u64, &[i as u8; 40][..]));
            }
            assert_eq!(
                log.append(&batch_of(&[vec![1]], 0)).unwrap().base_offset,
                intact as u64
            );
        }
    }
}

#[test]
fn power_loss_never_loses_a_durable_append() {
    let seeds: u64 = std::env::var("FERRY_POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let flusher = Flusher::start(2);
    for seed in 0..seeds {
        run_power_loss_schedule(seed, &flusher);
    }
}

fn run_power_loss_schedule(seed: u64, flusher: &Flusher) {
    let mut rng = StdRng::seed_from_u64(seed);
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 128,
        index_max_bytes: 1024,
        checkpoint_interval_bytes: rng.gen_range(512..8192),
        ..LogConfig::default()
    };
    let mut fs = SimFs::new(seed);
    let mut acked: Vec<(u64, Vec<u8>)> = Vec::new();
    for round in 0..3 {
        let log = Log::open(Arc::new(fs.clone()), &dir(), "t-0", config.clone(), flusher)
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: reopen failed: {e}"));
        let have = read_all(&log, log.start_offset()).unwrap();
        for (offset, value) in &acked {
            assert_eq!(
                have.get(*offset as usize).map(|(o, v)| (*o, v)),
                Some((*offset, value)),
                "seed {seed} round {round}: durable record {offset} lost"
            );
        }
        for _ in 0..rng.gen_range(1..40) {
            let n = rng.gen_range(1..4);
            let values: Vec<Vec<u8>> = (0..n)
                .map(|_| vec![rng.gen(); rng.gen_range(0..200)])
                .collect();
            let info = log.append(&batch_of(&values, 0)).unwrap();
            if rng.gen_bool(0.5) {
                block_on(log.wait_durable(info.last_offset + 1)).unwrap();
                for (i, value) in values.into_iter().enumerate() {
                    acked.push((info.base_offset + i as u64, value));
                }
            }
        }
        fs = fs.power_loss(seed * 31 + round);
    }
}

#[test]
fn failed_fsync_makes_the_log_read_only_and_acks_nothing_in_the_window() {
    let flusher = Flusher::start(1);
    let fs = SimFs::new(6);
    let log = open_small(&fs, &flusher);
    let first = log.append(&batch_of(&[vec![1]], 0)).unwrap();
    block_on(log.wait_durable(first.last_offset + 1)).unwrap();
    fs.set_options(SimOptions {
        sync_failure_probability: 1.0,
        ..SimOptions::default()
    });
    let second = log.append(&batch_of(&[vec![2]], 0)).unwrap();
    let waited = block_on(log.wait_durable(second.last_offset + 1));
    assert!(
        matches!(waited, Err(StorageError::ReadOnly(_))),
        "{waited:?}"
    );
    assert!(matches!(
        log.append(&batch_of(&[vec![3]], 0)),
        Err(StorageError::ReadOnly(_))
    ));
    assert!(log.health_problem().unwrap().contains("read-only"));
    assert_eq!(
        log.read(0, 100).unwrap().next_offset,
        1,
        "reads keep working"
    );
    // Even if a later fsync "succeeds", the failed window is not durable.
    fs.set_options(SimOptions::default());
    let after = Log::open(
        Arc::new(fs.power_loss(1)),
        &dir(),
        "t-0",
        small_config(),
        &flusher,
    )
    .unwrap();
    assert_eq!(after.end_offset(), 1);
}

#[test]
fn corruption_in_sealed_data_fences_instead_of_truncating() {
    let flusher = Flusher::start(1);
    let fs = SimFs::new(8);
    let log = open_small(&fs, &flusher);
    for i in 0..100u8 {
        let info = log.append(&batch_of(&[vec![i; 100]], 0)).unwrap();
        block_on(log.wait_durable(info.last_offset + 1)).unwrap();
    }
    assert!(log.stats().segment_count >= 3);
    log.sync().unwrap();
    drop(log);
    let fs = fs.power_loss(3);
    // Flip a byte in the body of the 5th batch of the first (sealed) segment.
    let segment = dir().join("00000000000000000000.log");
    let mut bytes = fs.read_file(&segment).unwrap();
    let batch_bytes = batch_of(&[vec![0; 100]], 0).len();
    bytes[4 * batch_bytes + 60] ^= 0x01;
    fs.write_file(&segment, bytes);
    let log = open_small(&fs, &flusher);
    assert_eq!(log.end_offset(), 100, "nothing truncated");
    assert!(read_all(&log, 0)
        .unwrap_err()
        .to_string()
        .contains("corrupt"));
    assert!(matches!(
        log.read(4, 1000),
        Err(StorageError::CorruptData { offset: 4, .. })
    ));
    let prefix = log.read(0, 100_000).unwrap();
    assert_eq!(
        prefix.next_offset, 4,
        "intact batches before the corruption are served"
    );
    assert!(matches!(
        log.read(50, 1000),
        Err(StorageError::CorruptData { .. })
    ));
    assert!(matches!(
        log.append(&batch_of(&[vec![1]], 0)),
        Err(StorageError::CorruptData { .. })
    ));
}

#[test]
fn verify_pass_finds_bit_rot_without_a_read() {
    let flusher = Flusher::start(1);
    let fs = SimFs::new(9);
    let log = open_small(&fs, &flusher);
    for i in 0..10u8 {
        log.append(&batch_of(&[vec![i; 100]], 0)).unwrap();
    }
    log.close().unwrap();
    let segment = dir().join("00000000000000000000.log");
    let mut bytes = fs.read_file(&segment).unwrap();
    let len = bytes.len();
    bytes[len - 5] ^= 0xff;
    fs.write_file(&segment, bytes);
    let log = open_small(&fs, &flusher);
    assert_eq!(log.verify().unwrap(), Some(9));
    assert!(log.health_problem().unwrap().contains("fenced at offset 9"));
}

#[test]
fn retention_deletes_whole_old_segments_and_moves_the_start() {
    let flusher = Flusher::start(1);
    let config = LogConfig {
        retention_bytes: Some(8192),
        ..small_config()
    };
    let log = Log::open(Arc::new(SimFs::new(10)), &dir(), "t-0", config, &flusher).unwrap();
    for i in 0..200u8 {
        log.append(&batch_of(&[vec![i; 100]], 0)).unwrap();
    }
    log.sync().unwrap();
    let before = log.stats();
    let deleted = log.apply_retention(crate::now_ms()).unwrap();
    let after = log.stats();
    assert!(deleted > 0);
    assert!(after.size_bytes >= 8192 && after.size_bytes < before.size_bytes);
    assert!(after.start_offset > 0);
    assert!(matches!(
        log.read(0, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(after.start_offset, 100).is_ok());

    let by_age = LogConfig {
        retention_ms: Some(1000),
        ..small_config()
    };
    let dir2 = PathBuf::from("/data/p1");
    let log = Log::open(Arc::new(SimFs::new(11)), &dir2, "t-1", by_age, &flusher).unwrap();
    let now = crate::now_ms() as i64;
    for i in 0..100u8 {
        let ts = if i < 60 { now - 10_000 } else { now };
        log.append(&batch_of(&[vec![i; 100]], ts)).unwrap();
    }
    log.sync().unwrap();
    assert!(log.apply_retention(now as u64).unwrap() > 0);
    let start = log.start_offset();
    assert!(
        start > 0 && start <= 60,
        "only expired segments go (start {start})"
    );
}

#[test]
fn concurrent_durable_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let flusher = Flusher::start(2);
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        ..LogConfig::default()
    };
    let log = Log::open(Arc::new(OsFs::new()), dir.path(), "t-0", config, &flusher).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let appenders = 16;
    let per_appender = 50;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for a in 0..appenders {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_appender {
                    let info = log
                        .append(&batch_of(&[vec![a as u8; 1024], vec![i as u8; 1024]], 0))
                        .unwrap();
                    log.wait_durable(info.last_offset + 1).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let stats = log.stats();
    assert_eq!(stats.durable_offset, (appenders * per_appender * 2) as u64);
    assert!(
        stats.fsyncs < (appenders * per_appender) as u64 / 2,
        "{} fsyncs for {} appends: not group-committed",
        stats.fsyncs,
        appenders * per_appender
    );
}

#[test]
fn missing_or_inconsistent_indexes_are_rebuilt_from_the_log() {
    let flusher = Flusher::start(1);
    let fs = SimFs::new(12);
    let log = open_small(&fs, &flusher);
    for i in 0..120u8 {
        log.append(&batch_of(&[vec![i; 100]], i64::from(i) * 10))
            .unwrap();
    }
    let before = read_all(&log, 0).unwrap();
    log.sync().unwrap();
    drop(log);
    // Sealed segment 0: index gone; sealed segment 1: index entries garbled.
    let names = fs.list_dir(&dir()).unwrap();
    let indexes: Vec<&String> = names.iter().filter(|n| n.ends_with(".index")).collect();
    assert!(indexes.len() >= 3);
    fs.remove_file(&dir().join(indexes[0])).unwrap();
    let second = dir().join(indexes[1]);
    let mut garbled = fs.read_file(&second).unwrap();
    garbled.iter_mut().take(16).for_each(|b| *b ^= 0x5a);
    fs.write_file(&second, garbled);
    let log = open_small(&fs, &flusher);
    assert_eq!(read_all(&log, 0).unwrap(), before);
    for probe in [0u64, 37, 64, 119] {
        let read = log.read(probe, 1).unwrap();
        let (header, _) = BatchIter::new(read.data, BATCH_BYTES_LIMIT)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            header.base_offset, probe,
            "one record per batch: the index finds each"
        );
    }
    assert_eq!(log.offset_for_timestamp(555).unwrap(), Some(56));
}

#[test]
fn a_full_disk_is_an_error_the_log_stays_readable_and_recovers_when_space_frees() {
    let flusher = Flusher::start(1);
    let fs = SimFs::new(13);
    let log = open_small(&fs, &flusher);
    for i in 0..5u8 {
        log.append(&batch_of(&[vec![i; 100]], 0)).unwrap();
    }
    let before = read_all(&log, 0).unwrap();
    let used: u64 = fs
        .list_dir(&dir())
        .unwrap()
        .iter()
        .map(|n| fs.read_file(&dir().join(n)).map_or(0, |b| b.len() as u64))
        .sum();
    fs.set_options(SimOptions {
        capacity_bytes: Some(used + 150),
        ..SimOptions::default()
    });
    let mut refused = 0;
    for i in 0..10u8 {
        match log.append(&batch_of(&[vec![i; 100]], 0)) {
            Ok(_) => {}
            Err(StorageError::DiskFull { .. }) => refused += 1,
            Err(other) => panic!("expected DiskFull, got {other}"),
        }
    }
    assert!(refused > 0, "the disk never filled");
    let during = read_all(&log, 0).unwrap();
    assert!(
        during.starts_with(&before),
        "what was written stays readable"
    );
    // Space comes back: appends continue right after the last good batch.
    fs.set_options(SimOptions::default());
    let info = log.append(&batch_of(&[vec![42; 100]], 0)).unwrap();
    assert_eq!(info.base_offset, during.len() as u64);
    block_on(log.wait_durable(info.last_offset + 1)).unwrap();
    let after = read_all(&log, 0).unwrap();
    assert_eq!(after.len(), during.len() + 1);
    assert_eq!(after.last().unwrap().1, vec![42; 100]);
    // And a reopen after a crash finds the same.
    drop(log);
    let reopened = Log::open(
        Arc::new(fs.power_loss(3)),
        &dir(),
        "t-0",
        small_config(),
        &flusher,
    )
    .unwrap();
    assert_eq!(read_all(&reopened, 0).unwrap(), after);
}

#[test]
fn segments_roll_by_age() {
    let flusher = Flusher::start(1);
    let config = LogConfig {
        segment_ms: Some(100),
        ..LogConfig::default()
    };
    let log = Log::open(Arc::new(SimFs::new(14)), &dir(), "t-0", config, &flusher).unwrap();
    log.append(&batch_of(&[vec![1]], 0)).unwrap();
    log.append(&batch_of(&[vec![2]], 0)).unwrap();
    let before = log.stats().segment_count;
    // The condition is time itself: let the active segment pass its age.
    std::thread::sleep(std::time::Duration::from_millis(120));
    log.append(&batch_of(&[vec![3]], 0)).unwrap();
    assert_eq!(
        log.stats().segment_count,
        before + 1,
        "the old segment was sealed by age"
    );
    assert_eq!(read_all(&log, 0).unwrap().len(), 3);
}

#[test]
fn an_index_entry_past_the_segment_end_that_recovery_trusts_does_not_break_appends() {
    let flusher = Flusher::start(1);
    let fs = SimFs::new(15);
    let log = open_small(&fs, &flusher);
    for i in 0..10u8 {
        log.append(&batch_of(&[vec![i; 100]], i64::from(i)))
            .unwrap();
    }
    assert_eq!(log.stats().segment_count, 1, "segment 0 is the active one");
    let mut expected = read_all(&log, 0).unwrap();
    // A clean close trims the active index to its entries and writes a
    // marker that the next open trusts (with its entry count) unchecked.
    log.close().unwrap();
    let log_len = fs
        .read_file(&dir().join("00000000000000000000.log"))
        .unwrap()
        .len() as u64;
    let index = dir().join("00000000000000000000.index");
    let mut entries = fs.read_file(&index).unwrap();
    assert!(
        entries.len() >= 16 && entries.len().is_multiple_of(8),
        "trimmed to two or more 8-byte entries: {} bytes",
        entries.len()
    );
    // The last entry (`relative_offset:u32 position:u32`, big-endian) now
    // names a batch far past the end: a position past the segment's bytes,
    // and an offset past any this test appends. The clean open finds the
    // index inconsistent and rebuilds it (before, it trusted the index and
    // the cursor's resume underflowed).
    let last = entries.len() - 8;
    entries[last..last + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    entries[last + 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(u64::from(u32::MAX) > log_len);
    fs.write_file(&index, entries);

    let log = open_small(&fs, &flusher);
    assert_eq!(log.end_offset(), 10);
    assert_eq!(read_all(&log, 0).unwrap(), expected);
    for i in 10..16u8 {
        let info = log
            .append(&batch_of(&[vec![i; 100]], i64::from(i)))
            .unwrap();
        assert_eq!(info.base_offset, u64::from(i));
        expected.push((u64::from(i), vec![i; 100]));
    }
    assert_eq!(read_all(&log, 0).unwrap(), expected);
    // One record per batch: every offset, old and new, is found directly.
    for offset in 0..16u64 {
        let read = log.read(offset, 1).unwrap();
        let (header, _) = BatchIter::new(read.data, BATCH_BYTES_LIMIT)
            .next()
            .unwrap_or_else(|| panic!("offset {offset} not found"))
            .unwrap();
        assert_eq!(header.base_offset, offset);
    }
}

#[test]
fn a_damaged_active_index_after_a_clean_close_is_rebuilt_not_trusted() {
    let flusher = Flusher::start(1);
    let fs = SimFs::new(16);
    let log = open_small(&fs, &flusher);
    for i in 0..10u8 {
        log.append(&batch_of(&[vec![i; 100]], i64::from(i)))
            .unwrap();
    }
    let expected = read_all(&log, 0).unwrap();
    log.close().unwrap();
    // Only the last entry's position is wrong: a trusted index then sent
    // reads of that entry's offset and later to nothing (empty, no error).
    let index = dir().join("00000000000000000000.index");
    let mut entries = fs.read_file(&index).unwrap();
    let last = entries.len() - 8;
    entries[last + 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    fs.write_file(&index, entries);
    let log = open_small(&fs, &flusher);
    assert_eq!(read_all(&log, 0).unwrap(), expected);
    for offset in 0..10u64 {
        let read = log.read(offset, 1).unwrap();
        let first = BatchIter::new(read.data, BATCH_BYTES_LIMIT).next();
        let (header, _) = first
            .unwrap_or_else(|| panic!("offset {offset} not found"))
            .unwrap();
        assert_eq!(header.base_offset, offset);
    }
    let info = log.append(&batch_of(&[vec![10; 100]], 10)).unwrap();
    assert_eq!(info.base_offset, 10);
}

#[test]
fn a_clean_marker_promising_more_than_the_log_holds_fences_the_partition() {
    let flusher = Flusher::start(1);
    let fs = SimFs::new(17);
    let log = open_small(&fs, &flusher);
    for i in 0..10u8 {
        log.append(&batch_of(&[vec![i; 100]], i64::from(i)))
            .unwrap();
    }
    log.close().unwrap();
    // Bit rot in the middle of the cleanly closed active segment, plus a
    // damaged index entry so the open re-reads the log.
    let segment = dir().join("00000000000000000000.log");
    let mut bytes = fs.read_file(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs.write_file(&segment, bytes);
    let index = dir().join("00000000000000000000.index");
    let mut entries = fs.read_file(&index).unwrap();
    let last = entries.len() - 8;
    entries[last + 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    fs.write_file(&index, entries);
    let length = fs.read_file(&segment).unwrap().len();
    let log = open_small(&fs, &flusher);
    let kept = fs.read_file(&segment).unwrap().len();
    assert_eq!(kept, length, "nothing fsynced is cut away");
    assert!(log.end_offset() < 10, "served only up to the damage");
    match log.append(&batch_of(&[vec![10; 100]], 10)) {
        Err(StorageError::CorruptData { .. }) => {}
        other => panic!("expected the partition fenced, got {other:?}"),
    }
    assert!(
        log.read(0, 1).is_ok(),
        "what comes before the damage is served"
    );
}
