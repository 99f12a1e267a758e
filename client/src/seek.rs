//! [`SeekTo`]: where a consumer starts reading a partition, parsed from the
//! strings `ferryctl` takes.

/// Where to start reading a partition. Parses from the strings `ferryctl` takes.
///
/// ```
/// use ferry_client::SeekTo;
/// assert_eq!("earliest".parse(), Ok(SeekTo::Earliest));
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
