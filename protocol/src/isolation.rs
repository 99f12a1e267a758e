//! Read isolation: how far a fetch may see into a partition
//! (`FetchRequest::isolation`). Storage bounds reads by it; the client and
//! `ferryctl` choose it: one definition for all three.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Which end of a partition a read stops at. The zero value is `Durable`,
/// so a client that does not say gets the safe default.
///
/// ```
/// use ferry_protocol::isolation::Isolation;
/// assert_eq!(Isolation::from_u32(0), Some(Isolation::Durable));
/// assert_eq!("written".parse(), Ok(Isolation::Written));
/// assert_eq!(Isolation::Written.to_string(), "written");
/// assert!("committed".parse::<Isolation>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum Isolation {
    /// Up to the durable end: what an `acks=durable` produce has been (or
    /// would be) answered for. On `fsync=always` and interval topics that is
    /// the end of the last fsynced batch, so a record read this way is never
    /// lost or replaced by a power loss; on `fsync=never` topics it is the
    /// written end.
    #[default]
    Durable = 0,
    /// Up to the written end (page cache): lower latency, but a record read
    /// this way can vanish in a power loss and its offset hold another one.
    Written = 1,
}

impl Isolation {
    /// The wire value's level, if it is one.
    pub fn from_u32(value: u32) -> Option<Isolation> {
        match value {
            0 => Some(Isolation::Durable),
            1 => Some(Isolation::Written),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Durable => "durable",
            Isolation::Written => "written",
        }
    }
}

/// A string that is not an isolation level.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("isolation must be durable or written, not {0:?}")]
pub struct ParseIsolationError(pub String);

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Isolation {
    type Err = ParseIsolationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "durable" => Ok(Isolation::Durable),
            "written" => Ok(Isolation::Written),
            _ => Err(ParseIsolationError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_round_trips_through_its_wire_value_and_name() {
        for level in [Isolation::Durable, Isolation::Written] {
            assert_eq!(Isolation::from_u32(level as u32), Some(level));
            assert_eq!(level.as_str().parse(), Ok(level));
        }
        assert_eq!(Isolation::from_u32(2), None);
        assert_eq!(Isolation::default() as u32, 0, "the zero value is durable");
    }
}
