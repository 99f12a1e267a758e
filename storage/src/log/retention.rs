//! Retention: deleting whole sealed segments from the front of the log, by
//! age, by size, or below an offset. Never the recovery checkpoint's segment
//! or a later one. The periodic retention pass also forgets idle producers.

use std::sync::atomic::Ordering;

use super::inner::LogInner;
use crate::error::{IoContext, Result};
use crate::segment::Segment;

impl LogInner {
    /// Deletes sealed segments past the age and size limits (see
    /// `Log::apply_retention`).
    pub(super) fn apply_retention(&self, now_ms: u64) -> Result<usize> {
        {
            let mut writer = self.writer.lock();
            self.expire_producers(&mut writer, now_ms as i64, true);
        }
        let config = &self.config;
        if config.retention_ms.is_none() && config.retention_bytes.is_none() {
            return Ok(0);
        }
        self.remove_front_segments(|first, total| {
            let expired = config
                .retention_ms
                .is_some_and(|ms| expired(first.max_timestamp_ms(), now_ms, ms));
            let oversized = config
                .retention_bytes
                .is_some_and(|limit| total.saturating_sub(first.size_bytes()) >= limit);
            expired || oversized
        })
    }

    /// Removes segments from the front while `doomed(first, total_bytes)`
    /// says so. Only segments sealed and covered by a checkpoint may go:
    /// recovery starts at the checkpoint segment, which must still exist.
    pub(super) fn remove_front_segments(
        &self,
        doomed: impl Fn(&Segment, u64) -> bool,
    ) -> Result<usize> {
        if matches!(*self.health.read(), crate::health::Health::Closed) {
            return Ok(0);
        }
        let checkpoint_segment = self.checkpoint_segment.load(Ordering::Acquire);
        let removed = {
            let mut segments = self.segments.write();
            let mut total: u64 = segments.iter().map(|s| s.size_bytes()).sum();
            let mut removed = Vec::new();
            while segments.len() > 1
                && segments[0].base_offset < checkpoint_segment
                && doomed(&segments[0], total)
            {
                total -= segments[0].size_bytes();
                removed.push(segments.remove(0));
            }
            removed
        };
        for segment in &removed {
            for path in segment.paths() {
                if let Err(error) = self.vfs.remove_file(&path) {
                    tracing::warn!(path = %path.display(), %error, "could not delete segment file");
                }
            }
            tracing::info!(partition = %self.name, base_offset = segment.base_offset, "deleted segment");
        }
        if !removed.is_empty() {
            self.vfs.sync_dir(&self.dir).at(&self.dir)?;
        }
        Ok(removed.len())
    }
}

/// Whether a segment whose newest record is at `newest_ms` is older than
/// `retention_ms` at `now_ms`. Saturating throughout: no value of any of
/// the three (a huge retention, a clock before the epoch, a record from the
/// far future) can make a segment expire early.
pub(crate) fn expired(newest_ms: i64, now_ms: u64, retention_ms: u64) -> bool {
    if newest_ms == i64::MIN {
        return false;
    }
    let cutoff = i64::try_from(now_ms.saturating_sub(retention_ms)).unwrap_or(i64::MAX);
    now_ms > retention_ms && newest_ms < cutoff
}

#[cfg(test)]
mod tests {
    use super::expired;

    #[test]
    fn no_retention_value_expires_data_early() {
        let now = 1_700_000_000_000u64;
        assert!(expired(now as i64 - 10_001, now, 10_000));
        assert!(!expired(now as i64 - 9_999, now, 10_000));
        assert!(
            !expired(0, now, u64::MAX),
            "a huge retention keeps everything"
        );
        assert!(!expired(now as i64, now, u64::MAX / 2));
        assert!(
            !expired(i64::MIN + 1, 5, 10),
            "retention longer than the clock"
        );
        assert!(!expired(i64::MAX, now, 1), "records from the future stay");
        assert!(!expired(i64::MIN, now, 1), "a segment with no records");
    }
}
