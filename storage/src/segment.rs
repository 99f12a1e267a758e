//! One segment of a partition log: `<base>.log` holding whole batches back to
//! back, and its two sparse indexes. The writer appends under the log's writer
//! lock and then publishes the new size; readers only look below the
//! published size, so they never see a half-written batch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{self, BatchHeader, BATCH_HEADER_BYTES};

use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::error::{IoContext, Result};
use crate::index::{EntryFile, OffsetIndex, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
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

/// Where a batch starts and what its header says.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    pub position: u64,
    pub header: BatchHeader,
}

pub(crate) struct Segment {
    pub base_offset: u64,
    pub log: Arc<dyn VFile>,
    pub log_path: PathBuf,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    size_bytes: AtomicU64,
    next_offset: AtomicU64,
    max_timestamp_ms: AtomicI64,
    pub created_at_ms: u64,
    max_batch_bytes: usize,
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
    /// Opens (creating if needed) the three files of a segment with the given
    /// trusted state. Index files are opened at their capacity for writing.
    pub fn open(
        vfs: &dyn Vfs,
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
        state: SegmentState,
        now_ms: u64,
    ) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let index_path = dir.join(file_name(base_offset, INDEX_SUFFIX));
        let time_path = dir.join(file_name(base_offset, TIME_INDEX_SUFFIX));
        let log = vfs.open(&log_path, true).at(&log_path)?;
        log.reserve_view(config.segment_bytes + config.max_batch_bytes as u64);
        let index_file = vfs.open(&index_path, true).at(&index_path)?;
        let time_file = vfs.open(&time_path, true).at(&time_path)?;
        let max_index = (config.index_max_bytes / OFFSET_ENTRY_BYTES).max(state.index_entries);
        let max_time = (config.index_max_bytes / TIME_ENTRY_BYTES).max(state.time_entries);
        Ok(Segment {
            base_offset,
            log,
            log_path,
            index: OffsetIndex(EntryFile::new(
                index_file,
                &index_path,
                OFFSET_ENTRY_BYTES,
                state.index_entries,
                max_index,
            )),
            time_index: TimeIndex(EntryFile::new(
                time_file,
                &time_path,
                TIME_ENTRY_BYTES,
                state.time_entries,
                max_time,
            )),
            size_bytes: AtomicU64::new(state.size_bytes),
            next_offset: AtomicU64::new(state.next_offset),
            max_timestamp_ms: AtomicI64::new(state.max_timestamp_ms),
            created_at_ms: now_ms,
            max_batch_bytes: config.max_batch_bytes,
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

    /// Reads and checks the fixed header of the batch at `position`, which
    /// must lie below `limit` (the bytes known to be there).
    pub fn header_at(&self, position: u64, limit: u64) -> Result<Option<BatchHeader>> {
        if position + BATCH_HEADER_BYTES as u64 > limit {
            return Ok(None);
        }
        let bytes = self
            .log
            .read_view(position, BATCH_HEADER_BYTES)
            .at(&self.log_path)?;
        match BatchHeader::parse(&bytes, self.max_batch_bytes) {
            Ok(header) if position + header.total_bytes() as u64 <= limit => Ok(Some(header)),
            _ => Ok(None),
        }
    }

    /// The batch holding `offset` (or the first batch after it), or `None`
    /// if the published part of the segment ends before it. A header that
    /// does not parse inside the published region is reported as `Err(pos)`.
    pub fn locate(&self, offset: u64) -> Result<Result<Option<Located>, u64>> {
        let limit = self.size_bytes();
        let relative = offset
            .saturating_sub(self.base_offset)
            .min(u64::from(u32::MAX)) as u32;
        let mut position = match self.index.lookup(relative)? {
            Some((_, position)) => u64::from(position),
            None => 0,
        };
        while position < limit {
            let Some(header) = self.header_at(position, limit)? else {
                return Ok(Err(position));
            };
            if header.last_offset() >= offset {
                return Ok(Ok(Some(Located { position, header })));
            }
            position += header.total_bytes() as u64;
        }
        Ok(Ok(None))
    }

    /// Whole batches from `start` (a batch boundary): at least one, then as
    /// many more as fit in `max_bytes`. Returns the bytes and the offset after
    /// the last batch. Headers are checked; CRCs are checked by the caller.
    pub fn read_from(&self, start: Located, max_bytes: usize) -> Result<(Bytes, u64)> {
        let limit = self.size_bytes();
        let mut end = start.position + start.header.total_bytes() as u64;
        let mut next_offset = start.header.next_offset();
        while end < limit {
            let Some(header) = self.header_at(end, limit)? else {
                break;
            };
            let grown = end + header.total_bytes() as u64;
            if (grown - start.position) as usize > max_bytes {
                break;
            }
            end = grown;
            next_offset = header.next_offset();
        }
        let bytes = self
            .log
            .read_view(start.position, (end - start.position) as usize)
            .at(&self.log_path)?;
        Ok((bytes, next_offset))
    }

    /// Syncs the log file (data only).
    pub fn sync_log(&self) -> Result<()> {
        self.log.sync().at(&self.log_path)
    }

    /// Syncs all three files.
    pub fn sync_all(&self) -> Result<()> {
        self.sync_log()?;
        self.index.0.sync()?;
        self.time_index.0.sync()
    }

    pub fn paths(&self) -> [PathBuf; 3] {
        [
            self.log_path.clone(),
            self.index.0.path.clone(),
            self.time_index.0.path.clone(),
        ]
    }

    /// Checks every batch's CRC; returns the offset of the first bad batch.
    pub fn verify(&self) -> Result<Option<(u64, String)>> {
        let limit = self.size_bytes();
        let mut position = 0;
        let mut expected = self.base_offset;
        while position < limit {
            let Some(header) = self.header_at(position, limit)? else {
                return Ok(Some((
                    expected,
                    format!("unreadable batch header at byte {position}"),
                )));
            };
            let bytes = self
                .log
                .read_view(position, header.total_bytes())
                .at(&self.log_path)?;
            if let Err(e) = batch::check_batch(&bytes, self.max_batch_bytes) {
                return Ok(Some((header.base_offset, e.to_string())));
            }
            if header.base_offset != expected {
                return Ok(Some((expected, "batch offsets are not dense".into())));
            }
            expected = header.next_offset();
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }
}
