//! The fsync policy of a log, as topic configurations carry it on the wire
//! (`always`, `never`, or an interval in ms). Storage acts on it; the
//! client and `ferryctl` parse and print it: one definition for all three.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// When a log calls `fdatasync`.
///
/// ```
/// use ferry_protocol::fsync::FsyncPolicy;
/// assert_eq!("never".parse(), Ok(FsyncPolicy::Never));
/// assert_eq!("100".parse(), Ok(FsyncPolicy::IntervalMs(100)));
/// assert_eq!("100ms".parse(), Ok(FsyncPolicy::IntervalMs(100)));
/// assert_eq!(FsyncPolicy::IntervalMs(100).to_string(), "100");
/// assert!("sometimes".parse::<FsyncPolicy>().is_err());
/// assert!("0".parse::<FsyncPolicy>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FsyncPolicy {
    /// Every append is followed by a group-committed fsync; a `durable`
    /// append is acknowledged only after it. Loss window: none.
    #[default]
    Always,
    /// Fsync every N ms (N > 0); a `durable` append waits for the next one.
    /// Loss window for `written` appends: N ms.
    IntervalMs(u64),
    /// No fsync on the write path; the OS writes back when it likes, and the
    /// log still fsyncs at segment roll, checkpoints and clean shutdown.
    /// Loss window: up to the checkpoint interval.
    Never,
}

/// A string that is not an fsync policy.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("fsync policy must be always, never or an interval in ms above 0, not {0:?}")]
pub struct ParseFsyncPolicyError(pub String);

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::IntervalMs(ms) => write!(f, "{ms}"),
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = ParseFsyncPolicyError;

    /// `always`, `never`, or an interval in ms (`100` or `100ms`, above 0).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            other => match other.trim_end_matches("ms").parse::<u64>() {
                Ok(ms) if ms > 0 => Ok(FsyncPolicy::IntervalMs(ms)),
                _ => Err(ParseFsyncPolicyError(s.to_string())),
            },
        }
    }
}
