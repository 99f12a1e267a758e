//! The broker's error type, and its mapping to protocol error codes at the
//! edge (every response carries `error_code` + `error_message`).

use ferry_protocol::{ErrorCode, ProtocolError};
use ferry_storage::StorageError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] ProtocolError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("broker metadata error: {0}")]
    Metadata(String),
    #[error("broker is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    InvalidGroup(String),
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    #[error("unknown member {0:?}: rejoin the group")]
    UnknownMember(String),
    #[error("{0}")]
    FencedMember(String),
    #[error("{0}")]
    GroupNotEmpty(String),
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    #[error("queue {0} already exists")]
    QueueExists(String),
}

impl BrokerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::UnknownTopic(_) => ErrorCode::UnknownTopic,
            BrokerError::UnknownPartition { .. } => ErrorCode::UnknownPartition,
            BrokerError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            BrokerError::InvalidTopicName { .. } => ErrorCode::InvalidTopicName,
            BrokerError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            BrokerError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            BrokerError::InvalidBatch(ProtocolError::TooLarge { .. }) => ErrorCode::BatchTooLarge,
            BrokerError::InvalidBatch(_) => ErrorCode::CorruptBatch,
            BrokerError::Storage(e) => match e {
                StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
                StorageError::CorruptData { .. } => ErrorCode::CorruptData,
                StorageError::InvalidBatch(ProtocolError::TooLarge { .. }) => {
                    ErrorCode::BatchTooLarge
                }
                StorageError::InvalidBatch(_) => ErrorCode::CorruptBatch,
                StorageError::DiskFull { .. } => ErrorCode::DiskFull,
                StorageError::ReadOnly(_) | StorageError::Closed(_) => ErrorCode::PartitionReadOnly,
                StorageError::Config(_) => ErrorCode::InvalidConfig,
                StorageError::Io { .. } => ErrorCode::StorageError,
            },
            BrokerError::Metadata(_) => ErrorCode::StorageError,
            BrokerError::ShuttingDown => ErrorCode::ShuttingDown,
            BrokerError::InvalidGroup(_) => ErrorCode::InvalidGroup,
            BrokerError::UnknownGroup(_) => ErrorCode::UnknownGroup,
            BrokerError::UnknownMember(_) => ErrorCode::UnknownMember,
            BrokerError::FencedMember(_) => ErrorCode::FencedMember,
            BrokerError::GroupNotEmpty(_) => ErrorCode::GroupNotEmpty,
            BrokerError::UnknownQueue(_) => ErrorCode::UnknownQueue,
            BrokerError::QueueExists(_) => ErrorCode::QueueAlreadyExists,
        }
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
