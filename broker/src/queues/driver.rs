//! The task that runs one queue: it steps the state machine, hands each
//! step's deliveries to the subscribers' sinks, writes dead letters, and
//! sleeps until the next timer, new durable data in the topic, or a settle
//! or subscribe wakes it: no task or timer per message. It holds narrow
//! handles (the topic registry, the queue registry, a shutdown token), not
//! the whole broker.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::{
    validate_batch, BatchBuilder, NewRecord, RecordHeader, BATCH_RECORDS_LIMIT,
    RECORD_HEADERS_LIMIT,
};
use ferry_storage::Isolation;
use tokio_util::sync::CancellationToken;

use super::queue::{
    dead_letter_headers, DeadReason, Handed, Message, Queue, DEAD_LETTER_HEADER_PREFIX,
};
use super::Queues;
use crate::error::{BrokerError, Result};
use crate::topics::{Topic, TopicSettings, Topics};

/// What a queue's driver may touch.
#[derive(Clone)]
pub struct Handles {
    pub topics: Arc<Topics>,
    pub queues: Arc<Queues>,
    pub shutdown: CancellationToken,
}

/// Wakes the driver whenever a partition's durable end (what the queue
/// reads up to) moves.
fn watch_appends(queue: &Arc<Queue>) {
    for log in &queue.logs {
        let mut end = log.watch_readable_end(Isolation::Durable);
        let watched = queue.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = end.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        watched.wake.notify_one();
                    }
                    _ = watched.stop.cancelled() => return,
                }
            }
        });
    }
}

/// Pushes each subscriber's deliveries. A gone subscriber is unsubscribed
/// (its deliveries go back to the queue), and deliveries a connection had
/// no room for go back to the queue until it has.
fn push(queue: &Arc<Queue>, deliveries: Vec<(u64, Vec<super::Delivered>)>) {
    let mut gone = Vec::new();
    for (subscription, batch) in deliveries {
        let sink = queue.sinks.lock().get(&subscription).cloned();
        let handed = match sink {
            Some(sink) => sink.deliver(subscription, queue, batch),
            None => Handed::Gone,
        };
        match handed {
            Handed::All => {}
            Handed::Partly { unsent } => queue.state.lock().return_unsent(subscription, &unsent),
            Handed::Gone => gone.push(subscription),
        }
    }
    for subscription in gone {
        queue.sinks.lock().remove(&subscription);
        let now = tokio::time::Instant::now();
        queue.state.lock().unsubscribe(subscription, now);
    }
}

/// Runs a queue until it is deleted or the broker stops.
pub async fn drive(handles: Handles, queue: Arc<Queue>) {
    watch_appends(&queue);
    let far = Duration::from_secs(3600);
    loop {
        let (step, dead, attempts) = {
            let mut state = queue.state.lock();
            let now_ms = ferry_storage::now_ms() as i64;
            let step = state.step(&queue.logs, tokio::time::Instant::now(), now_ms);
            (
                step,
                std::mem::take(&mut state.dead),
                state.take_pending_attempts(),
            )
        };
        // Before the redeliveries go out: a crash after this point counts them.
        handles.queues.record_attempts(&queue, attempts);
        push(&queue, step.deliveries);
        if !dead.is_empty() {
            if let Err(error) = dead_letter(&handles, &queue, &dead).await {
                tracing::error!(%error, "dead-lettering failed; retrying in a second (nothing is dropped)");
                queue.state.lock().dead.extend(dead);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = queue.stop.cancelled() => return,
                    _ = handles.shutdown.cancelled() => return,
                }
            }
            continue;
        }
        let wake_at = step
            .next_timer
            .unwrap_or_else(|| tokio::time::Instant::now() + far);
        if wake_at <= tokio::time::Instant::now() {
            // More is due right away: let connections run first.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = queue.wake.notified() => {}
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = queue.stop.cancelled() => return,
            _ = handles.shutdown.cancelled() => return,
        }
    }
}

/// The queue's dead-letter topic, created (one partition) on first use.
async fn dead_letter_topic(handles: &Handles, queue: &Queue) -> Result<Arc<Topic>> {
    let name = queue.def().dead_letter_topic;
    if let Ok(topic) = handles.topics.get(&name) {
        return Ok(topic);
    }
    let topics = handles.topics.clone();
    let settings = TopicSettings {
        partitions: Some(1),
        ..TopicSettings::default()
    };
    let created = tokio::task::spawn_blocking(move || match topics.create(&name, settings, 1) {
        Ok(topic) => Ok(topic),
        Err(BrokerError::TopicExists(_)) => topics.get(&name),
        Err(e) => Err(e),
    })
    .await??;
    tracing::info!(topic = %created.meta.name, "created dead-letter topic");
    Ok(created)
}

/// The dead-letter copy of `message`: its own headers, minus any earlier
/// `x-ferry-dlq-*` ones (a message dead-lettered twice carries one set, not
/// two), plus this queue's.
fn dead_letter_record(def: &super::QueueDef, message: &Message, reason: DeadReason) -> NewRecord {
    let mut headers: Vec<RecordHeader> = message
        .record
        .headers
        .iter()
        .filter(|h| !h.key.starts_with(DEAD_LETTER_HEADER_PREFIX))
        .cloned()
        .collect();
    headers.extend(
        dead_letter_headers(def, message, reason)
            .into_iter()
            .map(|(key, value)| RecordHeader {
                key,
                value: Some(value),
            }),
    );
    NewRecord {
        timestamp_ms: message.record.timestamp_ms,
        key: message.record.key.clone(),
        value: message.record.value.clone(),
        headers,
    }
}

/// The dead-letter copies as batches of at most `max_batch_bytes`. A
/// record that cannot be stored (too large for a batch of its own, or over
/// the header limit with the broker's headers added) is returned apart.
fn dead_letter_batches(
    records: Vec<NewRecord>,
    max_batch_bytes: usize,
) -> (Vec<Bytes>, Vec<NewRecord>) {
    let mut batches = Vec::new();
    let mut too_large = Vec::new();
    let mut builder = BatchBuilder::new();
    for record in records {
        let size = BatchBuilder::record_size_bytes(&record);
        let headers = record.headers.len() as u64;
        if BatchBuilder::new().size_bytes() + size > max_batch_bytes
            || headers > RECORD_HEADERS_LIMIT
        {
            too_large.push(record);
            continue;
        }
        let full = builder.size_bytes() + size > max_batch_bytes
            || builder.record_count() == BATCH_RECORDS_LIMIT;
        if full && !builder.is_empty() {
            batches.push(std::mem::replace(&mut builder, BatchBuilder::new()).finish());
        }
        builder.push(&record);
    }
    if !builder.is_empty() {
        batches.push(builder.finish());
    }
    (batches, too_large)
}

/// Copies each message to the dead-letter topic (durably), then settles it.
async fn dead_letter(
    handles: &Handles,
    queue: &Arc<Queue>,
    dead: &[(Message, DeadReason)],
) -> Result<()> {
    let def = queue.def();
    let topic = dead_letter_topic(handles, queue).await?;
    let log = topic.partition(0)?.clone();
    let max_batch_bytes = log.config().max_batch_bytes;
    let records = dead
        .iter()
        .map(|(message, reason)| dead_letter_record(&def, message, *reason))
        .collect();
    let (batches, too_large) = dead_letter_batches(records, max_batch_bytes);
    if !too_large.is_empty() {
        tracing::error!(queue = %def.name, count = too_large.len(), max_batch_bytes, "messages too large to copy to the dead-letter topic are settled without a copy");
    }
    let mut last_offset = None;
    for batch in &batches {
        validate_batch(batch, max_batch_bytes)?;
        last_offset = Some(log.append(batch)?.last_offset);
    }
    if let Some(last) = last_offset {
        log.wait_durable(last + 1).await?;
    }
    let settled: Vec<(u32, u64)> = dead.iter().map(|(m, _)| (m.partition, m.offset)).collect();
    handles.queues.settle_dead(queue, &settled)?.await?;
    for (message, reason) in dead {
        tracing::info!(
            queue = %def.name,
            partition = message.partition,
            offset = message.offset,
            deliveries = message.deliveries,
            reason = reason.as_str(),
            "message dead-lettered"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value_bytes: usize, headers: usize) -> NewRecord {
        NewRecord {
            timestamp_ms: 1,
            key: None,
            value: Some(Bytes::from(vec![7u8; value_bytes])),
            headers: (0..headers)
                .map(|i| RecordHeader {
                    key: format!("{DEAD_LETTER_HEADER_PREFIX}reason{i}"),
                    value: None,
                })
                .collect(),
        }
    }

    #[test]
    fn dead_letter_batches_stay_under_the_batch_limit() {
        let limit = 1024 * 1024;
        let records = (0..60).map(|_| record(200 * 1024, 0)).collect();
        let (batches, too_large) = dead_letter_batches(records, limit);
        assert!(too_large.is_empty());
        assert!(batches.len() >= 12, "60 x 200 KB in 1 MiB batches");
        let mut count = 0;
        for batch in &batches {
            assert!(batch.len() <= limit);
            count += validate_batch(batch, limit).unwrap().record_count;
        }
        assert_eq!(count, 60);
        let (batches, too_large) = dead_letter_batches(vec![record(2 * limit, 0)], limit);
        assert!(batches.is_empty());
        assert_eq!(too_large.len(), 1);
        let crowded = record(10, RECORD_HEADERS_LIMIT as usize + 1);
        assert_eq!(dead_letter_batches(vec![crowded], limit).1.len(), 1);
    }
}
