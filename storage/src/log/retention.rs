//! Retention: deleting whole sealed segments from the front of the log, by
//! age, by size, or below an offset. Never the recovery checkpoint's segment
//! or a later one.

use std::sync::atomic::Ordering;

use super::inner::LogInner;
use crate::error::{IoContext, Result};
use crate::segment::Segment;

impl LogInner {
    /// Deletes sealed segments past the age and size limits (see
    /// `Log::apply_retention`).
    pub(super) fn apply_retention(&self, now_ms: u64) -> Result<usize> {
        let config = &self.config;
        if config.retention_ms.is_none() && config.retention_bytes.is_none() {
            return Ok(0);
        }
        self.remove_front_segments(|first, total| {
            let expired = config.retention_ms.is_some_and(|ms| {
                let newest = first.max_timestamp_ms();
                newest != i64::MIN && newest < now_ms as i64 - ms as i64
            });
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
