//! Building a batch: records are encoded one by one behind room left for
//! the 61-byte header, which `finish` fills in (with the CRC-32C) in place,
//! so a finished uncompressed batch is never copied; with a codec set
//! (`set_compression`), `finish` compresses the records into a new buffer
//! behind the header instead. What it writes: magic 2, the codec in the
//! attributes (none by default), create-time timestamps, `lastOffsetDelta` =
//! record count - 1, leader epoch -1, and no producer id/epoch/sequence (-1)
//! unless `set_producer` gave them. The base offset is left 0 for the broker.

use bytes::Bytes;

use super::compression::{compress_into, Compression};
use super::record::RecordHeader;
use super::{
    update_crc, BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES, BATCH_MAGIC, BATCH_RECORDS_LIMIT,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use crate::varint::{put_varint, varint_len};

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
    /// The header's room (zeros until `finish`), then the records.
    buf: Vec<u8>,
    record_count: u32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    compression: Compression,
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder::with_capacity(0)
    }

    /// A builder with room for `bytes` of records.
    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        let mut buf = Vec::with_capacity(BATCH_HEADER_BYTES + bytes);
        buf.resize(BATCH_HEADER_BYTES, 0);
        BatchBuilder {
            buf,
            record_count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            compression: Compression::None,
        }
    }

    /// Compresses the records with `codec` when the batch is finished.
    pub fn set_compression(&mut self, codec: Compression) {
        self.compression = codec;
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Marks the batch as an idempotent producer's: its id, epoch and the
    /// sequence number of the batch's first record.
    pub fn set_producer(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Size the batch would have if finished now without compression (what
    /// producers fill batches by, as Kafka's `batch.size`).
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// An upper bound on the bytes `record` adds to a batch (exact but for the
    /// offset and timestamp deltas, which are costed at their widest).
    pub fn record_size_bytes(record: &NewRecord) -> usize {
        let body = record_body_len(record, i64::MIN, i64::from(BATCH_RECORDS_LIMIT));
        varint_len(body as i64) + body
    }

    pub fn push(&mut self, record: &NewRecord) {
        debug_assert!(self.record_count < BATCH_RECORDS_LIMIT);
        if self.record_count == 0 {
            self.base_timestamp_ms = record.timestamp_ms;
            self.max_timestamp_ms = record.timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(record.timestamp_ms);
        let timestamp_delta = record.timestamp_ms.wrapping_sub(self.base_timestamp_ms);
        let offset_delta = i64::from(self.record_count);
        let body = record_body_len(record, timestamp_delta, offset_delta);
        debug_assert!(body <= i32::MAX as usize);
        let out = &mut self.buf;
        put_varint(out, body as i64);
        let before = out.len();
        out.push(0); // record attributes: none defined
        put_varint(out, timestamp_delta);
        put_varint(out, offset_delta);
        put_nullable(out, record.key.as_deref());
        put_nullable(out, record.value.as_deref());
        put_varint(out, record.headers.len() as i64);
        for header in &record.headers {
            put_varint(out, header.key.len() as i64);
            out.extend_from_slice(header.key.as_bytes());
            put_nullable(out, header.value.as_deref());
        }
        debug_assert_eq!(out.len() - before, body);
        self.record_count += 1;
    }

    /// Compresses the records if a codec is set, fills in the header and
    /// its CRC; the batch is ready to send.
    pub fn finish(mut self) -> Bytes {
        assert!(self.record_count > 0, "a batch holds at least one record");
        let mut buf = match self.compression {
            Compression::None => std::mem::take(&mut self.buf),
            codec => {
                let mut out = vec![0u8; BATCH_HEADER_BYTES];
                compress_into(codec, &self.buf[BATCH_HEADER_BYTES..], &mut out);
                out
            }
        };
        let header = self.header(buf.len());
        buf[..BATCH_HEADER_BYTES].copy_from_slice(&header);
        update_crc(&mut buf);
        Bytes::from(buf)
    }

    /// The 61 header bytes of the finished batch of `total_bytes` (CRC 0).
    fn header(&self, total_bytes: usize) -> [u8; BATCH_HEADER_BYTES] {
        let batch_length = (total_bytes - BATCH_LENGTH_PREFIX_BYTES) as u32;
        let mut header = [0u8; BATCH_HEADER_BYTES];
        let mut at = 0;
        let mut put = |field: &[u8]| {
            header[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        };
        put(&0u64.to_be_bytes());
        put(&batch_length.to_be_bytes());
        put(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
        put(&[BATCH_MAGIC]);
        put(&0u32.to_be_bytes()); // the CRC, below
        put(&self.compression.attribute().to_be_bytes());
        put(&(self.record_count - 1).to_be_bytes());
        put(&self.base_timestamp_ms.to_be_bytes());
        put(&self.max_timestamp_ms.to_be_bytes());
        put(&self.producer_id.to_be_bytes());
        put(&self.producer_epoch.to_be_bytes());
        put(&self.base_sequence.to_be_bytes());
        put(&self.record_count.to_be_bytes());
        debug_assert_eq!(at, BATCH_HEADER_BYTES);
        header
    }
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder::new()
    }
}

fn nullable_len(field: Option<&[u8]>) -> usize {
    match field {
        None => varint_len(-1),
        Some(bytes) => varint_len(bytes.len() as i64) + bytes.len(),
    }
}

fn record_body_len(record: &NewRecord, timestamp_delta: i64, offset_delta: i64) -> usize {
    let mut len = 1
        + varint_len(timestamp_delta)
        + varint_len(offset_delta)
        + nullable_len(record.key.as_deref())
        + nullable_len(record.value.as_deref())
        + varint_len(record.headers.len() as i64);
    for header in &record.headers {
        len += varint_len(header.key.len() as i64)
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
