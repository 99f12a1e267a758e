//! Queues: named, durable subscriptions on a topic whose messages are
//! pushed to competing consumers and acknowledged one by one (RabbitMQ's
//! model on Ferry's logs). This file is the registry (create, delete,
//! subscribe, settle, describe); `state.rs` is one queue's state machine,
//! `driver.rs` the task that runs it, `acks.rs` the durable ack state.
//!
//! Durable state:
//! - definitions in `<data>/meta/queues.meta` (checksummed, atomic);
//! - which messages are settled (acked or dead-lettered) in a
//!   [`StateLog`] (`<data>/internal/queue-acks/`). An ack is answered only
//!   once its record is fsynced, so after a restart (or `kill -9`, or power
//!   loss) only unsettled messages are delivered again.
//!
//! Delivery is at-least-once: a message whose ack was not acknowledged may
//! be delivered again.

pub mod acks;
pub mod driver;
pub mod queue;
pub mod ranges;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_storage::vfs::Vfs;
use ferry_storage::Flusher;
use parking_lot::{Mutex, RwLock};

use crate::domain::{QueueName, StartFrom, TopicName};
use crate::error::{BrokerError, Result};
use crate::metafile::{self, Loaded};
use crate::statelog::{Durable, StateLog};
use crate::topics::Topics;
use acks::{apply, key_string, AckOp, AckState, QueueAcks};
pub use driver::drive;
pub use queue::{DeliverySink, Handed, Message, Queue, QueueDef};
use ranges::Settled;
pub use state::{Delivered, Step, Subscriber, PREFETCH_LIMIT};

const QUEUES_FILE: &str = "queues.meta";
const QUEUES_MAGIC: &[u8; 8] = b"FQUE0001";
pub const QUEUES_LIMIT: usize = 10_000;
pub const DEFAULT_ACK_TIMEOUT_MS: u32 = 30_000;
/// Shortest ack timeout: below it a consumer that is merely slow sees its
/// deliveries expire and come back over and over.
pub const ACK_TIMEOUT_MS_MIN: u32 = 1_000;
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Compact the ack log past this size.
pub const ACK_SNAPSHOT_AFTER_BYTES: u64 = 64 * 1024 * 1024;

pub type QueueKey = (String, String);

/// A new queue's settings, validated; `None` takes the default.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub topic: TopicName,
    pub name: QueueName,
    pub ack_timeout_ms: Option<u32>,
    pub max_deliveries: Option<u32>,
    pub start: StartFrom,
    /// `None`: `<topic>.<queue>.dlq`.
    pub dead_letter_topic: Option<TopicName>,
}

/// One subscription as DescribeQueue shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberView {
    pub subscription_id: u64,
    pub prefetch: u32,
    pub in_flight: u32,
    pub delivered: u64,
}

/// A queue's counts and settings as DescribeQueue shows them.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub def: QueueDef,
    pub ready: u64,
    pub in_flight: u64,
    pub acked: u64,
    pub dead_lettered: u64,
    pub scheduled: u64,
    pub subscribers: Vec<SubscriberView>,
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

fn unknown(topic: &str, name: &str) -> BrokerError {
    BrokerError::UnknownQueue {
        topic: topic.chars().take(256).collect(),
        queue: name.chars().take(256).collect(),
    }
}

/// The queue definitions on disk (none when the file is missing).
fn load_defs(vfs: &dyn Vfs, meta_dir: &Path) -> Result<Vec<QueueDef>> {
    let path = meta_dir.join(QUEUES_FILE);
    match metafile::read(vfs, &path, QUEUES_MAGIC)? {
        Loaded::Missing => Ok(Vec::new()),
        Loaded::Valid(defs) => Ok(defs),
        Loaded::Corrupt => Err(BrokerError::MetadataCorrupt {
            path,
            what: "move it aside to start without queue definitions (their ack state is kept)",
        }),
    }
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
        let mut queues = BTreeMap::new();
        for def in load_defs(&*vfs, &meta_dir)? {
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
            let key = (def.topic.to_string(), def.name.to_string());
            let state = state::State::new(def, parts, acks.acked, acks.dead_lettered)
                .with_attempts(&acks.attempts);
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
            .ok_or_else(|| unknown(topic, name))
    }

    pub fn list(&self) -> Vec<QueueKey> {
        self.queues.read().keys().cloned().collect()
    }

    fn definition(spec: QueueSpec) -> Result<QueueDef> {
        let dead_letter_topic = match spec.dead_letter_topic {
            Some(topic) => topic,
            None => TopicName::new(format!("{}.{}.dlq", spec.topic, spec.name))?,
        };
        let ack_timeout_ms = spec.ack_timeout_ms.unwrap_or(DEFAULT_ACK_TIMEOUT_MS);
        if ack_timeout_ms < ACK_TIMEOUT_MS_MIN {
            return Err(BrokerError::BelowMinimum {
                what: "ack_timeout_ms",
                requested: u64::from(ack_timeout_ms),
                minimum: u64::from(ACK_TIMEOUT_MS_MIN),
            });
        }
        Ok(QueueDef {
            topic: spec.topic,
            name: spec.name,
            ack_timeout_ms,
            max_deliveries: spec.max_deliveries.unwrap_or(DEFAULT_MAX_DELIVERIES),
            dead_letter_topic,
            start: spec.start,
        })
    }

    /// A dead-letter topic may not be the queue's own topic or the source of
    /// any queue: a dead letter must never be delivered by a queue again
    /// (and then dead-lettered again, and again). Every cycle of queues and
    /// dead-letter topics has a last edge that points at a source, so
    /// refusing that edge refuses every cycle.
    fn refuse_dead_letter_loop(&self, def: &QueueDef) -> Result<()> {
        let feeds_a_queue = def.dead_letter_topic == def.topic
            || self
                .queues
                .read()
                .keys()
                .any(|(topic, _)| *topic == def.dead_letter_topic.as_str());
        if feeds_a_queue {
            return Err(BrokerError::DeadLetterLoop {
                queue: format!("{}/{}", def.topic, def.name),
                topic: def.dead_letter_topic.to_string(),
            });
        }
        Ok(())
    }

    /// Creates a queue (blocking); returns it for its driver to be started.
    pub fn create(&self, topics: &Topics, spec: QueueSpec) -> Result<Arc<Queue>> {
        let topic = topics.get(&spec.topic)?;
        let def = Queues::definition(spec)?;
        let _admin = self.admin.lock();
        self.refuse_dead_letter_loop(&def)?;
        let key = (def.topic.to_string(), def.name.to_string());
        if self.queues.read().contains_key(&key) {
            return Err(BrokerError::QueueExists {
                topic: key.0,
                queue: key.1,
            });
        }
        if self.queues.read().len() >= QUEUES_LIMIT {
            return Err(BrokerError::Full {
                what: "queues",
                limit: QUEUES_LIMIT as u64,
            });
        }
        let cursors: Vec<u64> = topic
            .partitions
            .iter()
            .map(|log| match def.start {
                StartFrom::Latest => log.end_offset(),
                StartFrom::Earliest => log.start_offset(),
            })
            .collect();
        let init = AckOp::Init {
            q: key_string(&def.topic, &def.name),
            cursors: cursors.clone(),
        };
        let durable = {
            let _order = self.ack_order.lock();
            self.acks.append(&[init])?
        };
        futures::executor::block_on(durable)?;
        let settled = cursors.into_iter().map(Settled::starting_at).collect();
        let queue = Queue::new(
            state::State::new(def, settled, 0, 0),
            topic.partitions.clone(),
        );
        let mut all = self.queues.read().clone();
        all.insert(key.clone(), queue.clone());
        self.write_defs(&all)?;
        self.queues.write().insert(key.clone(), queue.clone());
        tracing::info!(topic = %key.0, queue = %key.1, "queue created");
        Ok(queue)
    }

    /// Deletes a queue (blocking); its consumers stop receiving.
    pub fn delete(&self, topic: &str, name: &str) -> Result<()> {
        let _admin = self.admin.lock();
        let key = (topic.to_string(), name.to_string());
        let mut all = self.queues.read().clone();
        let Some(queue) = all.remove(&key) else {
            return Err(unknown(topic, name));
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

    /// Subscribes `sink` with `prefetch` credit; returns the subscription id.
    pub fn subscribe(
        &self,
        topic: &str,
        name: &str,
        prefetch: u32,
        sink: Arc<dyn DeliverySink>,
    ) -> Result<u64> {
        if prefetch == 0 || prefetch > PREFETCH_LIMIT {
            return Err(BrokerError::OverLimit {
                what: "prefetch (1 at least)",
                requested: u64::from(prefetch),
                limit: u64::from(PREFETCH_LIMIT),
            });
        }
        let queue = self.get(topic, name)?;
        let id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        queue.sinks.lock().insert(id, sink);
        queue.state.lock().consumers.insert(
            id,
            Subscriber {
                prefetch,
                ..Subscriber::default()
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
        if prefetch > PREFETCH_LIMIT {
            return Err(BrokerError::OverLimit {
                what: "prefetch",
                requested: u64::from(prefetch),
                limit: u64::from(PREFETCH_LIMIT),
            });
        }
        let queue = self.get(topic, name)?;
        match queue.state.lock().consumers.get_mut(&subscription) {
            Some(consumer) => consumer.prefetch = prefetch,
            None => return Err(BrokerError::UnknownSubscription(subscription)),
        }
        queue.wake.notify_one();
        Ok(())
    }

    pub fn unsubscribe(&self, topic: &str, name: &str, subscription: u64) {
        if let Ok(queue) = self.get(topic, name) {
            queue.sinks.lock().remove(&subscription);
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

    pub fn describe(&self, topic: &str, name: &str) -> Result<QueueView> {
        let queue = self.get(topic, name)?;
        let state = queue.state.lock();
        let subscribers = state
            .consumers
            .iter()
            .map(|(id, c)| SubscriberView {
                subscription_id: *id,
                prefetch: c.prefetch,
                in_flight: c.in_flight,
                delivered: c.delivered,
            })
            .collect();
        // Scheduled messages are part of the backlog `ready_count` sees:
        // those read ahead, and those further on in the log.
        let now_ms = i64::try_from(ferry_storage::now_ms()).unwrap_or(i64::MAX);
        let scheduled =
            state.scheduled_count() as u64 + state.scheduled_past_read_ahead(&queue.logs, now_ms);
        let backlog = state.ready_count(&queue.logs);
        Ok(QueueView {
            def: state.def.clone(),
            ready: backlog.saturating_sub(scheduled),
            in_flight: state.in_flight_count() as u64,
            acked: state.acked,
            dead_lettered: state.dead_lettered,
            scheduled,
            subscribers,
        })
    }

    /// Up to `max_messages` ready messages, as they would be delivered next
    /// (see `state/peek.rs`); nothing is delivered or changed.
    pub fn peek(
        &self,
        topic: &str,
        name: &str,
        max_messages: u32,
        now_ms: i64,
    ) -> Result<Vec<Message>> {
        let queue = self.get(topic, name)?;
        let state = queue.state.lock();
        Ok(state.peek(&queue.logs, max_messages, now_ms))
    }

    /// Drops every ready message (not those in flight): settles each
    /// partition up to its durable end as of now, in the ack log. Answers
    /// how many messages were dropped, and when that is durable.
    pub fn purge(&self, topic: &str, name: &str) -> Result<(u64, Durable)> {
        let queue = self.get(topic, name)?;
        let q = key_string(topic, name);
        let (purged, durable) = {
            let _order = self.ack_order.lock();
            let mut state = queue.state.lock();
            let ends: Vec<u64> = queue
                .logs
                .iter()
                .map(|log| log.readable_end(ferry_storage::Isolation::Durable))
                .collect();
            let (parts, purged) = state.purge(&ends);
            let ops: Vec<AckOp> = parts
                .into_iter()
                .map(|(p, end, keep)| AckOp::Purge {
                    q: q.clone(),
                    p,
                    end,
                    keep,
                })
                .collect();
            (purged, self.acks.append(&ops)?)
        };
        queue.wake.notify_one();
        Ok((purged, durable))
    }

    /// Records dead-lettered messages as settled; resolves when durable.
    fn settle_dead(&self, queue: &Queue, messages: &[(u32, u64)]) -> Result<Durable> {
        let def = queue.def();
        let q = key_string(&def.topic, &def.name);
        let _order = self.ack_order.lock();
        let mut state = queue.state.lock();
        let mut ops = Vec::new();
        for (p, o) in messages {
            if state.settled[*p as usize].insert(*o) {
                state.dead_lettered += 1;
                ops.push(AckOp::Settle {
                    q: q.clone(),
                    p: *p,
                    offsets: vec![*o],
                    dead: true,
                });
            }
        }
        drop(state);
        self.acks.append(&ops)
    }

    /// Records delivery counts: (partition, offset, deliveries so far) of
    /// messages that came back unacked. Not waited on: the next fsync of
    /// the ack log makes them durable.
    pub fn record_attempts(&self, queue: &Queue, at: Vec<(u32, u64, u32)>) {
        if at.is_empty() {
            return;
        }
        let def = queue.def();
        let op = AckOp::Attempts {
            q: key_string(&def.topic, &def.name),
            at,
        };
        let _order = self.ack_order.lock();
        if let Err(error) = self.acks.append_lazy(&[op]) {
            tracing::warn!(queue = %def.name, %error, "could not record delivery counts; a restart may deliver these messages again uncounted");
        }
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
                let acks = QueueAcks {
                    parts: state.settled.clone(),
                    acked: state.acked,
                    dead_lettered: state.dead_lettered,
                    attempts: state.attempts(),
                };
                snapshot.queues.insert(key_string(topic, name), acks);
            }
            (snapshot, self.acks.end_offset())
        };
        self.acks.compact(&snapshot, covers)
    }

    /// Records every unsettled message's delivery count (those in flight
    /// included, so a clean restart counts their current delivery), then
    /// closes the ack log (fsyncing it).
    pub fn close(&self) -> Result<()> {
        for queue in self.queues.read().values() {
            let attempts = queue.state.lock().attempts();
            let at = attempts
                .iter()
                .flat_map(|(p, offsets)| offsets.iter().map(|(o, n)| (*p, *o, *n)))
                .collect();
            self.record_attempts(queue, at);
        }
        self.acks.close()
    }
}
