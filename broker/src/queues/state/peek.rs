//! Looking at a queue without changing it, and purging it. `peek`: the ready messages a
//! consumer would get next, without delivering, settling or moving
//! anything (first the messages read ahead, in delivery order, then the log
//! past the read-ahead, skipping settled and not-yet-due scheduled ones).
//! `scheduled_past_read_ahead`: the scheduled messages the read-ahead has
//! not reached, so that `describe` can count them apart from ready ones.
//! Both walk the log past the read-ahead with a bounded number of reads.
//! `purge`: drops every ready message (RabbitMQ's queue.purge), leaving
//! those in flight.

use std::collections::BTreeSet;

use ferry_protocol::batch::{BatchIter, Record, RecordIter, BATCH_BYTES_LIMIT};
use ferry_storage::{Isolation, Log};

use super::{deliver_at, State};
use crate::queues::queue::Message;

/// Most messages one peek returns.
pub const PEEK_MESSAGES_LIMIT: u32 = 1000;
/// Most record bytes (keys, values, headers) one peek returns; the message
/// that crosses it is the last.
pub const PEEK_BYTES_LIMIT: usize = 4 * 1024 * 1024;
/// Bytes read from a log per read past the read-ahead.
const SCAN_READ_BYTES: usize = 1024 * 1024;
/// Most log reads of one peek (a log of settled messages could otherwise
/// be walked to its end).
const PEEK_READS_LIMIT: usize = 64;
/// Most log reads of one count of scheduled messages (`describe`): past
/// them, scheduled messages further on count as ready.
pub const SCHEDULED_SCAN_READS_LIMIT: usize = 16;

impl State {
    /// Up to `max_messages` ready messages, in the order they would be
    /// delivered from the read-ahead, then from the logs. Changes nothing.
    pub fn peek(&self, logs: &[Log], max_messages: u32, now_ms: i64) -> Vec<Message> {
        let wanted = max_messages.min(PEEK_MESSAGES_LIMIT) as usize;
        let mut found: Vec<Message> = Vec::with_capacity(wanted.min(64));
        let mut bytes = 0;
        let full =
            |found: &Vec<Message>, bytes: usize| found.len() == wanted || bytes >= PEEK_BYTES_LIMIT;
        for message in &self.ready {
            if full(&found, bytes) {
                return found;
            }
            if !self.settled[message.partition as usize].contains(message.offset) {
                bytes += record_bytes(&message.record);
                found.push(message.clone());
            }
        }
        self.scan_past_read_ahead(logs, PEEK_READS_LIMIT, |partition, record| {
            if full(&found, bytes) {
                return false;
            }
            if deliver_at(&record).is_none_or(|at| at <= now_ms) {
                let deliveries = self.prior_attempts.get(&(partition, record.offset));
                bytes += record_bytes(&record);
                found.push(Message {
                    partition,
                    offset: record.offset,
                    deliveries: deliveries.copied().unwrap_or(0),
                    record,
                });
            }
            true
        });
        found
    }

    /// Unsettled messages past the read-ahead whose delivery time is still
    /// to come (up to `SCHEDULED_SCAN_READS_LIMIT` reads of the logs).
    pub fn scheduled_past_read_ahead(&self, logs: &[Log], now_ms: i64) -> u64 {
        let mut scheduled = 0;
        self.scan_past_read_ahead(logs, SCHEDULED_SCAN_READS_LIMIT, |_, record| {
            if deliver_at(&record).is_some_and(|at| at > now_ms) {
                scheduled += 1;
            }
            true
        });
        scheduled
    }

    /// Hands `visit` each unsettled durable record past the read-ahead,
    /// partition by partition, until it says stop or `reads_limit` reads
    /// were made.
    fn scan_past_read_ahead(
        &self,
        logs: &[Log],
        reads_limit: usize,
        mut visit: impl FnMut(u32, Record) -> bool,
    ) {
        let mut reads = 0;
        for (index, log) in logs.iter().enumerate() {
            let mut position = self.read_position[index].max(log.start_offset());
            let end = log.readable_end(Isolation::Durable);
            while position < end {
                if reads == reads_limit {
                    return;
                }
                reads += 1;
                let Ok(read) = log.read_isolated(position, SCAN_READ_BYTES, Isolation::Durable)
                else {
                    break;
                };
                let next = read.next_offset.max(position + 1).min(end);
                for item in BatchIter::new(read.data, BATCH_BYTES_LIMIT) {
                    let Ok((header, batch)) = item else { break };
                    for record in RecordIter::new(batch, header).flatten() {
                        let unsettled = (position..end).contains(&record.offset)
                            && !self.settled[index].contains(record.offset);
                        if unsettled && !visit(index as u32, record) {
                            return;
                        }
                    }
                }
                position = next;
            }
        }
    }
}

impl State {
    /// Drops every ready message: read ahead, delayed, scheduled, and
    /// those in the logs below `ends` (each partition's durable end now).
    /// Messages in flight stay. Answers, per partition, the offsets kept
    /// (for the ack log) and how many messages were purged.
    pub fn purge(&mut self, ends: &[u64]) -> (Vec<(u32, u64, Vec<u64>)>, u64) {
        assert_eq!(ends.len(), self.settled.len(), "one end per partition");
        let mut keep: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); ends.len()];
        for entry in self.in_flight.values() {
            keep[entry.message.partition as usize].insert(entry.message.offset);
        }
        self.ready.clear();
        self.ready_bytes = 0;
        self.delayed.clear();
        self.scheduled.clear();
        let mut purged = 0;
        let mut ops = Vec::with_capacity(ends.len());
        for (index, &end) in ends.iter().enumerate() {
            purged += self.settled[index].settle_below_except(end, &keep[index]);
            self.read_position[index] = self.read_position[index].max(end);
            let kept = &keep[index];
            let partition = index as u32;
            self.prior_attempts.retain(|&(p, offset), _| {
                p != partition || offset >= end || kept.contains(&offset)
            });
            ops.push((partition, end, kept.iter().copied().collect()));
        }
        let in_flight = &self.in_flight;
        self.pending_attempts.retain(|(p, offset, _)| {
            in_flight
                .values()
                .any(|e| e.message.partition == *p && e.message.offset == *offset)
        });
        (ops, purged)
    }
}

/// The bytes a record carries (key, value, headers).
fn record_bytes(record: &Record) -> usize {
    let header_bytes: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
        .sum();
    record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + header_bytes
}
