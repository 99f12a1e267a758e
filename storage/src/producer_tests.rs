//! Specification tests of idempotent appends: a retried batch is answered
//! with its stored offsets and never written twice, gaps and stale epochs
//! are refused, and all of it holds across rolls, reopening, lost
//! snapshots and power loss.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, NewRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::producer_snapshot::{PRODUCERS_SUFFIX, PRODUCER_SNAPSHOTS_KEPT};
use crate::tests::{block_on, dir, read_all, small_config};
use crate::vfs::{SimFs, Vfs};
use crate::{Flusher, Log, StorageError};

/// A batch of `records` values of producer `id`, whose values name it:
/// `[id, epoch, sequence as 4 bytes]`.
fn producer_batch(id: i64, epoch: i16, base_sequence: i32, records: u32) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.set_producer(id, epoch, base_sequence);
    for n in 0..records {
        let mut value = vec![id as u8, epoch as u8];
        value.extend_from_slice(&(base_sequence + n as i32).to_be_bytes());
        value.resize(60, 0);
        builder.push(&NewRecord {
            timestamp_ms: 1,
            value: Some(Bytes::from(value)),
            ..NewRecord::default()
        });
    }
    builder.finish()
}

fn open(fs: &SimFs, flusher: &Flusher) -> Log {
    Log::open(Arc::new(fs.clone()), &dir(), "t-0", small_config(), flusher).unwrap()
}

fn snapshots(fs: &SimFs) -> usize {
    let names = fs.list_dir(&dir()).unwrap();
    names
        .iter()
        .filter(|n| n.ends_with(PRODUCERS_SUFFIX))
        .count()
}

#[test]
fn a_retry_gets_the_stored_offsets_and_writes_nothing() {
    let fs = SimFs::new(1);
    let flusher = Flusher::start(1);
    let log = open(&fs, &flusher);
    let first = log.append(&producer_batch(1, 0, 0, 3)).unwrap();
    let second = log.append(&producer_batch(1, 0, 3, 2)).unwrap();
    assert_eq!((second.base_offset, second.duplicate), (3, false));
    let retried = log.append(&producer_batch(1, 0, 0, 3)).unwrap();
    assert!(retried.duplicate);
    assert_eq!(
        (retried.base_offset, retried.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert_eq!(log.end_offset(), 5, "the retry wrote nothing");
    assert_eq!(read_all(&log, 0).unwrap().len(), 5);
    assert_eq!(log.stats().producers, 1);
}

#[test]
fn a_retry_older_than_the_last_five_is_stored_once_without_offsets() {
    let fs = SimFs::new(5);
    let flusher = Flusher::start(1);
    let log = open(&fs, &flusher);
    for sequence in 0..8 {
        log.append(&producer_batch(1, 0, sequence, 1)).unwrap();
    }
    let retried = log.append(&producer_batch(1, 0, 1, 1)).unwrap();
    assert!(retried.duplicate && !retried.offsets_known);
    assert_eq!(
        retried.last_offset, 2,
        "below the oldest kept batch (offset 3)"
    );
    assert_eq!(log.end_offset(), 8, "nothing written");
    let recent = log.append(&producer_batch(1, 0, 6, 1)).unwrap();
    assert!(recent.duplicate && recent.offsets_known && recent.base_offset == 6);
}

#[test]
fn a_gap_and_a_stale_epoch_are_refused() {
    let fs = SimFs::new(2);
    let flusher = Flusher::start(1);
    let log = open(&fs, &flusher);
    log.append(&producer_batch(1, 3, 0, 2)).unwrap();
    match log.append(&producer_batch(1, 3, 5, 1)) {
        Err(StorageError::OutOfOrderSequence { expected, got, .. }) => {
            assert_eq!((expected, got), (2, 5))
        }
        other => panic!("expected OutOfOrderSequence, got {other:?}"),
    }
    match log.append(&producer_batch(1, 2, 2, 1)) {
        Err(StorageError::ProducerFenced { current_epoch, .. }) => assert_eq!(current_epoch, 3),
        other => panic!("expected ProducerFenced, got {other:?}"),
    }
    // A new epoch starts over at 0; another producer is independent.
    assert!(!log.append(&producer_batch(1, 4, 0, 1)).unwrap().duplicate);
    assert!(!log.append(&producer_batch(2, 0, 0, 1)).unwrap().duplicate);
    assert_eq!(log.end_offset(), 4);
}

#[test]
fn dedup_holds_after_rolls_and_a_reopen_and_snapshots_stay_bounded() {
    let fs = SimFs::new(3);
    let flusher = Flusher::start(1);
    let log = open(&fs, &flusher);
    let mut sent = Vec::new();
    for sequence in 0..200 {
        let info = log.append(&producer_batch(7, 0, sequence, 1)).unwrap();
        sent.push(info.base_offset);
    }
    block_on(log.wait_durable(log.end_offset())).unwrap();
    assert!(log.stats().segment_count > 3, "the test needs rolls");
    assert!((1..=PRODUCER_SNAPSHOTS_KEPT).contains(&snapshots(&fs)));
    drop(log); // unclean: no close
    let log = open(&fs, &flusher);
    // The batches say 1970 (their producer's clock): the rebuilt producer
    // still counts as having written at the open, not as long expired.
    log.apply_retention(crate::now_ms()).unwrap();
    assert_eq!(log.stats().producers, 1);
    for sequence in 195..200 {
        let retried = log.append(&producer_batch(7, 0, sequence, 1)).unwrap();
        assert!(retried.duplicate, "sequence {sequence}");
        assert_eq!(retried.base_offset, sent[sequence as usize]);
    }
    assert!(!log.append(&producer_batch(7, 0, 200, 1)).unwrap().duplicate);
}

#[test]
fn lost_or_corrupt_snapshots_cost_a_longer_walk_not_a_wrong_answer() {
    let fs = SimFs::new(4);
    let flusher = Flusher::start(1);
    let log = open(&fs, &flusher);
    for sequence in 0..120 {
        log.append(&producer_batch(9, 1, sequence, 1)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    for name in fs.list_dir(&dir()).unwrap() {
        if name.ends_with(PRODUCERS_SUFFIX) {
            let path = dir().join(&name);
            let mut bytes = fs.read_file(&path).unwrap();
            bytes[10] ^= 0xff;
            fs.write_file(&path, bytes);
        }
    }
    let log = open(&fs, &flusher);
    assert!(log.append(&producer_batch(9, 1, 119, 1)).unwrap().duplicate);
    assert!(matches!(
        log.append(&producer_batch(9, 0, 120, 1)),
        Err(StorageError::ProducerFenced { .. })
    ));
}

/// One producer of the power-loss schedule: batches sent and not yet
/// known durable are retried after every restart, as a client would.
#[derive(Default)]
struct Model {
    next_sequence: i32,
    /// (base sequence, record count, offset given), oldest first: always
    /// the newest batches (answers come in order), at most five (a
    /// client's in-flight window per partition).
    unacked: Vec<(i32, u32, u64)>,
    /// Durable batches: base sequence -> base offset.
    acked: HashMap<i32, u64>,
}

/// Producers append, some appends are waited on, the plug is pulled, and
/// after each restart every unacknowledged batch is retried in order.
/// Every batch ends up in the log exactly once, and acknowledged batches
/// keep their offsets.
#[test]
fn retries_after_power_loss_store_every_batch_exactly_once() {
    let seeds: u64 = std::env::var("FERRY_POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(200, |n: u64| n.min(200));
    let flusher = Flusher::start(2);
    for seed in 0..seeds {
        run_schedule(seed, &flusher);
    }
}

fn run_schedule(seed: u64, flusher: &Flusher) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fs = SimFs::new(seed);
    let mut models: Vec<Model> = (0..3).map(|_| Model::default()).collect();
    for round in 0..4 {
        let log = open(&fs, flusher);
        for (id, model) in models.iter_mut().enumerate() {
            for (sequence, records, _) in std::mem::take(&mut model.unacked) {
                let info = log
                    .append(&producer_batch(id as i64, 0, sequence, records))
                    .unwrap_or_else(|e| panic!("seed {seed} round {round}: retry refused: {e}"));
                model.acked.insert(sequence, info.base_offset);
            }
        }
        block_on(log.wait_durable(log.end_offset())).unwrap();
        check_exactly_once(&log, &models, seed);
        for _ in 0..rng.gen_range(1..30) {
            let id = rng.gen_range(0..models.len());
            let model = &mut models[id];
            if model.unacked.len() == 5 {
                continue;
            }
            let records = rng.gen_range(1..4);
            let sequence = model.next_sequence;
            let info = log
                .append(&producer_batch(id as i64, 0, sequence, records))
                .unwrap();
            model.next_sequence += records as i32;
            model.unacked.push((sequence, records, info.base_offset));
            if rng.gen_bool(0.3) {
                // Its answer, and every earlier one of this producer's.
                block_on(log.wait_durable(info.last_offset + 1)).unwrap();
                for (sequence, _, offset) in model.unacked.drain(..) {
                    model.acked.insert(sequence, offset);
                }
            }
        }
        fs = fs.power_loss(seed * 17 + round);
    }
}

/// Each producer's records appear once each, in sequence order, and every
/// acknowledged batch is at the offset it was given.
fn check_exactly_once(log: &Log, models: &[Model], seed: u64) {
    let mut seen: Vec<Vec<(i32, u64)>> = vec![Vec::new(); models.len()];
    for (offset, value) in read_all(log, 0).unwrap() {
        let sequence = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
        seen[value[0] as usize].push((sequence, offset));
    }
    for (id, model) in models.iter().enumerate() {
        let sequences: Vec<i32> = seen[id].iter().map(|(s, _)| *s).collect();
        let expected: Vec<i32> = (0..model.next_sequence).collect();
        assert_eq!(sequences, expected, "seed {seed} producer {id}");
        for (sequence, offset) in &model.acked {
            assert_eq!(
                seen[id][*sequence as usize].1, *offset,
                "seed {seed}: acked batch moved"
            );
        }
    }
}
