//! Sparse indexes of one segment, in preallocated, memory-mapped files.
//!
//! - Offset index (`.index`): 8-byte entries `relative_offset:u32
//!   position:u32`, one per `index_interval_bytes` of log (and always one for
//!   the segment's first batch). An entry names the start of a batch.
//! - Time index (`.timeindex`): 12-byte entries `max_timestamp_ms:i64
//!   relative_offset:u32`: the largest timestamp of the segment up to and
//!   including the batch at `relative_offset`. Timestamps strictly increase.
//!
//! Only the writer appends; readers binary-search a view of the first
//! `entries` entries, which is published after the entry bytes are written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{IoContext, Result};
use crate::vfs::VFile;

pub const OFFSET_ENTRY_BYTES: u64 = 8;
pub const TIME_ENTRY_BYTES: u64 = 12;

/// A file of fixed-size entries with a published count.
pub(crate) struct EntryFile {
    pub file: Arc<dyn VFile>,
    pub path: PathBuf,
    entry_bytes: u64,
    entries: AtomicU64,
    max_entries: u64,
}

impl EntryFile {
    pub fn new(
        file: Arc<dyn VFile>,
        path: &Path,
        entry_bytes: u64,
        entries: u64,
        max_entries: u64,
    ) -> EntryFile {
        EntryFile {
            file,
            path: path.to_path_buf(),
            entry_bytes,
            entries: AtomicU64::new(entries),
            max_entries,
        }
    }

    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Acquire)
    }

    pub fn is_full(&self) -> bool {
        self.entries() >= self.max_entries
    }

    fn append(&self, entry: &[u8]) -> Result<()> {
        debug_assert_eq!(entry.len() as u64, self.entry_bytes);
        let count = self.entries();
        assert!(count < self.max_entries, "index append past its capacity");
        self.file
            .write_at(count * self.entry_bytes, entry)
            .at(&self.path)?;
        self.entries.store(count + 1, Ordering::Release);
        Ok(())
    }

    /// Forgets entries past `count` (recovery and tail truncation only).
    pub fn truncate_entries(&self, count: u64) {
        self.entries
            .store(count.min(self.entries()), Ordering::Release);
    }

    fn view(&self) -> Result<bytes::Bytes> {
        let len = (self.entries() * self.entry_bytes) as usize;
        if len == 0 {
            return Ok(bytes::Bytes::new());
        }
        self.file.read_view(0, len).at(&self.path)
    }

    /// Cuts the file to its entries (on seal and clean close).
    pub fn trim(&self) -> Result<()> {
        self.file
            .set_len(self.entries() * self.entry_bytes)
            .at(&self.path)
    }

    /// Grows the file to its capacity (for the active segment).
    pub fn preallocate(&self) -> Result<()> {
        self.file
            .set_len(self.max_entries * self.entry_bytes)
            .at(&self.path)?;
        self.file.reserve_view(self.max_entries * self.entry_bytes);
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        self.file.sync().at(&self.path)
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn be_i64(bytes: &[u8]) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    i64::from_be_bytes(raw)
}

pub(crate) struct OffsetIndex(pub EntryFile);

impl OffsetIndex {
    pub fn append(&self, relative_offset: u32, position: u32) -> Result<()> {
        let mut entry = [0u8; 8];
        entry[..4].copy_from_slice(&relative_offset.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.0.append(&entry)
    }

    pub fn entry(view: &[u8], index: usize) -> (u32, u32) {
        let at = index * OFFSET_ENTRY_BYTES as usize;
        (be_u32(&view[at..]), be_u32(&view[at + 4..]))
    }

    /// The last entry with `relative_offset <= target`, as (relative, position).
    pub fn lookup(&self, target: u32) -> Result<Option<(u32, u32)>> {
        let view = self.0.view()?;
        let count = view.len() / OFFSET_ENTRY_BYTES as usize;
        let below = partition_point(count, |i| Self::entry(&view, i).0 <= target);
        Ok((below > 0).then(|| Self::entry(&view, below - 1)))
    }

    pub fn last(&self) -> Result<Option<(u32, u32)>> {
        let view = self.0.view()?;
        let count = view.len() / OFFSET_ENTRY_BYTES as usize;
        Ok((count > 0).then(|| Self::entry(&view, count - 1)))
    }

    pub fn all(&self) -> Result<Vec<(u32, u32)>> {
        let view = self.0.view()?;
        let count = view.len() / OFFSET_ENTRY_BYTES as usize;
        Ok((0..count).map(|i| Self::entry(&view, i)).collect())
    }
}

pub(crate) struct TimeIndex(pub EntryFile);

impl TimeIndex {
    pub fn append(&self, max_timestamp_ms: i64, relative_offset: u32) -> Result<()> {
        let mut entry = [0u8; 12];
        entry[..8].copy_from_slice(&max_timestamp_ms.to_be_bytes());
        entry[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.0.append(&entry)
    }

    pub fn entry(view: &[u8], index: usize) -> (i64, u32) {
        let at = index * TIME_ENTRY_BYTES as usize;
        (be_i64(&view[at..]), be_u32(&view[at + 8..]))
    }

    /// The last entry whose timestamp is below `timestamp_ms`: every batch up
    /// to and including it holds only older records.
    pub fn last_before(&self, timestamp_ms: i64) -> Result<Option<(i64, u32)>> {
        let view = self.0.view()?;
        let count = view.len() / TIME_ENTRY_BYTES as usize;
        let below = partition_point(count, |i| Self::entry(&view, i).0 < timestamp_ms);
        Ok((below > 0).then(|| Self::entry(&view, below - 1)))
    }

    pub fn last(&self) -> Result<Option<(i64, u32)>> {
        let view = self.0.view()?;
        let count = view.len() / TIME_ENTRY_BYTES as usize;
        Ok((count > 0).then(|| Self::entry(&view, count - 1)))
    }
}

/// First index in `0..count` for which `pred` is false (pred is monotone).
fn partition_point(count: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, count);
    while low < high {
        let mid = low + (high - low) / 2;
        if pred(mid) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}
