//! Records inside a batch: Kafka's v2 record layout, one bounded parser over
//! a records buffer (shared by `validate_batch` and `RecordIter`, so what
//! validates is exactly what iterates), and the decoded `Record`.
//!
//! A records buffer is a batch's records region: the batch's bytes from 61
//! on when it is not compressed (a zero-copy slice), else those bytes
//! decompressed (see `compression.rs`). Positions are offsets into that
//! buffer, the first record at 0.
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

use super::compression::{decompress, Compression};
use super::{BatchHeader, BATCH_BYTES_LIMIT, BATCH_HEADER_BYTES, RECORD_HEADERS_LIMIT};
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
/// slices of the batch (of its decompressed records when it is compressed).
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

/// One record's fields as positions in a records buffer; headers are walked
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
    /// Parses the record starting at `position` of `records`, up to its
    /// headers.
    pub fn parse(records: &[u8], position: usize) -> Result<RawRecord, ProtocolError> {
        debug_assert!(position <= records.len());
        let start_end = record_bounds(records, position)?;
        let mut reader = Reader {
            buf: records,
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
        records: &[u8],
        mut each: impl FnMut(&str, Option<Range<usize>>),
    ) -> Result<(), ProtocolError> {
        let mut reader = Reader {
            buf: records,
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
            let key = std::str::from_utf8(&records[key])
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
    pub fn check_headers(&self, records: &[u8]) -> Result<(), ProtocolError> {
        self.for_each_header(records, |_, _| ())
    }
}

/// The body of the record whose length prefix is at `position`.
fn record_bounds(records: &[u8], position: usize) -> Result<Range<usize>, ProtocolError> {
    let (length, used) = get_varint32(&records[position..])?;
    if length < 0 {
        return Err(ProtocolError::Malformed("negative record length"));
    }
    let start = position + used;
    let end = bounded_end(start, length as u64, records.len(), "record length")?;
    Ok(start..end)
}

/// The records buffer of `batch`: its bytes from 61 on, as they are (no
/// copy) or decompressed, at most `BATCH_BYTES_LIMIT` of them.
fn records_buffer(batch: &Bytes, header: &BatchHeader) -> Result<Bytes, ProtocolError> {
    let region = BATCH_HEADER_BYTES.min(batch.len())..;
    match header.codec()? {
        Compression::None => Ok(batch.slice(region)),
        codec => decompress(codec, &batch[region], BATCH_BYTES_LIMIT).map(Bytes::from),
    }
}

/// Iterates the records of one batch, compressed or not. Stops after the
/// first error; a batch whose records do not decompress yields that error
/// first.
pub struct RecordIter {
    records: Bytes,
    header: BatchHeader,
    position: usize,
    remaining: u32,
    /// Why the records buffer could not be had, until `next` reports it
    /// (`failed` is set from the start then).
    pending: Option<ProtocolError>,
    failed: bool,
}

impl RecordIter {
    pub fn new(batch: Bytes, header: BatchHeader) -> RecordIter {
        let (records, pending) = match records_buffer(&batch, &header) {
            Ok(records) => (records, None),
            Err(err) => (Bytes::new(), Some(err)),
        };
        RecordIter {
            records,
            header,
            position: 0,
            remaining: header.record_count,
            failed: pending.is_some(),
            pending,
        }
    }

    /// Skips to the record with `offset` (reading only length prefixes), so
    /// the next `next()` returns it. Relies on offset deltas 0, 1, 2, ...,
    /// which `validate_batch` guarantees for stored batches.
    pub fn seek(&mut self, offset: u64) -> Result<(), ProtocolError> {
        if let Some(err) = &self.pending {
            return Err(err.clone());
        }
        let target = offset.saturating_sub(self.header.base_offset);
        let mut index = u64::from(self.header.record_count - self.remaining);
        while index < target && self.remaining > 0 {
            self.position = record_bounds(&self.records, self.position)?.end;
            self.remaining -= 1;
            index += 1;
        }
        Ok(())
    }

    fn decode_next(&mut self) -> Result<Record, ProtocolError> {
        let records = &self.records;
        let raw = RawRecord::parse(records, self.position)?;
        let mut headers = Vec::with_capacity(raw.header_capacity());
        raw.for_each_header(records, |key, value| {
            headers.push(RecordHeader {
                key: key.to_owned(),
                value: value.map(|range| records.slice(range)),
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
            key: raw.key.map(|range| records.slice(range)),
            value: raw.value.map(|range| records.slice(range)),
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
            return self.pending.take().map(Err);
        }
        if self.remaining == 0 {
            if self.position != self.records.len() {
                self.failed = true;
                return Some(Err(ProtocolError::Malformed("bytes after the last record")));
            }
            return None;
        }
        if self.position >= self.records.len() {
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
