//! The read path: find the segment and batch through the sparse indexes,
//! slice whole batches out of the segment's memory map and serve only the
//! prefix whose CRCs check; look up offsets by timestamp; verify everything.
//! Corrupt data fences the log (see `health.rs`).

use bytes::Bytes;
use ferry_protocol::batch::{self, BatchIter, RecordIter};

use super::inner::LogInner;
use super::visible::{cut_at, Isolation};
use super::ReadResult;
use crate::error::{Result, StorageError};
use crate::health::Health;
use crate::segment::Located;

impl LogInner {
    /// Whole batches from the one holding `offset`, up to the end reads
    /// under `isolation` may see (see `Log::read_isolated`).
    pub(super) fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult> {
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
        let readable_end = self.readable_end(isolation, end_offset);
        if offset >= readable_end {
            return Ok(empty);
        }
        for segment in &segments[index.saturating_sub(1)..] {
            let reader = segment.reader()?;
            let located = match reader.locate(offset)? {
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
            let (data, next_offset) = reader.read_from(located, max_bytes)?;
            let (data, next_offset) = cut_at(data, next_offset, readable_end);
            if data.is_empty() {
                return Ok(empty);
            }
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

    /// See `Log::offset_for_timestamp`.
    pub(super) fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        let segments = self.segments.read().clone();
        for segment in segments {
            if segment.size_bytes() == 0 || segment.max_timestamp_ms() < timestamp_ms {
                continue;
            }
            let reader = segment.reader()?;
            let mut position = match reader.time_entry_before(timestamp_ms)? {
                Some((_, relative)) => {
                    match reader.locate(segment.base_offset + u64::from(relative))? {
                        Ok(Some(Located { position, .. })) => position,
                        _ => 0,
                    }
                }
                None => 0,
            };
            let limit = segment.size_bytes();
            while let Some(header) = reader.header_at(position, limit)? {
                if header.max_timestamp_ms >= timestamp_ms {
                    let bytes = reader.log_bytes(position, header.total_bytes())?;
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

    /// Checks the CRC of every batch in every segment; fences the log at the
    /// first corrupt batch and returns its offset.
    pub(super) fn verify(&self) -> Result<Option<u64>> {
        let segments = self.segments.read().clone();
        for segment in segments {
            if let Some((offset, reason)) = segment.reader()?.verify()? {
                self.fence(offset, reason);
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// Refuses reads at or past `offset`, and appends, until restart.
    fn fence(&self, offset: u64, reason: String) {
        tracing::error!(partition = %self.name, offset, %reason, "corrupt data: partition fenced");
        self.health.set(Health::Fenced { offset, reason });
    }

    /// The error for corrupt data at `offset` of this partition.
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
}
