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
        /// Which one: `"producer"`, `"group consumer"`, `"queue consumer"`
        /// (or `"runtime"`: the tokio runtime shut down under the call).
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
    #[error("authentication failed: {reason}")]
    /// The broker refused the credentials (a wrong password, an unknown
    /// user, a revoked or expired token: the broker does not say which),
    /// or did not prove that it knows the user's keys. Not retried.
    AuthenticationFailed {
        /// What the broker (or the check of its proof) said.
        reason: String,
    },
    #[error("authentication required: {reason}")]
    /// The broker takes requests only from authenticated connections:
    /// set [`crate::ClientOptions::credentials`] (or a client certificate
    /// the broker trusts). Not retried.
    AuthenticationRequired {
        /// What the broker said.
        reason: String,
    },
    #[error("unsupported SASL mechanism: {reason}")]
    /// The broker does not offer the mechanism the credentials need.
    /// Not retried.
    UnsupportedMechanism {
        /// Which mechanism, and what the broker offers instead.
        reason: String,
    },
    #[error("throttled for {throttle_time_ms} ms: {reason}")]
    /// The broker holds this client back (e.g. after too many failed
    /// authentications from its address); try again after
    /// `throttle_time_ms`. Not retried by the client itself.
    Throttled {
        /// How long the broker asks the client to wait.
        throttle_time_ms: u32,
        /// What the broker said.
        reason: String,
    },
    #[error("unusable credentials: {reason}")]
    /// Credentials or a password refused before anything was sent (a user
    /// name SCRAM cannot carry, an empty password). Not retried.
    InvalidCredentials {
        /// Why they were refused.
        reason: String,
    },
}

impl ClientError {
    /// The broker's error code, if the broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            ClientError::AuthenticationFailed { .. } => Some(ErrorCode::AuthenticationFailed),
            ClientError::AuthenticationRequired { .. } => Some(ErrorCode::AuthenticationRequired),
            ClientError::UnsupportedMechanism { .. } => Some(ErrorCode::UnsupportedMechanism),
            ClientError::Throttled { .. } => Some(ErrorCode::Throttled),
            _ => None,
        }
    }

    /// The error for a broker's answer with `code` (not `None`): the
    /// specific variant where there is one, else [`ClientError::Broker`].
    /// `throttle_time_ms` is the answer's field of that name.
    pub(crate) fn from_broker(code: ErrorCode, message: String, throttle_time_ms: u32) -> Self {
        let reason = || without_description(code, message.clone());
        match code {
            ErrorCode::AuthenticationFailed => {
                ClientError::AuthenticationFailed { reason: reason() }
            }
            ErrorCode::AuthenticationRequired => {
                ClientError::AuthenticationRequired { reason: reason() }
            }
            ErrorCode::UnsupportedMechanism => {
                ClientError::UnsupportedMechanism { reason: reason() }
            }
            ErrorCode::Throttled => ClientError::Throttled {
                throttle_time_ms,
                reason: reason(),
            },
            _ => ClientError::Broker { code, message },
        }
    }

    /// Failed in a way a new attempt would not fix: the broker's refusal,
    /// a refused certificate or unusable settings. [`crate::Client`] does
    /// not retry these when it connects.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(
            self,
            ClientError::Broker { .. }
                | ClientError::TlsRefused { .. }
                | ClientError::TlsConfig { .. }
                | ClientError::AuthenticationFailed { .. }
                | ClientError::AuthenticationRequired { .. }
                | ClientError::UnsupportedMechanism { .. }
                | ClientError::Throttled { .. }
                | ClientError::InvalidCredentials { .. }
        )
    }

    /// Worth retrying on a new connection.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::Disconnected { .. }
        )
    }
}

/// The broker's message without a leading repeat of the code's own
/// description (the variant's text already says it), never empty.
fn without_description(code: ErrorCode, message: String) -> String {
    let rest = message
        .strip_prefix(code.name())
        .map(|rest| rest.trim_start_matches([':', ' ']))
        .unwrap_or(&message);
    if rest.is_empty() {
        code.name().to_string()
    } else {
        rest.to_string()
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_codes_get_their_own_variants_and_keep_their_code() {
        let failed = ClientError::from_broker(
            ErrorCode::AuthenticationFailed,
            "authentication failed: wrong user name or password".into(),
            0,
        );
        assert!(matches!(failed, ClientError::AuthenticationFailed { .. }));
        assert_eq!(failed.code(), Some(ErrorCode::AuthenticationFailed));
        assert_eq!(
            failed.to_string(),
            "authentication failed: wrong user name or password"
        );
        let throttled = ClientError::from_broker(ErrorCode::Throttled, String::new(), 250);
        assert!(matches!(
            throttled,
            ClientError::Throttled {
                throttle_time_ms: 250,
                ..
            }
        ));
        assert_eq!(throttled.to_string(), "throttled for 250 ms: throttled");
        let other = ClientError::from_broker(ErrorCode::NotAuthorized, "no".into(), 0);
        assert_eq!(other.code(), Some(ErrorCode::NotAuthorized));
        assert!(other.is_refusal() && failed.is_refusal() && !other.is_connection_error());
    }
}
