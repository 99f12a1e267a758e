//! The enums requests choose between, parsed from their wire values at the
//! edge: where a partition without a committed offset starts
//! ([`OffsetReset`]), where a queue starts ([`StartFrom`]), which offset
//! a look-up or reset means ([`OffsetSpec`]) and how far a fetch may see
//! ([`Isolation`], storage's own type).

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

pub use ferry_storage::Isolation;

/// Parses `FetchRequest::isolation` (0 durable, the default; 1 written).
pub fn parse_isolation(value: u32) -> Result<Isolation, BrokerError> {
    Isolation::from_u32(value).ok_or_else(|| BrokerError::InvalidChoice {
        field: "isolation",
        expected: "0 (durable) or 1 (written)",
        value: value.to_string(),
    })
}

/// Where a group member starts a partition with no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    #[default]
    Earliest,
    Latest,
}

impl OffsetReset {
    /// Parses the wire value (empty = the default, earliest).
    pub fn parse(value: &str) -> Result<OffsetReset, BrokerError> {
        match value {
            "" | "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            other => Err(BrokerError::InvalidChoice {
                field: "offset_reset",
                expected: "earliest or latest",
                value: other.chars().take(64).collect(),
            }),
        }
    }

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// Where a new queue starts on its topic. Persisted in queue definitions
/// as `"earliest"` / `"latest"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

impl StartFrom {
    /// Parses the wire value (empty = the default, earliest).
    pub fn parse(value: &str) -> Result<StartFrom, BrokerError> {
        match value {
            "" | "earliest" => Ok(StartFrom::Earliest),
            "latest" => Ok(StartFrom::Latest),
            other => Err(BrokerError::InvalidChoice {
                field: "start",
                expected: "earliest or latest",
                value: other.chars().take(64).collect(),
            }),
        }
    }
}

/// Which offset of a partition a request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The first readable offset.
    Earliest,
    /// The end: the offset the next record gets.
    Latest,
    /// The first offset whose timestamp is at or after this (ms since the
    /// epoch); the end when no record is that late.
    Timestamp(i64),
    /// Exactly this offset (checked against the partition's range).
    Offset(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_their_wire_values() {
        assert_eq!(OffsetReset::parse("").unwrap(), OffsetReset::Earliest);
        assert_eq!(OffsetReset::parse("latest").unwrap(), OffsetReset::Latest);
        assert!(OffsetReset::parse("newest").is_err());
        assert_eq!(StartFrom::parse("latest").unwrap(), StartFrom::Latest);
        assert!(StartFrom::parse("middle").is_err());
        assert_eq!(parse_isolation(0).unwrap(), Isolation::Durable);
        assert_eq!(parse_isolation(1).unwrap(), Isolation::Written);
        assert!(parse_isolation(2).is_err());
        let json = serde_json::to_string(&StartFrom::Latest).unwrap();
        assert_eq!(
            json, "\"latest\"",
            "compatible with queue definitions on disk"
        );
    }
}
