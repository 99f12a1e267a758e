//! The record batch: the unit the client builds, the broker validates and the
//! storage engine keeps byte for byte. Layout (all integers big-endian):
//!
//! ```text
//! offset size field
//!  0     8    base_offset        assigned by the broker (rewritten in place)
//!  8     4    batch_length       bytes after this field (total = 12 + batch_length)
//! 12     4    crc                CRC-32 (Castagnoli not used: crc32fast = IEEE) of bytes [16, end)
//! 16     1    magic              format version, currently 1
//! 17     2    attributes         bits 0-2 compression (0 = none), others reserved (0)
//! 19     4    record_count       >= 1
//! 23     8    first_timestamp_ms
//! 31     8    max_timestamp_ms
//! 39     8    producer_id        -1 when not idempotent
//! 47     2    producer_epoch
//! 49     4    base_sequence
//! 53     ..   records
//! ```
//!
//! Because the CRC starts at byte 16, the broker assigns offsets by rewriting
//! `base_offset` without recomputing it. Each record is
//! `length:uvarint attributes:u8 timestamp_delta:varint offset_delta:uvarint
//! key_len:varint key value_len:varint value header_count:uvarint
//! (hkey_len:uvarint hkey hvalue_len:varint hvalue)*`, where a length of -1 is
//! null. Every length read from bytes is checked against what remains before
//! it is used.

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::varint::{get_uvarint, get_varint, put_uvarint, put_varint};

/// The record header that holds a scheduled delivery time: milliseconds
/// since the epoch, as ASCII decimal. Queue consumers do not get the record
/// before then.
pub const DELIVER_AT_HEADER: &str = "x-ferry-deliver-at";

pub const BATCH_HEADER_BYTES: usize = 53;
/// Bytes before the CRC-covered region: base_offset, batch_length, crc.
pub const BATCH_PREFIX_BYTES: usize = 16;
/// Bytes of `base_offset` + `batch_length`, the part needed to frame a batch.
pub const BATCH_LENGTH_PREFIX_BYTES: usize = 12;
pub const BATCH_MAGIC: u8 = 1;
/// Hard upper bound on one batch, whatever the configuration says.
pub const BATCH_BYTES_LIMIT: usize = 64 * 1024 * 1024;
pub const BATCH_RECORDS_LIMIT: u32 = 1 << 20;
pub const RECORD_HEADERS_LIMIT: u64 = 1024;
pub const COMPRESSION_MASK: u16 = 0b111;
pub const COMPRESSION_NONE: u16 = 0;

const OFFSET_BASE: usize = 0;
const OFFSET_LENGTH: usize = 8;
const OFFSET_CRC: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_ATTRIBUTES: usize = 17;
const OFFSET_RECORD_COUNT: usize = 19;
const OFFSET_FIRST_TIMESTAMP: usize = 23;
const OFFSET_MAX_TIMESTAMP: usize = 31;
const OFFSET_PRODUCER_ID: usize = 39;
const OFFSET_PRODUCER_EPOCH: usize = 47;
const OFFSET_BASE_SEQUENCE: usize = 49;

/// The fixed header of a batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    pub batch_length: u32,
    pub crc: u32,
    pub magic: u8,
    pub attributes: u16,
    pub record_count: u32,
    pub first_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchHeader {
    /// Total size of the batch on the wire and on disk.
    pub fn total_bytes(&self) -> usize {
        BATCH_LENGTH_PREFIX_BYTES + self.batch_length as usize
    }

    pub fn last_offset(&self) -> u64 {
        debug_assert!(self.record_count >= 1);
        self.base_offset + u64::from(self.record_count) - 1
    }

    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }

    /// Decodes the fixed header at the front of `buf` and checks the fields
    /// that can be checked without the body: magic, attributes, record count,
    /// and a batch length within `max_batch_bytes`.
    pub fn parse(buf: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, ProtocolError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(ProtocolError::Malformed(
                "record batch shorter than its header",
            ));
        }
        let header = BatchHeader {
            base_offset: read_u64(buf, OFFSET_BASE),
            batch_length: read_u32(buf, OFFSET_LENGTH),
            crc: read_u32(buf, OFFSET_CRC),
            magic: buf[OFFSET_MAGIC],
            attributes: read_u16(buf, OFFSET_ATTRIBUTES),
            record_count: read_u32(buf, OFFSET_RECORD_COUNT),
            first_timestamp_ms: read_u64(buf, OFFSET_FIRST_TIMESTAMP) as i64,
            max_timestamp_ms: read_u64(buf, OFFSET_MAX_TIMESTAMP) as i64,
            producer_id: read_u64(buf, OFFSET_PRODUCER_ID) as i64,
            producer_epoch: read_u16(buf, OFFSET_PRODUCER_EPOCH) as i16,
            base_sequence: read_u32(buf, OFFSET_BASE_SEQUENCE) as i32,
        };
        let total = header.total_bytes();
        let limit = max_batch_bytes.min(BATCH_BYTES_LIMIT);
        if total < BATCH_HEADER_BYTES {
            return Err(ProtocolError::Malformed(
                "batch length shorter than the header",
            ));
        }
        if total > limit {
            return Err(ProtocolError::TooLarge {
                what: "record batch size",
                actual: total as u64,
                limit: limit as u64,
            });
        }
        if header.magic != BATCH_MAGIC {
            return Err(ProtocolError::Unsupported {
                what: "batch magic",
                value: u64::from(header.magic),
            });
        }
        let compression = header.attributes & COMPRESSION_MASK;
        if compression != COMPRESSION_NONE {
            return Err(ProtocolError::Unsupported {
                what: "compression codec",
                value: u64::from(compression),
            });
        }
        if header.record_count == 0 || header.record_count > BATCH_RECORDS_LIMIT {
            return Err(ProtocolError::Malformed("record count out of range"));
        }
        if header.max_timestamp_ms < header.first_timestamp_ms {
            return Err(ProtocolError::Malformed(
                "max timestamp below first timestamp",
            ));
        }
        Ok(header)
    }
}

/// Reads only `base_offset` and `batch_length`: enough to step over a batch.
/// Returns `None` when fewer than 12 bytes remain.
pub fn peek_length(buf: &[u8]) -> Option<(u64, usize)> {
    if buf.len() < BATCH_LENGTH_PREFIX_BYTES {
        return None;
    }
    let base = read_u64(buf, OFFSET_BASE);
    let total = BATCH_LENGTH_PREFIX_BYTES + read_u32(buf, OFFSET_LENGTH) as usize;
    Some((base, total))
}

pub fn compute_crc(batch: &[u8]) -> u32 {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    crc32fast::hash(&batch[BATCH_PREFIX_BYTES..])
}

/// Checks that `batch` is exactly one batch: header fields, exact length and
/// CRC. Cheap (one CRC pass); does not walk the records.
pub fn check_batch(batch: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, ProtocolError> {
    let header = BatchHeader::parse(batch, max_batch_bytes)?;
    if header.total_bytes() != batch.len() {
        return Err(ProtocolError::Malformed(
            "batch length does not match its bytes",
        ));
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(ProtocolError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Full validation for data arriving from the network: [`check_batch`] plus a
/// walk of every record, so lying nested lengths, wrong offset deltas or a
/// wrong record count are refused before anything is stored.
pub fn validate_batch(batch: &Bytes, max_batch_bytes: usize) -> Result<BatchHeader, ProtocolError> {
    let header = check_batch(batch, max_batch_bytes)?;
    let mut count = 0u32;
    for record in RecordIter::new(batch.clone(), header) {
        let record = record?;
        if record.offset_delta != u64::from(count) {
            return Err(ProtocolError::Malformed(
                "record offset deltas are not dense",
            ));
        }
        if record.timestamp_ms > header.max_timestamp_ms {
            return Err(ProtocolError::Malformed(
                "record timestamp above the batch maximum",
            ));
        }
        count += 1;
    }
    if count != header.record_count {
        return Err(ProtocolError::Malformed(
            "record count does not match the records",
        ));
    }
    Ok(header)
}

/// Rewrites `base_offset` in place; the CRC stays valid by construction.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[OFFSET_BASE..OFFSET_BASE + 8].copy_from_slice(&base_offset.to_be_bytes());
}

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
    /// the next `next()` returns it. Relies on dense offset deltas, which
    /// `validate_batch` guarantees for stored batches.
    pub fn seek(&mut self, offset: u64) -> Result<(), ProtocolError> {
        let target = offset.saturating_sub(self.header.base_offset);
        let mut index = u64::from(self.header.record_count - self.remaining);
        while index < target && self.remaining > 0 {
            let (length, used) = get_uvarint(&self.batch[self.position..])?;
            let start = self.position + used;
            self.position = bounded_end(start, length, self.batch.len(), "record length")?;
            self.remaining -= 1;
            index += 1;
        }
        Ok(())
    }

    fn decode_next(&mut self) -> Result<Record, ProtocolError> {
        let buf = &self.batch[..];
        let (length, used) = get_uvarint(&buf[self.position..])?;
        let start = self.position + used;
        let end = bounded_end(start, length, buf.len(), "record length")?;
        let mut cursor = Cursor {
            buf: &self.batch,
            position: start,
            end,
        };
        let _attributes = cursor.u8()?;
        let timestamp_delta = cursor.varint()?;
        let offset_delta = cursor.uvarint()?;
        let key = cursor.nullable_bytes()?;
        let value = cursor.nullable_bytes()?;
        let header_count = cursor.uvarint()?;
        if header_count > RECORD_HEADERS_LIMIT {
            return Err(ProtocolError::TooLarge {
                what: "record header count",
                actual: header_count,
                limit: RECORD_HEADERS_LIMIT,
            });
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let key_len = cursor.uvarint()?;
            let key_bytes = cursor.take(key_len)?;
            let key = std::str::from_utf8(&key_bytes)
                .map_err(|_| ProtocolError::Malformed("record header key is not UTF-8"))?
                .to_owned();
            let value = cursor.nullable_bytes()?;
            headers.push(RecordHeader { key, value });
        }
        if cursor.position != end {
            return Err(ProtocolError::Malformed(
                "record length does not match its fields",
            ));
        }
        self.position = end;
        Ok(Record {
            offset: self.header.base_offset.wrapping_add(offset_delta),
            offset_delta,
            timestamp_ms: self.header.first_timestamp_ms.wrapping_add(timestamp_delta),
            key,
            value,
            headers,
        })
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

struct Cursor<'a> {
    buf: &'a Bytes,
    position: usize,
    end: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        if self.position >= self.end {
            return Err(ProtocolError::Malformed("record truncated"));
        }
        self.position += 1;
        Ok(self.buf[self.position - 1])
    }

    fn uvarint(&mut self) -> Result<u64, ProtocolError> {
        let (value, used) = get_uvarint(&self.buf[self.position..self.end])?;
        self.position += used;
        Ok(value)
    }

    fn varint(&mut self) -> Result<i64, ProtocolError> {
        let (value, used) = get_varint(&self.buf[self.position..self.end])?;
        self.position += used;
        Ok(value)
    }

    fn take(&mut self, length: u64) -> Result<Bytes, ProtocolError> {
        let end = bounded_end(self.position, length, self.end, "record field length")?;
        let slice = self.buf.slice(self.position..end);
        self.position = end;
        Ok(slice)
    }

    fn nullable_bytes(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let length = self.varint()?;
        match length {
            -1 => Ok(None),
            len if len < -1 => Err(ProtocolError::Malformed("negative field length")),
            len => self.take(len as u64).map(Some),
        }
    }
}

/// Iterates the batches of a buffer holding whole batches back to back (a
/// fetch response, a segment slice), checking each one's header and CRC.
pub struct BatchIter {
    buf: Bytes,
    position: usize,
    max_batch_bytes: usize,
    failed: bool,
}

impl BatchIter {
    pub fn new(buf: Bytes, max_batch_bytes: usize) -> BatchIter {
        BatchIter {
            buf,
            position: 0,
            max_batch_bytes,
            failed: false,
        }
    }
}

impl Iterator for BatchIter {
    type Item = Result<(BatchHeader, Bytes), ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        let result = BatchHeader::parse(rest, self.max_batch_bytes).and_then(|header| {
            if header.total_bytes() > rest.len() {
                return Err(ProtocolError::Malformed("batch extends past the buffer"));
            }
            let batch = self
                .buf
                .slice(self.position..self.position + header.total_bytes());
            check_batch(&batch, self.max_batch_bytes)?;
            Ok((header, batch))
        });
        match &result {
            Ok((header, _)) => self.position += header.total_bytes(),
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

/// A record to put into a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// Builds one batch record by record. The base offset is left 0 for the
/// broker to assign.
pub struct BatchBuilder {
    records: Vec<u8>,
    record_count: u32,
    first_timestamp_ms: i64,
    max_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder {
            records: Vec::new(),
            record_count: 0,
            first_timestamp_ms: 0,
            max_timestamp_ms: 0,
            producer_id: -1,
            producer_epoch: 0,
            base_sequence: -1,
        }
    }

    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        let mut builder = BatchBuilder::new();
        builder.records.reserve(bytes);
        builder
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Size the batch would have if finished now.
    pub fn size_bytes(&self) -> usize {
        BATCH_HEADER_BYTES + self.records.len()
    }

    /// An upper bound on the bytes `record` adds to a batch (exact but for the
    /// offset and timestamp deltas, which are costed at their widest).
    pub fn record_size_bytes(record: &NewRecord) -> usize {
        let body = record_body_len(record, i64::MIN, u64::from(BATCH_RECORDS_LIMIT));
        crate::varint::uvarint_len(body as u64) + body
    }

    pub fn push(&mut self, record: &NewRecord) {
        if self.record_count == 0 {
            self.first_timestamp_ms = record.timestamp_ms;
            self.max_timestamp_ms = record.timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(record.timestamp_ms);
        let timestamp_delta = record.timestamp_ms.wrapping_sub(self.first_timestamp_ms);
        let offset_delta = u64::from(self.record_count);
        let body = record_body_len(record, timestamp_delta, offset_delta);
        put_uvarint(&mut self.records, body as u64);
        let before = self.records.len();
        self.records.push(0);
        put_varint(&mut self.records, timestamp_delta);
        put_uvarint(&mut self.records, offset_delta);
        put_nullable(&mut self.records, record.key.as_deref());
        put_nullable(&mut self.records, record.value.as_deref());
        put_uvarint(&mut self.records, record.headers.len() as u64);
        for header in &record.headers {
            put_uvarint(&mut self.records, header.key.len() as u64);
            self.records.extend_from_slice(header.key.as_bytes());
            put_nullable(&mut self.records, header.value.as_deref());
        }
        debug_assert_eq!(self.records.len() - before, body);
        self.record_count += 1;
    }

    /// Encodes the batch with its header and CRC.
    pub fn finish(self) -> Bytes {
        assert!(self.record_count > 0, "a batch holds at least one record");
        let total = BATCH_HEADER_BYTES + self.records.len();
        let mut out = BytesMut::with_capacity(total);
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&((total - BATCH_LENGTH_PREFIX_BYTES) as u32).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&[BATCH_MAGIC]);
        out.extend_from_slice(&COMPRESSION_NONE.to_be_bytes());
        out.extend_from_slice(&self.record_count.to_be_bytes());
        out.extend_from_slice(&self.first_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
        out.extend_from_slice(&self.records);
        let crc = crc32fast::hash(&out[BATCH_PREFIX_BYTES..]);
        out[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        out.freeze()
    }
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder::new()
    }
}

fn nullable_len(field: Option<&[u8]>) -> usize {
    match field {
        None => crate::varint::uvarint_len(crate::varint::zigzag_encode(-1)),
        Some(bytes) => {
            crate::varint::uvarint_len(crate::varint::zigzag_encode(bytes.len() as i64))
                + bytes.len()
        }
    }
}

fn record_body_len(record: &NewRecord, timestamp_delta: i64, offset_delta: u64) -> usize {
    use crate::varint::{uvarint_len, zigzag_encode};
    let mut len = 1
        + uvarint_len(zigzag_encode(timestamp_delta))
        + uvarint_len(offset_delta)
        + nullable_len(record.key.as_deref())
        + nullable_len(record.value.as_deref())
        + uvarint_len(record.headers.len() as u64);
    for header in &record.headers {
        len += uvarint_len(header.key.len() as u64)
            + header.key.len()
            + nullable_len(header.value.as_deref());
    }
    len
}

fn put_nullable(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
    }
}

fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(raw)
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = NewRecord> {
        (
            0i64..1_000_000_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            proptest::collection::vec(
                (
                    "[a-z-]{0,8}",
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
                ),
                0..3,
            ),
        )
            .prop_map(|(timestamp_ms, key, value, headers)| NewRecord {
                timestamp_ms,
                key: key.map(Bytes::from),
                value: value.map(Bytes::from),
                headers: headers
                    .into_iter()
                    .map(|(key, value)| RecordHeader {
                        key,
                        value: value.map(Bytes::from),
                    })
                    .collect(),
            })
    }

    fn build(records: &[NewRecord]) -> Bytes {
        let mut builder = BatchBuilder::new();
        for record in records {
            builder.push(record);
        }
        builder.finish()
    }

    proptest! {
        #[test]
        fn batch_round_trips(records in proptest::collection::vec(arb_record(), 1..20), base in 0u64..1 << 40) {
            let mut bytes = build(&records).to_vec();
            set_base_offset(&mut bytes, base);
            let bytes = Bytes::from(bytes);
            let header = validate_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
            prop_assert_eq!(header.base_offset, base);
            prop_assert_eq!(header.record_count as usize, records.len());
            let decoded: Vec<Record> = RecordIter::new(bytes, header).collect::<Result<_, _>>().unwrap();
            for (index, (want, got)) in records.iter().zip(&decoded).enumerate() {
                prop_assert_eq!(got.offset, base + index as u64);
                prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
                prop_assert_eq!(&got.key, &want.key);
                prop_assert_eq!(&got.value, &want.value);
                prop_assert_eq!(&got.headers, &want.headers);
            }
        }

        #[test]
        fn record_size_is_a_tight_upper_bound(record in arb_record()) {
            let mut builder = BatchBuilder::new();
            builder.push(&record);
            let estimate = BATCH_HEADER_BYTES + BatchBuilder::record_size_bytes(&record);
            prop_assert!(builder.size_bytes() <= estimate);
            prop_assert!(estimate - builder.size_bytes() <= 13);
        }

        #[test]
        fn corrupted_batches_are_refused_without_panic(records in proptest::collection::vec(arb_record(), 1..5), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let mut bytes = build(&records).to_vec();
            let index = at.index(bytes.len());
            bytes[index] ^= flip;
            let result = validate_batch(&Bytes::from(bytes), BATCH_BYTES_LIMIT);
            // Only the base offset is outside the CRC.
            if index >= 8 {
                prop_assert!(result.is_err());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let bytes = Bytes::from(bytes);
            let _ = validate_batch(&bytes, BATCH_BYTES_LIMIT);
            for item in BatchIter::new(bytes, BATCH_BYTES_LIMIT) {
                let _ = item;
            }
        }
    }

    #[test]
    fn seek_skips_to_the_wanted_record() {
        let records: Vec<NewRecord> = (0..50)
            .map(|i| NewRecord {
                value: Some(Bytes::from(format!("v{i}"))),
                ..NewRecord::default()
            })
            .collect();
        let mut bytes = build(&records).to_vec();
        set_base_offset(&mut bytes, 100);
        let bytes = Bytes::from(bytes);
        let header = check_batch(&bytes, BATCH_BYTES_LIMIT).unwrap();
        let mut iter = RecordIter::new(bytes, header);
        iter.seek(137).unwrap();
        let record = iter.next().unwrap().unwrap();
        assert_eq!(
            (record.offset, record.value.unwrap()),
            (137, Bytes::from("v37"))
        );
        iter.seek(149).unwrap();
        assert_eq!(iter.next().unwrap().unwrap().offset, 149);
        assert!(iter.next().is_none());
    }

    #[test]
    fn lying_nested_length_is_refused_even_with_a_valid_crc() {
        let record = NewRecord {
            value: Some(Bytes::from_static(b"hello")),
            ..NewRecord::default()
        };
        let mut bytes = build(&[record]).to_vec();
        // The value length varint sits after: length, attrs, ts delta, offset delta, key len.
        let value_len_at = BATCH_HEADER_BYTES + 1 + 1 + 1 + 1 + 1;
        assert_eq!(bytes[value_len_at], 10); // zigzag(5)
        bytes[value_len_at] = 200; // claims 100 bytes
        let crc = crc32fast::hash(&bytes[BATCH_PREFIX_BYTES..]);
        bytes[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let err = validate_batch(&Bytes::from(bytes), BATCH_BYTES_LIMIT).unwrap_err();
        assert!(matches!(err, ProtocolError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn oversized_declared_length_is_refused_before_use() {
        let mut bytes = build(&[NewRecord::default()]).to_vec();
        bytes[OFFSET_LENGTH..OFFSET_LENGTH + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            BatchHeader::parse(&bytes, 1024).unwrap_err(),
            ProtocolError::TooLarge { .. }
        ));
    }
}
