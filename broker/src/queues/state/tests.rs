//! The queue state machine alone, without TCP: deliveries within prefetch,
//! ack, nack, in-progress, ack timeouts, redelivery counts, dead letters
//! and subscribers that go away, driven by method calls and clock values;
//! and a property test over random operation sequences.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, NewRecord};
use ferry_storage::vfs::SimFs;
use ferry_storage::{Flusher, FsyncPolicy, Log, LogConfig};
use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::domain::{QueueName, StartFrom, TopicName};

const ACK_TIMEOUT_MS: u32 = 1_000;
const MAX_DELIVERIES: u32 = 3;

/// One partition holding `messages` records with values "0", "1", ...,
/// in one batch.
fn log_with(messages: u64) -> Log {
    let fs = SimFs::new(7);
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let log = Log::open(
        Arc::new(fs),
        Path::new("/q/0"),
        "q-0",
        config,
        &Flusher::start(1),
    )
    .unwrap();
    let mut builder = BatchBuilder::new();
    for i in 0..messages {
        builder.push(&NewRecord {
            timestamp_ms: 1,
            value: Some(Bytes::from(i.to_string())),
            ..NewRecord::default()
        });
    }
    if messages > 0 {
        log.append(&builder.finish()).unwrap();
    }
    log
}

fn state() -> State {
    let def = QueueDef {
        topic: TopicName::new("t").unwrap(),
        name: QueueName::new("q").unwrap(),
        ack_timeout_ms: ACK_TIMEOUT_MS,
        max_deliveries: MAX_DELIVERIES,
        dead_letter_topic: TopicName::new("t.q.dlq").unwrap(),
        start: StartFrom::Earliest,
    };
    State::new(def, vec![Settled::starting_at(0)], 0, 0)
}

fn subscribe(state: &mut State, id: u64, prefetch: u32) {
    let subscriber = Subscriber {
        prefetch,
        ..Subscriber::default()
    };
    state.consumers.insert(id, subscriber);
}

/// (subscriber, delivery id, offset, delivery count) of one step, whose
/// deliveries are written to their consumers at once.
fn step(state: &mut State, logs: &[Log], now: Instant) -> Vec<(u64, u64, u64, u32)> {
    let delivered = step_unwritten(state, logs, now);
    let ids: Vec<u64> = delivered.iter().map(|d| d.1).collect();
    state.written(&ids, now);
    state.check_invariants();
    delivered
}

/// [`step`] without writing the deliveries.
fn step_unwritten(state: &mut State, logs: &[Log], now: Instant) -> Vec<(u64, u64, u64, u32)> {
    let step = state.step(logs, now, 0);
    state.check_invariants();
    step.deliveries
        .into_iter()
        .flat_map(|(s, ds)| {
            ds.into_iter()
                .map(move |d| (s, d.delivery_id, d.offset, d.delivery_count))
        })
        .collect()
}

#[test]
fn a_queue_delivers_only_records_that_are_durable() {
    let fs = SimFs::new(8);
    let flusher = Flusher::manual();
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        index_max_bytes: 4096,
        ..LogConfig::default()
    };
    let log = Log::open(Arc::new(fs), Path::new("/q/0"), "q-0", config, &flusher).unwrap();
    let batch = |value: &str| {
        let mut builder = BatchBuilder::new();
        builder.push(&NewRecord {
            timestamp_ms: 1,
            value: Some(Bytes::from(value.to_string())),
            ..NewRecord::default()
        });
        builder.finish()
    };
    log.append(&batch("a")).unwrap();
    let (logs, now) = ([log], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 10);
    assert!(
        step(&mut state, &logs, now).is_empty(),
        "written, not fsynced"
    );
    assert_eq!(state.ready_count(&logs), 0);
    flusher.run_pending();
    logs[0].append(&batch("b")).unwrap();
    let offsets: Vec<u64> = step(&mut state, &logs, now).iter().map(|d| d.2).collect();
    assert_eq!(offsets, vec![0], "up to the durable end");
    flusher.run_pending();
    let offsets: Vec<u64> = step(&mut state, &logs, now).iter().map(|d| d.2).collect();
    assert_eq!(offsets, vec![1]);
}

#[test]
fn a_delivery_s_ack_deadline_starts_when_it_is_written() {
    let (logs, now) = ([log_with(1)], Instant::now());
    let timeout = Duration::from_millis(u64::from(ACK_TIMEOUT_MS));
    let mut state = state();
    subscribe(&mut state, 1, 1);
    let id = step_unwritten(&mut state, &logs, now)[0].1;
    // Still in a send buffer long past the timeout: not redelivered.
    let later = now + timeout * 5;
    assert!(step_unwritten(&mut state, &logs, later).is_empty());
    state.written(&[id], later);
    assert!(step(&mut state, &logs, later + timeout / 2).is_empty());
    let again = step(
        &mut state,
        &logs,
        later + timeout + Duration::from_millis(1),
    );
    assert_eq!(
        again.len(),
        1,
        "redelivered one timeout after it was written"
    );
    assert_eq!(again[0].3, 2);
}

#[test]
fn deliveries_a_connection_has_no_room_for_come_back_first_and_uncounted() {
    let (logs, now) = ([log_with(6)], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 4);
    let first = step_unwritten(&mut state, &logs, now);
    assert_eq!(first.len(), 4);
    // Only the first went out; the connection had no room for the rest.
    let unsent: Vec<u64> = first[1..].iter().map(|d| d.1).collect();
    state.return_unsent(1, &unsent);
    state.check_invariants();
    assert!(
        step(&mut state, &logs, now).is_empty(),
        "blocked until resumed"
    );
    state.resume(1);
    let again = step(&mut state, &logs, now);
    let offsets: Vec<u64> = again.iter().map(|d| d.2).collect();
    assert_eq!(offsets, vec![1, 2, 3], "in order, before offset 4");
    assert!(
        again.iter().all(|d| d.3 == 1),
        "never sent, so first deliveries"
    );
}

#[test]
fn read_ahead_stops_inside_a_batch_and_resumes_there() {
    let total = READY_LIMIT as u64 * 2 + 100;
    let (logs, now) = ([log_with(total)], Instant::now());
    let mut state = state();
    assert!(step(&mut state, &logs, now).is_empty(), "nobody subscribed");
    assert_eq!(state.ready.len(), READY_LIMIT, "bounded inside the batch");
    subscribe(&mut state, 1, PREFETCH_LIMIT);
    let mut seen = Vec::new();
    for _ in 0..10 {
        let delivered = step(&mut state, &logs, now);
        let ids: Vec<u64> = delivered.iter().map(|d| d.1).collect();
        seen.extend(delivered.iter().map(|d| d.2));
        state.ack(&ids);
        assert!(state.ready.len() <= READY_LIMIT);
    }
    assert_eq!(seen, (0..total).collect::<Vec<_>>(), "each once, in order");
}

#[test]
fn messages_that_come_back_unacked_are_recorded_with_their_counts() {
    let (logs, now) = ([log_with(3)], Instant::now());
    let timeout = Duration::from_millis(u64::from(ACK_TIMEOUT_MS));
    let mut state = state();
    subscribe(&mut state, 1, 3);
    let delivered = step(&mut state, &logs, now);
    assert!(
        state.take_pending_attempts().is_empty(),
        "first deliveries cost nothing"
    );
    state.nack(&[delivered[0].1], true, Duration::ZERO, now);
    state.ack(&[delivered[1].1]);
    step(&mut state, &logs, now + timeout + Duration::from_millis(1));
    let mut recorded = state.take_pending_attempts();
    recorded.sort();
    assert_eq!(recorded, vec![(0, 0, 1), (0, 2, 1)], "nacked and timed out");
}

#[test]
fn delivery_counts_recorded_before_a_restart_still_count() {
    let (logs, now) = ([log_with(3)], Instant::now());
    let spent = crate::queues::acks::Attempts::from([(0, [(0, MAX_DELIVERIES), (2, 1)].into())]);
    let mut state = state().with_attempts(&spent);
    subscribe(&mut state, 1, 10);
    let delivered = step(&mut state, &logs, now);
    let counts: Vec<(u64, u32)> = delivered.iter().map(|d| (d.2, d.3)).collect();
    assert_eq!(counts, vec![(1, 1), (2, 2)]);
    let dead: Vec<u64> = state.dead.iter().map(|(m, _)| m.offset).collect();
    assert_eq!(dead, vec![0], "its deliveries were spent: dead-lettered");
    let snapshot = state.attempts();
    assert_eq!(snapshot[&0][&2], 2, "counts go into snapshots");
}

#[test]
fn deliveries_stay_within_prefetch_and_alternate_between_subscribers() {
    let (logs, now) = ([log_with(10)], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 2);
    subscribe(&mut state, 2, 3);
    let first = step(&mut state, &logs, now);
    assert_eq!(first.len(), 5, "2 + 3 credits");
    assert_eq!(first.iter().filter(|d| d.0 == 1).count(), 2);
    assert!(step(&mut state, &logs, now).is_empty(), "no credit left");
    let offsets: BTreeSet<u64> = first.iter().map(|d| d.2).collect();
    assert_eq!(offsets, (0..5).collect(), "in order, each once");
    // Settling frees credit.
    let ids: Vec<u64> = first.iter().filter(|d| d.0 == 1).map(|d| d.1).collect();
    assert_eq!(state.ack(&ids).acked.len(), 2);
    let next = step(&mut state, &logs, now);
    assert_eq!(next.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 1]);
}

#[test]
fn an_acked_message_is_never_delivered_again() {
    let (logs, now) = ([log_with(3)], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 10);
    let delivered = step(&mut state, &logs, now);
    let ids: Vec<u64> = delivered.iter().map(|d| d.1).collect();
    let settle = state.ack(&ids);
    assert_eq!(settle.acked.len(), 3);
    assert_eq!(state.ack(&ids).unknown, 3, "a second ack is ignored");
    let later = now + Duration::from_millis(u64::from(ACK_TIMEOUT_MS) * 5);
    assert!(step(&mut state, &logs, later).is_empty());
    assert_eq!(state.acked, 3);
    assert_eq!(state.ready_count(&logs), 0);
}

#[test]
fn an_unacked_message_comes_back_after_its_timeout_with_a_higher_count() {
    let (logs, now) = ([log_with(1)], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 10);
    assert_eq!(step(&mut state, &logs, now)[0].3, 1);
    let timeout = Duration::from_millis(u64::from(ACK_TIMEOUT_MS));
    assert!(step(&mut state, &logs, now + timeout / 2).is_empty());
    let again = step(&mut state, &logs, now + timeout + Duration::from_millis(1));
    assert_eq!(
        (again[0].2, again[0].3),
        (0, 2),
        "offset 0, second delivery"
    );
}

#[test]
fn in_progress_restarts_the_ack_deadline() {
    let (logs, now) = ([log_with(1)], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 10);
    let id = step(&mut state, &logs, now)[0].1;
    let timeout = Duration::from_millis(u64::from(ACK_TIMEOUT_MS));
    assert_eq!(state.in_progress(&[id], now + timeout / 2), 0);
    assert!(step(&mut state, &logs, now + timeout + Duration::from_millis(1)).is_empty());
    assert_eq!(step(&mut state, &logs, now + timeout * 2).len(), 1);
}

#[test]
fn a_message_delivered_max_deliveries_times_is_dead_lettered() {
    let (logs, mut now) = ([log_with(1)], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 10);
    let timeout = Duration::from_millis(u64::from(ACK_TIMEOUT_MS) + 1);
    for attempt in 1..=MAX_DELIVERIES {
        let delivered = step(&mut state, &logs, now);
        assert_eq!(delivered[0].3, attempt);
        now += timeout;
    }
    assert!(step(&mut state, &logs, now).is_empty());
    assert_eq!(state.dead.len(), 1);
    assert_eq!(state.dead[0].1, DeadReason::MaxDeliveries);
    assert_eq!(state.dead[0].0.offset, 0);
}

#[test]
fn nack_requeues_after_its_delay_or_dead_letters() {
    let (logs, now) = ([log_with(2)], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 10);
    let delivered = step(&mut state, &logs, now);
    let delay = Duration::from_millis(200);
    assert_eq!(state.nack(&[delivered[0].1], true, delay, now), 0);
    assert_eq!(state.nack(&[delivered[1].1], false, Duration::ZERO, now), 0);
    assert_eq!(state.dead.len(), 1);
    assert_eq!(state.dead[0].1, DeadReason::Rejected);
    assert!(
        step(&mut state, &logs, now + delay / 2).is_empty(),
        "still delayed"
    );
    let again = step(&mut state, &logs, now + delay);
    assert_eq!((again[0].2, again[0].3), (0, 2));
}

#[test]
fn a_gone_subscriber_s_deliveries_go_to_the_others() {
    let (logs, now) = ([log_with(4)], Instant::now());
    let mut state = state();
    subscribe(&mut state, 1, 4);
    assert_eq!(step(&mut state, &logs, now).len(), 4);
    subscribe(&mut state, 2, 4);
    state.unsubscribe(1, now);
    let moved = step(&mut state, &logs, now);
    assert_eq!(moved.len(), 4);
    assert!(moved.iter().all(|d| d.0 == 2 && d.3 == 2));
}

#[derive(Debug, Clone)]
enum Op {
    Subscribe(u8, u8),
    Unsubscribe(u8),
    Step(u16),
    Ack(u8),
    Nack(u8, bool),
    InProgress(u8),
    /// The subscriber's connection had no room for its deliveries.
    Unsent(u8),
    Resume(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 1u8..5).prop_map(|(s, p)| Op::Subscribe(s, p)),
        (0u8..3).prop_map(Op::Unsubscribe),
        (0u16..1500).prop_map(Op::Step),
        any::<u8>().prop_map(Op::Ack),
        (any::<u8>(), any::<bool>()).prop_map(|(i, r)| Op::Nack(i, r)),
        any::<u8>().prop_map(Op::InProgress),
        (0u8..3).prop_map(Op::Unsent),
        (0u8..3).prop_map(Op::Resume),
    ]
}

proptest! {
    /// Whatever consumers do: a delivery is in flight to one subscriber
    /// (checked after every step), a message is acked at most once, settled
    /// offsets stay settled, and nothing is delivered once settled.
    #[test]
    fn random_operations_keep_the_queue_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        // The log is only read: one for every case.
        static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
        let logs = [LOG.get_or_init(|| log_with(12)).clone()];
        let mut state = state();
        let mut now = Instant::now();
        let mut in_flight: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let mut acked: BTreeSet<u64> = BTreeSet::new();
        for op in ops {
            match op {
                // Subscription ids are never reused (the registry hands out fresh ones).
                Op::Subscribe(s, prefetch) if !state.consumers.contains_key(&u64::from(s)) => {
                    subscribe(&mut state, u64::from(s), u32::from(prefetch))
                }
                Op::Subscribe(..) => {}
                Op::Unsubscribe(s) => {
                    state.unsubscribe(u64::from(s), now);
                    in_flight.retain(|_, (sub, _)| *sub != u64::from(s));
                }
                Op::Unsent(s) => {
                    let s = u64::from(s);
                    let ids: Vec<u64> = in_flight.iter().filter(|(_, (sub, _))| *sub == s).map(|(id, _)| *id).collect();
                    state.return_unsent(s, &ids);
                    in_flight.retain(|_, (sub, _)| *sub != s);
                }
                Op::Resume(s) => state.resume(u64::from(s)),
                Op::Step(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    for (sub, id, offset, count) in step(&mut state, &logs, now) {
                        prop_assert!(!acked.contains(&offset), "settled {offset} delivered again");
                        prop_assert!((1..=MAX_DELIVERIES).contains(&count));
                        in_flight.insert(id, (sub, offset));
                    }
                }
                Op::Ack(pick) | Op::Nack(pick, _) | Op::InProgress(pick) => {
                    let Some((&id, &(_, offset))) = in_flight.iter().nth(usize::from(pick) % in_flight.len().max(1)) else {
                        continue;
                    };
                    match op {
                        Op::Ack(_) => {
                            for (_, o) in state.ack(&[id]).acked {
                                prop_assert!(acked.insert(o), "{o} acked twice");
                            }
                            in_flight.remove(&id);
                        }
                        Op::Nack(_, requeue) => {
                            state.nack(&[id], requeue, Duration::ZERO, now);
                            in_flight.remove(&id);
                        }
                        _ => {
                            state.in_progress(&[id], now);
                        }
                    }
                    let _ = offset;
                }
            }
            for offset in &acked {
                prop_assert!(state.settled[0].contains(*offset), "settled {offset} forgotten");
            }
            state.check_invariants();
        }
    }
}
