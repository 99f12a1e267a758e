//! Where `consume` starts and where `--exit-at-end` stops. `--from` takes
//! what the client's `SeekTo` takes (`earliest`, `latest`, an offset,
//! `@TIMESTAMP_MS`) and, like kcat, positions relative to now: `-N` is N
//! records before each partition's end, and `-1h`, `-30m`, `-10s`, `-2d`
//! are times before now.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_client::{Client, Consumer, Isolation, SeekTo};

use crate::cli::parse_duration;
use crate::error::{CliError, CliResult};

/// A `--from` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// An absolute position.
    Seek(SeekTo),
    /// This many records before each partition's end.
    FromEnd(u64),
    /// Records no older than this.
    Ago(Duration),
}

impl std::str::FromStr for StartAt {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some(relative) = text.strip_prefix('-') else {
            return text.parse().map(StartAt::Seek);
        };
        if relative.chars().all(|c| c.is_ascii_digit()) {
            return match relative.parse::<u64>() {
                Ok(count) if count > 0 => Ok(StartAt::FromEnd(count)),
                _ => Err(format!("{text:?}: -N needs N above 0")),
            };
        }
        parse_duration(relative).map(StartAt::Ago).map_err(|why| {
            format!("{text:?}: expected -N (records before the end) or a time such as -1h: {why}")
        })
    }
}

impl std::fmt::Display for StartAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartAt::Seek(seek) => write!(f, "{seek}"),
            StartAt::FromEnd(count) => write!(f, "-{count}"),
            StartAt::Ago(age) => write!(f, "-{}s", age.as_secs()),
        }
    }
}

impl StartAt {
    /// Where a group starts partitions it has no offset for, if this is
    /// one of the two places a group can start.
    pub fn as_seek(self) -> Option<SeekTo> {
        match self {
            StartAt::Seek(seek) => Some(seek),
            _ => None,
        }
    }
}

/// Each partition's start and end (the durable end, or the written end with
/// `Isolation::Written`), as `describe_topic` reports them now.
pub async fn bounds(
    client: &Client,
    topic: &str,
    isolation: Isolation,
) -> Result<BTreeMap<u32, (u64, u64)>, CliError> {
    let described = client.describe_topic(topic).await?;
    Ok(described
        .partitions
        .iter()
        .map(|p| {
            let end = match isolation {
                Isolation::Written => p.end_offset,
                _ => p.durable_offset,
            };
            (p.partition, (p.start_offset, end))
        })
        .collect())
}

/// Moves every partition in `partitions` to `start`.
pub async fn seek_all(
    consumer: &mut Consumer,
    partitions: &[u32],
    start: StartAt,
    bounds: &BTreeMap<u32, (u64, u64)>,
) -> CliResult {
    for &partition in partitions {
        let to = match start {
            StartAt::Seek(seek) => seek,
            StartAt::FromEnd(count) => {
                let (first, end) = bounds.get(&partition).copied().unwrap_or((0, 0));
                SeekTo::Offset(end.saturating_sub(count).max(first))
            }
            StartAt::Ago(age) => {
                let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                SeekTo::Timestamp(ferry_client::now_ms().saturating_sub(age_ms))
            }
        };
        consumer.seek(partition, to).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_absolute_and_relative_positions() {
        assert_eq!("earliest".parse(), Ok(StartAt::Seek(SeekTo::Earliest)));
        assert_eq!("17".parse(), Ok(StartAt::Seek(SeekTo::Offset(17))));
        assert_eq!("@5".parse(), Ok(StartAt::Seek(SeekTo::Timestamp(5))));
        assert_eq!("-10".parse(), Ok(StartAt::FromEnd(10)));
        assert_eq!("-1h".parse(), Ok(StartAt::Ago(Duration::from_secs(3600))));
        assert_eq!("-30m".parse(), Ok(StartAt::Ago(Duration::from_secs(1800))));
        for bad in ["-0", "-", "-1x", "-1.5h", "yesterday"] {
            assert!(bad.parse::<StartAt>().is_err(), "{bad}");
        }
    }
}
