//! Records inside a batch: Kafka's v2 record layout, one bounded parser over
//! a batch's bytes (shared by `validate_batch` and `RecordIter`, so what
//! validates is exactly what iterates), and the decoded `Record`.
//!
//! ```text
//! length            varint   bytes of the rest of this record
//! attributes        i8       0 (Kafka defines no record attribute)
//! timestampDelta    varlong  record timestamp - baseTimestamp
//! offsetDelta       varint   0, 1, 2, ... in order
//! keyLength         varint   -1 = null key
//! key
//! valueLength       varint   -1 = null value
//! value
//! headerCount       varint   0 ..= RECORD_HEADERS_LIMIT
//!   headerKeyLength   varint   >= 0 (a header key is never null)
//!   headerKey                  UTF-8
//!   headerValueLength varint   -1 = null value
//!   headerValue
//! ```
//!
//! Varints are zigzag (see `varint.rs`). Every length is checked against
//! the bytes that remain in its record before it is used, and nothing is
//! allocated from a count before that count is bounded by those bytes.

use std::ops::Range;

use bytes::Bytes;

use super::{BatchHeader, BATCH_HEADER_BYTES, RECORD_HEADERS_LIMIT};
use crate::error::ProtocolError;
use crate::varint::{get_varint, get_varint32};

/// Fewest bytes a header takes: its key length and value length.
const HEADER_MIN_BYTES: usize = 2;

/// One header of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A record decoded from a batch; key, value and header values are zero-copy
/// slices of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub offset_delta: u64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

impl Record {
    pub fn header(&self, key: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_ref())
    }
}

/// One record's fields as positions in the batch; headers are walked
/// separately (`for_each_header`), which also checks the record's length.
pub(super) struct RawRecord {
    /// Where the next record starts.
    pub end: usize,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    header_count: usize,
    headers_at: usize,
}

impl RawRecord {
    /// Parses the record starting at `position` of `batch`, up to its
    /// headers.
    pub fn parse(batch: &[u8], position: usize) -> Result<RawRecord, ProtocolError> {
        debug_assert!(position <= batch.len());
        let start_end = record_bounds(batch, position)?;
        let mut reader = Reader {
            buf: batch,
            position: start_end.start,
            end: start_end.end,
        };
        let attributes = reader.u8()?;
        if attributes != 0 {
            return Err(ProtocolError::Unsupported {
                what: "record attributes (none are defined)",
                value: u64::from(attributes),
            });
        }
        let timestamp_delta = reader.varlong()?;
        let offset_delta = reader.varint()?;
        if offset_delta < 0 {
            return Err(ProtocolError::Malformed("negative record offset delta"));
        }
        let key = reader.nullable()?;
        let value = reader.nullable()?;
        let header_count = reader.varint()?;
        if header_count < 0 {
            return Err(ProtocolError::Malformed("negative record header count"));
        }
        if header_count as u64 > RECORD_HEADERS_LIMIT {
            return Err(ProtocolError::TooLarge {
                what: "record header count",
                actual: header_count as u64,
                limit: RECORD_HEADERS_LIMIT,
            });
        }
        Ok(RawRecord {
            end: start_end.end,
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count: header_count as usize,
            headers_at: reader.position,
        })
    }

    /// At most this many headers can be in the record's remaining bytes:
    /// a safe capacity to allocate.
    fn header_capacity(&self) -> usize {
        self.header_count
            .min((self.end - self.headers_at) / HEADER_MIN_BYTES)
    }

    /// Walks the headers, checking each (key length, UTF-8 key, value
    /// length) and handing it to `each`, then checks that they end exactly
    /// where the record's length says it ends.
    pub fn for_each_header(
        &self,
        batch: &[u8],
        mut each: impl FnMut(&str, Option<Range<usize>>),
    ) -> Result<(), ProtocolError> {
        let mut reader = Reader {
            buf: batch,
            position: self.headers_at,
            end: self.end,
        };
        for _ in 0..self.header_count {
            let key_length = reader.varint()?;
            if key_length < 0 {
                return Err(ProtocolError::Malformed(
                    "negative record header key length",
                ));
            }
            let key = reader.take(key_length as u64)?;
            let key = std::str::from_utf8(&batch[key])
                .map_err(|_| ProtocolError::Malformed("record header key is not UTF-8"))?;
            let value = reader.nullable()?;
            each(key, value);
        }
        if reader.position != self.end {
            return Err(ProtocolError::Malformed(
                "record length does not match its fields",
            ));
        }
        Ok(())
    }

    /// The header walk of `for_each_header`, keeping nothing.
    pub fn check_headers(&self, batch: &[u8]) -> Result<(), ProtocolError> {
        self.for_each_header(batch, |_, _| ())
    }
}

/// The body of the record whose length prefix is at `position`.
fn record_bounds(batch: &[u8], position: usize) -> Result<Range<usize>, ProtocolError> {
    let (length, used) = get_varint32(&batch[position..])?;
    if length < 0 {
        return Err(ProtocolError::Malformed("negative record length"));
    }
    let start = position + used;
    let end = bounded_end(start, length as u64, batch.len(), "record length")?;
    Ok(start..end)
}

/// Iterates the records of one batch. Stops after the first error.
pub struct RecordIter {
    batch: Bytes,
    header: BatchHeader,
    position: usize,
    remaining: u32,
    failed: bool,
}

impl RecordIter {
    pub fn new(batch: Bytes, header: BatchHeader) -> RecordIter {
        RecordIter {
            position: BATCH_HEADER_BYTES,
            remaining: header.record_count,
            batch,
            header,
            failed: false,
        }
    }

    /// Skips to the record with `offset` (reading only length prefixes), so
    /// the next `next()` returns it. Relies on offset deltas 0, 1, 2, ...,
    /// which `validate_batch` guarantees for stored batches.
    pub fn seek(&mut self, offset: u64) -> Result<(), ProtocolError> {
        let target = offset.saturating_sub(self.header.base_offset);
        let mut index = u64::from(self.header.record_count - self.remaining);
        while index < target && self.remaining > 0 {
            self.position = record_bounds(&self.batch, self.position)?.end;
            self.remaining -= 1;
            index += 1;
        }
        Ok(())
    }

    fn decode_next(&mut self) -> Result<Record, ProtocolError> {
        let batch = &self.batch;
        let raw = RawRecord::parse(batch, self.position)?;
        let mut headers = Vec::with_capacity(raw.header_capacity());
        raw.for_each_header(batch, |key, value| {
            headers.push(RecordHeader {
                key: key.to_owned(),
                value: value.map(|range| batch.slice(range)),
            })
        })?;
        debug_assert_eq!(headers.len(), raw.header_count);
        let offset_delta = raw.offset_delta as u64;
        let record = Record {
            offset: self.header.base_offset.wrapping_add(offset_delta),
            offset_delta,
            timestamp_ms: self
                .header
                .base_timestamp_ms
                .wrapping_add(raw.timestamp_delta),
            key: raw.key.map(|range| batch.slice(range)),
            value: raw.value.map(|range| batch.slice(range)),
            headers,
        };
        self.position = raw.end;
        Ok(record)
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.position != self.batch.len() {
                self.failed = true;
                return Some(Err(ProtocolError::Malformed("bytes after the last record")));
            }
            return None;
        }
        if self.position >= self.batch.len() {
            self.failed = true;
            return Some(Err(ProtocolError::Malformed(
                "fewer records than record_count",
            )));
        }
        self.remaining -= 1;
        let result = self.decode_next();
        self.failed = result.is_err();
        Some(result)
    }
}

fn bounded_end(
    start: usize,
    length: u64,
    limit: usize,
    what: &'static str,
) -> Result<usize, ProtocolError> {
    debug_assert!(start <= limit);
    let available = (limit - start) as u64;
    if length > available {
        return Err(ProtocolError::TooLarge {
            what,
            actual: length,
            limit: available,
        });
    }
    Ok(start + length as usize)
}

/// A read position inside one record's bytes, `[position, end)`.
struct Reader<'a> {
    buf: &'a [u8],
    position: usize,
    end: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        if self.position >= self.end {
            return Err(ProtocolError::Malformed("record truncated"));
        }
        self.position += 1;
        Ok(self.buf[self.position - 1])
    }

    #[inline]
    fn varint(&mut self) -> Result<i32, ProtocolError> {
        let (value, used) = get_varint32(&self.buf[self.position..self.end])?;
        self.position += used;
        Ok(value)
    }

    fn varlong(&mut self) -> Result<i64, ProtocolError> {
        let (value, used) = get_varint(&self.buf[self.position..self.end])?;
        self.position += used;
        Ok(value)
    }

    fn take(&mut self, length: u64) -> Result<Range<usize>, ProtocolError> {
        let end = bounded_end(self.position, length, self.end, "record field length")?;
        let range = self.position..end;
        self.position = end;
        Ok(range)
    }

    /// A length-prefixed field; a length of -1 is null.
    fn nullable(&mut self) -> Result<Option<Range<usize>>, ProtocolError> {
        match self.varint()? {
            -1 => Ok(None),
            length if length < -1 => Err(ProtocolError::Malformed("negative field length")),
            length => self.take(length as u64).map(Some),
        }
    }
}
