//! The Ferry client: [`Client`] (connection with reconnect and backoff, the
//! typed admin API), [`Producer`] (batching, pipelined, acks per record),
//! [`Consumer`] (explicit partitions, long polling), [`GroupConsumer`]
//! (consumer groups) and [`QueueConsumer`] (pushed deliveries, acks).
//! Wire-level access is in [`wire`]. Depends on the protocol crate only.

#![deny(missing_docs)]

mod admin;
mod client;
mod connection;
mod consumer;
mod error;
mod group;
mod options;
mod producer;
mod queue;
mod record;
mod seek;
pub mod wire;

pub use admin::{BrokerStatus, QueueConfig, QueueId, StartFrom};
pub use client::Client;
pub use connection::BrokerInfo;
pub use consumer::{Consumer, ConsumerConfig};
pub use error::{ClientError, Result};
pub use ferry_protocol::messages::{Acks, TopicConfig};
pub use ferry_protocol::ErrorCode;
pub use group::{Assignor, GroupConfig, GroupConsumer};
pub use options::ClientOptions;
pub use producer::{Callback, Producer, ProducerConfig};
pub use queue::{Delivery, QueueConsumer};
pub use record::{now_ms, partition_for_key, ConsumerRecord, ProducerRecord, RecordMetadata};
pub use seek::SeekTo;
