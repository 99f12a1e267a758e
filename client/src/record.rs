//! Records as users see them: what a producer sends and what a consumer gets.

use bytes::Bytes;
use ferry_protocol::batch::{NewRecord, Record, RecordHeader};

/// A record to produce. Build with [`ProducerRecord::new`] and the `with_*` methods.
///
/// ```
/// use ferry_client::ProducerRecord;
/// let record = ProducerRecord::new("order 42 shipped")
///     .with_key("order-42")
///     .with_header("source", "warehouse-3")
///     .with_timestamp(1_700_000_000_000);
/// assert_eq!(record.key.as_deref(), Some(&b"order-42"[..]));
/// assert_eq!(record.headers[0].key, "source");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Record key (`None` = null).
    pub key: Option<Bytes>,
    /// Record value (`None` = null).
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<RecordHeader>,
    /// Milliseconds since the epoch; `None` means now.
    pub timestamp_ms: Option<i64>,
    /// Send to this partition instead of choosing by key.
    pub partition: Option<u32>,
}

impl ProducerRecord {
    /// A record with this value, no key, no headers.
    pub fn new(value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            value: Some(value.into()),
            ..ProducerRecord::default()
        }
    }

    /// Sets the key (it picks the partition unless one is set).
    pub fn with_key(mut self, key: impl Into<Bytes>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: &str, value: impl Into<Bytes>) -> ProducerRecord {
        self.headers.push(RecordHeader {
            key: key.to_string(),
            value: Some(value.into()),
        });
        self
    }

    /// Sends to this partition.
    pub fn with_partition(mut self, partition: u32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (default: now).
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> ProducerRecord {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    pub(crate) fn into_new_record(self, now_ms: i64) -> NewRecord {
        NewRecord {
            timestamp_ms: self.timestamp_ms.unwrap_or(now_ms),
            key: self.key,
            value: self.value,
            headers: self.headers,
        }
    }
}

/// Where a produced record landed.
///
/// ```
/// use ferry_client::RecordMetadata;
/// let meta = RecordMetadata { partition: 2, offset: Some(17) };
/// assert_eq!(meta.offset, Some(17)); // None when produced with acks = none
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Partition of the record.
    pub partition: u32,
    /// `None` when produced with `Acks::None`.
    pub offset: Option<u64>,
}

/// A record read from a partition.
///
/// ```
/// use ferry_client::ConsumerRecord;
/// # let record = ConsumerRecord { topic: "t".into(), partition: 0, offset: 5, timestamp_ms: 0,
/// #     key: None, value: Some("v".into()), headers: vec![] };
/// // Records come from `Consumer::poll`; headers are looked up by key.
/// assert_eq!(record.header("trace-id"), None);
/// assert_eq!(record.value.as_deref(), Some(&b"v"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic of the record.
    pub topic: String,
    /// Partition of the record.
    pub partition: u32,
    /// Offset of the record in its partition.
    pub offset: u64,
    /// Record timestamp (ms since the epoch).
    pub timestamp_ms: i64,
    /// Record key (`None` = null).
    pub key: Option<Bytes>,
    /// Record value (`None` = null).
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<RecordHeader>,
}

impl ConsumerRecord {
    pub(crate) fn from_record(topic: &str, partition: u32, record: Record) -> ConsumerRecord {
        ConsumerRecord {
            topic: topic.to_string(),
            partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: record.key,
            value: record.value,
            headers: record.headers,
        }
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_ref())
    }
}

/// Milliseconds since the Unix epoch, as record timestamps count them.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The partition for a key: FNV-1a 64 of the key bytes, modulo the count.
/// Stable across versions and languages (see PROTOCOL.md).
///
/// ```
/// assert_eq!(ferry_client::partition_for_key(b"", 4), (0xcbf2_9ce4_8422_2325u64 % 4) as u32);
/// assert!(ferry_client::partition_for_key(b"user-1", 8) < 8);
/// ```
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}
