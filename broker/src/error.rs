//! The broker's error type, and — in [`BrokerError::code`], the one place —
//! its mapping to protocol error codes at the edge (every response carries
//! `error_code` + `error_message`).

use std::path::PathBuf;

use ferry_protocol::{ErrorCode, ProtocolError};
use ferry_storage::StorageError;
use thiserror::Error;

/// Which kind of name an [`BrokerError::InvalidName`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Topic,
    Group,
    Queue,
}

impl NameKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Topic => "topic",
            NameKind::Group => "group",
            NameKind::Queue => "queue",
        }
    }
}

/// Why a member may not do what it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceReason {
    /// It was removed (missed its session); it must join again.
    Removed,
    /// It is not a live member of a group that has members.
    NotAMember,
    /// It does not own the partition it commits.
    NotOwner,
}

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("invalid {} name {name:?}: {reason}", kind.as_str())]
    InvalidName {
        kind: NameKind,
        name: String,
        reason: &'static str,
    },
    #[error("{field} must be {expected}, not {value:?}")]
    InvalidChoice {
        field: &'static str,
        expected: &'static str,
        value: String,
    },
    #[error("invalid topic config: {0}")]
    InvalidTopicConfig(String),
    #[error("{what} is {requested}, above the limit of {limit}")]
    OverLimit {
        what: &'static str,
        requested: u64,
        limit: u64,
    },
    #[error("the broker holds the maximum of {limit} {what}")]
    Full { what: &'static str, limit: u64 },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] ProtocolError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("broker metadata I/O on {path}: {source}")]
    MetadataIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("broker metadata file {path} is corrupt: {what}")]
    MetadataCorrupt { path: PathBuf, what: String },
    #[error("cannot encode broker state: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{} is in use by another broker{}: stop it, or give this one its own --data-dir", dir.display(), holder_pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    DataDirLocked {
        dir: PathBuf,
        holder_pid: Option<u32>,
    },
    #[error("a broker task failed: {0}")]
    TaskFailed(String),
    #[error("broker is shutting down")]
    ShuttingDown,
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    #[error("group {group} is at its limit of {limit} members")]
    GroupFull { group: String, limit: u64 },
    #[error("unknown member {0:?}: rejoin the group")]
    UnknownMember(String),
    #[error("{}", fenced_message(*reason, member, group, partition))]
    FencedMember {
        group: String,
        member: String,
        reason: FenceReason,
        /// The partition refused, for `NotOwner`.
        partition: Option<(String, u32)>,
    },
    #[error("group {group} has {members} live member(s); stop them before you {action}")]
    GroupNotEmpty {
        group: String,
        members: usize,
        action: &'static str,
    },
    #[error("unknown queue {topic}/{queue}")]
    UnknownQueue { topic: String, queue: String },
    #[error("queue {topic}/{queue} already exists")]
    QueueExists { topic: String, queue: String },
    #[error("queue {queue} cannot dead-letter to {topic}: queues read that topic, so dead letters would be delivered again")]
    DeadLetterLoop { queue: String, topic: String },
    #[error("no subscription {0} on this connection and queue")]
    UnknownSubscription(u64),
}

fn fenced_message(
    reason: FenceReason,
    member: &str,
    group: &str,
    partition: &Option<(String, u32)>,
) -> String {
    let who = if member.is_empty() {
        "an anonymous client"
    } else {
        member
    };
    match (reason, partition) {
        (FenceReason::Removed, _) => {
            format!("member {who} was removed from group {group}; rejoin (its commits are refused)")
        }
        (FenceReason::NotOwner, Some((topic, p))) => {
            format!("member {who} does not own {topic}/{p}; the commit is refused")
        }
        _ => format!("{who} is not a live member of group {group}"),
    }
}

impl BrokerError {
    /// An I/O error on broker metadata at `path`.
    pub fn metadata_io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BrokerError {
        let path = path.into();
        move |source| BrokerError::MetadataIo { path, source }
    }

    /// The protocol error code this error is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::UnknownTopic(_) => ErrorCode::UnknownTopic,
            BrokerError::UnknownPartition { .. } => ErrorCode::UnknownPartition,
            BrokerError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            BrokerError::InvalidName { kind, .. } => match kind {
                NameKind::Topic => ErrorCode::InvalidTopicName,
                NameKind::Group => ErrorCode::InvalidGroup,
                NameKind::Queue => ErrorCode::InvalidRequest,
            },
            BrokerError::InvalidChoice { .. } | BrokerError::InvalidRequest(_) => {
                ErrorCode::InvalidRequest
            }
            BrokerError::UnknownSubscription(_) | BrokerError::DeadLetterLoop { .. } => {
                ErrorCode::InvalidRequest
            }
            BrokerError::InvalidTopicConfig(_) => ErrorCode::InvalidConfig,
            BrokerError::OverLimit { .. } | BrokerError::Full { .. } => ErrorCode::InvalidConfig,
            BrokerError::InvalidBatch(ProtocolError::TooLarge { .. }) => ErrorCode::BatchTooLarge,
            BrokerError::InvalidBatch(_) => ErrorCode::CorruptBatch,
            BrokerError::Storage(e) => storage_code(e),
            BrokerError::MetadataIo { .. }
            | BrokerError::MetadataCorrupt { .. }
            | BrokerError::Encode(_)
            | BrokerError::TaskFailed(_)
            | BrokerError::DataDirLocked { .. } => ErrorCode::StorageError,
            BrokerError::ShuttingDown => ErrorCode::ShuttingDown,
            BrokerError::GroupFull { .. } => ErrorCode::InvalidGroup,
            BrokerError::UnknownGroup(_) => ErrorCode::UnknownGroup,
            BrokerError::UnknownMember(_) => ErrorCode::UnknownMember,
            BrokerError::FencedMember { .. } => ErrorCode::FencedMember,
            BrokerError::GroupNotEmpty { .. } => ErrorCode::GroupNotEmpty,
            BrokerError::UnknownQueue { .. } => ErrorCode::UnknownQueue,
            BrokerError::QueueExists { .. } => ErrorCode::QueueAlreadyExists,
        }
    }
}

fn storage_code(error: &StorageError) -> ErrorCode {
    match error {
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::CorruptData { .. } => ErrorCode::CorruptData,
        StorageError::InvalidBatch(ProtocolError::TooLarge { .. }) => ErrorCode::BatchTooLarge,
        StorageError::InvalidBatch(_) => ErrorCode::CorruptBatch,
        StorageError::DiskFull { .. } => ErrorCode::DiskFull,
        StorageError::ReadOnly(_) | StorageError::Closed(_) => ErrorCode::PartitionReadOnly,
        StorageError::ConfigOutOfRange { .. } | StorageError::ConfigNotPositive { .. } => {
            ErrorCode::InvalidConfig
        }
        StorageError::Io { .. } => ErrorCode::StorageError,
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
