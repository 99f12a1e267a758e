//! The record batch: the unit the client builds, the broker validates and the
//! storage engine keeps byte for byte. The layout is Kafka's RecordBatch v2
//! (magic 2), all integers big-endian:
//!
//! ```text
//! offset size field                  Ferry's field name
//!  0     8    baseOffset             base_offset          assigned by the broker (rewritten)
//!  8     4    batchLength            batch_length         bytes after this field
//! 12     4    partitionLeaderEpoch   partition_leader_epoch  -1: no epoch (stamped by the broker)
//! 16     1    magic                  magic                2
//! 17     4    crc                    crc                  CRC-32C of bytes [21, end)
//! 21     2    attributes             attributes           see ATTRIBUTE_* and COMPRESSION_*
//! 23     4    lastOffsetDelta        last_offset_delta    record_count - 1
//! 27     8    baseTimestamp          base_timestamp_ms    the first record's timestamp
//! 35     8    maxTimestamp           max_timestamp_ms
//! 43     8    producerId             producer_id          -1 when not idempotent
//! 51     2    producerEpoch          producer_epoch       -1 when not idempotent
//! 53     4    baseSequence           base_sequence        -1 when not idempotent
//! 57     4    recordCount            record_count         1 ..= BATCH_RECORDS_LIMIT
//! 61     ..   records (see `record.rs`), compressed when attributes say so
//! ```
//!
//! Attribute bits 0-2 name the compression codec of the records region,
//! bytes `[61, end)`: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd (Kafka's wire
//! formats, see `compression.rs`); 5-7 are undefined and refused. The header
//! is never compressed; the CRC covers the records region as sent
//! (compressed), and `batchLength` counts its compressed bytes. A
//! compressed batch may not hold more record bytes, decompressed, than an
//! uncompressed batch may: `validate_batch` decompresses with the same
//! limit it holds the batch's size to, and `RecordIter` with
//! `BATCH_BYTES_LIMIT`.
//!
//! The CRC (Castagnoli, as Kafka) starts at `attributes`, so the broker
//! assigns `baseOffset` and `partitionLeaderEpoch` by rewriting those bytes
//! without recomputing it; `magic` is checked by value. Kafka's signed
//! `baseOffset`, `batchLength`, `attributes` and `recordCount` are read as
//! unsigned here: a negative value reads as one above every limit and is
//! refused as such.
//!
//! What Ferry does not support yet is refused with `Unsupported`, never
//! misread: undefined compression codecs, log-append-time timestamps,
//! transactional and control batches, and unknown attribute bits.

mod builder;
mod compression;
#[cfg(test)]
mod compression_tests;
mod crc;
mod record;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use builder::{BatchBuilder, NewRecord};
pub use compression::{compress, decompress, Compression};
pub use record::{Record, RecordHeader, RecordIter};

use crate::error::ProtocolError;

/// The record header that holds a scheduled delivery time: milliseconds
/// since the epoch, as ASCII decimal. Queue consumers do not get the record
/// before then.
pub const DELIVER_AT_HEADER: &str = "x-ferry-deliver-at";

pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before the CRC-covered region: base_offset, batch_length,
/// partition_leader_epoch, magic, crc.
pub const BATCH_PREFIX_BYTES: usize = 21;
/// Bytes of `base_offset` + `batch_length`, the part needed to frame a batch.
pub const BATCH_LENGTH_PREFIX_BYTES: usize = 12;
/// The front bytes the broker rewrites when it stores a batch:
/// base_offset, batch_length (kept), partition_leader_epoch.
pub const BATCH_ASSIGNED_BYTES: usize = 16;
pub const BATCH_MAGIC: u8 = 2;
/// Hard upper bound on one batch, whatever the configuration says.
pub const BATCH_BYTES_LIMIT: usize = 64 * 1024 * 1024;
pub const BATCH_RECORDS_LIMIT: u32 = 1 << 20;
pub const RECORD_HEADERS_LIMIT: u64 = 1024;

/// Attribute bits 0-2: the compression codec of the records.
pub const COMPRESSION_MASK: u16 = 0b111;
pub const COMPRESSION_NONE: u16 = 0;
pub const COMPRESSION_GZIP: u16 = 1;
pub const COMPRESSION_SNAPPY: u16 = 2;
pub const COMPRESSION_LZ4: u16 = 3;
pub const COMPRESSION_ZSTD: u16 = 4;
/// Attribute bit 3: timestamps are the broker's append time (else the
/// producer's create time, which is what Ferry keeps).
pub const ATTRIBUTE_LOG_APPEND_TIME: u16 = 1 << 3;
/// Attribute bit 4: the batch belongs to a transaction.
pub const ATTRIBUTE_TRANSACTIONAL: u16 = 1 << 4;
/// Attribute bit 5: a control batch (transaction markers).
pub const ATTRIBUTE_CONTROL: u16 = 1 << 5;
/// Every attribute bit Kafka's v2 format defines that Ferry knows of.
const ATTRIBUTES_KNOWN: u16 =
    COMPRESSION_MASK | ATTRIBUTE_LOG_APPEND_TIME | ATTRIBUTE_TRANSACTIONAL | ATTRIBUTE_CONTROL;

/// `producer_id` of a batch from a producer that is not idempotent.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producer_epoch` of a batch from a producer that is not idempotent.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `base_sequence` of a batch from a producer that is not idempotent.
pub const NO_SEQUENCE: i32 = -1;
/// `partition_leader_epoch` of every stored batch while Ferry has no
/// leader epochs (Kafka's "no epoch"; 0 would claim a first epoch).
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

const OFFSET_BASE: usize = 0;
const OFFSET_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_BASE_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_PRODUCER_ID: usize = 43;
const OFFSET_PRODUCER_EPOCH: usize = 51;
const OFFSET_BASE_SEQUENCE: usize = 53;
const OFFSET_RECORD_COUNT: usize = 57;

/// The fixed header of a batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    pub batch_length: u32,
    pub partition_leader_epoch: i32,
    pub magic: u8,
    pub crc: u32,
    pub attributes: u16,
    pub last_offset_delta: i32,
    pub base_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: u32,
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

    /// The compression codec (`COMPRESSION_*`).
    pub fn compression(&self) -> u16 {
        self.attributes & COMPRESSION_MASK
    }

    /// The compression codec, decoded; `Unsupported` for codecs 5-7 (which
    /// `parse` refuses).
    pub fn codec(&self) -> Result<Compression, ProtocolError> {
        Compression::from_attributes(self.attributes)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }

    /// Decodes the fixed header at the front of `buf` and checks the fields
    /// that can be checked without the body: magic, attributes, record count
    /// and last offset delta, timestamps, and a batch length within
    /// `max_batch_bytes`.
    pub fn parse(buf: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, ProtocolError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(ProtocolError::Malformed(
                "record batch shorter than its header",
            ));
        }
        let header = BatchHeader {
            base_offset: read_u64(buf, OFFSET_BASE),
            batch_length: read_u32(buf, OFFSET_LENGTH),
            partition_leader_epoch: read_u32(buf, OFFSET_LEADER_EPOCH) as i32,
            magic: buf[OFFSET_MAGIC],
            crc: read_u32(buf, OFFSET_CRC),
            attributes: read_u16(buf, OFFSET_ATTRIBUTES),
            last_offset_delta: read_u32(buf, OFFSET_LAST_OFFSET_DELTA) as i32,
            base_timestamp_ms: read_u64(buf, OFFSET_BASE_TIMESTAMP) as i64,
            max_timestamp_ms: read_u64(buf, OFFSET_MAX_TIMESTAMP) as i64,
            producer_id: read_u64(buf, OFFSET_PRODUCER_ID) as i64,
            producer_epoch: read_u16(buf, OFFSET_PRODUCER_EPOCH) as i16,
            base_sequence: read_u32(buf, OFFSET_BASE_SEQUENCE) as i32,
            record_count: read_u32(buf, OFFSET_RECORD_COUNT),
        };
        header.check_length(max_batch_bytes)?;
        if header.magic != BATCH_MAGIC {
            return Err(ProtocolError::Unsupported {
                what: "record batch magic (format version; Ferry reads 2)",
                value: u64::from(header.magic),
            });
        }
        check_attributes(header.attributes)?;
        if header.record_count == 0 || header.record_count > BATCH_RECORDS_LIMIT {
            return Err(ProtocolError::Malformed("record count out of range"));
        }
        if i64::from(header.last_offset_delta) != i64::from(header.record_count) - 1 {
            return Err(ProtocolError::Malformed(
                "last offset delta is not record count - 1",
            ));
        }
        if header.max_timestamp_ms < header.base_timestamp_ms {
            return Err(ProtocolError::Malformed(
                "max timestamp below base timestamp",
            ));
        }
        Ok(header)
    }

    fn check_length(&self, max_batch_bytes: usize) -> Result<(), ProtocolError> {
        let total = self.total_bytes();
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
        Ok(())
    }
}

/// Refuses every attribute this build cannot honour, each with its own
/// message: a batch is never stored or read as something it is not.
fn check_attributes(attributes: u16) -> Result<(), ProtocolError> {
    let unsupported = |what| {
        Err(ProtocolError::Unsupported {
            what,
            value: u64::from(attributes),
        })
    };
    if attributes & !ATTRIBUTES_KNOWN != 0 {
        return unsupported("record batch attribute bits (only bits 0-5 are defined)");
    }
    if attributes & ATTRIBUTE_TRANSACTIONAL != 0 {
        return unsupported("transactional record batch (attributes)");
    }
    if attributes & ATTRIBUTE_CONTROL != 0 {
        return unsupported("control record batch (attributes)");
    }
    if attributes & ATTRIBUTE_LOG_APPEND_TIME != 0 {
        return unsupported("log-append-time timestamp type (attributes)");
    }
    Compression::from_attributes(attributes).map(|_| ())
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

/// The CRC-32C (Castagnoli) of the CRC-covered bytes, `[21, end)`.
#[inline]
pub fn compute_crc(batch: &[u8]) -> u32 {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    crc::crc32c(&batch[BATCH_PREFIX_BYTES..])
}

/// Writes the CRC of `batch` into its header (after the CRC-covered bytes
/// changed).
pub fn update_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
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

/// Full validation for data arriving from the network: [`check_batch`], the
/// producer fields, and a walk of every record, so lying nested lengths,
/// offset deltas other than 0, 1, 2, ..., timestamps above the batch
/// maximum or a wrong record count are refused before anything is stored.
/// A compressed batch's records are decompressed first, to at most
/// `max_batch_bytes` (and `BATCH_BYTES_LIMIT`): more is `TooLarge`.
pub fn validate_batch(batch: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, ProtocolError> {
    let header = check_batch(batch, max_batch_bytes)?;
    check_producer(&header)?;
    let region = &batch[BATCH_HEADER_BYTES..];
    let records = match header.codec()? {
        Compression::None => Cow::Borrowed(region),
        codec => {
            let limit = max_batch_bytes.min(BATCH_BYTES_LIMIT);
            Cow::Owned(decompress(codec, region, limit)?)
        }
    };
    check_records(&header, &records)?;
    Ok(header)
}

/// Walks every record of a records buffer (see `record.rs`): the checks of
/// [`validate_batch`].
fn check_records(header: &BatchHeader, records: &[u8]) -> Result<(), ProtocolError> {
    let mut position = 0;
    for index in 0..header.record_count {
        let raw = record::RawRecord::parse(records, position)?;
        raw.check_headers(records)?;
        if raw.offset_delta != index as i32 {
            return Err(ProtocolError::Malformed(
                "record offset deltas are not 0, 1, 2, ...",
            ));
        }
        if header.base_timestamp_ms.wrapping_add(raw.timestamp_delta) > header.max_timestamp_ms {
            return Err(ProtocolError::Malformed(
                "record timestamp above the batch maximum",
            ));
        }
        position = raw.end;
    }
    if position != records.len() {
        return Err(ProtocolError::Malformed("bytes after the last record"));
    }
    Ok(())
}

/// The producer fields of a batch a client sends: all -1 (not
/// idempotent), or a producer id, epoch and base sequence all >= 0.
fn check_producer(header: &BatchHeader) -> Result<(), ProtocolError> {
    let none = header.producer_id == NO_PRODUCER_ID
        && header.producer_epoch == NO_PRODUCER_EPOCH
        && header.base_sequence == NO_SEQUENCE;
    let idempotent =
        header.producer_id >= 0 && header.producer_epoch >= 0 && header.base_sequence >= 0;
    if !none && !idempotent {
        return Err(ProtocolError::Malformed(
            "producer id, epoch and base sequence must be all -1 or all >= 0",
        ));
    }
    Ok(())
}

/// Rewrites `base_offset` in place; the CRC stays valid by construction.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[OFFSET_BASE..OFFSET_BASE + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites `partition_leader_epoch` in place; the CRC stays valid.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// The first [`BATCH_ASSIGNED_BYTES`] of `batch` as the broker stores them:
/// the assigned base offset and leader epoch around the batch's own length.
/// Written before `batch[BATCH_ASSIGNED_BYTES..]`, the batch is stored
/// without being copied; its CRC stays valid.
pub fn assigned_prefix(
    batch: &[u8],
    base_offset: u64,
    partition_leader_epoch: i32,
) -> [u8; BATCH_ASSIGNED_BYTES] {
    debug_assert!(batch.len() >= BATCH_HEADER_BYTES);
    let mut prefix = [0u8; BATCH_ASSIGNED_BYTES];
    prefix[OFFSET_BASE..OFFSET_LENGTH].copy_from_slice(&base_offset.to_be_bytes());
    prefix[OFFSET_LENGTH..OFFSET_LEADER_EPOCH]
        .copy_from_slice(&batch[OFFSET_LENGTH..OFFSET_LEADER_EPOCH]);
    prefix[OFFSET_LEADER_EPOCH..].copy_from_slice(&partition_leader_epoch.to_be_bytes());
    prefix
}

/// Iterates the batches of a buffer holding whole batches back to back (a
/// fetch response, a segment slice), checking each one's header and CRC.
pub struct BatchIter {
    buf: bytes::Bytes,
    position: usize,
    max_batch_bytes: usize,
    failed: bool,
}

impl BatchIter {
    pub fn new(buf: bytes::Bytes, max_batch_bytes: usize) -> BatchIter {
        BatchIter {
            buf,
            position: 0,
            max_batch_bytes,
            failed: false,
        }
    }
}

impl Iterator for BatchIter {
    type Item = Result<(BatchHeader, bytes::Bytes), ProtocolError>;

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
