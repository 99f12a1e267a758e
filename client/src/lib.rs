//! The Ferry client: [`Client`] (connection with reconnect and backoff, the
//! typed admin API), [`Producer`] (batching, pipelined, acks per record),
//! [`Consumer`] (explicit partitions, long polling), [`GroupConsumer`]
//! (consumer groups) and [`QueueConsumer`] (pushed deliveries, acks).
//! Depends on the protocol crate only.
//!
//! Everything a user needs is here, typed: configs ([`TopicConfig`] with
//! its [`FsyncPolicy`], [`QueueConfig`], [`GroupConfig`] with its
//! [`Assignor`] and [`OffsetReset`], [`ProducerConfig`] with its [`Acks`],
//! [`ConsumerConfig`] with its [`Isolation`], [`ClientOptions`] with its
//! [`Credentials`]), the admin answers ([`TopicDescription`],
//! [`GroupDescription`], [`QueueDescription`], [`CommittedOffset`],
//! [`WhoAmI`], ...), security settings ([`AclRule`], [`QuotaSpec`]) and
//! errors ([`ClientError`], whose [`ClientError::code`] is the broker's
//! [`ErrorCode`]). Wire messages
//! appear only in [`wire`], the low-level module behind [`Client::wire`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_client::ClientError> {
//! use ferry_client::{Client, FsyncPolicy, TopicConfig};
//! let client = Client::connect("127.0.0.1:7171").await?;
//! let config = TopicConfig { partitions: 3, fsync: Some(FsyncPolicy::IntervalMs(100)), ..TopicConfig::default() };
//! client.create_topic_with("orders", &config).await?;
//! for partition in client.describe_topic("orders").await?.partitions {
//!     println!("{}: {}..{}", partition.partition, partition.start_offset, partition.end_offset);
//! }
//! # Ok(()) }
//! ```
//!
//! # Broker restarts
//!
//! Clients ride through a broker restart. A lost connection is made again
//! following [`ReconnectPolicy`] (capped exponential backoff with jitter;
//! by default it keeps trying, while the *first* [`Client::connect`] gives
//! up after 5 s so a wrong address fails). State changes are logged through
//! `tracing` and observable with [`Client::connection_state`].
//!
//! - [`Consumer`] resumes every partition at its next offset: nothing
//!   skipped, nothing repeated.
//! - [`GroupConsumer`] re-joins the group as soon as it has reconnected
//!   (offering its member id; the broker may hand out a new one). Partitions
//!   it still owns continue
//!   from its own position; partitions granted anew start at the group's
//!   committed offset, so records handed out but not committed may come
//!   again (at-least-once), none is skipped.
//! - [`QueueConsumer`] opens a new connection and subscribes again; its
//!   unacked deliveries come back by redelivery. Settling a delivery from
//!   the lost connection fails with [`ClientError::StaleDelivery`].
//! - [`Producer`] sends what it has not sent yet on the new connection, and
//!   (idempotent, the default) sends again, in order, the batches whose
//!   answers were lost: the broker stores each exactly once. Not
//!   idempotent, such a batch fails with [`ClientError::Disconnected`]
//!   unless [`ProducerConfig::resend_after_disconnect`] is set.
//!
//! When the deadline passes, calls fail with [`ClientError::Unreachable`].
//!
//! # Authentication
//!
//! With [`ClientOptions::credentials`] set, every connection (a reconnection
//! too) proves them right after the handshake: SCRAM-SHA-256 for a user and
//! password (the password never leaves the client), or an access token. A
//! refusal fails the connect with [`ClientError::AuthenticationFailed`]
//! (also [`ClientError::UnsupportedMechanism`], [`ClientError::Throttled`])
//! and is not retried.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_client::ClientError> {
//! use ferry_client::{Client, ClientOptions, Credentials};
//! let options = ClientOptions {
//!     credentials: Some(Credentials::Token(std::env::var("FERRY_TOKEN").unwrap_or_default())),
//!     ..ClientOptions::default()
//! };
//! let client = Client::connect_with("127.0.0.1:7171", options).await?;
//! println!("connected as {}", client.who_am_i().await?.principal);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod admin;
mod auth;
mod client;
mod connection;
mod consumer;
mod error;
mod group;
mod lane;
mod options;
mod producer;
mod queue;
mod reconnect;
mod record;
mod seek;
mod tls;
pub mod wire;

pub use admin::{
    AclOperation, AclPermission, AclRule, AuthMethod, BrokerStatus, CommittedOffset, FsyncPolicy,
    GroupDescription, GroupInfo, GroupPartitionInfo, GroupState, MemberInfo, NewToken,
    ParseChoiceError, PartitionInfo, PatternType, ProducerIdentity, QueueConfig, QueueConsumerInfo,
    QueueDescription, QueueId, QuotaSpec, ResourceType, StartFrom, TokenInfo, TopicConfig,
    TopicDescription, TopicInfo, UserInfo, WhoAmI, USER_ITERATIONS,
};
pub use admin::{PeekedMessage, ResetTarget};
pub use auth::Credentials;
pub use client::Client;
pub use connection::BrokerInfo;
pub use consumer::{Consumer, ConsumerConfig};
pub use error::{ClientError, Result};
pub use ferry_protocol::batch::{Compression, RecordHeader};
pub use ferry_protocol::isolation::Isolation;
pub use ferry_protocol::messages::Acks;
pub use ferry_protocol::ErrorCode;
pub use group::{Assignor, GroupConfig, GroupConsumer};
pub use options::{ClientOptions, ReconnectPolicy};
pub use producer::{Callback, Producer, ProducerConfig};
pub use queue::{Delivery, QueueConsumer};
pub use reconnect::ConnectionState;
pub use record::{now_ms, partition_for_key, ConsumerRecord, ProducerRecord, RecordMetadata};
pub use seek::{OffsetReset, SeekTo};
pub use tls::{ClientIdentity, Pem, TlsOptions};
