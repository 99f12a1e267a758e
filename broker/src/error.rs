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
    InvalidTopicConfig(#[source] StorageError),
    #[error("invalid topic config: fsync must be always, never or an interval in ms, not {0:?}")]
    InvalidFsync(String),
    #[error("{what} is {requested}, above the limit of {limit}")]
    OverLimit {
        what: &'static str,
        requested: u64,
        limit: u64,
    },
    #[error("{what} is {requested}, below the minimum of {minimum}")]
    BelowMinimum {
        what: &'static str,
        requested: u64,
        minimum: u64,
    },
    #[error("the broker holds the maximum of {limit} {what}")]
    Full { what: &'static str, limit: u64 },
    #[error("{0}: raise the open-files limit (ulimit -n, --max-open-files), lower --max-connections, or delete topics")]
    OpenFilesBudget(#[source] ferry_storage::fd_budget::FdBudgetExceeded),
    #[error("unknown acks value {0} (0 none, 1 written, 2 durable)")]
    UnknownAcks(u32),
    #[error("the produce request carries no record batch")]
    EmptyProduce,
    #[error("offset {offset} is outside {topic}/{partition} ([{start}, {end}])")]
    OffsetOutsidePartition {
        topic: String,
        partition: u32,
        offset: u64,
        start: u64,
        end: u64,
    },
    #[error("a member must subscribe to at least one topic")]
    NoTopics,
    #[error("{field} is {bytes} bytes, above the limit of {limit}")]
    TooLong {
        field: &'static str,
        bytes: usize,
        limit: usize,
    },
    #[error("{what}: {count}, above the limit of {limit}")]
    TooMany {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("the broker holds the maximum of {limit} {what}: no new group is created")]
    TooManyGroups { what: &'static str, limit: usize },
    #[error("the {what} would be over {limit} bytes (the frame limit): ask for less")]
    ResponseTooLarge { what: &'static str, limit: usize },
    #[error("{0}")]
    Frame(#[source] ProtocolError),
    #[error("the first request on a connection must be a handshake")]
    HandshakeRequired,
    #[error("client speaks protocol versions {client_min}..={client_max}, the broker {broker_min}..={broker_max}")]
    UnsupportedProtocol {
        client_min: u32,
        client_max: u32,
        broker_min: u32,
        broker_max: u32,
    },
    #[error("the broker is at max_connections ({limit})")]
    TooManyConnections { limit: usize },
    #[error("this address has max_connections_per_ip ({limit}) connections open")]
    TooManyConnectionsFromIp { limit: usize },
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
    MetadataCorrupt { path: PathBuf, what: &'static str },
    #[error("cannot encode broker state: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{} is in use by another broker{}: stop it, or give this one its own --data-dir", dir.display(), holder_pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    DataDirLocked {
        dir: PathBuf,
        holder_pid: Option<u32>,
    },
    #[error("a broker task failed: {0}")]
    TaskFailed(#[from] tokio::task::JoinError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: cannot read the {what} from {}: {source}", path.display())]
    TlsPem {
        what: &'static str,
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("TLS: {} holds no certificate", path.display())]
    TlsNoCertificate { path: PathBuf },
    #[error("TLS: certificate {} with key {}: {source}", cert.display(), key.display())]
    TlsCertificateKey {
        cert: PathBuf,
        key: PathBuf,
        source: tokio_rustls::rustls::Error,
    },
    #[error("TLS: client CA {}: {source}", path.display())]
    TlsClientCa {
        path: PathBuf,
        source: tokio_rustls::rustls::Error,
    },
    #[error("TLS: client CA {}: {source}", path.display())]
    TlsClientVerifier {
        path: PathBuf,
        source: tokio_rustls::rustls::server::VerifierBuilderError,
    },
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
    #[error("{} holds data in format {found}; this build reads format {supported} (Kafka v2 record batches). {}", dir.display(), data_format_advice(*found, *supported))]
    DataFormatUnsupported {
        dir: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("--auth required, but there is no user and no client CA: nobody could connect. Create the first user with --bootstrap-admin-password-file FILE")]
    NoUsers,
    #[error("admin password file {}: {source}", path.display())]
    PasswordFileIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin password file {}: {reason}", path.display())]
    PasswordFileInvalid { path: PathBuf, reason: &'static str },
    #[error("SCRAM: {0}")]
    Scram(#[from] ferry_protocol::scram::ScramError),
    /// The same answer for an unknown user, a wrong password, a bad token
    /// and a malformed exchange.
    #[error("authentication failed: unknown user, wrong password or invalid token")]
    AuthenticationFailed,
    #[error("authenticate first (SaslAuthenticate): this broker runs with --auth required")]
    AuthenticationRequired,
    #[error("this connection has already authenticated")]
    AlreadyAuthenticated,
    #[error("too many failed authentications from this address: retry in {retry_after_ms} ms")]
    AuthRateLimited { retry_after_ms: u64 },
    #[error("unsupported SASL mechanism {0:?} (supported: SCRAM-SHA-256, FERRY-TOKEN)")]
    UnsupportedMechanism(String),
    #[error("{principal} may not {operation} {resource} {name:?}")]
    NotAuthorized {
        principal: String,
        operation: crate::security::Operation,
        resource: crate::security::ResourceType,
        name: String,
    },
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("unknown access token {0:?}")]
    UnknownToken(String),
    #[error("no such ACL entry")]
    UnknownAcl,
    #[error("no quota for {0:?}")]
    UnknownQuota(String),
    #[error("invalid ACL entry: {0}")]
    InvalidAcl(#[source] crate::security::acl::AclError),
    #[error("invalid quota: {0}")]
    InvalidQuota(#[source] crate::security::quota::QuotaError),
    #[error("invalid {what} {value:?}: expected {expected}")]
    InvalidSecurityValue {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
}

fn data_format_advice(found: u32, supported: u32) -> &'static str {
    match found < supported {
        true => "It was written by an earlier Ferry: keep running that build on it, or start this one on a new --data-dir and produce the data again (format 1 is not converted in place)",
        false => "It was written by a newer Ferry: run that build on it",
    }
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
            BrokerError::InvalidChoice { .. }
            | BrokerError::UnknownAcks(_)
            | BrokerError::EmptyProduce
            | BrokerError::OffsetOutsidePartition { .. }
            | BrokerError::NoTopics
            | BrokerError::TooLong { .. }
            | BrokerError::TooMany { .. } => ErrorCode::InvalidRequest,
            BrokerError::TooManyGroups { .. } => ErrorCode::InvalidGroup,
            BrokerError::ResponseTooLarge { .. } => ErrorCode::FrameTooLarge,
            BrokerError::Frame(ProtocolError::TooLarge { .. }) => ErrorCode::FrameTooLarge,
            BrokerError::Frame(_) => ErrorCode::InvalidRequest,
            BrokerError::HandshakeRequired => ErrorCode::HandshakeRequired,
            BrokerError::UnsupportedProtocol { .. } => ErrorCode::UnsupportedVersion,
            BrokerError::TooManyConnections { .. }
            | BrokerError::TooManyConnectionsFromIp { .. } => ErrorCode::TooManyConnections,
            BrokerError::UnknownSubscription(_) | BrokerError::DeadLetterLoop { .. } => {
                ErrorCode::InvalidRequest
            }
            BrokerError::InvalidTopicConfig(_) | BrokerError::InvalidFsync(_) => {
                ErrorCode::InvalidConfig
            }
            BrokerError::OverLimit { .. }
            | BrokerError::BelowMinimum { .. }
            | BrokerError::Full { .. }
            | BrokerError::OpenFilesBudget(_) => ErrorCode::InvalidConfig,
            BrokerError::InvalidBatch(ProtocolError::TooLarge { .. }) => ErrorCode::BatchTooLarge,
            BrokerError::InvalidBatch(_) => ErrorCode::CorruptBatch,
            BrokerError::Storage(e) => storage_code(e),
            BrokerError::MetadataIo { .. }
            | BrokerError::MetadataCorrupt { .. }
            | BrokerError::Encode(_)
            | BrokerError::TaskFailed(_)
            | BrokerError::DataDirLocked { .. }
            | BrokerError::Listen { .. } => ErrorCode::StorageError,
            BrokerError::TlsPem { .. }
            | BrokerError::TlsNoCertificate { .. }
            | BrokerError::TlsCertificateKey { .. }
            | BrokerError::TlsClientCa { .. }
            | BrokerError::TlsClientVerifier { .. } => ErrorCode::InvalidConfig,
            BrokerError::ShuttingDown => ErrorCode::ShuttingDown,
            BrokerError::GroupFull { .. } => ErrorCode::InvalidGroup,
            BrokerError::UnknownGroup(_) => ErrorCode::UnknownGroup,
            BrokerError::UnknownMember(_) => ErrorCode::UnknownMember,
            BrokerError::FencedMember { .. } => ErrorCode::FencedMember,
            BrokerError::GroupNotEmpty { .. } => ErrorCode::GroupNotEmpty,
            BrokerError::UnknownQueue { .. } => ErrorCode::UnknownQueue,
            BrokerError::QueueExists { .. } => ErrorCode::QueueAlreadyExists,
            BrokerError::DataFormatUnsupported { .. } => ErrorCode::StorageError,
            BrokerError::NoUsers
            | BrokerError::PasswordFileIo { .. }
            | BrokerError::PasswordFileInvalid { .. } => ErrorCode::InvalidConfig,
            BrokerError::Scram(_) | BrokerError::AuthenticationFailed => {
                ErrorCode::AuthenticationFailed
            }
            BrokerError::AuthenticationRequired => ErrorCode::AuthenticationRequired,
            BrokerError::AlreadyAuthenticated => ErrorCode::InvalidRequest,
            BrokerError::AuthRateLimited { .. } => ErrorCode::Throttled,
            BrokerError::UnsupportedMechanism(_) => ErrorCode::UnsupportedMechanism,
            BrokerError::NotAuthorized { .. } => ErrorCode::NotAuthorized,
            BrokerError::UserExists(_) => ErrorCode::UserAlreadyExists,
            BrokerError::UnknownUser(_) => ErrorCode::UnknownUser,
            BrokerError::UnknownToken(_) => ErrorCode::UnknownToken,
            BrokerError::UnknownAcl => ErrorCode::UnknownAcl,
            BrokerError::UnknownQuota(_) => ErrorCode::UnknownQuota,
            BrokerError::InvalidAcl(_)
            | BrokerError::InvalidQuota(_)
            | BrokerError::InvalidSecurityValue { .. } => ErrorCode::InvalidRequest,
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
        StorageError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
        StorageError::ProducerFenced { .. } => ErrorCode::ProducerFenced,
        StorageError::ReadOnly(_) | StorageError::Closed(_) => ErrorCode::PartitionReadOnly,
        StorageError::ConfigOutOfRange { .. } | StorageError::ConfigNotPositive { .. } => {
            ErrorCode::InvalidConfig
        }
        StorageError::Io { .. } => ErrorCode::StorageError,
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The one mapping, pinned: a client relies on these codes.
    #[test]
    fn each_error_maps_to_its_protocol_code() {
        let too_large = ProtocolError::TooLarge {
            what: "frame",
            actual: 2,
            limit: 1,
        };
        let cases = [
            (
                BrokerError::UnknownTopic("t".into()),
                ErrorCode::UnknownTopic,
            ),
            (BrokerError::UnknownAcks(9), ErrorCode::InvalidRequest),
            (BrokerError::EmptyProduce, ErrorCode::InvalidRequest),
            (BrokerError::NoTopics, ErrorCode::InvalidRequest),
            (
                BrokerError::TooLong {
                    field: "member_id",
                    bytes: 2,
                    limit: 1,
                },
                ErrorCode::InvalidRequest,
            ),
            (
                BrokerError::TooManyGroups {
                    what: "groups",
                    limit: 1,
                },
                ErrorCode::InvalidGroup,
            ),
            (
                BrokerError::InvalidFsync("x".into()),
                ErrorCode::InvalidConfig,
            ),
            (
                BrokerError::Frame(too_large.clone()),
                ErrorCode::FrameTooLarge,
            ),
            (
                BrokerError::Frame(ProtocolError::Malformed("x")),
                ErrorCode::InvalidRequest,
            ),
            (
                BrokerError::InvalidBatch(too_large),
                ErrorCode::BatchTooLarge,
            ),
            (
                BrokerError::InvalidBatch(ProtocolError::Malformed("x")),
                ErrorCode::CorruptBatch,
            ),
            (BrokerError::HandshakeRequired, ErrorCode::HandshakeRequired),
            (
                BrokerError::TooManyConnections { limit: 1 },
                ErrorCode::TooManyConnections,
            ),
            (BrokerError::ShuttingDown, ErrorCode::ShuttingDown),
            (
                BrokerError::AuthenticationFailed,
                ErrorCode::AuthenticationFailed,
            ),
            (
                BrokerError::AuthenticationRequired,
                ErrorCode::AuthenticationRequired,
            ),
            (
                BrokerError::AuthRateLimited { retry_after_ms: 1 },
                ErrorCode::Throttled,
            ),
            (
                BrokerError::UnsupportedMechanism("PLAIN".into()),
                ErrorCode::UnsupportedMechanism,
            ),
            (BrokerError::UnknownAcl, ErrorCode::UnknownAcl),
            (
                BrokerError::Storage(StorageError::DiskFull { path: "p".into() }),
                ErrorCode::DiskFull,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }
}
