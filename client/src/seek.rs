//! [`SeekTo`]: where a consumer starts reading a partition, parsed from the
//! strings `ferryctl` takes; and [`OffsetReset`], where a group member
//! starts a partition its group has no committed offset for.

/// Where to start reading a partition. Parses from (and displays as) the
/// strings `ferryctl` takes.
///
/// ```
/// use ferry_client::SeekTo;
/// assert_eq!("earliest".parse(), Ok(SeekTo::Earliest));
/// assert_eq!(SeekTo::Timestamp(17).to_string(), "@17");
/// assert_eq!("1234".parse(), Ok(SeekTo::Offset(1234)));
/// assert_eq!("@1700000000000".parse(), Ok(SeekTo::Timestamp(1_700_000_000_000)));
/// assert!("yesterday".parse::<SeekTo>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeekTo {
    /// The partition's first offset.
    Earliest,
    /// The partition's end: only records produced from now on.
    Latest,
    /// This offset.
    Offset(u64),
    /// The first record with timestamp >= this (ms since the epoch).
    Timestamp(i64),
}

impl std::fmt::Display for SeekTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeekTo::Earliest => f.write_str("earliest"),
            SeekTo::Latest => f.write_str("latest"),
            SeekTo::Offset(offset) => write!(f, "{offset}"),
            SeekTo::Timestamp(ms) => write!(f, "@{ms}"),
        }
    }
}

impl std::str::FromStr for SeekTo {
    type Err = String;

    /// `earliest`, `latest`, an offset, or `@TIMESTAMP_MS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" | "beginning" => Ok(SeekTo::Earliest),
            "latest" | "end" => Ok(SeekTo::Latest),
            _ => {
                if let Some(ts) = s.strip_prefix('@') {
                    return ts
                        .parse()
                        .map(SeekTo::Timestamp)
                        .map_err(|_| format!("bad timestamp in {s:?}: expected @MILLISECONDS"));
                }
                s.parse().map(SeekTo::Offset).map_err(|_| {
                    format!("expected earliest, latest, an offset or @TIMESTAMP_MS, not {s:?}")
                })
            }
        }
    }
}

/// Where a group member starts a partition its group has no committed
/// offset for (or whose committed offset fell off the log). The broker
/// takes only these two: [`crate::GroupConfig::offset_reset`].
///
/// ```
/// use ferry_client::{OffsetReset, SeekTo};
/// assert_eq!(OffsetReset::default(), OffsetReset::Earliest);
/// assert_eq!(SeekTo::from(OffsetReset::Latest), SeekTo::Latest);
/// assert_eq!("latest".parse(), Ok(OffsetReset::Latest));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OffsetReset {
    /// The partition's first offset: everything retained is read.
    #[default]
    Earliest,
    /// The partition's end: only records produced from then on.
    Latest,
}

impl OffsetReset {
    /// The name on the wire: `earliest` or `latest`.
    pub fn name(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

impl From<OffsetReset> for SeekTo {
    fn from(reset: OffsetReset) -> SeekTo {
        match reset {
            OffsetReset::Earliest => SeekTo::Earliest,
            OffsetReset::Latest => SeekTo::Latest,
        }
    }
}

impl std::str::FromStr for OffsetReset {
    type Err = String;

    /// `earliest` or `latest`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" | "beginning" => Ok(OffsetReset::Earliest),
            "latest" | "end" => Ok(OffsetReset::Latest),
            _ => Err(format!("expected earliest or latest, not {s:?}")),
        }
    }
}
