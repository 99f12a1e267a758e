//! Queues: named, durable subscriptions on a topic whose messages are
//! pushed to competing consumers and acknowledged one by one (RabbitMQ's
//! model on Ferry's logs). See `queue.rs` for the run-time state machine.
//!
//! Durable state:
//! - definitions in `<data>/meta/queues.meta` (checksummed, atomic);
//! - which messages are settled (acked or dead-lettered) in a [`StateLog`]
//!   (`<data>/internal/queue-acks/`): per partition a cursor below which
//!   everything is settled plus the settled ranges above it. An ack is
//!   answered only once its record is fsynced, so after a restart (or
//!   `kill -9`, or power loss) only unsettled messages are delivered again.
//!
//! Delivery is at-least-once: a message whose ack was not acknowledged may
//! be delivered again. Delivery counts live in memory and restart at 0 after
//! a broker restart.

pub mod queue;
pub mod ranges;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, NewRecord, RecordHeader};
use ferry_protocol::frame::OutFrame;
use ferry_protocol::messages::{
    CreateQueueRequest, DescribeQueueResponse, QueueConsumerInfo, TopicConfig,
};
use ferry_storage::vfs::Vfs;
use ferry_storage::Flusher;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::metafile::{self, Loaded};
use crate::statelog::{Durable, StateLog};
use crate::topics::{validate_topic_name, Topics};
use queue::{DeadReason, Message, Queue, QueueDef, State};
use ranges::Settled;

const QUEUES_FILE: &str = "queues.meta";
const QUEUES_MAGIC: &[u8; 8] = b"FQUE0001";
pub const QUEUES_LIMIT: usize = 10_000;
pub const DEFAULT_ACK_TIMEOUT_MS: u32 = 30_000;
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Compact the ack log past this size.
pub const ACK_SNAPSHOT_AFTER_BYTES: u64 = 64 * 1024 * 1024;

pub type QueueKey = (String, String);

fn key_string(topic: &str, name: &str) -> String {
    format!("{topic}/{name}")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum AckOp {
    Init {
        q: String,
        cursors: Vec<u64>,
    },
    Settle {
        q: String,
        p: u32,
        offsets: Vec<u64>,
        dead: bool,
    },
    Delete {
        q: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct QueueAcks {
    parts: Vec<Settled>,
    acked: u64,
    dead_lettered: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct AckState {
    queues: BTreeMap<String, QueueAcks>,
}

fn apply(state: &mut AckState, op: AckOp) {
    match op {
        AckOp::Init { q, cursors } => {
            state.queues.insert(
                q,
                QueueAcks {
                    parts: cursors.into_iter().map(Settled::starting_at).collect(),
                    ..QueueAcks::default()
                },
            );
        }
        AckOp::Settle {
            q,
            p,
            offsets,
            dead,
        } => {
            let Some(acks) = state.queues.get_mut(&q) else {
                return;
            };
            let Some(part) = acks.parts.get_mut(p as usize) else {
                return;
            };
            for offset in offsets {
                if part.insert(offset) {
                    if dead {
                        acks.dead_lettered += 1;
                    } else {
                        acks.acked += 1;
                    }
                }
            }
        }
        AckOp::Delete { q } => {
            state.queues.remove(&q);
        }
    }
}

pub struct Queues {
    vfs: Arc<dyn Vfs>,
    meta_dir: PathBuf,
    queues: RwLock<BTreeMap<QueueKey, Arc<Queue>>>,
    acks: StateLog,
    /// Serializes ack-log appends with the queue state changes they record.
    ack_order: Mutex<()>,
    admin: Mutex<()>,
    next_subscription: AtomicU64,
    snapshot_after_bytes: u64,
}

impl Queues {
    pub fn open(
        vfs: Arc<dyn Vfs>,
        data_dir: &Path,
        flusher: &Flusher,
        topics: &Topics,
    ) -> Result<Queues> {
        Queues::open_with(vfs, data_dir, flusher, topics, ACK_SNAPSHOT_AFTER_BYTES)
    }

    /// [`Queues::open`] with the ack-log size that triggers a snapshot.
    pub fn open_with(
        vfs: Arc<dyn Vfs>,
        data_dir: &Path,
        flusher: &Flusher,
        topics: &Topics,
        snapshot_after_bytes: u64,
    ) -> Result<Queues> {
        let meta_dir = data_dir.join("meta");
        let (acks, mut state) =
            StateLog::open(vfs.clone(), data_dir, "queue-acks", flusher, apply)?;
        let defs: Vec<QueueDef> = match metafile::read(&*vfs, &meta_dir.join(QUEUES_FILE), QUEUES_MAGIC)? {
            Loaded::Missing => Vec::new(),
            Loaded::Valid(defs) => defs,
            Loaded::Corrupt => {
                return Err(BrokerError::Metadata(format!(
                    "{} is corrupt; move it aside to start without queue definitions (their ack state is kept)",
                    meta_dir.join(QUEUES_FILE).display()
                )))
            }
        };
        let mut queues = BTreeMap::new();
        for def in defs {
            let Ok(topic) = topics.get(&def.topic) else {
                tracing::warn!(queue = %def.name, topic = %def.topic, "dropping a queue whose topic is gone");
                continue;
            };
            let acks = state
                .queues
                .remove(&key_string(&def.topic, &def.name))
                .unwrap_or_default();
            let mut parts = acks.parts;
            parts.resize(topic.partitions.len(), Settled::default());
            let key = (def.topic.clone(), def.name.clone());
            let state = State::new(def, parts, acks.acked, acks.dead_lettered);
            queues.insert(key, Queue::new(state, topic.partitions.clone()));
        }
        tracing::info!(queues = queues.len(), "queues opened");
        Ok(Queues {
            vfs,
            meta_dir,
            queues: RwLock::new(queues),
            acks,
            ack_order: Mutex::new(()),
            admin: Mutex::new(()),
            next_subscription: AtomicU64::new(1),
            snapshot_after_bytes,
        })
    }

    fn write_defs(&self, queues: &BTreeMap<QueueKey, Arc<Queue>>) -> Result<()> {
        let defs: Vec<QueueDef> = queues.values().map(|q| q.def()).collect();
        metafile::write(&*self.vfs, &self.meta_dir, QUEUES_FILE, QUEUES_MAGIC, &defs)
    }

    pub fn get(&self, topic: &str, name: &str) -> Result<Arc<Queue>> {
        self.queues
            .read()
            .get(&(topic.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| BrokerError::UnknownQueue(format!("{topic}/{name}")))
    }

    pub fn list(&self) -> Vec<QueueKey> {
        self.queues.read().keys().cloned().collect()
    }

    /// Creates a queue (blocking); returns it for its driver to be started.
    pub fn create(&self, topics: &Topics, request: CreateQueueRequest) -> Result<Arc<Queue>> {
        validate_topic_name(&request.queue).map_err(|_| {
            BrokerError::InvalidRequest(format!("invalid queue name {:?}", request.queue))
        })?;
        let topic = topics.get(&request.topic)?;
        let dead_letter_topic = if request.dead_letter_topic.is_empty() {
            format!("{}.{}.dlq", request.topic, request.queue)
        } else {
            request.dead_letter_topic.clone()
        };
        validate_topic_name(&dead_letter_topic).map_err(|_| {
            BrokerError::InvalidRequest(format!("dead-letter topic name {dead_letter_topic:?} is invalid; choose one with dead_letter_topic"))
        })?;
        let start = match request.start.as_str() {
            "" | "earliest" => "earliest",
            "latest" => "latest",
            other => {
                return Err(BrokerError::InvalidRequest(format!(
                    "start must be earliest or latest, not {other:?}"
                )))
            }
        };
        let _admin = self.admin.lock();
        let key = (request.topic.clone(), request.queue.clone());
        if self.queues.read().contains_key(&key) {
            return Err(BrokerError::QueueExists(format!(
                "{}/{}",
                request.topic, request.queue
            )));
        }
        if self.queues.read().len() >= QUEUES_LIMIT {
            return Err(BrokerError::InvalidRequest(format!(
                "the broker holds the maximum of {QUEUES_LIMIT} queues"
            )));
        }
        let def = QueueDef {
            topic: request.topic.clone(),
            name: request.queue.clone(),
            ack_timeout_ms: if request.ack_timeout_ms == 0 {
                DEFAULT_ACK_TIMEOUT_MS
            } else {
                request.ack_timeout_ms
            },
            max_deliveries: if request.max_deliveries == 0 {
                DEFAULT_MAX_DELIVERIES
            } else {
                request.max_deliveries
            },
            dead_letter_topic,
            start: start.to_string(),
        };
        let cursors: Vec<u64> = topic
            .partitions
            .iter()
            .map(|log| {
                if start == "latest" {
                    log.end_offset()
                } else {
                    log.start_offset()
                }
            })
            .collect();
        let durable = {
            let _order = self.ack_order.lock();
            self.acks.append(&[AckOp::Init {
                q: key_string(&def.topic, &def.name),
                cursors: cursors.clone(),
            }])?
        };
        futures::executor::block_on(durable)?;
        let state = State::new(
            def,
            cursors.into_iter().map(Settled::starting_at).collect(),
            0,
            0,
        );
        let queue = Queue::new(state, topic.partitions.clone());
        let mut all = self.queues.read().clone();
        all.insert(key.clone(), queue.clone());
        self.write_defs(&all)?;
        self.queues.write().insert(key, queue.clone());
        tracing::info!(topic = %request.topic, queue = %request.queue, "queue created");
        Ok(queue)
    }

    /// Deletes a queue (blocking); its consumers stop receiving.
    pub fn delete(&self, topic: &str, name: &str) -> Result<()> {
        let _admin = self.admin.lock();
        let key = (topic.to_string(), name.to_string());
        let mut all = self.queues.read().clone();
        let Some(queue) = all.remove(&key) else {
            return Err(BrokerError::UnknownQueue(format!("{topic}/{name}")));
        };
        self.write_defs(&all)?;
        self.queues.write().remove(&key);
        queue.stop.cancel();
        let durable = {
            let _order = self.ack_order.lock();
            self.acks.append(&[AckOp::Delete {
                q: key_string(topic, name),
            }])?
        };
        futures::executor::block_on(durable)?;
        tracing::info!(topic, queue = name, "queue deleted");
        Ok(())
    }

    /// Deletes every queue of a deleted topic (blocking).
    pub fn topic_deleted(&self, topic: &str) {
        for (t, name) in self.list() {
            if t == topic {
                if let Err(error) = self.delete(&t, &name) {
                    tracing::warn!(topic, queue = %name, %error, "could not delete the queue of a deleted topic");
                }
            }
        }
    }

    pub fn subscribe(
        &self,
        topic: &str,
        name: &str,
        prefetch: u32,
        push: mpsc::UnboundedSender<OutFrame>,
    ) -> Result<u64> {
        if prefetch == 0 || prefetch > queue::PREFETCH_LIMIT {
            return Err(BrokerError::InvalidRequest(format!(
                "prefetch must be in 1..={}",
                queue::PREFETCH_LIMIT
            )));
        }
        let queue = self.get(topic, name)?;
        let id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        queue.state.lock().consumers.insert(
            id,
            queue::Consumer {
                push,
                prefetch,
                in_flight: 0,
                delivered: 0,
            },
        );
        queue.wake.notify_one();
        Ok(id)
    }

    /// Changes the credit of a subscription (0 pauses it).
    pub fn set_prefetch(
        &self,
        topic: &str,
        name: &str,
        subscription: u64,
        prefetch: u32,
    ) -> Result<()> {
        if prefetch > queue::PREFETCH_LIMIT {
            return Err(BrokerError::InvalidRequest(format!(
                "prefetch must be at most {}",
                queue::PREFETCH_LIMIT
            )));
        }
        let queue = self.get(topic, name)?;
        match queue.state.lock().consumers.get_mut(&subscription) {
            Some(consumer) => consumer.prefetch = prefetch,
            None => {
                return Err(BrokerError::InvalidRequest(format!(
                    "no subscription {subscription} on {topic}/{name}"
                )))
            }
        }
        queue.wake.notify_one();
        Ok(())
    }

    pub fn unsubscribe(&self, topic: &str, name: &str, subscription: u64) {
        if let Ok(queue) = self.get(topic, name) {
            queue
                .state
                .lock()
                .unsubscribe(subscription, tokio::time::Instant::now());
            queue.wake.notify_one();
        }
    }

    /// Acks deliveries; the future resolves once the acks are durable.
    pub fn ack(&self, topic: &str, name: &str, ids: &[u64]) -> Result<Durable> {
        let queue = self.get(topic, name)?;
        let q = key_string(topic, name);
        let durable = {
            let _order = self.ack_order.lock();
            let outcome = queue.state.lock().ack(ids);
            let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
            for (p, o) in outcome.acked {
                by_partition.entry(p).or_default().push(o);
            }
            let ops: Vec<AckOp> = by_partition
                .into_iter()
                .map(|(p, offsets)| AckOp::Settle {
                    q: q.clone(),
                    p,
                    offsets,
                    dead: false,
                })
                .collect();
            self.acks.append(&ops)?
        };
        queue.wake.notify_one();
        Ok(durable)
    }

    pub fn nack(
        &self,
        topic: &str,
        name: &str,
        ids: &[u64],
        requeue: bool,
        delay_ms: u32,
    ) -> Result<()> {
        let queue = self.get(topic, name)?;
        let delay = Duration::from_millis(u64::from(delay_ms));
        queue
            .state
            .lock()
            .nack(ids, requeue, delay, tokio::time::Instant::now());
        queue.wake.notify_one();
        Ok(())
    }

    pub fn in_progress(&self, topic: &str, name: &str, ids: &[u64]) -> Result<()> {
        let queue = self.get(topic, name)?;
        queue
            .state
            .lock()
            .in_progress(ids, tokio::time::Instant::now());
        Ok(())
    }

    pub fn describe(&self, topic: &str, name: &str) -> Result<DescribeQueueResponse> {
        let queue = self.get(topic, name)?;
        let state = queue.state.lock();
        Ok(DescribeQueueResponse {
            topic: topic.to_string(),
            queue: name.to_string(),
            ready: state.ready_count(&queue.logs),
            in_flight: state.in_flight_count() as u64,
            acked: state.acked,
            dead_lettered: state.dead_lettered,
            scheduled: state.scheduled_count() as u64,
            consumers: state
                .consumers
                .iter()
                .map(|(id, c)| QueueConsumerInfo {
                    subscription_id: *id,
                    prefetch: c.prefetch,
                    in_flight: c.in_flight,
                    delivered: c.delivered,
                })
                .collect(),
            ack_timeout_ms: state.def.ack_timeout_ms,
            max_deliveries: state.def.max_deliveries,
            dead_letter_topic: state.def.dead_letter_topic.clone(),
            ..DescribeQueueResponse::default()
        })
    }

    /// Records dead-lettered messages as settled; resolves when durable.
    fn settle_dead(&self, queue: &Queue, messages: &[(u32, u64)]) -> Result<Durable> {
        let def = queue.def();
        let _order = self.ack_order.lock();
        let mut state = queue.state.lock();
        let mut ops = Vec::new();
        for (p, o) in messages {
            if state.settled[*p as usize].insert(*o) {
                state.dead_lettered += 1;
                ops.push(AckOp::Settle {
                    q: key_string(&def.topic, &def.name),
                    p: *p,
                    offsets: vec![*o],
                    dead: true,
                });
            }
        }
        drop(state);
        self.acks.append(&ops)
    }

    /// Snapshots the ack state once its log is large (blocking).
    pub fn maybe_compact(&self) -> Result<()> {
        if self.acks.size_bytes() < self.snapshot_after_bytes {
            return Ok(());
        }
        let (snapshot, covers) = {
            let _order = self.ack_order.lock();
            let queues = self.queues.read();
            let mut snapshot = AckState::default();
            for ((topic, name), queue) in queues.iter() {
                let state = queue.state.lock();
                snapshot.queues.insert(
                    key_string(topic, name),
                    QueueAcks {
                        parts: state.settled.clone(),
                        acked: state.acked,
                        dead_lettered: state.dead_lettered,
                    },
                );
            }
            (snapshot, self.acks.end_offset())
        };
        self.acks.compact(&snapshot, covers)
    }

    pub fn close(&self) -> Result<()> {
        self.acks.close()
    }
}

/// Runs a queue until it is deleted or the broker stops.
pub async fn drive(broker: Arc<Broker>, queue: Arc<Queue>) {
    for log in &queue.logs {
        let mut end = log.subscribe_end_offset();
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
    let far = Duration::from_secs(3600);
    loop {
        let (next, dead) = {
            let mut state = queue.state.lock();
            let next = state.step(&queue.logs);
            (next, std::mem::take(&mut state.dead))
        };
        if !dead.is_empty() {
            if let Err(error) = dead_letter(&broker, &queue, &dead).await {
                tracing::error!(%error, "dead-lettering failed; retrying in a second (nothing is dropped)");
                queue.state.lock().dead.extend(dead);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = queue.stop.cancelled() => return,
                    _ = broker.shutdown.cancelled() => return,
                }
            }
            continue;
        }
        let wake_at = next.unwrap_or_else(|| tokio::time::Instant::now() + far);
        if wake_at <= tokio::time::Instant::now() {
            // More is due right away: let connections run first.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = queue.wake.notified() => {}
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = queue.stop.cancelled() => return,
            _ = broker.shutdown.cancelled() => return,
        }
    }
}

/// Copies each message to the dead-letter topic (durably), then settles it.
async fn dead_letter(
    broker: &Arc<Broker>,
    queue: &Arc<Queue>,
    dead: &[(Message, DeadReason)],
) -> Result<()> {
    let def = queue.def();
    let topic = match broker.topics.get(&def.dead_letter_topic) {
        Ok(topic) => topic,
        Err(_) => {
            let worker = broker.clone();
            let name = def.dead_letter_topic.clone();
            let created = tokio::task::spawn_blocking(move || {
                let config = TopicConfig {
                    partitions: 1,
                    ..TopicConfig::default()
                };
                match worker.topics.create(&name, Some(config), 1) {
                    Ok(topic) => Ok(topic),
                    Err(BrokerError::TopicExists(_)) => worker.topics.get(&name),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(|e| BrokerError::Metadata(e.to_string()))??;
            tracing::info!(topic = %def.dead_letter_topic, "created dead-letter topic");
            created
        }
    };
    let log = topic.partition(0)?.clone();
    let mut builder = BatchBuilder::new();
    for (message, reason) in dead {
        let mut headers = message.record.headers.clone();
        headers.extend(
            queue::dead_letter_headers(&def, message, *reason)
                .into_iter()
                .map(|(key, value)| RecordHeader {
                    key,
                    value: Some(value),
                }),
        );
        builder.push(&NewRecord {
            timestamp_ms: message.record.timestamp_ms,
            key: message.record.key.clone(),
            value: message.record.value.clone(),
            headers,
        });
    }
    let batch: Bytes = builder.finish();
    let info = log.append(&batch)?;
    log.wait_durable(info.last_offset + 1).await?;
    let settled: Vec<(u32, u64)> = dead.iter().map(|(m, _)| (m.partition, m.offset)).collect();
    broker.queues.settle_dead(queue, &settled)?.await?;
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
