//! One queue at run time: which messages are ready, in flight, delayed or
//! scheduled, who the consumers are and how much credit each has.
//!
//! The driver task (`run`) loops: release what is due (ack deadlines,
//! delayed requeues, scheduled deliveries), read more from the log when the
//! ready buffer runs low, push deliveries round robin to consumers with
//! credit, and dead-letter what must go. It sleeps until the next timer, an
//! append to the topic, or a settle/subscribe wakes it: no task or timer per
//! message.
//!
//! Memory is bounded: at most `READY_LIMIT` read-ahead messages,
//! `IN_FLIGHT_LIMIT` unacknowledged ones and `SCHEDULED_LIMIT` scheduled
//! entries (24 bytes each, the record is re-read when due). Past a bound
//! the queue stops reading the log until room frees up.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::{BatchHeader, BatchIter, Record, RecordIter, BATCH_BYTES_LIMIT};
use ferry_protocol::frame::{encode_frame, FrameHeader, OutFrame, FLAG_PUSH};
use ferry_protocol::messages::{ApiKey, DeliverBatch, Delivery, DeliveryHeader, DELIVER_AT_HEADER};
use ferry_storage::Log;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::ranges::Settled;

/// Messages read ahead of delivery.
pub const READY_LIMIT: usize = 4096;
/// Unacknowledged deliveries per queue.
pub const IN_FLIGHT_LIMIT: usize = 100_000;
/// Scheduled (deliver-at in the future) entries per queue.
pub const SCHEDULED_LIMIT: usize = 1_000_000;
/// Largest prefetch a consumer may ask for.
pub const PREFETCH_LIMIT: u32 = 10_000;
/// Bytes read from a partition per refill step.
const REFILL_READ_BYTES: usize = 512 * 1024;
/// Scheduled messages released per driver step (bounds the time the
/// queue's lock is held; the driver goes round again at once).
const RELEASE_PER_STEP: usize = 2048;
/// Deliveries per pushed frame.
const DELIVERIES_PER_FRAME: usize = 256;

/// Persisted definition of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDef {
    pub topic: String,
    pub name: String,
    pub ack_timeout_ms: u32,
    pub max_deliveries: u32,
    pub dead_letter_topic: String,
    pub start: String,
}

/// A message on its way to a consumer.
#[derive(Debug, Clone)]
pub struct Message {
    pub partition: u32,
    pub offset: u64,
    /// Deliveries so far.
    pub deliveries: u32,
    pub record: Record,
}

struct InFlight {
    message: Message,
    consumer: u64,
    deadline: Instant,
}

pub struct Consumer {
    pub push: mpsc::UnboundedSender<OutFrame>,
    pub prefetch: u32,
    pub in_flight: u32,
    pub delivered: u64,
}

/// Why a message goes to the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    Rejected,
    MaxDeliveries,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Rejected => "rejected",
            DeadReason::MaxDeliveries => "max_deliveries",
        }
    }
}

pub struct State {
    pub def: QueueDef,
    pub settled: Vec<Settled>,
    read_position: Vec<u64>,
    ready: VecDeque<Message>,
    delayed: BTreeMap<(Instant, u64), Message>,
    scheduled: BTreeSet<(i64, u32, u64)>,
    in_flight: HashMap<u64, InFlight>,
    deadlines: BTreeSet<(Instant, u64)>,
    pub consumers: BTreeMap<u64, Consumer>,
    next_delivery_id: u64,
    next_seq: u64,
    last_consumer: u64,
    pub dead: Vec<(Message, DeadReason)>,
    /// Last batch re-read per partition (scheduled messages due one after
    /// another usually sit in the same batch).
    batch_cache: Vec<Option<(BatchHeader, Bytes)>>,
    pub acked: u64,
    pub dead_lettered: u64,
}

/// Outcome of settling deliveries.
#[derive(Default)]
pub struct Settle {
    /// (partition, offset) newly acked.
    pub acked: Vec<(u32, u64)>,
    pub unknown: usize,
}

impl State {
    pub fn new(def: QueueDef, settled: Vec<Settled>, acked: u64, dead_lettered: u64) -> State {
        let read_position = settled.iter().map(|s| s.cursor).collect();
        let batch_cache = vec![None; settled.len()];
        State {
            batch_cache,
            def,
            settled,
            read_position,
            ready: VecDeque::new(),
            delayed: BTreeMap::new(),
            scheduled: BTreeSet::new(),
            in_flight: HashMap::new(),
            deadlines: BTreeSet::new(),
            consumers: BTreeMap::new(),
            next_delivery_id: 1,
            next_seq: 0,
            last_consumer: 0,
            dead: Vec::new(),
            acked,
            dead_lettered,
        }
    }

    fn ack_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.def.ack_timeout_ms))
    }

    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    pub fn scheduled_count(&self) -> usize {
        self.scheduled.len()
    }

    /// Puts a message back: ready (or delayed), or dead-lettered once it
    /// has been delivered `max_deliveries` times.
    fn requeue(&mut self, message: Message, delay: Duration, now: Instant) {
        if message.deliveries >= self.def.max_deliveries {
            self.dead.push((message, DeadReason::MaxDeliveries));
        } else if delay.is_zero() {
            self.ready.push_front(message);
        } else {
            self.next_seq += 1;
            self.delayed.insert((now + delay, self.next_seq), message);
        }
    }

    fn take_in_flight(&mut self, delivery_id: u64) -> Option<InFlight> {
        let entry = self.in_flight.remove(&delivery_id)?;
        self.deadlines.remove(&(entry.deadline, delivery_id));
        if let Some(consumer) = self.consumers.get_mut(&entry.consumer) {
            consumer.in_flight = consumer.in_flight.saturating_sub(1);
        }
        Some(entry)
    }

    pub fn ack(&mut self, ids: &[u64]) -> Settle {
        let mut outcome = Settle::default();
        for id in ids {
            match self.take_in_flight(*id) {
                Some(entry) => {
                    let (p, o) = (entry.message.partition, entry.message.offset);
                    if self.settled[p as usize].insert(o) {
                        self.acked += 1;
                        outcome.acked.push((p, o));
                    }
                }
                None => outcome.unknown += 1,
            }
        }
        outcome
    }

    pub fn nack(&mut self, ids: &[u64], requeue: bool, delay: Duration, now: Instant) -> usize {
        let mut unknown = 0;
        for id in ids {
            match self.take_in_flight(*id) {
                Some(entry) if requeue => self.requeue(entry.message, delay, now),
                Some(entry) => self.dead.push((entry.message, DeadReason::Rejected)),
                None => unknown += 1,
            }
        }
        unknown
    }

    pub fn in_progress(&mut self, ids: &[u64], now: Instant) -> usize {
        let timeout = self.ack_timeout();
        let mut unknown = 0;
        for id in ids {
            match self.in_flight.get_mut(id) {
                Some(entry) => {
                    self.deadlines.remove(&(entry.deadline, *id));
                    entry.deadline = now + timeout;
                    self.deadlines.insert((entry.deadline, *id));
                }
                None => unknown += 1,
            }
        }
        unknown
    }

    pub fn unsubscribe(&mut self, consumer: u64, now: Instant) {
        self.consumers.remove(&consumer);
        let mine: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, e)| e.consumer == consumer)
            .map(|(id, _)| *id)
            .collect();
        for id in mine {
            if let Some(entry) = self.take_in_flight(id) {
                self.requeue(entry.message, Duration::ZERO, now);
            }
        }
    }

    /// Releases what is due.
    fn release_due(&mut self, logs: &[Log], now: Instant, now_ms: i64) {
        while let Some(&(deadline, id)) = self.deadlines.iter().next() {
            if deadline > now {
                break;
            }
            if let Some(entry) = self.take_in_flight(id) {
                tracing::debug!(queue = %self.def.name, offset = entry.message.offset, "ack timeout: redelivering");
                self.requeue(entry.message, Duration::ZERO, now);
            }
        }
        while let Some((&(at, seq), _)) = self.delayed.iter().next() {
            if at > now {
                break;
            }
            if let Some(message) = self.delayed.remove(&(at, seq)) {
                self.ready.push_back(message);
            }
        }
        // Scheduled messages that are due, a bounded number per step, re-read
        // with one sequential pass per partition.
        let mut due: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        let mut taken = 0;
        while let Some(&(at_ms, partition, offset)) = self.scheduled.iter().next() {
            if at_ms > now_ms || taken == RELEASE_PER_STEP {
                break;
            }
            self.scheduled.remove(&(at_ms, partition, offset));
            if !self.settled[partition as usize].contains(offset) {
                due.entry(partition).or_default().insert(offset);
                taken += 1;
            }
        }
        for (partition, offsets) in due {
            let cache = &mut self.batch_cache[partition as usize];
            for record in read_records(&logs[partition as usize], &offsets, cache) {
                self.ready.push_back(Message {
                    partition,
                    offset: record.offset,
                    deliveries: 0,
                    record,
                });
            }
        }
    }

    /// When the earliest deadline, delayed requeue or scheduled delivery is due.
    fn next_timer(&self, now: Instant, now_ms: i64) -> Option<Instant> {
        let next_deadline = self.deadlines.iter().next().map(|(at, _)| *at);
        let next_delayed = self.delayed.keys().next().map(|(at, _)| *at);
        let next_scheduled = self.scheduled.iter().next().map(|(at_ms, _, _)| {
            now + Duration::from_millis(at_ms.saturating_sub(now_ms).max(0) as u64)
        });
        [next_deadline, next_delayed, next_scheduled]
            .into_iter()
            .flatten()
            .min()
    }

    /// Reads ahead from the partitions while there is room.
    fn refill(&mut self, logs: &[Log], now_ms: i64) {
        let partitions = logs.len();
        let mut idle = 0;
        let mut p = 0;
        while self.ready.len() < READY_LIMIT
            && self.in_flight.len() + self.ready.len() + self.delayed.len() < IN_FLIGHT_LIMIT
            && self.scheduled.len() < SCHEDULED_LIMIT
            && idle < partitions
        {
            if self.read_some(&logs[p], p as u32, now_ms) {
                idle = 0;
            } else {
                idle += 1;
            }
            p = (p + 1) % partitions;
        }
    }

    /// One read from a partition; false when nothing new was there.
    fn read_some(&mut self, log: &Log, partition: u32, now_ms: i64) -> bool {
        let index = partition as usize;
        let start = log.start_offset();
        if self.read_position[index] < start {
            let lost = start - self.read_position[index];
            tracing::warn!(queue = %self.def.name, partition, lost, "messages expired by retention before being acked");
            self.settled[index].skip_to(start);
            self.read_position[index] = start;
        }
        let position = self.read_position[index];
        if position >= log.end_offset() {
            return false;
        }
        let Ok(read) = log.read(position, REFILL_READ_BYTES) else {
            return false;
        };
        for item in BatchIter::new(read.data, BATCH_BYTES_LIMIT) {
            let Ok((header, bytes)) = item else { break };
            for record in RecordIter::new(bytes, header).flatten() {
                if record.offset < position || self.settled[index].contains(record.offset) {
                    continue;
                }
                match deliver_at(&record) {
                    Some(at) if at > now_ms => {
                        self.scheduled.insert((at, partition, record.offset));
                    }
                    _ => self.ready.push_back(Message {
                        partition,
                        offset: record.offset,
                        deliveries: 0,
                        record,
                    }),
                }
            }
        }
        self.read_position[index] = read.next_offset.max(position + 1).min(log.end_offset());
        true
    }

    /// Hands ready messages to consumers with credit, round robin.
    fn dispatch(&mut self, now: Instant, subscription_topic: &str) {
        let mut batches: BTreeMap<u64, Vec<Delivery>> = BTreeMap::new();
        while !self.ready.is_empty() {
            let Some(consumer_id) = self.next_consumer_with_credit() else {
                break;
            };
            let Some(mut message) = self.ready.pop_front() else {
                break;
            };
            if self.settled[message.partition as usize].contains(message.offset) {
                continue;
            }
            message.deliveries += 1;
            let delivery_id = self.next_delivery_id;
            self.next_delivery_id += 1;
            let deadline = now + self.ack_timeout();
            batches
                .entry(consumer_id)
                .or_default()
                .push(to_delivery(delivery_id, &message));
            if let Some(consumer) = self.consumers.get_mut(&consumer_id) {
                consumer.in_flight += 1;
                consumer.delivered += 1;
            }
            self.deadlines.insert((deadline, delivery_id));
            self.in_flight.insert(
                delivery_id,
                InFlight {
                    message,
                    consumer: consumer_id,
                    deadline,
                },
            );
            self.last_consumer = consumer_id;
        }
        for (consumer_id, deliveries) in batches {
            let Some(consumer) = self.consumers.get(&consumer_id) else {
                continue;
            };
            let mut gone = false;
            for chunk in deliveries.chunks(DELIVERIES_PER_FRAME) {
                let frame = deliver_frame(
                    consumer_id,
                    subscription_topic,
                    &self.def.name,
                    chunk.to_vec(),
                );
                gone |= consumer.push.send(frame).is_err();
            }
            if gone {
                self.unsubscribe(consumer_id, now);
            }
        }
    }

    fn next_consumer_with_credit(&self) -> Option<u64> {
        let has_credit = |(_, c): &(&u64, &Consumer)| c.in_flight < c.prefetch;
        self.consumers
            .range(self.last_consumer + 1..)
            .find(has_credit)
            .or_else(|| self.consumers.range(..=self.last_consumer).find(has_credit))
            .map(|(id, _)| *id)
    }

    /// One driver step. Returns the next timer.
    pub fn step(&mut self, logs: &[Log]) -> Option<Instant> {
        let now = Instant::now();
        let now_ms = ferry_storage::now_ms() as i64;
        self.release_due(logs, now, now_ms);
        self.refill(logs, now_ms);
        let topic = self.def.topic.clone();
        self.dispatch(now, &topic);
        self.next_timer(now, now_ms)
    }

    /// Backlog: unsettled messages not in flight (scheduled ones included).
    pub fn ready_count(&self, logs: &[Log]) -> u64 {
        let unsettled: u64 = logs
            .iter()
            .zip(&self.settled)
            .map(|(log, s)| {
                log.end_offset()
                    .saturating_sub(s.cursor.max(log.start_offset()))
                    .saturating_sub(s.above_count())
            })
            .sum();
        unsettled.saturating_sub(self.in_flight.len() as u64)
    }
}

/// The scheduled delivery time of a record, if it has one.
pub fn deliver_at(record: &Record) -> Option<i64> {
    let value = record.header(DELIVER_AT_HEADER)?;
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// Re-reads the records at `offsets` (sorted): batch by batch, each batch
/// read once (the last one is kept in `cache` for the next call).
pub fn read_records(
    log: &Log,
    offsets: &BTreeSet<u64>,
    cache: &mut Option<(BatchHeader, Bytes)>,
) -> Vec<Record> {
    let mut found = Vec::with_capacity(offsets.len());
    let mut next = offsets.first().copied();
    while let Some(offset) = next {
        let cached = cache
            .as_ref()
            .filter(|(h, _)| h.base_offset <= offset && offset <= h.last_offset())
            .cloned();
        let (header, bytes) = match cached {
            Some(batch) => batch,
            None => {
                // max_bytes 1: exactly the batch holding `offset`.
                let Ok(read) = log.read(offset, 1) else { break };
                let Some(Ok(batch)) = BatchIter::new(read.data, BATCH_BYTES_LIMIT).next() else {
                    break;
                };
                *cache = Some(batch.clone());
                batch
            }
        };
        let mut records = RecordIter::new(bytes, header);
        for wanted in offsets.range(offset..=header.last_offset()) {
            if records.seek(*wanted).is_err() {
                break;
            }
            match records.next() {
                Some(Ok(record)) if record.offset == *wanted => found.push(record),
                _ => break,
            }
        }
        next = offsets.range(header.last_offset() + 1..).next().copied();
    }
    found
}

fn to_delivery(delivery_id: u64, message: &Message) -> Delivery {
    Delivery {
        delivery_id,
        partition: message.partition,
        offset: message.offset,
        delivery_count: message.deliveries,
        timestamp_ms: message.record.timestamp_ms,
        key: message.record.key.clone(),
        value: message.record.value.clone(),
        headers: message
            .record
            .headers
            .iter()
            .map(|h| DeliveryHeader {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
    }
}

fn deliver_frame(
    subscription_id: u64,
    topic: &str,
    queue: &str,
    deliveries: Vec<Delivery>,
) -> OutFrame {
    let header = FrameHeader {
        api_key: ApiKey::Deliver as u16,
        api_version: 1,
        correlation_id: 0,
        flags: FLAG_PUSH,
    };
    let batch = DeliverBatch {
        subscription_id,
        topic: topic.to_string(),
        queue: queue.to_string(),
        deliveries,
    };
    encode_frame(header, &batch, None)
}

/// A queue: its state and what wakes its driver.
pub struct Queue {
    pub state: Mutex<State>,
    pub logs: Vec<Log>,
    pub wake: Notify,
    pub stop: tokio_util::sync::CancellationToken,
}

impl Queue {
    pub fn new(state: State, logs: Vec<Log>) -> Arc<Queue> {
        Arc::new(Queue {
            state: Mutex::new(state),
            logs,
            wake: Notify::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    pub fn def(&self) -> QueueDef {
        self.state.lock().def.clone()
    }
}

/// Headers a dead-lettered record carries, besides its own.
pub fn dead_letter_headers(
    def: &QueueDef,
    message: &Message,
    reason: DeadReason,
) -> Vec<(String, Bytes)> {
    vec![
        ("x-ferry-dlq-topic".into(), Bytes::from(def.topic.clone())),
        ("x-ferry-dlq-queue".into(), Bytes::from(def.name.clone())),
        (
            "x-ferry-dlq-partition".into(),
            Bytes::from(message.partition.to_string()),
        ),
        (
            "x-ferry-dlq-offset".into(),
            Bytes::from(message.offset.to_string()),
        ),
        (
            "x-ferry-dlq-delivery-count".into(),
            Bytes::from(message.deliveries.to_string()),
        ),
        ("x-ferry-dlq-reason".into(), Bytes::from(reason.as_str())),
    ]
}
