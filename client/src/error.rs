//! The client crate's error type: one variant per way a call can fail,
//! none of them a free-text catch-all.

use ferry_protocol::{ApiKey, ErrorCode, ProtocolError};
use thiserror::Error;

#[derive(Debug, Error, Clone)]
/// Why a client call failed.
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot reach the broker at {addr}: {reason}")]
    /// No connection could be made.
    Unreachable {
        /// The broker address tried.
        addr: String,
        /// Why the last attempt failed.
        reason: String,
    },
    #[error("TLS to the broker at {addr} refused: {reason}")]
    /// The TLS handshake failed on a certificate: the broker's was not
    /// trusted or not for its name, or the broker refused ours. Not retried.
    TlsRefused {
        /// The broker address.
        addr: String,
        /// What TLS said.
        reason: String,
    },
    #[error("invalid TLS settings: {what} ({origin}): {reason}")]
    /// [`crate::TlsOptions`] that cannot be used (a file that cannot be
    /// read, PEM without certificates, a bad server name). Not retried.
    TlsConfig {
        /// What was being read: `"CA certificates"`, `"client key"`, ...
        what: &'static str,
        /// Where from: a file path, `"PEM bytes"`, the server name.
        origin: String,
        /// Why it was refused.
        reason: String,
    },
    #[error("connection to the broker at {addr} lost")]
    /// The connection was lost (the request may or may not have been applied).
    Disconnected {
        /// The broker address of the lost connection.
        addr: String,
    },
    #[error("request timed out after {0} ms")]
    /// No answer within the time limit (ms).
    Timeout(u64),
    #[error("{message}")]
    /// The broker answered with an error.
    Broker {
        /// The broker's error code.
        code: ErrorCode,
        /// The broker's explanation.
        message: String,
    },
    #[error("protocol error: {0}")]
    /// A record batch that does not decode.
    Protocol(#[from] ProtocolError),
    #[error("undecodable {api:?} frame from the broker: {source}")]
    /// A frame from the broker whose body does not decode as the message
    /// its API key promises.
    UndecodableFrame {
        /// The API the frame answered (or pushed).
        api: ApiKey,
        /// What the decoder said.
        source: prost::DecodeError,
    },
    #[error("the broker answered {field} = {value:?}, which this client does not know")]
    /// A field of the broker's answer holds a value this client does not
    /// know (a newer broker?).
    UnexpectedAnswer {
        /// The field, e.g. `"group state"`.
        field: &'static str,
        /// What the broker sent.
        value: String,
    },
    #[error(
        "delivery {delivery_id} came on a connection that was lost since; \
         the broker delivers the message again"
    )]
    /// A settle (ack, nack, in-progress) of a queue delivery received on a
    /// connection that has been lost since. It was not sent: the broker put
    /// the message back when the connection went, and delivers it again.
    StaleDelivery {
        /// The delivery's id on the lost connection.
        delivery_id: u64,
    },
    #[error("the {what} was closed")]
    /// The producer, group consumer or queue consumer the call went
    /// through was closed (or its background task is gone).
    Closed {
        /// Which one: `"producer"`, `"group consumer"`, `"queue consumer"`.
        what: &'static str,
    },
    #[error("topic {topic} has no partition {partition} ({partitions} partitions)")]
    /// A partition the topic does not have (refused before sending).
    NoSuchPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    #[error("record of {size} bytes exceeds the broker's max batch size of {max} bytes")]
    /// A record too large for one batch (refused before sending).
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The broker's largest batch.
        max: usize,
    },
    #[error("{topic}/{partition} is not assigned to this member")]
    /// A group member asked to move a partition it does not own.
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    #[error("no partition assigned")]
    /// A consumer polled with no partition assigned.
    NothingAssigned,
    #[error("a group member must subscribe to at least one topic")]
    /// [`crate::GroupConfig::topics`] was empty.
    NoTopics,
}

impl ClientError {
    /// The broker's error code, if the broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Worth retrying on a new connection.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::Disconnected { .. }
        )
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
