//! One segment of a partition log: `<base>.log` holding whole batches back to
//! back, and its two sparse indexes. The writer appends under the log's writer
//! lock and then publishes the new size; readers only look below the
//! published size, so they never see a half-written batch.
//!
//! Open files: a segment is *pinned* (its three files open) while it is the
//! active segment, after a roll until the group commit that fsyncs it, and
//! while recovery writes it. A sealed, fsynced segment holds no open file:
//! reads map its files read-only through the process-wide
//! [`SegmentCache`], which bounds how many are mapped. Writes to an unpinned
//! segment (only recovery and start-up fsyncs do that) open its files for
//! the one call. Reading, from either source, is in `reader.rs`.

mod reader;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

pub(crate) use self::reader::{Located, SegmentReader};
use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::error::{IoContext, Result};
use crate::index::{EntryFile, OffsetIndex, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use crate::segment_cache::{SealedSlot, SealedViews, SegmentCache, UnsyncedHold};
use crate::vfs::{VFile, Vfs};

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";

pub fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Parses `00000000000000000042.log` into 42.
pub fn parse_file_name(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// What every segment of one log shares: where the files are, how to open
/// them, and the cache that maps sealed ones.
pub(crate) struct SegmentHome {
    pub vfs: Arc<dyn Vfs>,
    pub dir: PathBuf,
    pub cache: Arc<SegmentCache>,
}

/// The three open files of a segment.
pub(crate) struct SegmentFiles {
    pub log: Arc<dyn VFile>,
    pub index: Arc<dyn VFile>,
    pub time_index: Arc<dyn VFile>,
}

/// A pinned segment's files, and (after a roll) its place among the sealed
/// segments waiting for an fsync.
struct Pinned {
    files: Arc<SegmentFiles>,
    _unsynced: Option<UnsyncedHold>,
}

pub(crate) struct Segment {
    pub base_offset: u64,
    pub log_path: PathBuf,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    size_bytes: AtomicU64,
    next_offset: AtomicU64,
    max_timestamp_ms: AtomicI64,
    pub created_at_ms: u64,
    max_batch_bytes: usize,
    /// How far reads of the active log may reach (a mapping hint).
    log_reserve_bytes: u64,
    home: Arc<SegmentHome>,
    /// `Some` while pinned.
    pinned: RwLock<Option<Pinned>>,
    /// Where the read-only maps live while unpinned.
    slot: Arc<SealedSlot>,
}

/// What is trusted about a segment's files when it is opened.
pub(crate) struct SegmentState {
    pub size_bytes: u64,
    pub next_offset: u64,
    pub max_timestamp_ms: i64,
    pub index_entries: u64,
    pub time_entries: u64,
}

impl SegmentState {
    /// Nothing yet: the first batch will get `next_offset`.
    pub fn empty(next_offset: u64) -> SegmentState {
        SegmentState {
            size_bytes: 0,
            next_offset,
            max_timestamp_ms: i64::MIN,
            index_entries: 0,
            time_entries: 0,
        }
    }

    /// What a checkpoint (or clean-shutdown marker) says of its segment.
    pub fn checkpointed(checkpoint: &Checkpoint) -> SegmentState {
        SegmentState {
            size_bytes: checkpoint.position,
            next_offset: checkpoint.next_offset,
            max_timestamp_ms: checkpoint.max_timestamp_ms,
            index_entries: checkpoint.index_entries,
            time_entries: checkpoint.time_entries,
        }
    }
}

impl Segment {
    /// Opens (creating if needed) the three files of a segment with the
    /// given trusted state, pinned. Index files are sized for writing.
    pub fn open(
        home: &Arc<SegmentHome>,
        base_offset: u64,
        config: &LogConfig,
        state: SegmentState,
        now_ms: u64,
    ) -> Result<Segment> {
        let segment = Segment::new(home, base_offset, config, state, now_ms);
        segment.pin()?;
        Ok(segment)
    }

    /// A sealed, fsynced segment with the given trusted state: no file is
    /// opened until it is read (and then only mapped).
    pub fn sealed(
        home: &Arc<SegmentHome>,
        base_offset: u64,
        config: &LogConfig,
        state: SegmentState,
    ) -> Segment {
        Segment::new(home, base_offset, config, state, 0)
    }

    fn new(
        home: &Arc<SegmentHome>,
        base_offset: u64,
        config: &LogConfig,
        state: SegmentState,
        now_ms: u64,
    ) -> Segment {
        let path = |suffix| home.dir.join(file_name(base_offset, suffix));
        let max_index = (config.index_max_bytes / OFFSET_ENTRY_BYTES).max(state.index_entries);
        let max_time = (config.index_max_bytes / TIME_ENTRY_BYTES).max(state.time_entries);
        let entries = |suffix, bytes, count, max| EntryFile::new(&path(suffix), bytes, count, max);
        Segment {
            base_offset,
            log_path: path(LOG_SUFFIX),
            index: OffsetIndex(entries(
                INDEX_SUFFIX,
                OFFSET_ENTRY_BYTES,
                state.index_entries,
                max_index,
            )),
            time_index: TimeIndex(entries(
                TIME_INDEX_SUFFIX,
                TIME_ENTRY_BYTES,
                state.time_entries,
                max_time,
            )),
            size_bytes: AtomicU64::new(state.size_bytes),
            next_offset: AtomicU64::new(state.next_offset),
            max_timestamp_ms: AtomicI64::new(state.max_timestamp_ms),
            created_at_ms: now_ms,
            max_batch_bytes: config.max_batch_bytes,
            log_reserve_bytes: config.segment_bytes + config.max_batch_bytes as u64,
            home: home.clone(),
            pinned: RwLock::new(None),
            slot: home.cache.slot(),
        }
    }

    /// Opens the files (creating missing ones) and keeps them open until
    /// [`Segment::unpin`]. Maps made while unpinned are dropped first: the
    /// files may change now.
    pub fn pin(&self) -> Result<()> {
        let mut pinned = self.pinned.write();
        if pinned.is_some() {
            return Ok(());
        }
        self.home.cache.drop_views(&self.slot);
        let files = self.open_files()?;
        files.log.reserve_view(self.log_reserve_bytes);
        *pinned = Some(Pinned {
            files: Arc::new(files),
            _unsynced: None,
        });
        Ok(())
    }

    /// Closes the files (once no read still uses them); later reads map
    /// them. Only for a segment that is sealed and fsynced, or retired.
    pub fn unpin(&self) {
        let files = self.pinned.write().take();
        drop(files);
        self.home.cache.drop_views(&self.slot);
    }

    pub fn is_pinned(&self) -> bool {
        self.pinned.read().is_some()
    }

    /// After a roll: keeps the files open until the group commit fsyncs the
    /// segment, if the cache has room for one more such segment. `false`:
    /// the caller must fsync it now.
    pub fn hold_until_synced(&self) -> bool {
        let mut pinned = self.pinned.write();
        let Some(pinned) = pinned.as_mut() else {
            return false;
        };
        match self.home.cache.hold_unsynced() {
            Some(hold) => {
                pinned._unsynced = Some(hold);
                true
            }
            None => false,
        }
    }

    fn open_files(&self) -> Result<SegmentFiles> {
        let vfs = &*self.home.vfs;
        let open = |path: &Path| vfs.open(path, true).at(path);
        Ok(SegmentFiles {
            log: open(&self.log_path)?,
            index: open(&self.index.0.path)?,
            time_index: open(&self.time_index.0.path)?,
        })
    }

    /// The files to write or sync: the pinned ones, or opened for this call.
    fn files(&self) -> Result<Arc<SegmentFiles>> {
        if let Some(pinned) = self.pinned.read().as_ref() {
            return Ok(pinned.files.clone());
        }
        Ok(Arc::new(self.open_files()?))
    }

    /// A reader over the pinned files, or over the cached read-only maps.
    pub fn reader(&self) -> Result<SegmentReader<'_>> {
        if let Some(pinned) = self.pinned.read().as_ref() {
            return Ok(SegmentReader::over_files(self, pinned.files.clone()));
        }
        let views = self.home.cache.views(&self.slot, || self.map_views())?;
        Ok(SegmentReader::over_maps(self, views))
    }

    /// Maps the three files read-only; a missing index maps as empty (reads
    /// then scan the log from its start).
    fn map_views(&self) -> Result<SealedViews> {
        let vfs = &*self.home.vfs;
        let optional = |path: &Path| match vfs.map_read_only(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(bytes::Bytes::new()),
            other => other.at(path),
        };
        Ok(SealedViews {
            log: vfs.map_read_only(&self.log_path).at(&self.log_path)?,
            index: optional(&self.index.0.path)?,
            time_index: optional(&self.time_index.0.path)?,
        })
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms.load(Ordering::Acquire)
    }

    pub fn max_batch_bytes(&self) -> usize {
        self.max_batch_bytes
    }

    /// Makes an appended batch visible to readers (writer only).
    pub fn publish(&self, size_bytes: u64, next_offset: u64, max_timestamp_ms: i64) {
        debug_assert!(size_bytes >= self.size_bytes());
        debug_assert!(next_offset >= self.next_offset());
        self.max_timestamp_ms
            .fetch_max(max_timestamp_ms, Ordering::AcqRel);
        self.next_offset.store(next_offset, Ordering::Release);
        self.size_bytes.store(size_bytes, Ordering::Release);
    }

    /// Forgets what was published (before a recovery scan re-publishes it).
    pub fn reset_published(&self) {
        self.size_bytes.store(0, Ordering::Release);
        self.next_offset.store(self.base_offset, Ordering::Release);
        self.max_timestamp_ms.store(i64::MIN, Ordering::Release);
    }

    /// Writes the pieces back to back at `position` of the log (one
    /// `pwritev`).
    pub fn write_log_at(&self, position: u64, bufs: &[&[u8]]) -> Result<()> {
        self.files()?
            .log
            .write_vectored_at(position, bufs)
            .at(&self.log_path)
    }

    pub fn append_offset_entry(&self, relative_offset: u32, position: u32) -> Result<()> {
        let files = self.files()?;
        self.index.append(&*files.index, relative_offset, position)
    }

    pub fn append_time_entry(&self, max_timestamp_ms: i64, relative_offset: u32) -> Result<()> {
        let files = self.files()?;
        self.time_index
            .append(&*files.time_index, max_timestamp_ms, relative_offset)
    }

    /// Cuts both index files to their entries (on seal and clean close).
    pub fn trim_indexes(&self) -> Result<()> {
        let files = self.files()?;
        self.index.0.trim(&*files.index)?;
        self.time_index.0.trim(&*files.time_index)
    }

    /// Grows both index files to their capacity (for the active segment).
    pub fn preallocate_indexes(&self) -> Result<()> {
        let files = self.files()?;
        self.index.0.preallocate(&*files.index)?;
        self.time_index.0.preallocate(&*files.time_index)
    }

    /// The length of the log file on disk.
    pub fn log_file_len(&self) -> Result<u64> {
        self.files()?.log.len().at(&self.log_path)
    }

    pub fn set_log_len(&self, len: u64) -> Result<()> {
        self.files()?.log.set_len(len).at(&self.log_path)
    }

    /// Syncs the log file (data only).
    pub fn sync_log(&self) -> Result<()> {
        self.files()?.log.sync().at(&self.log_path)
    }

    /// Syncs both index files.
    pub fn sync_indexes(&self) -> Result<()> {
        let files = self.files()?;
        files.index.sync().at(&self.index.0.path)?;
        files.time_index.sync().at(&self.time_index.0.path)
    }

    /// Syncs all three files.
    pub fn sync_all(&self) -> Result<()> {
        let files = self.files()?;
        files.log.sync().at(&self.log_path)?;
        files.index.sync().at(&self.index.0.path)?;
        files.time_index.sync().at(&self.time_index.0.path)
    }

    pub fn paths(&self) -> [PathBuf; 3] {
        [
            self.log_path.clone(),
            self.index.0.path.clone(),
            self.time_index.0.path.clone(),
        ]
    }
}
