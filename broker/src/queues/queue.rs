//! One queue at run time: its definition (persisted), its state machine
//! behind a lock, its partitions' logs, where its subscribers' deliveries
//! go, and what wakes its driver.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::Record;
use ferry_storage::Log;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::state::{Delivered, State};
use crate::domain::{QueueName, StartFrom, TopicName};

pub use ferry_protocol::batch::DELIVER_AT_HEADER;

/// Persisted definition of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDef {
    pub topic: TopicName,
    pub name: QueueName,
    pub ack_timeout_ms: u32,
    pub max_deliveries: u32,
    pub dead_letter_topic: TopicName,
    pub start: StartFrom,
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

/// What a sink did with the deliveries it was handed.
#[derive(Debug, PartialEq, Eq)]
pub enum Handed {
    /// All are on their way.
    All,
    /// The connection had no room for these (delivery ids): they go back to
    /// the queue, and the sink calls [`Queue::resume`] once there is room.
    Partly { unsent: Vec<u64> },
    /// The subscriber is gone (its deliveries go back to the queue).
    Gone,
}

/// Where a subscription's deliveries go (a connection, in the broker).
pub trait DeliverySink: Send + Sync {
    /// Hands over deliveries of `queue`. The sink calls [`Queue::written`]
    /// once they reach the socket (their ack deadlines start then).
    fn deliver(
        &self,
        subscription_id: u64,
        queue: &Arc<Queue>,
        deliveries: Vec<Delivered>,
    ) -> Handed;
}

/// A queue: its state and what wakes its driver.
pub struct Queue {
    pub state: Mutex<State>,
    /// Where each subscription's deliveries go.
    pub sinks: Mutex<BTreeMap<u64, Arc<dyn DeliverySink>>>,
    pub logs: Vec<Log>,
    pub wake: Notify,
    pub stop: tokio_util::sync::CancellationToken,
}

impl Queue {
    pub fn new(state: State, logs: Vec<Log>) -> Arc<Queue> {
        Arc::new(Queue {
            state: Mutex::new(state),
            sinks: Mutex::new(BTreeMap::new()),
            logs,
            wake: Notify::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    pub fn def(&self) -> QueueDef {
        self.state.lock().def.clone()
    }

    /// Deliveries reached their consumer's socket: start their deadlines.
    /// (No wake: the driver's timer already covers unwritten deliveries.)
    pub fn written(&self, delivery_ids: &[u64]) {
        let now = tokio::time::Instant::now();
        self.state.lock().written(delivery_ids, now);
    }

    /// A blocked subscriber's connection has room again.
    pub fn resume(&self, subscription_id: u64) {
        self.state.lock().resume(subscription_id);
        self.wake.notify_one();
    }
}

/// Every header the broker adds to a dead-lettered record starts so.
pub const DEAD_LETTER_HEADER_PREFIX: &str = "x-ferry-dlq-";

/// Headers a dead-lettered record carries, besides its own.
pub fn dead_letter_headers(
    def: &QueueDef,
    message: &Message,
    reason: DeadReason,
) -> Vec<(String, Bytes)> {
    vec![
        (
            "x-ferry-dlq-topic".into(),
            Bytes::from(def.topic.to_string()),
        ),
        (
            "x-ferry-dlq-queue".into(),
            Bytes::from(def.name.to_string()),
        ),
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
