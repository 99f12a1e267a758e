//! The protocol crate's error type and the wire error codes every response
//! carries. Codes are stable numbers: never renumber one, only add.

use thiserror::Error;

/// Why bytes could not be decoded or encoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    #[error("record batch CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("{what} of {actual} exceeds the limit of {limit}")]
    TooLarge {
        what: &'static str,
        actual: u64,
        limit: u64,
    },
    #[error("unsupported {what}: {value}")]
    Unsupported { what: &'static str, value: u64 },
}

/// Error codes carried in responses (`error_code` fields). `None` is success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    None = 0,
    Unknown = 1,
    InvalidRequest = 2,
    UnsupportedVersion = 3,
    UnknownApiKey = 4,
    FrameTooLarge = 5,
    HandshakeRequired = 6,
    UnknownTopic = 10,
    UnknownPartition = 11,
    TopicAlreadyExists = 12,
    InvalidTopicName = 13,
    InvalidConfig = 14,
    OffsetOutOfRange = 20,
    CorruptBatch = 21,
    CorruptData = 22,
    BatchTooLarge = 23,
    OutOfOrderSequence = 24,
    ProducerFenced = 25,
    StorageError = 30,
    DiskFull = 31,
    PartitionReadOnly = 32,
    NotAuthorized = 40,
    Throttled = 41,
    TooManyConnections = 42,
    ShuttingDown = 43,
    Timeout = 44,
    AuthenticationFailed = 45,
    AuthenticationRequired = 46,
    UnsupportedMechanism = 47,
    UserAlreadyExists = 48,
    UnknownUser = 49,
    UnknownGroup = 50,
    UnknownMember = 51,
    FencedMember = 52,
    GroupNotEmpty = 53,
    InvalidGroup = 54,
    UnknownQueue = 60,
    QueueAlreadyExists = 61,
    UnknownDelivery = 62,
    UnknownToken = 70,
    UnknownAcl = 71,
    UnknownQuota = 72,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 42] = [
        ErrorCode::None,
        ErrorCode::Unknown,
        ErrorCode::InvalidRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownApiKey,
        ErrorCode::FrameTooLarge,
        ErrorCode::HandshakeRequired,
        ErrorCode::UnknownTopic,
        ErrorCode::UnknownPartition,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::InvalidTopicName,
        ErrorCode::InvalidConfig,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::CorruptBatch,
        ErrorCode::CorruptData,
        ErrorCode::BatchTooLarge,
        ErrorCode::OutOfOrderSequence,
        ErrorCode::ProducerFenced,
        ErrorCode::StorageError,
        ErrorCode::DiskFull,
        ErrorCode::PartitionReadOnly,
        ErrorCode::NotAuthorized,
        ErrorCode::Throttled,
        ErrorCode::TooManyConnections,
        ErrorCode::ShuttingDown,
        ErrorCode::Timeout,
        ErrorCode::AuthenticationFailed,
        ErrorCode::AuthenticationRequired,
        ErrorCode::UnsupportedMechanism,
        ErrorCode::UserAlreadyExists,
        ErrorCode::UnknownUser,
        ErrorCode::UnknownGroup,
        ErrorCode::UnknownMember,
        ErrorCode::FencedMember,
        ErrorCode::GroupNotEmpty,
        ErrorCode::InvalidGroup,
        ErrorCode::UnknownQueue,
        ErrorCode::QueueAlreadyExists,
        ErrorCode::UnknownDelivery,
        ErrorCode::UnknownToken,
        ErrorCode::UnknownAcl,
        ErrorCode::UnknownQuota,
    ];

    pub fn as_u32(self) -> u32 {
        self as u16 as u32
    }

    /// Maps a wire value back; unknown values (from a newer peer) become `Unknown`.
    pub fn from_u32(value: u32) -> ErrorCode {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_u32() == value)
            .unwrap_or(ErrorCode::Unknown)
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "none",
            ErrorCode::Unknown => "unknown error",
            ErrorCode::InvalidRequest => "invalid request",
            ErrorCode::UnsupportedVersion => "unsupported api version",
            ErrorCode::UnknownApiKey => "unknown api key",
            ErrorCode::FrameTooLarge => "frame too large",
            ErrorCode::HandshakeRequired => "handshake required",
            ErrorCode::UnknownTopic => "unknown topic",
            ErrorCode::UnknownPartition => "unknown partition",
            ErrorCode::TopicAlreadyExists => "topic already exists",
            ErrorCode::InvalidTopicName => "invalid topic name",
            ErrorCode::InvalidConfig => "invalid config",
            ErrorCode::OffsetOutOfRange => "offset out of range",
            ErrorCode::CorruptBatch => "corrupt record batch",
            ErrorCode::CorruptData => "corrupt data on disk",
            ErrorCode::BatchTooLarge => "record batch too large",
            ErrorCode::OutOfOrderSequence => "out-of-order sequence number",
            ErrorCode::ProducerFenced => "producer fenced by a newer epoch",
            ErrorCode::StorageError => "storage error",
            ErrorCode::DiskFull => "disk full",
            ErrorCode::PartitionReadOnly => "partition is read-only",
            ErrorCode::NotAuthorized => "not authorized",
            ErrorCode::Throttled => "throttled",
            ErrorCode::TooManyConnections => "too many connections",
            ErrorCode::ShuttingDown => "broker is shutting down",
            ErrorCode::Timeout => "timed out",
            ErrorCode::AuthenticationFailed => "authentication failed",
            ErrorCode::AuthenticationRequired => "authentication required",
            ErrorCode::UnsupportedMechanism => "unsupported SASL mechanism",
            ErrorCode::UserAlreadyExists => "user already exists",
            ErrorCode::UnknownUser => "unknown user",
            ErrorCode::UnknownGroup => "unknown group",
            ErrorCode::UnknownMember => "unknown member",
            ErrorCode::FencedMember => "fenced member",
            ErrorCode::GroupNotEmpty => "group has live members",
            ErrorCode::InvalidGroup => "invalid group",
            ErrorCode::UnknownQueue => "unknown queue",
            ErrorCode::QueueAlreadyExists => "queue already exists",
            ErrorCode::UnknownDelivery => "unknown delivery",
            ErrorCode::UnknownToken => "unknown token",
            ErrorCode::UnknownAcl => "unknown ACL entry",
            ErrorCode::UnknownQuota => "unknown quota",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_u32()), "duplicate code {code:?}");
            assert_eq!(ErrorCode::from_u32(code.as_u32()), code);
        }
        assert_eq!(ErrorCode::from_u32(65_000), ErrorCode::Unknown);
    }
}
