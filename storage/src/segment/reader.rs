//! Reading one segment: batch headers, whole batches and index look-ups,
//! from whichever source the segment has now: its pinned files (each read a
//! slice of the file's shared map) or the read-only maps the segment cache
//! holds for a sealed segment. Either way a read returns `Bytes` that own a
//! reference to their map, so they stay valid however long the caller keeps
//! them, even after the cache unmaps the segment.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{self, BatchHeader, BATCH_HEADER_BYTES};

use super::{Segment, SegmentFiles};
use crate::error::{IoContext, Result};
use crate::index::{OffsetIndex, TimeIndex};
use crate::segment_cache::SealedViews;

/// Where a batch starts and what its header says.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    pub position: u64,
    pub header: BatchHeader,
}

enum Source {
    Files(Arc<SegmentFiles>),
    Maps(Arc<SealedViews>),
}

/// One segment, readable until dropped (it keeps its source open or mapped).
pub(crate) struct SegmentReader<'a> {
    segment: &'a Segment,
    source: Source,
}

/// `len` bytes at `position` of `whole`, or an error past its end (a file
/// shortened from outside since it was trusted).
fn slice(whole: &Bytes, position: u64, len: usize) -> io::Result<Bytes> {
    let start = usize::try_from(position).unwrap_or(usize::MAX);
    match start.checked_add(len) {
        Some(end) if end <= whole.len() => Ok(whole.slice(start..end)),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "read past the end of the mapped file",
        )),
    }
}

impl<'a> SegmentReader<'a> {
    pub(super) fn over_files(segment: &'a Segment, files: Arc<SegmentFiles>) -> Self {
        SegmentReader {
            segment,
            source: Source::Files(files),
        }
    }

    pub(super) fn over_maps(segment: &'a Segment, views: Arc<SealedViews>) -> Self {
        SegmentReader {
            segment,
            source: Source::Maps(views),
        }
    }

    pub fn segment(&self) -> &'a Segment {
        self.segment
    }

    /// `len` bytes of the log at `position`.
    pub fn log_bytes(&self, position: u64, len: usize) -> Result<Bytes> {
        let path = &self.segment.log_path;
        match &self.source {
            Source::Files(files) => files.log.read_view(position, len).at(path),
            Source::Maps(views) => slice(&views.log, position, len).at(path),
        }
    }

    fn offset_entries(&self) -> Result<Bytes> {
        let index = &self.segment.index.0;
        match &self.source {
            Source::Files(files) => index.view_of(&*files.index),
            Source::Maps(views) => Ok(index.view_in(&views.index)),
        }
    }

    fn time_entries(&self) -> Result<Bytes> {
        let index = &self.segment.time_index.0;
        match &self.source {
            Source::Files(files) => index.view_of(&*files.time_index),
            Source::Maps(views) => Ok(index.view_in(&views.time_index)),
        }
    }

    /// The last offset index entry at or below `relative_offset`.
    pub fn offset_entry_at_or_below(&self, relative_offset: u32) -> Result<Option<(u32, u32)>> {
        Ok(OffsetIndex::lookup(
            &self.offset_entries()?,
            relative_offset,
        ))
    }

    pub fn last_offset_entry(&self) -> Result<Option<(u32, u32)>> {
        Ok(OffsetIndex::last(&self.offset_entries()?))
    }

    pub fn offset_entries_all(&self) -> Result<Vec<(u32, u32)>> {
        Ok(OffsetIndex::all(&self.offset_entries()?))
    }

    /// The last time index entry whose timestamp is below `timestamp_ms`.
    pub fn time_entry_before(&self, timestamp_ms: i64) -> Result<Option<(i64, u32)>> {
        Ok(TimeIndex::last_before(&self.time_entries()?, timestamp_ms))
    }

    pub fn last_time_entry(&self) -> Result<Option<(i64, u32)>> {
        Ok(TimeIndex::last(&self.time_entries()?))
    }

    /// Reads and checks the fixed header of the batch at `position`, which
    /// must lie below `limit` (the bytes known to be there).
    pub fn header_at(&self, position: u64, limit: u64) -> Result<Option<BatchHeader>> {
        if position + BATCH_HEADER_BYTES as u64 > limit {
            return Ok(None);
        }
        let bytes = self.log_bytes(position, BATCH_HEADER_BYTES)?;
        match BatchHeader::parse(&bytes, self.segment.max_batch_bytes()) {
            Ok(header) if position + header.total_bytes() as u64 <= limit => Ok(Some(header)),
            _ => Ok(None),
        }
    }

    /// The batch holding `offset` (or the first batch after it), or `None`
    /// if the published part of the segment ends before it. A header that
    /// does not parse inside the published region is reported as `Err(pos)`.
    pub fn locate(&self, offset: u64) -> Result<Result<Option<Located>, u64>> {
        let segment = self.segment;
        let limit = segment.size_bytes();
        let relative = offset
            .saturating_sub(segment.base_offset)
            .min(u64::from(u32::MAX)) as u32;
        let mut position = match self.offset_entry_at_or_below(relative)? {
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
        let limit = self.segment.size_bytes();
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
        let bytes = self.log_bytes(start.position, (end - start.position) as usize)?;
        Ok((bytes, next_offset))
    }

    /// Checks every batch's CRC; returns the offset of the first bad batch.
    pub fn verify(&self) -> Result<Option<(u64, String)>> {
        let segment = self.segment;
        let limit = segment.size_bytes();
        let mut position = 0;
        let mut expected = segment.base_offset;
        while position < limit {
            let Some(header) = self.header_at(position, limit)? else {
                return Ok(Some((
                    expected,
                    format!("unreadable batch header at byte {position}"),
                )));
            };
            let bytes = self.log_bytes(position, header.total_bytes())?;
            if let Err(e) = batch::check_batch(&bytes, segment.max_batch_bytes()) {
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
