//! A partition log: a directory of segments with one writer and many readers.
//! This file is the [`Log`] handle and its public API; the work behind it is
//! split by concern:
//!
//! - `inner.rs`: the state all handles share, built from what recovery opened.
//! - `append.rs`: appending batches and rolling segments.
//! - `sync.rs`: group commits, durability waits, checkpoints, clean close.
//! - `read.rs`: reads, time look-ups and CRC checks (fencing on corruption).
//! - `visible.rs`: how far reads may see under each isolation, and the watch
//!   long polls wait on.
//! - `retention.rs`: deleting old segments.
//!
//! Opening and recovery live in `recovery.rs`, the index entry rule in
//! `cursor.rs`, the flusher that runs group commits in `flusher.rs`.

mod append;
mod inner;
mod read;
mod retention;
mod sync;
mod visible;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use self::inner::LogInner;
use crate::clock::now_ms;
use crate::config::LogConfig;
use crate::error::Result;
use crate::flusher::Flusher;
use crate::health::Health;
use crate::producer_snapshot;
use crate::recovery;
use crate::segment::SegmentHome;
use crate::segment_cache::SegmentCache;
use crate::vfs::Vfs;

pub use self::visible::{EndWatch, Isolation, LogGone};

/// What an append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    pub max_timestamp_ms: i64,
    /// The batch was an idempotent producer's retry of a batch already
    /// stored: nothing was written, and the offsets are the stored batch's
    /// (if `offsets_known`).
    pub duplicate: bool,
    /// False for a retry of a batch stored before the producer's last five:
    /// its offsets are unknown, and `base_offset` and `last_offset` are
    /// both the offset before the oldest kept batch (everything the batch
    /// holds is below it: wait for that to be durable).
    pub offsets_known: bool,
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
    /// Idempotent producers remembered (see `producers.rs`).
    pub producers: u64,
}

/// A partition log. Cheap to clone; all clones share the log.
#[derive(Clone)]
pub struct Log {
    inner: Arc<LogInner>,
}

impl Log {
    /// Opens the log in `dir`, creating it if empty and recovering it after
    /// an unclean shutdown. Sealed segments are mapped through the
    /// process-wide [`SegmentCache::global`].
    pub fn open(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        name: &str,
        config: LogConfig,
        flusher: &Flusher,
    ) -> Result<Log> {
        Log::open_in(vfs, dir, name, config, flusher, SegmentCache::global())
    }

    /// [`Log::open`] with sealed segments mapped through `cache`.
    pub fn open_in(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        name: &str,
        config: LogConfig,
        flusher: &Flusher,
        cache: Arc<SegmentCache>,
    ) -> Result<Log> {
        config.validate()?;
        let now_ms = now_ms();
        let home = Arc::new(SegmentHome {
            vfs,
            dir: dir.to_path_buf(),
            cache,
        });
        let recovered = recovery::open_dir(&home, name, &config, now_ms)?;
        let producers = producer_snapshot::rebuild(
            &home,
            name,
            &recovered.segments,
            recovered.cursor.next_offset(),
            now_ms as i64,
        )?;
        let flusher = flusher.shared();
        let inner = Arc::new(LogInner::new(
            name,
            home,
            config,
            flusher.clone(),
            recovered,
            producers,
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
        self.inner.append(batch, true)
    }

    /// [`Log::append`] without asking for an fsync under `fsync = always`:
    /// the batch becomes durable with the next fsync another append (or a
    /// roll, or close) asks for. For records whose loss in a power failure
    /// is tolerable and that should not cost an fsync each.
    pub fn append_lazy(&self, batch: &Bytes) -> Result<AppendInfo> {
        self.inner.append(batch, false)
    }

    /// Resolves when every offset below `next_offset` is durable under this
    /// log's fsync policy (at once under `never`), or fails if an fsync failed.
    pub fn wait_durable(
        &self,
        next_offset: u64,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.inner.wait_durable(next_offset)
    }

    /// Reads whole batches starting with the one holding `offset`: at least
    /// one batch (even if larger than `max_bytes`), then as many as fit, up
    /// to the written end (what [`Isolation::Written`] sees). For internal
    /// readers; consumers read with [`Log::read_isolated`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        self.inner.read(offset, max_bytes, Isolation::Written)
    }

    /// [`Log::read`] up to the end a read under `isolation` may see
    /// ([`Log::readable_end`]): nothing past it, and no data at all when
    /// `offset` is at or past it (an offset up to the written end is still
    /// in range).
    pub fn read_isolated(
        &self,
        offset: u64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult> {
        self.inner.read(offset, max_bytes, isolation)
    }

    /// The end of what a read under `isolation` may return: the written end
    /// for [`Isolation::Written`]; for [`Isolation::Durable`] the durable
    /// offset under `fsync = always` and interval policies, the written end
    /// under `never` (see `visible.rs`).
    pub fn readable_end(&self, isolation: Isolation) -> u64 {
        self.inner.readable_end(isolation, self.end_offset())
    }

    /// Watches [`Log::readable_end`]: long polls under `isolation` wait on
    /// this (subscribed before their read) instead of sleeping.
    pub fn watch_readable_end(&self, isolation: Isolation) -> EndWatch {
        self.inner.watch_readable_end(isolation)
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

    pub fn stats(&self) -> LogStats {
        // Before the segments' lock: an append takes the writer's first.
        let producers = self.inner.writer.lock().producers.len() as u64;
        let segments = self.inner.segments.read();
        LogStats {
            start_offset: segments[0].base_offset,
            end_offset: self.end_offset(),
            durable_offset: self.durable().offset,
            size_bytes: segments.iter().map(|s| s.size_bytes()).sum(),
            segment_count: segments.len() as u64,
            fsyncs: self.inner.fsyncs.load(Ordering::Relaxed),
            producers,
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
        self.inner.sync()
    }

    /// Checks the CRC of every batch in every segment; fences the log at the
    /// first corrupt batch and returns its offset.
    pub fn verify(&self) -> Result<Option<u64>> {
        self.inner.verify()
    }

    /// Clean shutdown: fsync everything, trim indexes and write the
    /// clean-shutdown marker so the next open skips recovery.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// Stops the log for deletion without writing anything more (see
    /// `LogInner::retire`): appends then fail with `Closed`.
    pub fn retire(&self) {
        self.inner.retire()
    }
}
