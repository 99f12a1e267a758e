//! The client crate's error type.

use ferry_protocol::{ErrorCode, ProtocolError};
use thiserror::Error;

#[derive(Debug, Error, Clone)]
/// Why a client call failed.
pub enum ClientError {
    #[error("cannot reach the broker at {addr}: {reason}")]
    /// No connection could be made.
    Unreachable {
        /// The broker address tried.
        addr: String,
        /// Why the last attempt failed.
        reason: String,
    },
    #[error("connection to the broker lost: {0}")]
    /// The connection was lost (the request may or may not have been applied).
    Disconnected(String),
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
    /// Bytes that do not decode.
    Protocol(#[from] ProtocolError),
    #[error("invalid argument: {0}")]
    /// An argument the client refused before sending.
    InvalidArgument(String),
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
            ClientError::Unreachable { .. } | ClientError::Disconnected(_)
        )
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
