//! The index cursor: where the writer stands in the segment it fills, and the
//! one rule for which index entries a batch gets and what they record.
//!
//! - Offset index: an entry for the segment's first batch, then one for the
//!   first batch after every `index_interval_bytes` of log.
//! - Time index: an entry for the first batch, then at most one per
//!   `index_interval_bytes`, and only when the segment's running maximum
//!   timestamp grew past the last entry; sealing adds a last entry carrying
//!   the segment maximum.
//!
//! Append and recovery's scan both index through [`IndexCursor::index_batch`],
//! so recovery re-indexes a segment by the same rule its writer followed.
//! The entry formats themselves are in `index.rs` and `FORMAT.md`.

use ferry_protocol::batch::BatchHeader;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::segment::Segment;

/// Whether [`IndexCursor::index_batch`] indexed the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Indexed {
    Done,
    /// An entry was due but its index is full: the cursor did not move past
    /// the batch (an offset entry may already name it), and the segment must
    /// end before it.
    IndexFull,
}

/// The writer's position in the segment it fills, and how far it is from the
/// next index entries.
#[derive(Debug)]
pub(crate) struct IndexCursor {
    /// The offset the next batch gets.
    next_offset: u64,
    bytes_since_offset_entry: u64,
    bytes_since_time_entry: u64,
    /// Timestamp of the segment's last time index entry (`i64::MIN` if none).
    last_time_entry_ms: i64,
    /// The last batch's base offset, relative to the segment's base.
    last_batch_relative: u32,
}

impl IndexCursor {
    /// At the start of an empty segment whose first batch gets `next_offset`.
    pub fn new(next_offset: u64) -> IndexCursor {
        IndexCursor {
            next_offset,
            bytes_since_offset_entry: 0,
            bytes_since_time_entry: 0,
            last_time_entry_ms: i64::MIN,
            last_batch_relative: 0,
        }
    }

    /// For continuing to append to `segment` (as published), whose next
    /// offset is `next_offset` and whose last time entry is at
    /// `last_time_entry_ms`.
    pub fn resume(
        segment: &Segment,
        next_offset: u64,
        last_time_entry_ms: i64,
    ) -> Result<IndexCursor> {
        let size = segment.size_bytes();
        let reader = segment.reader()?;
        let last_index_position = reader.last_offset_entry()?.map_or(0, |(_, p)| u64::from(p));
        let last_batch_relative = match reader.locate(next_offset.saturating_sub(1))? {
            Ok(Some(located)) if size > 0 => located
                .header
                .base_offset
                .saturating_sub(segment.base_offset)
                as u32,
            _ => 0,
        };
        // Saturating: an index entry past the end (a damaged index the
        // checkpoint still trusts) must not panic; entries resume an
        // interval later.
        let since_entry = size.saturating_sub(last_index_position);
        Ok(IndexCursor {
            next_offset,
            bytes_since_offset_entry: since_entry,
            bytes_since_time_entry: since_entry,
            last_time_entry_ms,
            last_batch_relative,
        })
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Back to the start of a new, empty segment beginning at `next_offset`.
    pub fn start_segment(&mut self) {
        *self = IndexCursor::new(self.next_offset);
    }

    /// Adds the index entries due for the batch written at byte `position`
    /// of `segment`, then moves past it. The batch's base offset is the
    /// cursor's next offset; `header` gives its length, record count and
    /// maximum timestamp (its base offset field is not read). The caller
    /// publishes the batch afterwards.
    pub fn index_batch(
        &mut self,
        segment: &Segment,
        position: u64,
        header: &BatchHeader,
        index_interval_bytes: u64,
    ) -> Result<Indexed> {
        debug_assert!(self.next_offset >= segment.base_offset);
        debug_assert!(position <= u64::from(u32::MAX), "positions are u32");
        let relative = (self.next_offset - segment.base_offset) as u32;
        if segment.index.0.entries() == 0 || self.bytes_since_offset_entry >= index_interval_bytes {
            if segment.index.0.is_full() {
                return Ok(Indexed::IndexFull);
            }
            segment.append_offset_entry(relative, position as u32)?;
            self.bytes_since_offset_entry = 0;
        }
        let running_max_ms = segment.max_timestamp_ms().max(header.max_timestamp_ms);
        let time_due = self.bytes_since_time_entry >= index_interval_bytes;
        if segment.time_index.0.entries() == 0
            || (time_due && running_max_ms > self.last_time_entry_ms)
        {
            if segment.time_index.0.is_full() {
                return Ok(Indexed::IndexFull);
            }
            segment.append_time_entry(running_max_ms, relative)?;
            self.last_time_entry_ms = running_max_ms;
            self.bytes_since_time_entry = 0;
        }
        let length_bytes = header.total_bytes() as u64;
        self.bytes_since_offset_entry += length_bytes;
        self.bytes_since_time_entry += length_bytes;
        self.last_batch_relative = relative;
        self.next_offset += u64::from(header.record_count);
        Ok(Indexed::Done)
    }

    /// Seals `segment`, the one this cursor filled: the time index's last
    /// entry carries the segment maximum, and both indexes are trimmed to
    /// their entries.
    pub fn seal(&mut self, segment: &Segment) -> Result<()> {
        let max_ms = segment.max_timestamp_ms();
        if segment.size_bytes() > 0
            && max_ms > self.last_time_entry_ms
            && !segment.time_index.0.is_full()
        {
            segment.append_time_entry(max_ms, self.last_batch_relative)?;
            self.last_time_entry_ms = max_ms;
        }
        segment.trim_indexes()
    }

    /// The checkpoint naming everything written to `active` so far.
    pub fn checkpoint(&self, active: &Segment) -> Checkpoint {
        Checkpoint {
            segment_base: active.base_offset,
            position: active.size_bytes(),
            next_offset: self.next_offset,
            index_entries: active.index.0.entries(),
            time_entries: active.time_index.0.entries(),
            max_timestamp_ms: active.max_timestamp_ms(),
            last_time_entry_ms: self.last_time_entry_ms,
        }
    }
}
