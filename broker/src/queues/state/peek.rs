//! Peeking at a queue: the ready messages a consumer would get next,
//! without delivering, settling or moving anything (RabbitMQ's management
//! "get messages" with requeue, minus the requeue). First the messages read
//! ahead in delivery order, then the log past the read-ahead, partition by
//! partition, skipping settled and not-yet-due scheduled messages.

use ferry_protocol::batch::{BatchIter, RecordIter, BATCH_BYTES_LIMIT};
use ferry_storage::{Isolation, Log};

use super::{deliver_at, State};
use crate::queues::queue::Message;

/// Most messages one peek returns.
pub const PEEK_MESSAGES_LIMIT: u32 = 1000;
/// Most record bytes (keys, values, headers) one peek returns; the message
/// that crosses it is the last.
pub const PEEK_BYTES_LIMIT: usize = 4 * 1024 * 1024;
/// Bytes read from a log per read while peeking past the read-ahead.
const PEEK_READ_BYTES: usize = 1024 * 1024;
/// Most log reads one peek makes (a log of settled messages could
/// otherwise be walked to its end).
const PEEK_READS_LIMIT: usize = 64;

impl State {
    /// Up to `max_messages` ready messages, in the order they would be
    /// delivered from the read-ahead, then from the logs. Changes nothing.
    pub fn peek(&self, logs: &[Log], max_messages: u32, now_ms: i64) -> Vec<Message> {
        let wanted = max_messages.min(PEEK_MESSAGES_LIMIT) as usize;
        let mut found: Vec<Message> = Vec::with_capacity(wanted.min(64));
        let mut bytes = 0;
        for message in &self.ready {
            if found.len() == wanted || bytes >= PEEK_BYTES_LIMIT {
                return found;
            }
            if !self.settled[message.partition as usize].contains(message.offset) {
                bytes += record_bytes(message);
                found.push(message.clone());
            }
        }
        let mut reads = 0;
        for (index, log) in logs.iter().enumerate() {
            let mut position = self.read_position[index].max(log.start_offset());
            let end = log.readable_end(Isolation::Durable);
            while position < end && found.len() < wanted && bytes < PEEK_BYTES_LIMIT {
                if reads == PEEK_READS_LIMIT {
                    return found;
                }
                reads += 1;
                let Ok(read) = log.read_isolated(position, PEEK_READ_BYTES, Isolation::Durable)
                else {
                    break;
                };
                let next = read.next_offset.max(position + 1).min(end);
                for item in BatchIter::new(read.data, BATCH_BYTES_LIMIT) {
                    let Ok((header, batch)) = item else { break };
                    for record in RecordIter::new(batch, header).flatten() {
                        let skip = record.offset < position
                            || record.offset >= end
                            || self.settled[index].contains(record.offset)
                            || deliver_at(&record).is_some_and(|at| at > now_ms);
                        if skip || found.len() == wanted || bytes >= PEEK_BYTES_LIMIT {
                            continue;
                        }
                        let deliveries = self.prior_attempts.get(&(index as u32, record.offset));
                        let message = Message {
                            partition: index as u32,
                            offset: record.offset,
                            deliveries: deliveries.copied().unwrap_or(0),
                            record,
                        };
                        bytes += record_bytes(&message);
                        found.push(message);
                    }
                }
                position = next;
            }
        }
        found
    }
}

/// The bytes a message's record carries.
fn record_bytes(message: &Message) -> usize {
    let record = &message.record;
    let header_bytes: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
        .sum();
    record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + header_bytes
}
