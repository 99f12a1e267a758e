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

/// One partition holding `messages` records with values "0", "1", ...
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

/// (subscriber, delivery id, offset, delivery count) of one step.
fn step(state: &mut State, logs: &[Log], now: Instant) -> Vec<(u64, u64, u64, u32)> {
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
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 1u8..5).prop_map(|(s, p)| Op::Subscribe(s, p)),
        (0u8..3).prop_map(Op::Unsubscribe),
        (0u16..1500).prop_map(Op::Step),
        any::<u8>().prop_map(Op::Ack),
        (any::<u8>(), any::<bool>()).prop_map(|(i, r)| Op::Nack(i, r)),
        any::<u8>().prop_map(Op::InProgress),
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
        let mut in_flight: BTreeMap<u64, u64> = BTreeMap::new();
        let mut acked: BTreeSet<u64> = BTreeSet::new();
        for op in ops {
            match op {
                // Subscription ids are never reused (the registry hands out fresh ones).
                Op::Subscribe(s, prefetch) if !state.consumers.contains_key(&u64::from(s)) => {
                    subscribe(&mut state, u64::from(s), u32::from(prefetch))
                }
                Op::Subscribe(..) => {}
                Op::Unsubscribe(s) => state.unsubscribe(u64::from(s), now),
                Op::Step(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    for (_, id, offset, count) in step(&mut state, &logs, now) {
                        prop_assert!(!acked.contains(&offset), "settled {offset} delivered again");
                        prop_assert!((1..=MAX_DELIVERIES).contains(&count));
                        in_flight.insert(id, offset);
                    }
                }
                Op::Ack(pick) | Op::Nack(pick, _) | Op::InProgress(pick) => {
                    let Some((&id, &offset)) = in_flight.iter().nth(usize::from(pick) % in_flight.len().max(1)) else {
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
