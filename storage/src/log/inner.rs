//! The state every handle of one log shares, and how it is put together from
//! what recovery opened. Each concern's methods live in their own file:
//! `append.rs`, `sync.rs`, `read.rs`, `retention.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::Durable;
use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::cursor::IndexCursor;
use crate::flusher::FlusherShared;
use crate::health::HealthCell;
use crate::producers::ProducerStates;
use crate::recovery::Recovered;
use crate::segment::{Segment, SegmentHome};
use crate::vfs::Vfs;

/// What only the appender touches, under the writer lock.
pub(super) struct Writer {
    pub active: Arc<Segment>,
    /// Where appends to `active` go and which index entries they get.
    pub cursor: IndexCursor,
    /// Sealed segments the next group commit must fsync.
    pub unsynced_sealed: Vec<Arc<Segment>>,
    /// Idempotent producers' recent batches: checked and updated with
    /// each append, under this lock, so a retry can never be written twice.
    pub producers: ProducerStates,
    /// When idle producers were last expired (ms since the epoch).
    pub producers_expired_at_ms: i64,
}

/// The last recovery checkpoint written, under the sync lock.
pub(super) struct SyncProgress {
    pub checkpoint: Checkpoint,
    pub checkpoint_at_ms: u64,
}

pub(super) struct LogInner {
    pub name: String,
    pub dir: PathBuf,
    pub vfs: Arc<dyn Vfs>,
    /// The segments' files and the cache that maps sealed ones.
    pub home: Arc<SegmentHome>,
    pub config: LogConfig,
    /// Oldest first, never empty; the last is the active segment.
    pub segments: RwLock<Vec<Arc<Segment>>>,
    pub writer: Mutex<Writer>,
    /// Held for a whole group commit, so commits of one log do not overlap.
    pub sync_progress: Mutex<SyncProgress>,
    pub health: HealthCell,
    pub end_tx: watch::Sender<u64>,
    pub durable_tx: watch::Sender<Durable>,
    /// Set while the log waits in the flusher's queue.
    pub sync_queued: AtomicBool,
    pub last_sync_ms: AtomicU64,
    pub checkpoint_offset: AtomicU64,
    pub checkpoint_segment: AtomicU64,
    pub fsyncs: AtomicU64,
    pub flusher: Arc<FlusherShared>,
}

impl LogInner {
    /// The log over what recovery opened, at `now_ms`.
    pub(super) fn new(
        name: &str,
        home: Arc<SegmentHome>,
        config: LogConfig,
        flusher: Arc<FlusherShared>,
        recovered: Recovered,
        producers: ProducerStates,
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
            dir: home.dir.clone(),
            vfs: home.vfs.clone(),
            home,
            config,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                active,
                cursor,
                unsynced_sealed: Vec::new(),
                producers,
                producers_expired_at_ms: now_ms as i64,
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
}
