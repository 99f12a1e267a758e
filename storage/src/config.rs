//! Per-log configuration and its limits.

use ferry_protocol::batch::BATCH_BYTES_LIMIT;

use crate::error::{Result, StorageError};

pub use ferry_protocol::fsync::FsyncPolicy;

pub const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;
/// Positions inside a segment are stored as u32 in the offset index.
pub const SEGMENT_BYTES_LIMIT: u64 = u32::MAX as u64 - BATCH_BYTES_LIMIT as u64;
/// Smallest segment a topic may be configured with (bytes). Every roll
/// creates three files and fsyncs the directory, and every segment is a
/// directory entry to list and check at start: below 1 MiB a steady
/// producer rolls faster than that is worth.
pub const SEGMENT_BYTES_MIN: u64 = 1024 * 1024;
/// Smallest segment age a topic may roll at (ms), for the same reason: a
/// partition written to all the time rolls at most once a minute by age.
pub const SEGMENT_MS_MIN: u64 = 60_000;
/// Smallest segment the log itself handles (bytes): what [`LogConfig::validate`]
/// accepts for internal logs and tests, below the topic minimum.
pub const SEGMENT_BYTES_FLOOR: u64 = 4096;
pub const INDEX_MAX_BYTES_MIN: u64 = 1024;
/// Longest retention (and segment age) accepted: 100 years. Longer means
/// "keep forever": leave retention unset.
pub const RETENTION_MS_LIMIT: u64 = 100 * 365 * 24 * 3600 * 1000;
pub const INDEX_MAX_BYTES_LIMIT: u64 = 1024 * 1024 * 1024;
/// Idle time after which an idempotent producer is forgotten: a day, as
/// Kafka's `producer.id.expiration.ms`.
pub const DEFAULT_PRODUCER_EXPIRY_MS: u64 = 24 * 3600 * 1000;
/// The shortest producer expiry: under it, a producer's retries after a
/// broker restart could outlive its state.
pub const PRODUCER_EXPIRY_MS_MIN: u64 = 1000;

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll the active segment when it would grow past this.
    pub segment_bytes: u64,
    /// Roll the active segment when it is older than this.
    pub segment_ms: Option<u64>,
    /// One offset index entry per this many log bytes.
    pub index_interval_bytes: u64,
    /// Preallocated size of each index file; a full index rolls the segment.
    pub index_max_bytes: u64,
    pub fsync: FsyncPolicy,
    /// Delete sealed segments whose newest record is older than this.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// Largest batch accepted.
    pub max_batch_bytes: usize,
    /// Write a recovery checkpoint (fsync + checkpoint file) after this many
    /// bytes or this much time since the last one; bounds recovery work.
    pub checkpoint_interval_bytes: u64,
    pub checkpoint_interval_ms: u64,
    /// Forget an idempotent producer that has not written to this log for
    /// this long (Kafka's `producer.id.expiration.ms`).
    pub producer_expiry_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: None,
            index_interval_bytes: 4096,
            index_max_bytes: 10 * 1024 * 1024,
            fsync: FsyncPolicy::Always,
            retention_ms: None,
            retention_bytes: None,
            max_batch_bytes: 16 * 1024 * 1024,
            checkpoint_interval_bytes: 64 * 1024 * 1024,
            checkpoint_interval_ms: 30_000,
            producer_expiry_ms: DEFAULT_PRODUCER_EXPIRY_MS,
        }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<()> {
        check_range(
            "segment_bytes",
            self.segment_bytes,
            SEGMENT_BYTES_FLOOR,
            SEGMENT_BYTES_LIMIT,
        )?;
        check_range(
            "max_batch_bytes",
            self.max_batch_bytes as u64,
            1,
            BATCH_BYTES_LIMIT as u64,
        )?;
        check_positive("index_interval_bytes", self.index_interval_bytes)?;
        check_range(
            "index_max_bytes",
            self.index_max_bytes,
            INDEX_MAX_BYTES_MIN,
            INDEX_MAX_BYTES_LIMIT,
        )?;
        if let Some(segment_ms) = self.segment_ms {
            check_range("segment_ms", segment_ms, 1, RETENTION_MS_LIMIT)?;
        }
        if let Some(retention_ms) = self.retention_ms {
            check_range("retention_ms", retention_ms, 1, RETENTION_MS_LIMIT)?;
        }
        if let Some(retention_bytes) = self.retention_bytes {
            check_positive("retention_bytes", retention_bytes)?;
        }
        check_range(
            "producer_expiry_ms",
            self.producer_expiry_ms,
            PRODUCER_EXPIRY_MS_MIN,
            RETENTION_MS_LIMIT,
        )?;
        check_positive("checkpoint_interval_ms", self.checkpoint_interval_ms)
    }

    /// [`LogConfig::validate`] plus the minimums a topic's segments must
    /// meet ([`SEGMENT_BYTES_MIN`], [`SEGMENT_MS_MIN`]): what an operator or
    /// a client may set.
    pub fn validate_for_topics(&self) -> Result<()> {
        check_segment_minimums(Some(self.segment_bytes), self.segment_ms)?;
        self.validate()
    }
}

/// Checks segment settings chosen for a topic (`None`: not chosen) against
/// the topic minimums.
pub fn check_segment_minimums(segment_bytes: Option<u64>, segment_ms: Option<u64>) -> Result<()> {
    if let Some(bytes) = segment_bytes {
        check_range(
            "segment_bytes",
            bytes,
            SEGMENT_BYTES_MIN,
            SEGMENT_BYTES_LIMIT,
        )?;
    }
    if let Some(ms) = segment_ms {
        check_range("segment_ms", ms, SEGMENT_MS_MIN, RETENTION_MS_LIMIT)?;
    }
    Ok(())
}

/// Segment settings stored before the topic minimums existed, raised to
/// them (so a data dir written by an older broker still opens).
pub fn raised_to_segment_minimums(
    segment_bytes: Option<u64>,
    segment_ms: Option<u64>,
) -> (Option<u64>, Option<u64>) {
    (
        segment_bytes.map(|bytes| bytes.max(SEGMENT_BYTES_MIN)),
        segment_ms.map(|ms| ms.max(SEGMENT_MS_MIN)),
    )
}

fn check_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    debug_assert!(min <= max);
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(StorageError::ConfigOutOfRange {
        key,
        value,
        min,
        max,
    })
}

fn check_positive(key: &'static str, value: u64) -> Result<()> {
    if value > 0 {
        return Ok(());
    }
    Err(StorageError::ConfigNotPositive { key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(config: LogConfig) -> StorageError {
        match config.validate() {
            Err(error) => error,
            Ok(()) => panic!("{config:?} passed validation"),
        }
    }

    #[test]
    fn out_of_range_sizes_are_named_with_their_bounds() {
        assert!(LogConfig::default().validate().is_ok());
        let small_segments = LogConfig {
            segment_bytes: 100,
            ..LogConfig::default()
        };
        assert!(matches!(
            invalid(small_segments),
            StorageError::ConfigOutOfRange {
                key: "segment_bytes",
                value: 100,
                min: SEGMENT_BYTES_FLOOR,
                max: SEGMENT_BYTES_LIMIT,
            }
        ));
        let small_index = LogConfig {
            index_max_bytes: INDEX_MAX_BYTES_MIN - 1,
            ..LogConfig::default()
        };
        assert!(matches!(
            invalid(small_index),
            StorageError::ConfigOutOfRange {
                key: "index_max_bytes",
                ..
            }
        ));
        let no_batches = LogConfig {
            max_batch_bytes: 0,
            ..LogConfig::default()
        };
        assert!(matches!(
            invalid(no_batches),
            StorageError::ConfigOutOfRange {
                key: "max_batch_bytes",
                ..
            }
        ));
    }

    #[test]
    fn zero_intervals_are_named() {
        let zero_index_interval = LogConfig {
            index_interval_bytes: 0,
            ..LogConfig::default()
        };
        let zero_checkpoint_interval = LogConfig {
            checkpoint_interval_ms: 0,
            ..LogConfig::default()
        };
        for (config, want) in [
            (zero_index_interval, "index_interval_bytes"),
            (zero_checkpoint_interval, "checkpoint_interval_ms"),
        ] {
            match invalid(config) {
                StorageError::ConfigNotPositive { key } => assert_eq!(key, want),
                other => panic!("{want}: expected ConfigNotPositive, got {other:?}"),
            }
        }
    }

    #[test]
    fn ages_past_a_century_and_zero_are_refused() {
        for key in ["segment_ms", "retention_ms"] {
            for value in [0, RETENTION_MS_LIMIT + 1, u64::MAX] {
                let mut config = LogConfig::default();
                match key {
                    "segment_ms" => config.segment_ms = Some(value),
                    _ => config.retention_ms = Some(value),
                }
                assert!(
                    matches!(invalid(config), StorageError::ConfigOutOfRange { key: k, .. } if k == key),
                    "{key} = {value}"
                );
            }
        }
        let zero_bytes = LogConfig {
            retention_bytes: Some(0),
            ..LogConfig::default()
        };
        assert!(matches!(
            invalid(zero_bytes),
            StorageError::ConfigNotPositive {
                key: "retention_bytes"
            }
        ));
    }

    #[test]
    fn topic_segments_below_a_mebibyte_or_a_minute_are_refused_and_old_ones_raised() {
        let small = LogConfig {
            segment_bytes: SEGMENT_BYTES_FLOOR,
            ..LogConfig::default()
        };
        assert!(small.validate().is_ok(), "the log itself handles 4 KiB");
        assert!(matches!(
            small.validate_for_topics(),
            Err(StorageError::ConfigOutOfRange {
                key: "segment_bytes",
                min: SEGMENT_BYTES_MIN,
                ..
            })
        ));
        let young = LogConfig {
            segment_ms: Some(1),
            ..LogConfig::default()
        };
        assert!(matches!(
            young.validate_for_topics(),
            Err(StorageError::ConfigOutOfRange {
                key: "segment_ms",
                min: SEGMENT_MS_MIN,
                ..
            })
        ));
        assert!(check_segment_minimums(Some(SEGMENT_BYTES_MIN), Some(SEGMENT_MS_MIN)).is_ok());
        assert!(check_segment_minimums(None, None).is_ok());
        assert_eq!(
            raised_to_segment_minimums(Some(4096), Some(1)),
            (Some(SEGMENT_BYTES_MIN), Some(SEGMENT_MS_MIN))
        );
        assert_eq!(
            raised_to_segment_minimums(Some(SEGMENT_BYTES_MIN * 2), None),
            (Some(SEGMENT_BYTES_MIN * 2), None)
        );
    }
}
