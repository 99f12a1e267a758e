//! Durability: group commits (run by the flusher, see `flusher.rs`) that
//! fsync what was written and advance the durable offset appenders await,
//! recovery checkpoints written after them, and the clean close.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use super::inner::{LogInner, SyncProgress};
use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
use crate::clock::now_ms;
use crate::config::FsyncPolicy;
use crate::error::{Result, StorageError};
use crate::flusher::GroupCommit;
use crate::health::Health;
use crate::segment::Segment;

impl LogInner {
    /// Resolves when every offset below `next_offset` is durable under this
    /// log's fsync policy (at once under `never`), or fails if an fsync failed.
    pub(super) fn wait_durable(
        &self,
        next_offset: u64,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let mut rx = self.durable_tx.subscribe();
        let policy = self.config.fsync;
        let name = self.name.clone();
        async move {
            if policy == FsyncPolicy::Never {
                return Ok(());
            }
            let state = rx
                .wait_for(|d| d.offset >= next_offset || d.failed)
                .await
                .map(|d| *d)
                .map_err(|_| StorageError::Closed(name.clone()))?;
            if state.offset >= next_offset {
                Ok(())
            } else {
                Err(StorageError::ReadOnly(name))
            }
        }
    }

    /// Fsyncs now and waits for it (used by tests and shutdown).
    pub(super) fn sync(&self) -> Result<()> {
        self.sync_now();
        match &*self.health.read() {
            Health::ReadOnly(reason) => {
                Err(StorageError::ReadOnly(format!("{}: {reason}", self.name)))
            }
            _ => Ok(()),
        }
    }

    /// After a failed fsync: refuse writes until restart and fail every
    /// durability waiter (a retried fsync could falsely succeed).
    pub(super) fn fail_read_only(&self, error: &StorageError) {
        tracing::error!(partition = %self.name, %error, "fsync failed: partition is read-only until restart");
        self.health.set(Health::ReadOnly(error.to_string()));
        self.durable_tx.send_modify(|d| d.failed = true);
    }

    /// Whether the ticker should queue a sync now. Not while one runs: its
    /// interval starts when it started (`last_sync_ms`), and a sync queued
    /// behind it would fsync appends made just after it at once.
    fn sync_due(&self, now_ms: u64) -> bool {
        if !self.health.is_ok() || self.sync_progress.is_locked() {
            return false;
        }
        let end = *self.end_tx.borrow();
        let durable = self.durable_tx.borrow().offset;
        let since_sync = now_ms.saturating_sub(self.last_sync_ms.load(Ordering::Acquire));
        if let FsyncPolicy::IntervalMs(interval) = self.config.fsync {
            if end > durable && since_sync >= interval {
                return true;
            }
        }
        end > self.checkpoint_offset.load(Ordering::Acquire)
            && since_sync >= self.config.checkpoint_interval_ms
    }

    /// One group commit: fsync every sealed-but-unsynced segment and the
    /// active one up to the end offset, then advance the durable offset and,
    /// when due, write a recovery checkpoint.
    fn sync_now(&self) {
        let mut progress = self.sync_progress.lock();
        if matches!(*self.health.read(), Health::ReadOnly(_) | Health::Closed) {
            return;
        }
        let (target, sealed, active, checkpoint) = {
            let mut writer = self.writer.lock();
            (
                writer.cursor.next_offset(),
                std::mem::take(&mut writer.unsynced_sealed),
                writer.active.clone(),
                writer.cursor.checkpoint(&writer.active),
            )
        };
        let now = now_ms();
        let durable = self.durable_tx.borrow().offset;
        let checkpoint_due = !sealed.is_empty() || self.checkpoint_due(&progress, &checkpoint, now);
        if target <= durable && !checkpoint_due {
            return;
        }
        let synced = sealed
            .iter()
            .try_for_each(|segment| segment.sync_all())
            .and_then(|_| active.sync_log());
        // Fsynced (or failed for good): the sealed segments close their files.
        for segment in &sealed {
            segment.unpin();
        }
        if let Err(error) = synced {
            self.fail_read_only(&error);
            return;
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.last_sync_ms.store(now, Ordering::Release);
        self.durable_tx
            .send_modify(|d| d.offset = d.offset.max(target));
        if checkpoint_due {
            self.write_checkpoint(&mut progress, &active, checkpoint, now);
        }
    }

    /// Whether `checkpoint` (the writer's position now) should replace the
    /// last one written: it is further, and in another segment or far enough
    /// past it in bytes or time.
    fn checkpoint_due(
        &self,
        progress: &SyncProgress,
        checkpoint: &Checkpoint,
        now_ms: u64,
    ) -> bool {
        let last = &progress.checkpoint;
        checkpoint.next_offset > last.next_offset
            && (checkpoint.segment_base != last.segment_base
                || checkpoint.position.saturating_sub(last.position)
                    >= self.config.checkpoint_interval_bytes
                || now_ms.saturating_sub(progress.checkpoint_at_ms)
                    >= self.config.checkpoint_interval_ms)
    }

    /// After a successful fsync of the log bytes up to `checkpoint`: fsyncs
    /// the active segment's indexes and writes the recovery checkpoint.
    fn write_checkpoint(
        &self,
        progress: &mut SyncProgress,
        active: &Segment,
        checkpoint: Checkpoint,
        now_ms: u64,
    ) {
        let written = active
            .sync_indexes()
            .and_then(|_| checkpoint.write(&*self.vfs, &self.dir, CHECKPOINT_FILE));
        match written {
            Ok(()) => {
                progress.checkpoint = checkpoint;
                progress.checkpoint_at_ms = now_ms;
                self.checkpoint_offset
                    .store(checkpoint.next_offset, Ordering::Release);
                self.checkpoint_segment
                    .store(checkpoint.segment_base, Ordering::Release);
            }
            // The data is durable (its fsync succeeded above); a checkpoint
            // is only a shortcut for recovery, which scans from the previous
            // one instead. So a full disk here is not fatal: retry later.
            Err(error) => {
                tracing::warn!(partition = %self.name, %error, "could not write the recovery checkpoint; will retry");
            }
        }
    }

    /// Clean shutdown (see `Log::close`): fsyncs everything, trims the
    /// active segment and writes the clean-shutdown marker.
    pub(super) fn close(&self) -> Result<()> {
        let _progress = self.sync_progress.lock();
        let mut writer = self.writer.lock();
        if *self.health.read() == Health::Closed {
            return Ok(());
        }
        let sealed = std::mem::take(&mut writer.unsynced_sealed);
        for segment in &sealed {
            segment.sync_all()?;
            segment.unpin();
        }
        let active = writer.active.clone();
        active.set_log_len(active.size_bytes())?;
        active.trim_indexes()?;
        active.sync_all()?;
        let marker = writer.cursor.checkpoint(&writer.active);
        marker.write(&*self.vfs, &self.dir, CLEAN_SHUTDOWN_FILE)?;
        self.durable_tx
            .send_modify(|d| d.offset = d.offset.max(writer.cursor.next_offset()));
        self.health.set(Health::Closed);
        tracing::debug!(partition = %self.name, end_offset = writer.cursor.next_offset(), "log closed cleanly");
        Ok(())
    }
}

impl LogInner {
    /// For a partition being deleted: from now on no append, roll, fsync or
    /// checkpoint touches its files (they are about to go), and every
    /// durability waiter fails. Waits for an append or fsync under way.
    pub(super) fn retire(&self) {
        let _progress = self.sync_progress.lock();
        let _writer = self.writer.lock();
        self.health.set(Health::Closed);
        self.durable_tx.send_modify(|d| d.failed = true);
        tracing::debug!(partition = %self.name, "log retired");
    }
}

impl GroupCommit for LogInner {
    fn sync_now(&self) {
        LogInner::sync_now(self)
    }

    fn sync_due(&self, now_ms: u64) -> bool {
        LogInner::sync_due(self, now_ms)
    }

    fn sync_queued(&self) -> &AtomicBool {
        &self.sync_queued
    }
}
