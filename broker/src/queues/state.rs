//! One queue's state machine: which messages are ready, in flight,
//! delayed or scheduled, who subscribes and how much credit each has, and
//! what is settled. Driven by method calls that carry the time
//! ([`State::step`], ack, nack, ...) and answering with what to do
//! ([`Step`]: deliveries per subscriber, the next timer); the driver in
//! `driver.rs` does the pushing, sleeping and dead-letter writing.
//!
//! A queue reads its partitions only up to their durable end
//! ([`Isolation::Durable`]): it never hands out a record a power loss could
//! take back.
//!
//! Memory is bounded: at most `READY_LIMIT` read-ahead messages,
//! `IN_FLIGHT_LIMIT` unacknowledged ones and `SCHEDULED_LIMIT` scheduled
//! entries (24 bytes each, the record is re-read when due). Past a bound
//! the queue stops reading the log until room frees up.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::{BatchHeader, BatchIter, Record, RecordIter, BATCH_BYTES_LIMIT};
use ferry_storage::{Isolation, Log};
use tokio::time::Instant;

use super::queue::{DeadReason, Message, QueueDef, DELIVER_AT_HEADER};
use super::ranges::Settled;

/// Messages read ahead of delivery.
pub const READY_LIMIT: usize = 4096;
/// Bytes of messages read ahead of delivery (a single message larger than
/// this is still read, alone).
pub const READY_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// What one read-ahead message costs besides its key, value and headers.
const MESSAGE_OVERHEAD_BYTES: usize = 128;
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
    /// Set once the delivery is written to the consumer's socket: a
    /// delivery waiting in a send buffer has no ack deadline yet.
    deadline: Option<Instant>,
}

/// A subscription's credit and counts (where its deliveries go is the
/// driver's business).
#[derive(Debug, Clone, Default)]
pub struct Subscriber {
    pub prefetch: u32,
    pub in_flight: u32,
    pub delivered: u64,
    /// Its connection has no room for more pushed bytes: skipped by
    /// dispatch until [`State::resume`].
    pub blocked: bool,
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
    /// Delivery ids in flight per subscriber (so a subscriber that goes
    /// away costs its own deliveries, not a pass over all of them).
    by_consumer: HashMap<u64, BTreeSet<u64>>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// Bytes of the ready messages (record data plus a fixed overhead).
    ready_bytes: usize,
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
    /// Delivery counts recorded before the last restart, for messages not
    /// read back yet (taken out as each is read).
    prior_attempts: HashMap<(u32, u64), u32>,
    /// (partition, offset, deliveries) of messages that came back unacked
    /// since the driver last took them, for the ack log.
    pending_attempts: Vec<(u32, u64, u32)>,
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
            by_consumer: HashMap::new(),
            deadlines: BTreeSet::new(),
            ready_bytes: 0,
            consumers: BTreeMap::new(),
            next_delivery_id: 1,
            next_seq: 0,
            last_consumer: 0,
            dead: Vec::new(),
            acked,
            dead_lettered,
            prior_attempts: HashMap::new(),
            pending_attempts: Vec::new(),
        }
    }

    /// Delivery counts to record: messages that came back unacked (ack
    /// timeout, nack, a consumer gone) since the last call.
    pub fn take_pending_attempts(&mut self) -> Vec<(u32, u64, u32)> {
        std::mem::take(&mut self.pending_attempts)
    }

    /// Starts from the delivery counts recorded before a restart.
    pub fn with_attempts(mut self, attempts: &super::acks::Attempts) -> State {
        for (p, offsets) in attempts {
            for (offset, count) in offsets {
                self.prior_attempts.insert((*p, *offset), *count);
            }
        }
        self
    }

    /// Every unsettled message's delivery count (for a snapshot).
    pub fn attempts(&self) -> super::acks::Attempts {
        let mut all = super::acks::Attempts::new();
        let mut note = |p: u32, o: u64, n: u32| {
            if n > 0 {
                all.entry(p).or_default().insert(o, n);
            }
        };
        for (&(p, o), &n) in &self.prior_attempts {
            note(p, o, n);
        }
        let held = self.ready.iter().chain(self.delayed.values());
        for m in held.chain(self.in_flight.values().map(|e| &e.message)) {
            note(m.partition, m.offset, m.deliveries);
        }
        all
    }

    /// A message read from the log: its recorded delivery count, and
    /// dead-lettered at once if that count is already spent (delivered
    /// `max_deliveries` times before a crash). False when it was.
    fn read_message(&mut self, partition: u32, record: Record) -> Option<Message> {
        let deliveries = self
            .prior_attempts
            .remove(&(partition, record.offset))
            .unwrap_or(0);
        let message = Message {
            partition,
            offset: record.offset,
            deliveries,
            record,
        };
        if deliveries >= self.def.max_deliveries {
            self.dead.push((message, DeadReason::MaxDeliveries));
            return None;
        }
        Some(message)
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
        let attempt = (message.partition, message.offset, message.deliveries);
        if message.deliveries >= self.def.max_deliveries {
            self.dead.push((message, DeadReason::MaxDeliveries));
        } else if delay.is_zero() {
            self.pending_attempts.push(attempt);
            self.push_ready_front(message);
        } else {
            self.pending_attempts.push(attempt);
            self.next_seq += 1;
            self.delayed.insert((now + delay, self.next_seq), message);
        }
    }

    fn take_in_flight(&mut self, delivery_id: u64) -> Option<InFlight> {
        let entry = self.in_flight.remove(&delivery_id)?;
        if let Some(deadline) = entry.deadline {
            self.deadlines.remove(&(deadline, delivery_id));
        }
        if let Some(ids) = self.by_consumer.get_mut(&entry.consumer) {
            ids.remove(&delivery_id);
            if ids.is_empty() {
                self.by_consumer.remove(&entry.consumer);
            }
        }
        if let Some(consumer) = self.consumers.get_mut(&entry.consumer) {
            consumer.in_flight = consumer.in_flight.saturating_sub(1);
        }
        Some(entry)
    }

    /// Deliveries written to their consumer at `now`: their ack deadlines
    /// start. Ids no longer in flight (acked already) are skipped.
    pub fn written(&mut self, ids: &[u64], now: Instant) {
        let deadline = now + self.ack_timeout();
        for id in ids {
            if let Some(entry) = self.in_flight.get_mut(id) {
                if entry.deadline.is_none() {
                    entry.deadline = Some(deadline);
                    self.deadlines.insert((deadline, *id));
                }
            }
        }
    }

    /// Deliveries the consumer's connection had no room for: they go back
    /// to the front of the queue, uncounted (they were never sent), and the
    /// subscriber is skipped until [`State::resume`].
    pub fn return_unsent(&mut self, consumer: u64, ids: &[u64]) {
        for id in ids.iter().rev() {
            if let Some(mut entry) = self.take_in_flight(*id) {
                entry.message.deliveries = entry.message.deliveries.saturating_sub(1);
                if let Some(subscriber) = self.consumers.get_mut(&consumer) {
                    subscriber.delivered = subscriber.delivered.saturating_sub(1);
                }
                self.push_ready_front(entry.message);
            }
        }
        if let Some(subscriber) = self.consumers.get_mut(&consumer) {
            subscriber.blocked = true;
        }
    }

    /// The subscriber's connection has room again.
    pub fn resume(&mut self, consumer: u64) {
        if let Some(subscriber) = self.consumers.get_mut(&consumer) {
            subscriber.blocked = false;
        }
    }

    fn push_ready_front(&mut self, message: Message) {
        self.ready_bytes += message_bytes(&message);
        self.ready.push_front(message);
    }

    fn push_ready_back(&mut self, message: Message) {
        self.ready_bytes += message_bytes(&message);
        self.ready.push_back(message);
    }

    fn pop_ready(&mut self) -> Option<Message> {
        let message = self.ready.pop_front()?;
        self.ready_bytes = self.ready_bytes.saturating_sub(message_bytes(&message));
        Some(message)
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
                    if let Some(deadline) = entry.deadline {
                        self.deadlines.remove(&(deadline, *id));
                    }
                    entry.deadline = Some(now + timeout);
                    self.deadlines.insert((now + timeout, *id));
                }
                None => unknown += 1,
            }
        }
        unknown
    }

    pub fn unsubscribe(&mut self, consumer: u64, now: Instant) {
        self.consumers.remove(&consumer);
        let mine = self.by_consumer.remove(&consumer).unwrap_or_default();
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
                self.push_ready_back(message);
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
                if let Some(message) = self.read_message(partition, record) {
                    self.push_ready_back(message);
                }
            }
        }
    }

    /// When the earliest deadline, delayed requeue or scheduled delivery is due.
    fn next_timer(&self, now: Instant, now_ms: i64) -> Option<Instant> {
        // A delivery not yet written gets its deadline one ack timeout after
        // it is, so no earlier than now + ack_timeout: wake then to look.
        let unwritten = self.in_flight.len() > self.deadlines.len();
        let first_unwritten = unwritten.then(|| now + self.ack_timeout());
        let next_deadline = self.deadlines.iter().next().map(|(at, _)| *at);
        let next_delayed = self.delayed.keys().next().map(|(at, _)| *at);
        let next_scheduled = self.scheduled.iter().next().map(|(at_ms, _, _)| {
            now + Duration::from_millis(at_ms.saturating_sub(now_ms).max(0) as u64)
        });
        [next_deadline, first_unwritten, next_delayed, next_scheduled]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether read-ahead is at one of its bounds (messages, bytes,
    /// unsettled messages held, scheduled entries).
    fn read_ahead_full(&self) -> bool {
        self.ready.len() >= READY_LIMIT
            || self.ready_bytes >= READY_BYTES_LIMIT
            || self.in_flight.len() + self.ready.len() + self.delayed.len() >= IN_FLIGHT_LIMIT
            || self.scheduled.len() >= SCHEDULED_LIMIT
    }

    /// Reads ahead from the partitions while there is room.
    fn refill(&mut self, logs: &[Log], now_ms: i64) {
        let partitions = logs.len();
        let mut idle = 0;
        let mut p = 0;
        while !self.read_ahead_full() && idle < partitions {
            if self.read_some(&logs[p], p as u32, now_ms) {
                idle = 0;
            } else {
                idle += 1;
            }
            p = (p + 1) % partitions;
        }
    }

    /// One read from a partition; false when nothing new was there. Stops
    /// inside a batch when read-ahead is full (a batch may hold a million
    /// records): the next read resumes at the first record not taken.
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
        let readable_end = log.readable_end(Isolation::Durable);
        if position >= readable_end {
            return false;
        }
        let Ok(read) = log.read_isolated(position, REFILL_READ_BYTES, Isolation::Durable) else {
            return false;
        };
        let mut next = read.next_offset.max(position + 1).min(readable_end);
        'batches: for item in BatchIter::new(read.data, BATCH_BYTES_LIMIT) {
            let Ok((header, bytes)) = item else { break };
            let mut records = RecordIter::new(bytes, header);
            if position > header.base_offset && records.seek(position).is_err() {
                break;
            }
            for record in records.flatten() {
                if record.offset < position || self.settled[index].contains(record.offset) {
                    continue;
                }
                if self.read_ahead_full() {
                    next = record.offset;
                    break 'batches;
                }
                self.take_read(partition, record, now_ms);
            }
        }
        debug_assert!(next >= position);
        self.read_position[index] = next;
        next > position
    }

    /// A record read ahead: scheduled for later, or ready now.
    fn take_read(&mut self, partition: u32, record: Record, now_ms: i64) {
        match deliver_at(&record) {
            Some(at) if at > now_ms => {
                self.scheduled.insert((at, partition, record.offset));
            }
            _ => {
                if let Some(message) = self.read_message(partition, record) {
                    self.push_ready_back(message);
                }
            }
        }
    }

    /// Hands ready messages to consumers with credit, round robin.
    fn dispatch(&mut self) -> Vec<(u64, Vec<Delivered>)> {
        let mut batches: BTreeMap<u64, Vec<Delivered>> = BTreeMap::new();
        while !self.ready.is_empty() {
            let Some(consumer_id) = self.next_consumer_with_credit() else {
                break;
            };
            let Some(mut message) = self.pop_ready() else {
                break;
            };
            if self.settled[message.partition as usize].contains(message.offset) {
                continue;
            }
            message.deliveries += 1;
            let delivery_id = self.next_delivery_id;
            self.next_delivery_id += 1;
            batches
                .entry(consumer_id)
                .or_default()
                .push(delivered(delivery_id, &message));
            if let Some(consumer) = self.consumers.get_mut(&consumer_id) {
                consumer.in_flight += 1;
                consumer.delivered += 1;
            }
            self.by_consumer
                .entry(consumer_id)
                .or_default()
                .insert(delivery_id);
            let previous = self.in_flight.insert(
                delivery_id,
                InFlight {
                    message,
                    consumer: consumer_id,
                    deadline: None,
                },
            );
            debug_assert!(previous.is_none(), "delivery ids are never reused");
            self.last_consumer = consumer_id;
        }
        batches.into_iter().collect()
    }

    fn next_consumer_with_credit(&self) -> Option<u64> {
        let has_credit = |(_, c): &(&u64, &Subscriber)| c.in_flight < c.prefetch && !c.blocked;
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
        let deliveries = self.dispatch();
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
            if let Some(deadline) = entry.deadline {
                assert!(self.deadlines.contains(&(deadline, *id)));
            }
            let listed = self.by_consumer.get(&entry.consumer);
            assert!(
                listed.is_some_and(|ids| ids.contains(id)),
                "delivery {id} indexed"
            );
            let (p, o) = (entry.message.partition, entry.message.offset);
            assert!(messages.insert((p, o)), "{p}/{o} in flight twice");
            assert!(
                !self.settled[p as usize].contains(o),
                "{p}/{o} settled yet in flight"
            );
        }
        let timed = self
            .in_flight
            .values()
            .filter(|e| e.deadline.is_some())
            .count();
        assert_eq!(self.deadlines.len(), timed);
        let indexed: usize = self.by_consumer.values().map(BTreeSet::len).sum();
        assert_eq!(indexed, self.in_flight.len());
        for (id, consumer) in &self.consumers {
            let counted = per_consumer.get(id).copied().unwrap_or(0);
            assert_eq!(
                consumer.in_flight, counted,
                "subscriber {id} in-flight count"
            );
        }
    }

    /// Backlog: unsettled durable messages not in flight (scheduled ones
    /// included).
    pub fn ready_count(&self, logs: &[Log]) -> u64 {
        let unsettled: u64 = logs
            .iter()
            .zip(&self.settled)
            .map(|(log, s)| {
                log.readable_end(Isolation::Durable)
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

/// What a read-ahead message counts against `READY_BYTES_LIMIT`.
fn message_bytes(message: &Message) -> usize {
    let record = &message.record;
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
        .sum();
    MESSAGE_OVERHEAD_BYTES
        + record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + headers
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

mod peek;
#[cfg(test)]
mod tests;
