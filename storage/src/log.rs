//! A partition log: a directory of segments with one writer and many readers.
//!
//! Append path: under the writer lock, roll if needed, `pwritev` the batch
//! with its new base offset, add index entries, publish the new size and end
//! offset. Read path: find the segment and batch through the sparse index,
//! slice whole batches out of the segment's memory map, check their CRCs.
//! Durability: the flusher's group commit advances the durable offset, which
//! appenders await (see `flusher.rs`). Recovery lives in `recovery.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{self, BatchHeader, BatchIter, RecordIter};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
use crate::clock::now_ms;
use crate::config::{FsyncPolicy, LogConfig};
use crate::cursor::{IndexCursor, Indexed};
use crate::error::{IoContext, Result, StorageError};
use crate::flusher::{Flusher, FlusherShared, GroupCommit};
use crate::health::{Health, HealthCell};
use crate::recovery::{self, Recovered};
use crate::segment::{Located, Segment, SegmentState};
use crate::vfs::Vfs;

/// What an append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    pub max_timestamp_ms: i64,
}

/// Whole batches read from the log.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Zero or more whole batches, back to back, CRC-checked.
    pub data: Bytes,
    /// Offset after the last returned batch (where the next read starts).
    pub next_offset: u64,
    pub start_offset: u64,
    pub end_offset: u64,
}

/// Durable progress as seen by waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// Every offset below this is on disk.
    pub offset: u64,
    /// An fsync failed: nothing more will become durable until restart.
    pub failed: bool,
}

/// Summary for DescribeTopic-style views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    pub start_offset: u64,
    pub end_offset: u64,
    pub durable_offset: u64,
    pub size_bytes: u64,
    pub segment_count: u64,
    /// Group commits run so far (each covers every append before it).
    pub fsyncs: u64,
}

pub(crate) struct Writer {
    pub active: Arc<Segment>,
    /// Where appends to `active` go and which index entries they get.
    pub cursor: IndexCursor,
    pub unsynced_sealed: Vec<Arc<Segment>>,
}

pub(crate) struct SyncProgress {
    pub checkpoint: Checkpoint,
    pub checkpoint_at_ms: u64,
}

pub(crate) struct LogInner {
    pub name: String,
    pub dir: PathBuf,
    pub vfs: Arc<dyn Vfs>,
    pub config: LogConfig,
    pub segments: RwLock<Vec<Arc<Segment>>>,
    pub writer: Mutex<Writer>,
    pub sync_progress: Mutex<SyncProgress>,
    pub health: HealthCell,
    pub end_tx: watch::Sender<u64>,
    pub durable_tx: watch::Sender<Durable>,
    pub sync_queued: AtomicBool,
    pub last_sync_ms: AtomicU64,
    pub checkpoint_offset: AtomicU64,
    pub checkpoint_segment: AtomicU64,
    pub fsyncs: AtomicU64,
    pub flusher: Arc<FlusherShared>,
}

/// A partition log. Cheap to clone; all clones share the log.
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<LogInner>,
}

impl Log {
    /// Opens the log in `dir`, creating it if empty and recovering it after
    /// an unclean shutdown.
    pub fn open(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        name: &str,
        config: LogConfig,
        flusher: &Flusher,
    ) -> Result<Log> {
        config.validate()?;
        let now_ms = now_ms();
        let recovered = recovery::open_dir(&*vfs, dir, name, &config, now_ms)?;
        let flusher = flusher.shared();
        let inner = Arc::new(LogInner::new(
            name,
            dir,
            vfs,
            config,
            flusher.clone(),
            recovered,
            now_ms,
        ));
        flusher.register(&inner);
        Ok(Log { inner })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// Appends one whole batch (already validated by the caller, e.g. with
    /// `batch::validate_batch`), assigning its base offset. Returns once the
    /// batch is written (in the page cache); await [`Log::wait_durable`] for
    /// the fsync.
    pub fn append(&self, batch: &Bytes) -> Result<AppendInfo> {
        self.inner.append(batch)
    }

    /// Resolves when every offset below `next_offset` is durable under this
    /// log's fsync policy (at once under `never`), or fails if an fsync failed.
    pub fn wait_durable(
        &self,
        next_offset: u64,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let mut rx = self.inner.durable_tx.subscribe();
        let policy = self.inner.config.fsync;
        let name = self.inner.name.clone();
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

    /// Reads whole batches starting with the one holding `offset`: at least
    /// one batch (even if larger than `max_bytes`), then as many as fit.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        self.inner.read(offset, max_bytes)
    }

    /// The first offset whose record timestamp is >= `timestamp_ms`, or
    /// `None` if every record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        self.inner.offset_for_timestamp(timestamp_ms)
    }

    pub fn start_offset(&self) -> u64 {
        self.inner.segments.read()[0].base_offset
    }

    /// The offset the next append gets (the "high watermark" of a single node).
    pub fn end_offset(&self) -> u64 {
        *self.inner.end_tx.borrow()
    }

    pub fn durable(&self) -> Durable {
        *self.inner.durable_tx.borrow()
    }

    /// Watches the end offset: long polls wait on this instead of sleeping.
    pub fn subscribe_end_offset(&self) -> watch::Receiver<u64> {
        self.inner.end_tx.subscribe()
    }

    pub fn stats(&self) -> LogStats {
        let segments = self.inner.segments.read();
        LogStats {
            start_offset: segments[0].base_offset,
            end_offset: self.end_offset(),
            durable_offset: self.durable().offset,
            size_bytes: segments.iter().map(|s| s.size_bytes()).sum(),
            segment_count: segments.len() as u64,
            fsyncs: self.inner.fsyncs.load(Ordering::Relaxed),
        }
    }

    /// `Some(reason)` if the log is fenced, read-only or closed.
    pub fn health_problem(&self) -> Option<String> {
        match &*self.inner.health.read() {
            Health::Ok => None,
            Health::ReadOnly(reason) => Some(format!("read-only: {reason}")),
            Health::Fenced { offset, reason } => {
                Some(format!("fenced at offset {offset}: {reason}"))
            }
            Health::Closed => Some("closed".into()),
        }
    }

    /// Deletes whole sealed segments past the retention limits; returns how
    /// many were deleted.
    pub fn apply_retention(&self, now_ms: u64) -> Result<usize> {
        self.inner.apply_retention(now_ms)
    }

    /// Deletes whole sealed segments that hold only offsets below `offset`
    /// (for internal logs whose older records were folded into a snapshot).
    pub fn delete_segments_below(&self, offset: u64) -> Result<usize> {
        self.inner
            .remove_front_segments(|segment, _| segment.next_offset() <= offset)
    }

    /// Fsyncs now and waits for it (used by tests and shutdown).
    pub fn sync(&self) -> Result<()> {
        self.inner.sync_now();
        match &*self.inner.health.read() {
            Health::ReadOnly(reason) => Err(StorageError::ReadOnly(format!(
                "{}: {reason}",
                self.inner.name
            ))),
            _ => Ok(()),
        }
    }

    /// Checks the CRC of every batch in every segment; fences the log at the
    /// first corrupt batch and returns its offset.
    pub fn verify(&self) -> Result<Option<u64>> {
        let segments = self.inner.segments.read().clone();
        for segment in segments {
            if let Some((offset, reason)) = segment.verify()? {
                self.inner.fence(offset, reason);
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// Clean shutdown: fsync everything, trim indexes and write the
    /// clean-shutdown marker so the next open skips recovery.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl LogInner {
    /// The log over what recovery opened, at `now_ms`.
    fn new(
        name: &str,
        dir: &Path,
        vfs: Arc<dyn Vfs>,
        config: LogConfig,
        flusher: Arc<FlusherShared>,
        recovered: Recovered,
        now_ms: u64,
    ) -> LogInner {
        let Recovered {
            segments,
            cursor,
            checkpoint,
            health,
        } = recovered;
        let next_offset = cursor.next_offset();
        debug_assert_eq!(
            checkpoint.next_offset, next_offset,
            "recovery checkpoints its end"
        );
        let active = segments
            .last()
            .cloned()
            .expect("a log always has a segment");
        let (end_tx, _) = watch::channel(next_offset);
        let (durable_tx, _) = watch::channel(Durable {
            offset: next_offset,
            failed: false,
        });
        LogInner {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            vfs,
            config,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                active,
                cursor,
                unsynced_sealed: Vec::new(),
            }),
            sync_progress: Mutex::new(SyncProgress {
                checkpoint,
                checkpoint_at_ms: now_ms,
            }),
            health: HealthCell::new(health),
            end_tx,
            durable_tx,
            sync_queued: AtomicBool::new(false),
            last_sync_ms: AtomicU64::new(now_ms),
            checkpoint_offset: AtomicU64::new(checkpoint.next_offset),
            checkpoint_segment: AtomicU64::new(checkpoint.segment_base),
            fsyncs: AtomicU64::new(0),
            flusher,
        }
    }

    pub fn fence(&self, offset: u64, reason: String) {
        tracing::error!(partition = %self.name, offset, %reason, "corrupt data: partition fenced");
        self.health.set(Health::Fenced { offset, reason });
    }

    fn fail_read_only(&self, error: &StorageError) {
        tracing::error!(partition = %self.name, %error, "fsync failed: partition is read-only until restart");
        self.health.set(Health::ReadOnly(error.to_string()));
        self.durable_tx.send_modify(|d| d.failed = true);
    }

    fn append(self: &Arc<Self>, batch: &Bytes) -> Result<AppendInfo> {
        let header = BatchHeader::parse(batch, self.config.max_batch_bytes)?;
        if header.total_bytes() != batch.len() {
            return Err(StorageError::InvalidBatch(
                ferry_protocol::ProtocolError::Malformed("batch length does not match its bytes"),
            ));
        }
        self.health.check_writable(&self.name)?;
        let mut writer = self.writer.lock();
        self.health.check_writable(&self.name)?;
        let now = now_ms();
        if self.should_roll(&writer, batch.len() as u64, header.record_count, now) {
            self.roll(&mut writer, now)?;
        }
        let segment = writer.active.clone();
        let base_offset = writer.cursor.next_offset();
        let position = segment.size_bytes();
        segment
            .log
            .write_vectored_at(position, &[&base_offset.to_be_bytes(), &batch[8..]])
            .at(&segment.log_path)?;
        let indexed = writer.cursor.index_batch(
            &segment,
            position,
            &header,
            self.config.index_interval_bytes,
        )?;
        assert_eq!(
            indexed,
            Indexed::Done,
            "should_roll leaves room in both indexes"
        );
        let next_offset = writer.cursor.next_offset();
        debug_assert_eq!(next_offset, base_offset + u64::from(header.record_count));
        segment.publish(
            position + batch.len() as u64,
            next_offset,
            header.max_timestamp_ms,
        );
        self.end_tx.send_replace(next_offset);
        drop(writer);
        if self.config.fsync == FsyncPolicy::Always {
            self.flusher.request(self);
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: base_offset + u64::from(header.record_count) - 1,
            max_timestamp_ms: header.max_timestamp_ms,
        })
    }

    fn should_roll(&self, writer: &Writer, length: u64, records: u32, now_ms: u64) -> bool {
        let active = &writer.active;
        let size = active.size_bytes();
        if size == 0 {
            return false;
        }
        let relative_end = writer.cursor.next_offset() - active.base_offset + u64::from(records);
        size + length > self.config.segment_bytes
            || active.index.0.is_full()
            || active.time_index.0.is_full()
            || relative_end > u64::from(u32::MAX)
            || self
                .config
                .segment_ms
                .is_some_and(|ms| now_ms.saturating_sub(active.created_at_ms) >= ms)
    }

    /// Seals the active segment and starts a new one at the end offset.
    pub fn roll(self: &Arc<Self>, writer: &mut Writer, now_ms: u64) -> Result<()> {
        let old = writer.active.clone();
        writer.cursor.seal(&old)?;
        old.log.set_len(old.size_bytes()).at(&old.log_path)?;
        let next_offset = writer.cursor.next_offset();
        let new = Arc::new(Segment::open(
            &*self.vfs,
            &self.dir,
            next_offset,
            &self.config,
            SegmentState::empty(next_offset),
            now_ms,
        )?);
        new.index.0.preallocate()?;
        new.time_index.0.preallocate()?;
        // The new names must be durable before anything in them is acked.
        self.vfs.sync_dir(&self.dir).at(&self.dir)?;
        tracing::debug!(partition = %self.name, base_offset = new.base_offset, "rolled segment");
        writer.unsynced_sealed.push(old);
        writer.active = new.clone();
        writer.cursor.start_segment();
        self.segments.write().push(new);
        self.flusher.request(self);
        Ok(())
    }

    /// Whether the ticker should queue a sync now.
    fn sync_due(&self, now_ms: u64) -> bool {
        if !self.health.is_ok() {
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
        let checkpoint_due = !sealed.is_empty()
            || (checkpoint.next_offset > progress.checkpoint.next_offset
                && (checkpoint.segment_base != progress.checkpoint.segment_base
                    || checkpoint
                        .position
                        .saturating_sub(progress.checkpoint.position)
                        >= self.config.checkpoint_interval_bytes
                    || now.saturating_sub(progress.checkpoint_at_ms)
                        >= self.config.checkpoint_interval_ms));
        if target <= durable && !checkpoint_due {
            return;
        }
        let synced = sealed
            .iter()
            .try_for_each(|segment| segment.sync_all())
            .and_then(|_| active.sync_log());
        if let Err(error) = synced {
            self.fail_read_only(&error);
            return;
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.last_sync_ms.store(now, Ordering::Release);
        self.durable_tx
            .send_modify(|d| d.offset = d.offset.max(target));
        if !checkpoint_due {
            return;
        }
        let written = active
            .index
            .0
            .sync()
            .and_then(|_| active.time_index.0.sync())
            .and_then(|_| checkpoint.write(&*self.vfs, &self.dir, CHECKPOINT_FILE));
        match written {
            Ok(()) => {
                progress.checkpoint = checkpoint;
                progress.checkpoint_at_ms = now;
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

    fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let fence = match &*self.health.read() {
            Health::Fenced {
                offset: fenced,
                reason,
            } => {
                if offset >= *fenced {
                    return Err(StorageError::CorruptData {
                        partition: self.name.clone(),
                        offset: *fenced,
                        reason: reason.clone(),
                    });
                }
                Some(*fenced)
            }
            _ => None,
        };
        let (segments, index) = {
            let segments = self.segments.read();
            let index = segments.partition_point(|s| s.base_offset <= offset);
            (segments.clone(), index)
        };
        let start_offset = segments[0].base_offset;
        let end_offset = *self.end_tx.borrow();
        if offset < start_offset || offset > end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start_offset,
                end_offset,
            });
        }
        let empty = ReadResult {
            data: Bytes::new(),
            next_offset: offset,
            start_offset,
            end_offset,
        };
        for segment in &segments[index.saturating_sub(1)..] {
            let located = match segment.locate(offset)? {
                Ok(Some(located)) => located,
                Ok(None) => continue,
                Err(position) => {
                    let reason = format!(
                        "unreadable batch header at byte {position} of {}",
                        segment.log_path.display()
                    );
                    self.fence(offset, reason.clone());
                    return Err(self.corrupt(offset, reason));
                }
            };
            let (data, next_offset) = segment.read_from(located, max_bytes)?;
            let (data, next_offset) = self.checked_prefix(data, next_offset, fence)?;
            return Ok(ReadResult {
                data,
                next_offset,
                start_offset,
                end_offset,
            });
        }
        Ok(empty)
    }

    fn corrupt(&self, offset: u64, reason: String) -> StorageError {
        StorageError::CorruptData {
            partition: self.name.clone(),
            offset,
            reason,
        }
    }

    /// Keeps the batches before the first bad CRC (or the fence); a bad first
    /// batch fences the log and fails the read. A corrupt batch is never served.
    fn checked_prefix(
        &self,
        data: Bytes,
        next_offset: u64,
        fence: Option<u64>,
    ) -> Result<(Bytes, u64)> {
        let mut good = 0usize;
        let mut good_next = None;
        for item in BatchIter::new(data.clone(), self.config.max_batch_bytes) {
            match item {
                Ok((header, _)) if fence.is_some_and(|f| header.last_offset() >= f) => break,
                Ok((header, bytes)) => {
                    good += bytes.len();
                    good_next = Some(header.next_offset());
                }
                Err(error) => {
                    let offset = good_next.unwrap_or_else(|| {
                        batch::peek_length(&data[good..]).map_or(0, |(base, _)| base)
                    });
                    self.fence(offset, error.to_string());
                    if good == 0 {
                        return Err(self.corrupt(offset, error.to_string()));
                    }
                    break;
                }
            }
        }
        match good_next {
            Some(next) if good == data.len() => Ok((data, next_offset.max(next))),
            Some(next) => Ok((data.slice(..good), next)),
            None => Err(self.corrupt(
                fence.unwrap_or(0),
                "no readable batch before the fence".into(),
            )),
        }
    }

    fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        let segments = self.segments.read().clone();
        for segment in segments {
            if segment.size_bytes() == 0 || segment.max_timestamp_ms() < timestamp_ms {
                continue;
            }
            let mut position = match segment.time_index.last_before(timestamp_ms)? {
                Some((_, relative)) => {
                    match segment.locate(segment.base_offset + u64::from(relative))? {
                        Ok(Some(Located { position, .. })) => position,
                        _ => 0,
                    }
                }
                None => 0,
            };
            let limit = segment.size_bytes();
            while let Some(header) = segment.header_at(position, limit)? {
                if header.max_timestamp_ms >= timestamp_ms {
                    let bytes = segment
                        .log
                        .read_view(position, header.total_bytes())
                        .at(&segment.log_path)?;
                    let header = batch::check_batch(&bytes, self.config.max_batch_bytes)
                        .map_err(|e| self.corrupt(header.base_offset, e.to_string()))?;
                    for record in RecordIter::new(bytes, header) {
                        let record =
                            record.map_err(|e| self.corrupt(header.base_offset, e.to_string()))?;
                        if record.timestamp_ms >= timestamp_ms {
                            return Ok(Some(record.offset));
                        }
                    }
                }
                position += header.total_bytes() as u64;
            }
        }
        Ok(None)
    }

    fn apply_retention(&self, now_ms: u64) -> Result<usize> {
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
    fn remove_front_segments(&self, doomed: impl Fn(&Segment, u64) -> bool) -> Result<usize> {
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

    fn close(&self) -> Result<()> {
        let _progress = self.sync_progress.lock();
        let mut writer = self.writer.lock();
        if *self.health.read() == Health::Closed {
            return Ok(());
        }
        let sealed = std::mem::take(&mut writer.unsynced_sealed);
        for segment in &sealed {
            segment.sync_all()?;
        }
        let active = writer.active.clone();
        active
            .log
            .set_len(active.size_bytes())
            .at(&active.log_path)?;
        active.index.0.trim()?;
        active.time_index.0.trim()?;
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
