//! The Ferry client: [`Client`] (connection with reconnect and backoff, admin
//! and data APIs), [`Producer`] (batching, pipelined, acks per record) and
//! [`Consumer`] (explicit partitions, long polling). Depends on the protocol
//! crate only.

pub mod client;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod producer;
pub mod queue;
pub mod record;

pub use client::{Client, ClientOptions, SeekTo};
pub use consumer::{Consumer, ConsumerConfig};
pub use error::{ClientError, Result};
pub use ferry_protocol::messages::{Acks, TopicConfig};
pub use group::{GroupConfig, GroupConsumer};
pub use producer::{Callback, Producer, ProducerConfig};
pub use queue::{Delivery, QueueConsumer};
pub use record::{ConsumerRecord, ProducerRecord, RecordMetadata};
