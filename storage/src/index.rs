//! Sparse indexes of one segment, in fixed-size-entry files.
//!
//! - Offset index (`.index`): 8-byte entries `relative_offset:u32
//!   position:u32`, one per `index_interval_bytes` of log (and always one for
//!   the segment's first batch). An entry names the start of a batch.
//! - Time index (`.timeindex`): 12-byte entries `max_timestamp_ms:i64
//!   relative_offset:u32`: the largest timestamp of the segment up to and
//!   including the batch at `relative_offset`. Timestamps strictly increase.
//!
//! An [`EntryFile`] knows a file's path and its published entry count, not
//! the open file: the segment hands it the file to write (while the segment
//! is pinned, see `segment/mod.rs`) or the bytes to search (a view of the
//! open file, or the sealed file's read-only map). Only the writer appends;
//! readers binary-search a view of the first `entries` entries, which is
//! published after the entry bytes are written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::error::{IoContext, Result};
use crate::vfs::VFile;

pub const OFFSET_ENTRY_BYTES: u64 = 8;
pub const TIME_ENTRY_BYTES: u64 = 12;

/// A file of fixed-size entries with a published count.
pub(crate) struct EntryFile {
    pub path: PathBuf,
    entry_bytes: u64,
    entries: AtomicU64,
    max_entries: u64,
}

impl EntryFile {
    pub fn new(path: &Path, entry_bytes: u64, entries: u64, max_entries: u64) -> EntryFile {
        EntryFile {
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

    fn append(&self, file: &dyn VFile, entry: &[u8]) -> Result<()> {
        debug_assert_eq!(entry.len() as u64, self.entry_bytes);
        let count = self.entries();
        assert!(count < self.max_entries, "index append past its capacity");
        file.write_at(count * self.entry_bytes, entry)
            .at(&self.path)?;
        self.entries.store(count + 1, Ordering::Release);
        Ok(())
    }

    /// Forgets entries past `count` (recovery and tail truncation only).
    pub fn truncate_entries(&self, count: u64) {
        self.entries
            .store(count.min(self.entries()), Ordering::Release);
    }

    fn published_bytes(&self) -> u64 {
        self.entries() * self.entry_bytes
    }

    /// The published entries of the open `file`.
    pub fn view_of(&self, file: &dyn VFile) -> Result<Bytes> {
        let len = self.published_bytes() as usize;
        if len == 0 {
            return Ok(Bytes::new());
        }
        file.read_view(0, len).at(&self.path)
    }

    /// The published entries out of `whole`, the mapped file (fewer if the
    /// file is shorter than the count says: it was damaged from outside).
    pub fn view_in(&self, whole: &Bytes) -> Bytes {
        let whole_entries = whole.len() as u64 / self.entry_bytes;
        let len = self.entries().min(whole_entries) * self.entry_bytes;
        whole.slice(..len as usize)
    }

    /// Cuts the file to its entries (on seal and clean close).
    pub fn trim(&self, file: &dyn VFile) -> Result<()> {
        file.set_len(self.published_bytes()).at(&self.path)
    }

    /// Grows the file to its capacity (for the active segment).
    pub fn preallocate(&self, file: &dyn VFile) -> Result<()> {
        let capacity = self.max_entries * self.entry_bytes;
        file.set_len(capacity).at(&self.path)?;
        file.reserve_view(capacity);
        Ok(())
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
    pub fn append(&self, file: &dyn VFile, relative_offset: u32, position: u32) -> Result<()> {
        let mut entry = [0u8; 8];
        entry[..4].copy_from_slice(&relative_offset.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.0.append(file, &entry)
    }

    fn entry(view: &[u8], index: usize) -> (u32, u32) {
        let at = index * OFFSET_ENTRY_BYTES as usize;
        (be_u32(&view[at..]), be_u32(&view[at + 4..]))
    }

    fn count(view: &[u8]) -> usize {
        view.len() / OFFSET_ENTRY_BYTES as usize
    }

    /// The last entry of `view` with `relative_offset <= target`, as
    /// (relative, position).
    pub fn lookup(view: &[u8], target: u32) -> Option<(u32, u32)> {
        let below = partition_point(Self::count(view), |i| Self::entry(view, i).0 <= target);
        (below > 0).then(|| Self::entry(view, below - 1))
    }

    pub fn last(view: &[u8]) -> Option<(u32, u32)> {
        let count = Self::count(view);
        (count > 0).then(|| Self::entry(view, count - 1))
    }

    pub fn all(view: &[u8]) -> Vec<(u32, u32)> {
        (0..Self::count(view))
            .map(|i| Self::entry(view, i))
            .collect()
    }
}

pub(crate) struct TimeIndex(pub EntryFile);

impl TimeIndex {
    pub fn append(
        &self,
        file: &dyn VFile,
        max_timestamp_ms: i64,
        relative_offset: u32,
    ) -> Result<()> {
        let mut entry = [0u8; 12];
        entry[..8].copy_from_slice(&max_timestamp_ms.to_be_bytes());
        entry[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.0.append(file, &entry)
    }

    fn entry(view: &[u8], index: usize) -> (i64, u32) {
        let at = index * TIME_ENTRY_BYTES as usize;
        (be_i64(&view[at..]), be_u32(&view[at + 8..]))
    }

    fn count(view: &[u8]) -> usize {
        view.len() / TIME_ENTRY_BYTES as usize
    }

    /// The last entry of `view` whose timestamp is below `timestamp_ms`:
    /// every batch up to and including it holds only older records.
    pub fn last_before(view: &[u8], timestamp_ms: i64) -> Option<(i64, u32)> {
        let below = partition_point(Self::count(view), |i| Self::entry(view, i).0 < timestamp_ms);
        (below > 0).then(|| Self::entry(view, below - 1))
    }

    pub fn last(view: &[u8]) -> Option<(i64, u32)> {
        let count = Self::count(view);
        (count > 0).then(|| Self::entry(view, count - 1))
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
