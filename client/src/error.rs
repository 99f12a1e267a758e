//! The client crate's error type.

use ferry_protocol::{ErrorCode, ProtocolError};
use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum ClientError {
    #[error("cannot reach the broker at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("connection to the broker lost: {0}")]
    Disconnected(String),
    #[error("request timed out after {0} ms")]
    Timeout(u64),
    #[error("{message}")]
    Broker { code: ErrorCode, message: String },
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("invalid argument: {0}")]
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

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
