//! Seeded power losses over the whole broker state at once: partition
//! segments, topic metadata, group offsets and queue ack state all live on
//! one simulated disk, which loses power while everything is open (a prefix
//! of the journal, a random subset of unsynced writes, torn writes).
//!
//! - `fsync=always`: nothing acknowledged is lost: records, offset commits,
//!   queue acks, created topics and queues.
//! - the same with fsync EIO injected: a failed fsync fails its waiters, and
//!   what was acknowledged before it is still there after the power loss.
//! - `fsync=1` (interval): records answered `written` are lost only inside
//!   the documented window: one appended at least 1 ms before a flusher tick
//!   survives.
//!
//! CI runs 1,000 seeds per mode; `FERRY_POWER_LOSS_SEEDS=100000` is the long
//! mode. A failure names its seed; `FERRY_POWER_LOSS_SEED=N` replays it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_broker::domain::{QueueName, StartFrom, TopicName};
use ferry_broker::groups::offsets::OffsetStore;
use ferry_broker::queues::{Delivered, DeliverySink, QueueDef, QueueSpec, Queues};
use ferry_broker::topics::{Topic, TopicSettings, Topics};
use ferry_protocol::batch::{BatchBuilder, BatchIter, NewRecord, RecordIter};
use ferry_storage::vfs::{SimFs, SimOptions};
use ferry_storage::{now_ms, Flusher, FsyncPolicy, LogConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ROUNDS: u64 = 3;
const INTERVAL_MS: u64 = 1;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Always,
    AlwaysWithEio,
    Interval,
}

/// What the "broker" answered, and so must survive.
#[derive(Default)]
struct Acked {
    records: BTreeMap<(u32, u64), Vec<u8>>,
    commit: Option<u64>,
    /// Commits issued after the acknowledged one: any may have survived.
    later_commits: Vec<u64>,
    queue: Vec<(u32, u64)>,
}

fn batch(value: &[u8]) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.push(&NewRecord {
        timestamp_ms: 1,
        value: Some(Bytes::copy_from_slice(value)),
        ..NewRecord::default()
    });
    builder.finish()
}

/// Drives `future` to completion, running queued fsyncs only while it is
/// pending: an acknowledgement that does not wait for its fsync completes
/// without one, and the next power loss shows it.
fn settle<F: Future>(flusher: &Flusher, future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(futures::task::noop_waker_ref());
    let started = Instant::now();
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        if flusher.run_pending() == 0 {
            // Interval logs are queued by the ticker once their interval passes.
            flusher.tick_now();
            assert!(
                started.elapsed() < SETTLE_TIMEOUT,
                "waiting for an fsync nobody asked for"
            );
            std::thread::yield_now();
        }
    }
}

fn read_value(topic: &Topic, partition: u32, offset: u64) -> Option<Bytes> {
    let read = topic.partitions[partition as usize].read(offset, 1).ok()?;
    BatchIter::new(read.data, 1 << 26)
        .flatten()
        .flat_map(|(header, body)| RecordIter::new(body, header).flatten())
        .find(|record| record.offset == offset)
        .and_then(|record| record.value)
}

struct Broker {
    topics: Topics,
    offsets: OffsetStore,
    queues: Queues,
}

fn open(fs: &SimFs, seed: u64, round: u64) -> Broker {
    let vfs = Arc::new(fs.clone());
    let data = Path::new("/data");
    let small = LogConfig {
        segment_bytes: 8192,
        index_max_bytes: 4096,
        ..LogConfig::default()
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        panic!("seed {seed} round {round}: {what} failed to reopen: {e}")
    };
    // Fsyncs run only when the test says so: power can fail with some queued.
    let topics = Topics::open(vfs.clone(), data, small, Flusher::manual())
        .unwrap_or_else(|e| fail("topics", &e));
    let offsets = OffsetStore::open(vfs.clone(), data, topics.flusher())
        .unwrap_or_else(|e| fail("offsets", &e));
    let queues =
        Queues::open(vfs, data, topics.flusher(), &topics).unwrap_or_else(|e| fail("queues", &e));
    Broker {
        topics,
        offsets,
        queues,
    }
}

fn create(broker: &Broker, mode: Mode) {
    let settings = TopicSettings {
        partitions: Some(2),
        fsync: (mode == Mode::Interval).then_some(FsyncPolicy::IntervalMs(INTERVAL_MS)),
        ..TopicSettings::default()
    };
    let topic = TopicName::new("t").unwrap();
    broker.topics.create(&topic, settings, 1).unwrap();
    let request = QueueSpec {
        topic,
        name: QueueName::new("q").unwrap(),
        ack_timeout_ms: None,
        max_deliveries: None,
        start: StartFrom::Earliest,
        dead_letter_topic: None,
    };
    // Queue creation waits for its own fsync: flush while it runs.
    std::thread::scope(|scope| {
        let creating = scope.spawn(|| broker.queues.create(&broker.topics, request));
        while !creating.is_finished() {
            broker.topics.flusher().run_pending();
            std::thread::yield_now();
        }
        creating.join().unwrap().unwrap();
    });
}

/// Everything acknowledged before the power loss is still there.
fn verify(broker: &Broker, acked: &mut Acked, seed: u64, round: u64) {
    let topic = broker
        .topics
        .get("t")
        .unwrap_or_else(|_| panic!("seed {seed} round {round}: acked topic lost"));
    for ((p, o), value) in &acked.records {
        let found = read_value(&topic, *p, *o);
        assert_eq!(
            found.as_deref(),
            Some(&value[..]),
            "seed {seed} round {round}: acked record {p}/{o} lost"
        );
    }
    // The group's offset is the acknowledged commit or a later one (a later
    // commit may be lower: unacknowledged records can vanish in a power loss,
    // and the committing consumer commits the end it saw).
    let now = broker.offsets.get("g", "t", 0).map(|c| c.offset);
    if let Some(commit) = acked.commit {
        let later = now.is_some_and(|now| acked.later_commits.contains(&now));
        assert!(
            now == Some(commit) || later,
            "seed {seed} round {round}: acked commit {commit} lost (found {now:?}, later attempts {:?})",
            acked.later_commits
        );
    }
    // What survived a power loss is durable: it is the bar from now on.
    if now.is_some() {
        acked.commit = now;
        acked.later_commits.clear();
    }
    let queue = broker
        .queues
        .get("t", "q")
        .unwrap_or_else(|_| panic!("seed {seed} round {round}: acked queue lost"));
    let state = queue.state.lock();
    for (p, o) in &acked.queue {
        assert!(
            state.settled[*p as usize].contains(*o),
            "seed {seed} round {round}: acked queue message {p}/{o} would come again"
        );
    }
}

/// Produces a few records; durable ones (fsync=always) are acknowledged
/// after their fsync, written ones (interval) at once with their time.
fn produce(
    broker: &Broker,
    mode: Mode,
    rng: &mut StdRng,
    acked: &mut Acked,
    written: &mut Vec<(u32, u64, Vec<u8>, u64)>,
    tag: &str,
) {
    let flusher = broker.topics.flusher();
    let topic = broker.topics.get("t").unwrap();
    for i in 0..rng.gen_range(1..20) {
        let p = rng.gen_range(0..2u32);
        let value = format!("{tag}i{i}").into_bytes();
        let log = &topic.partitions[p as usize];
        let Ok(info) = log.append(&batch(&value)) else {
            continue; // read-only after an injected EIO: an error, not an ack
        };
        if mode == Mode::Interval {
            written.push((p, info.base_offset, value, now_ms()));
            if rng.gen_bool(0.2) {
                flusher.tick_now();
                flusher.run_pending();
            }
        } else if rng.gen_bool(0.6)
            && settle(flusher, log.wait_durable(info.last_offset + 1)).is_ok()
        {
            acked.records.insert((p, info.base_offset), value);
        }
    }
}

/// Commits an offset of partition 0; acknowledged when its fsync is awaited.
fn commit(broker: &Broker, rng: &mut StdRng, acked: &mut Acked) {
    let end = broker.topics.get("t").unwrap().partitions[0].end_offset();
    let Ok(commit) = broker
        .offsets
        .commit("g", vec![("t".into(), 0, end, String::new())])
    else {
        return;
    };
    if rng.gen_bool(0.5) && settle(broker.topics.flusher(), commit).is_ok() {
        acked.commit = Some(end);
        acked.later_commits.clear();
    } else {
        acked.later_commits.push(end);
    }
}

/// A subscriber that takes deliveries from the step's answer directly.
struct Discard;

impl DeliverySink for Discard {
    fn deliver(&self, _: u64, _: &QueueDef, _: Vec<Delivered>) -> bool {
        true
    }
}

/// Takes deliveries from the queue and acks some of them.
fn deliver_and_ack(broker: &Broker, rng: &mut StdRng, acked: &mut Acked) {
    let queue = broker.queues.get("t", "q").unwrap();
    broker
        .queues
        .subscribe("t", "q", 50, Arc::new(Discard))
        .unwrap();
    let wall_ms = now_ms() as i64;
    let step = queue
        .state
        .lock()
        .step(&queue.logs, tokio::time::Instant::now(), wall_ms);
    let mut ids = Vec::new();
    for (_, deliveries) in step.deliveries {
        for delivery in deliveries {
            if rng.gen_bool(0.5) {
                ids.push((delivery.delivery_id, delivery.partition, delivery.offset));
            }
        }
    }
    let Ok(durable) = broker.queues.ack(
        "t",
        "q",
        &ids.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
    ) else {
        return;
    };
    if rng.gen_bool(0.7) && settle(broker.topics.flusher(), durable).is_ok() {
        acked.queue.extend(ids.iter().map(|(_, p, o)| (*p, *o)));
    }
}

/// What one seed checked, for the summary line.
#[derive(Default)]
struct Tally {
    records: usize,
    queue_acks: usize,
    commits: usize,
    failed_fsyncs: u64,
}

fn run_seed(seed: u64, mode: Mode) -> Tally {
    let mut tally = Tally::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fs = SimFs::new(seed);
    let mut acked = Acked::default();
    let mut written = Vec::new();
    for round in 0..ROUNDS {
        let broker = open(&fs, seed, round);
        if round == 0 {
            create(&broker, mode);
        } else {
            verify(&broker, &mut acked, seed, round);
        }
        if mode == Mode::AlwaysWithEio {
            fs.set_options(SimOptions {
                sync_failure_probability: 0.03,
                ..SimOptions::default()
            });
        }
        written.clear();
        produce(
            &broker,
            mode,
            &mut rng,
            &mut acked,
            &mut written,
            &format!("s{seed}r{round}"),
        );
        commit(&broker, &mut rng, &mut acked);
        deliver_and_ack(&broker, &mut rng, &mut acked);
        if mode == Mode::Interval {
            // The loss window: a record written at least one interval before
            // a tick is fsynced by it.
            // Half the rounds wait out the interval (the clock, not a sleep),
            // so every record of the round is inside the promise.
            if let Some(last_ms) = written.last().map(|w| w.3).filter(|_| rng.gen_bool(0.5)) {
                while now_ms() < last_ms + INTERVAL_MS {
                    std::thread::yield_now();
                }
            }
            let tick_ms = now_ms();
            broker.topics.flusher().tick_now();
            broker.topics.flusher().run_pending();
            for (p, o, value, written_ms) in written.drain(..) {
                if written_ms + INTERVAL_MS <= tick_ms {
                    acked.records.insert((p, o), value);
                }
            }
        }
        tally.failed_fsyncs += fs.failed_syncs();
        // Power fails while everything is open: no clean close syncs anything.
        let crashed = fs.power_loss(seed.wrapping_mul(7919).wrapping_add(round));
        drop(broker);
        fs = crashed;
    }
    let broker = open(&fs, seed, ROUNDS);
    verify(&broker, &mut acked, seed, ROUNDS);
    tally.records = acked.records.len();
    tally.queue_acks = acked.queue.len();
    tally.commits = usize::from(acked.commit.is_some());
    tally
}

fn run(mode: Mode) {
    if let Some(seed) = std::env::var("FERRY_POWER_LOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_seed(seed, mode);
        return;
    }
    let seeds: u64 = std::env::var("FERRY_POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut total = Tally::default();
    for seed in 0..seeds {
        let tally = run_seed(seed, mode);
        total.records += tally.records;
        total.queue_acks += tally.queue_acks;
        total.commits += tally.commits;
        total.failed_fsyncs += tally.failed_fsyncs;
    }
    eprintln!(
        "{mode:?}: {seeds} seeds x {ROUNDS} power losses: {} acknowledged records, {} queue acks, \
         {} commits verified after the last one, {} injected fsync failures, 0 lost",
        total.records, total.queue_acks, total.commits, total.failed_fsyncs
    );
}

#[test]
fn power_loss_with_fsync_always_loses_nothing_acknowledged() {
    run(Mode::Always);
}

#[test]
fn power_loss_after_fsync_eio_loses_nothing_acknowledged() {
    run(Mode::AlwaysWithEio);
}

#[test]
fn power_loss_in_interval_mode_loses_only_the_window() {
    run(Mode::Interval);
}
