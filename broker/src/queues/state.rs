//! One queue's state machine: which messages are ready, in flight,
//! delayed or scheduled, who subscribes and how much credit each has, and
//! what is settled. Driven by method calls that carry the time
//! ([`State::step`], ack, nack, ...) and answering with what to do
//! ([`Step`]: deliveries per subscriber, the next timer); the driver in
//! `driver.rs` does the pushing, sleeping and dead-letter writing.
//!
//! Memory is bounded: at most `READY_LIMIT` read-ahead messages,
//! `IN_FLIGHT_LIMIT` unacknowledged ones and `SCHEDULED_LIMIT` scheduled
//! entries (24 bytes each, the record is re-read when due). Past a bound
//! the queue stops reading the log until room frees up.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::{BatchHeader, BatchIter, Record, RecordIter, BATCH_BYTES_LIMIT};
use ferry_storage::Log;
use tokio::time::Instant;

use super::queue::{DeadReason, Message, QueueDef, DELIVER_AT_HEADER};
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

struct InFlight {
    message: Message,
    consumer: u64,
    deadline: Instant,
}

/// A subscription's credit and counts (where its deliveries go is the
/// driver's business).
#[derive(Debug, Clone, Default)]
pub struct Subscriber {
    pub prefetch: u32,
    pub in_flight: u32,
    pub delivered: u64,
}

/// A message handed to a subscriber by [`State::step`].
#[derive(Debug, Clone)]
pub struct Delivered {
    pub delivery_id: u64,
    pub partition: u32,
    pub offset: u64,
    /// 1 on the first delivery.
    pub delivery_count: u32,
    pub record: Record,
}

/// What one driver step decided.
#[derive(Debug, Default)]
pub struct Step {
    /// Deliveries per subscription, to push now.
    pub deliveries: Vec<(u64, Vec<Delivered>)>,
    /// When the next timer (ack deadline, delay, schedule) is due.
    pub next_timer: Option<Instant>,
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
    pub consumers: BTreeMap<u64, Subscriber>,
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
                    assert!(self.settled[p as usize].contains(o), "settled only grows");
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
    fn dispatch(&mut self, now: Instant) -> Vec<(u64, Vec<Delivered>)> {
        let mut batches: BTreeMap<u64, Vec<Delivered>> = BTreeMap::new();
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
                .push(delivered(delivery_id, &message));
            if let Some(consumer) = self.consumers.get_mut(&consumer_id) {
                consumer.in_flight += 1;
                consumer.delivered += 1;
            }
            self.deadlines.insert((deadline, delivery_id));
            let previous = self.in_flight.insert(
                delivery_id,
                InFlight {
                    message,
                    consumer: consumer_id,
                    deadline,
                },
            );
            debug_assert!(previous.is_none(), "delivery ids are never reused");
            self.last_consumer = consumer_id;
        }
        batches.into_iter().collect()
    }

    fn next_consumer_with_credit(&self) -> Option<u64> {
        let has_credit = |(_, c): &(&u64, &Subscriber)| c.in_flight < c.prefetch;
        self.consumers
            .range(self.last_consumer + 1..)
            .find(has_credit)
            .or_else(|| self.consumers.range(..=self.last_consumer).find(has_credit))
            .map(|(id, _)| *id)
    }

    /// One driver step at `now` (`now_ms`: wall clock, for scheduled
    /// deliveries): release what is due, read ahead, hand out deliveries.
    pub fn step(&mut self, logs: &[Log], now: Instant, now_ms: i64) -> Step {
        self.release_due(logs, now, now_ms);
        self.refill(logs, now_ms);
        let deliveries = self.dispatch(now);
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        Step {
            deliveries,
            next_timer: self.next_timer(now, now_ms),
        }
    }

    /// A delivery is in flight to exactly one subscriber, which counts it;
    /// a message is in flight at most once and never once settled; every
    /// deadline names a delivery in flight. Cost: one pass over the
    /// in-flight deliveries (checked after every step in debug builds).
    pub fn check_invariants(&self) {
        let mut per_consumer: BTreeMap<u64, u32> = BTreeMap::new();
        let mut messages = BTreeSet::new();
        for (id, entry) in &self.in_flight {
            *per_consumer.entry(entry.consumer).or_default() += 1;
            assert!(self.deadlines.contains(&(entry.deadline, *id)));
            let (p, o) = (entry.message.partition, entry.message.offset);
            assert!(messages.insert((p, o)), "{p}/{o} in flight twice");
            assert!(
                !self.settled[p as usize].contains(o),
                "{p}/{o} settled yet in flight"
            );
        }
        assert_eq!(self.deadlines.len(), self.in_flight.len());
        for (id, consumer) in &self.consumers {
            let counted = per_consumer.get(id).copied().unwrap_or(0);
            assert_eq!(
                consumer.in_flight, counted,
                "subscriber {id} in-flight count"
            );
        }
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

fn delivered(delivery_id: u64, message: &Message) -> Delivered {
    Delivered {
        delivery_id,
        partition: message.partition,
        offset: message.offset,
        delivery_count: message.deliveries,
        record: message.record.clone(),
    }
}

#[cfg(test)]
mod tests;
