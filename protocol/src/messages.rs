//! Every request, response and pushed body on the wire: prost messages with
//! stable tags. They are declared once, inside [`messages!`], which derives
//! the prost codecs and also records each field for [`crate::schema`], so
//! the proto schema in `PROTOCOL.md` is generated from these declarations
//! (and a test fails when the two differ). Which API uses which message is
//! the table in [`crate::api`].
//!
//! Record data travels as raw batches in `bytes` fields, decoded zero-copy
//! from the frame.

use bytes::Bytes;

use crate::schema::{FieldSchema, MessageSchema};

/// Implemented by every message: whether it carries the common status
/// fields (`error_code = 1`, `error_message = 2`) that every response has.
pub trait WireMessage: prost::Message + Default {
    /// True for messages with `error_code` and `error_message`.
    const HAS_STATUS: bool;
    /// `(error_code, error_message)`, or `None` for messages without them.
    fn status(&self) -> Option<(u32, &str)>;
}

/// Implements [`WireMessage`] by looking for an `error_code` field.
macro_rules! wire_status {
    ($name:ident; error_code $($rest:ident)*) => {
        impl WireMessage for $name {
            const HAS_STATUS: bool = true;
            fn status(&self) -> Option<(u32, &str)> {
                Some((self.error_code, &self.error_message))
            }
        }
    };
    ($name:ident; $first:ident $($rest:ident)*) => {
        wire_status!($name; $($rest)*);
    };
    ($name:ident;) => {
        impl WireMessage for $name {
            const HAS_STATUS: bool = false;
            fn status(&self) -> Option<(u32, &str)> {
                None
            }
        }
    };
}

/// Declares prost messages and records their fields in [`MESSAGES`].
macro_rules! messages {
    ($(
        $(#[doc = $doc:literal])*
        $(#[derive($($extra:ident),*)])?
        pub struct $name:ident {
            $(
                $(#[doc = $field_doc:literal])*
                #[prost($($attr:tt)*)]
                pub $field:ident : $ty:ty,
            )*
        }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Clone, PartialEq, ::prost::Message $(, $($extra),*)?)]
            pub struct $name {
                $(
                    $(#[doc = $field_doc])*
                    #[prost($($attr)*)]
                    pub $field: $ty,
                )*
            }
            wire_status!($name; $($field)*);
        )*

        /// Every message, in declaration order, for the generated schema.
        pub const MESSAGES: &[MessageSchema] = &[$(
            MessageSchema {
                name: stringify!($name),
                doc: &[$($doc),*],
                fields: &[$(FieldSchema {
                    name: stringify!($field),
                    prost: stringify!($($attr)*),
                    rust_type: stringify!($ty),
                    doc: &[$($field_doc),*],
                }),*],
            }
        ),*];
    };
}

/// Produce acknowledgement level (`ProduceRequest::acks`). The zero value
/// is `Durable`, so a client that does not say gets the safe default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
#[non_exhaustive]
pub enum Acks {
    /// Answered after the batch is fsynced (group-committed).
    #[default]
    Durable = 0,
    /// Answered after the batch is written to the log (page cache).
    Written = 1,
    /// No response at all; the client cannot learn the offset or an error.
    None = 2,
}

impl Acks {
    /// The wire value's level, if it is one.
    pub fn from_u32(value: u32) -> Option<Acks> {
        match value {
            0 => Some(Acks::Durable),
            1 => Some(Acks::Written),
            2 => Some(Acks::None),
            _ => None,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "durable" | "all" => Ok(Acks::Durable),
            "written" | "1" => Ok(Acks::Written),
            "none" | "0" => Ok(Acks::None),
            _ => Err(format!("acks must be none, written or durable, not {s:?}")),
        }
    }
}

/// `ListOffsetsRequest::spec` and `ResetOffsetsRequest::spec` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum OffsetSpecCode {
    Earliest = 0,
    Latest = 1,
    /// The first offset whose timestamp is at or after `timestamp_ms`.
    Timestamp = 2,
    /// `ResetOffsets` only: the explicit `offset`.
    Offset = 3,
}

impl OffsetSpecCode {
    /// The wire value's spec, if it is one.
    pub fn from_u32(value: u32) -> Option<OffsetSpecCode> {
        match value {
            0 => Some(OffsetSpecCode::Earliest),
            1 => Some(OffsetSpecCode::Latest),
            2 => Some(OffsetSpecCode::Timestamp),
            3 => Some(OffsetSpecCode::Offset),
            _ => None,
        }
    }
}

/// Tag of `FetchResponse::records`, sent last as a zero-copy tail.
pub const FETCH_RECORDS_TAG: u32 = 15;
/// Tag of `ProduceRequest::records`, sent last as a zero-copy tail.
pub const PRODUCE_RECORDS_TAG: u32 = 4;

messages! {
    /// Sent with `FLAG_ERROR` when a request cannot be answered with its own
    /// response type (unknown API key or version, undecodable body, ...).
    pub struct ErrorResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
    }

    /// The response of requests that return nothing but success or an error.
    pub struct StatusResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
    }

    pub struct HandshakeRequest {
        #[prost(string, tag = "1")]
        pub client_id: String,
        /// Protocol versions the client speaks.
        #[prost(uint32, tag = "2")]
        pub min_version: u32,
        #[prost(uint32, tag = "3")]
        pub max_version: u32,
    }

    pub struct HandshakeResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(string, tag = "3")]
        pub broker_version: String,
        /// Protocol versions the broker speaks.
        #[prost(uint32, tag = "4")]
        pub min_version: u32,
        #[prost(uint32, tag = "5")]
        pub max_version: u32,
        /// Larger frames are refused.
        #[prost(uint32, tag = "6")]
        pub max_frame_bytes: u32,
        /// Larger record batches are refused.
        #[prost(uint32, tag = "7")]
        pub max_batch_bytes: u32,
        #[prost(uint32, tag = "8")]
        pub max_in_flight_requests: u32,
        /// SASL mechanisms `SaslAuthenticate` accepts (`SCRAM-SHA-256`,
        /// `FERRY-TOKEN`).
        #[prost(string, repeated, tag = "9")]
        pub sasl_mechanisms: Vec<String>,
        /// True when every request but `Handshake` and `SaslAuthenticate`
        /// needs an authenticated connection (a verified client certificate
        /// or a completed SASL exchange).
        #[prost(bool, tag = "10")]
        pub auth_required: bool,
    }

    /// Broker facts for operators (`ferryctl status`).
    pub struct BrokerStatusRequest {}

    pub struct BrokerStatusResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(string, tag = "3")]
        pub broker_version: String,
        /// Since the broker process started.
        #[prost(uint64, tag = "4")]
        pub uptime_ms: u64,
        #[prost(string, tag = "5")]
        pub data_dir: String,
        #[prost(uint32, tag = "6")]
        pub topics: u32,
        /// Across every topic.
        #[prost(uint32, tag = "7")]
        pub partitions: u32,
        /// Groups with live members or committed offsets.
        #[prost(uint32, tag = "8")]
        pub groups: u32,
        #[prost(uint32, tag = "9")]
        pub queues: u32,
        #[prost(uint64, tag = "10")]
        pub connections_open: u64,
        /// Partitions that are fenced or read-only (0 when healthy).
        #[prost(uint32, tag = "11")]
        pub unhealthy_partitions: u32,
    }

    /// Per-topic settings; unset fields take the broker's defaults.
    pub struct TopicConfig {
        /// 0 = broker default; at most 4096.
        #[prost(uint32, tag = "1")]
        pub partitions: u32,
        /// Delete segments older than this.
        #[prost(uint64, optional, tag = "2")]
        pub retention_ms: Option<u64>,
        /// Keep each partition under about this.
        #[prost(uint64, optional, tag = "3")]
        pub retention_bytes: Option<u64>,
        #[prost(uint64, optional, tag = "4")]
        pub segment_bytes: Option<u64>,
        /// "always", "never" or an interval in ms, e.g. "100".
        #[prost(string, optional, tag = "5")]
        pub fsync: Option<String>,
        #[prost(uint64, optional, tag = "6")]
        pub segment_ms: Option<u64>,
    }

    pub struct CreateTopicRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub config: Option<TopicConfig>,
    }

    pub struct DeleteTopicRequest {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    pub struct ListTopicsRequest {}

    pub struct TopicSummary {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint32, tag = "2")]
        pub partitions: u32,
    }

    pub struct ListTopicsResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub topics: Vec<TopicSummary>,
    }

    pub struct DescribeTopicRequest {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    pub struct PartitionInfo {
        #[prost(uint32, tag = "1")]
        pub partition: u32,
        /// First readable offset.
        #[prost(uint64, tag = "2")]
        pub start_offset: u64,
        /// The written end: the offset the next record gets. Fetches with
        /// `isolation = written` read up to here.
        #[prost(uint64, tag = "3")]
        pub end_offset: u64,
        #[prost(uint64, tag = "4")]
        pub size_bytes: u64,
        #[prost(uint64, tag = "5")]
        pub segments: u64,
        /// The durable end: every offset below is fsynced. Default fetches
        /// (`isolation = durable`) read up to here on `fsync=always` and
        /// interval topics; on `fsync=never` topics up to `end_offset`.
        #[prost(uint64, tag = "6")]
        pub durable_offset: u64,
        /// Empty when healthy, else why the partition is fenced or read-only.
        #[prost(string, tag = "7")]
        pub problem: String,
        /// Idempotent producers the partition remembers (idle ones expire;
        /// at most 10,000).
        #[prost(uint64, tag = "8")]
        pub producers: u64,
    }

    pub struct DescribeTopicResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(message, optional, tag = "4")]
        pub config: Option<TopicConfig>,
        #[prost(message, repeated, tag = "5")]
        pub partitions: Vec<PartitionInfo>,
    }

    pub struct ProduceRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(uint32, tag = "2")]
        pub partition: u32,
        /// 0 durable (default), 1 written, 2 none (an `Acks` value).
        #[prost(uint32, tag = "3")]
        pub acks: u32,
        /// One or more record batches (at most 1024); sent last so it can be
        /// a zero-copy tail.
        #[prost(bytes = "bytes", tag = "4")]
        pub records: Bytes,
    }

    pub struct ProduceResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(uint64, tag = "3")]
        pub base_offset: u64,
        #[prost(uint64, tag = "4")]
        pub last_offset: u64,
        /// An idempotent producer's retry of a batch stored before its
        /// last five on the partition: stored once, but its offsets are no
        /// longer known (`base_offset`/`last_offset` mean nothing).
        #[prost(bool, tag = "5")]
        pub offsets_unknown: bool,
    }

    /// Asks for an idempotent producer's identity: a new producer id with
    /// epoch 0, or, given the producer's current id and epoch, the same id
    /// with the next epoch (batches of older epochs are then fenced; at
    /// the last epoch a new id is given instead).
    pub struct InitProducerIdRequest {
        /// The topic the producer writes: the caller needs write on it.
        #[prost(string, tag = "1")]
        pub topic: String,
        /// The producer's current id, or 0 (or below) for a new one.
        #[prost(int64, tag = "2")]
        pub producer_id: i64,
        #[prost(int32, tag = "3")]
        pub producer_epoch: i32,
    }

    pub struct InitProducerIdResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        /// Ids start at 1 and are never given twice by a data directory.
        #[prost(int64, tag = "3")]
        pub producer_id: i64,
        #[prost(int32, tag = "4")]
        pub producer_epoch: i32,
    }

    pub struct FetchRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(uint32, tag = "2")]
        pub partition: u32,
        #[prost(uint64, tag = "3")]
        pub offset: u64,
        /// 0 = 1 MiB; at least one whole batch is returned.
        #[prost(uint32, tag = "4")]
        pub max_bytes: u32,
        /// Long polling: park up to this long (at most 60000) ...
        #[prost(uint32, tag = "5")]
        pub max_wait_ms: u32,
        /// ... until this many bytes are available.
        #[prost(uint32, tag = "6")]
        pub min_bytes: u32,
        /// How far the read may see (an `isolation::Isolation` value):
        /// 0 durable (default): up to the partition's durable end, and a
        /// long poll wakes when data becomes durable; 1 written: up to the
        /// written end, sooner but a power loss can take what was read.
        #[prost(uint32, tag = "7")]
        pub isolation: u32,
    }

    pub struct FetchResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(uint64, tag = "3")]
        pub start_offset: u64,
        /// The written end (the offset the next record gets), whatever the
        /// isolation.
        #[prost(uint64, tag = "4")]
        pub end_offset: u64,
        /// Where the next fetch should start.
        #[prost(uint64, tag = "5")]
        pub next_offset: u64,
        /// Whole record batches, back to back; the first may start before the
        /// requested offset (skip those records). Sent last: a zero-copy tail.
        #[prost(bytes = "bytes", tag = "15")]
        pub records: Bytes,
    }

    pub struct ListOffsetsRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(uint32, tag = "2")]
        pub partition: u32,
        /// 0 earliest, 1 latest, 2 first offset with timestamp >= timestamp_ms.
        #[prost(uint32, tag = "3")]
        pub spec: u32,
        #[prost(int64, tag = "4")]
        pub timestamp_ms: i64,
    }

    pub struct ListOffsetsResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        /// For a timestamp past every record: the end offset.
        #[prost(uint64, tag = "3")]
        pub offset: u64,
    }

    /// A topic partition, as used by group APIs.
    #[derive(Eq, Hash, PartialOrd, Ord)]
    pub struct TopicPartition {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(uint32, tag = "2")]
        pub partition: u32,
    }

    /// Join (or rejoin) a consumer group.
    pub struct JoinGroupRequest {
        #[prost(string, tag = "1")]
        pub group: String,
        /// Empty on first join; keep the one returned.
        #[prost(string, tag = "2")]
        pub member_id: String,
        #[prost(string, tag = "3")]
        pub client_id: String,
        #[prost(string, repeated, tag = "4")]
        pub topics: Vec<String>,
        /// "sticky" (default), "range" or "roundrobin"; the group keeps the
        /// assignor of its first member.
        #[prost(string, tag = "5")]
        pub assignor: String,
        /// 0 = broker default (10 s); 100..300000.
        #[prost(uint32, tag = "6")]
        pub session_timeout_ms: u32,
        /// Where partitions with no committed offset start: "earliest"
        /// (default) or "latest".
        #[prost(string, tag = "7")]
        pub offset_reset: String,
    }

    /// Answer to JoinGroup and Heartbeat: the member's current assignment.
    pub struct GroupAssignmentResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(string, tag = "3")]
        pub member_id: String,
        /// Bumped whenever this member's assignment changes.
        #[prost(uint64, tag = "4")]
        pub member_epoch: u64,
        /// Bumped whenever membership or subscriptions change.
        #[prost(uint64, tag = "5")]
        pub group_epoch: u64,
        /// What the member may consume now. Partitions being moved to it
        /// appear only once their previous owner has released them.
        #[prost(message, repeated, tag = "6")]
        pub assignment: Vec<TopicPartition>,
        #[prost(uint32, tag = "7")]
        pub heartbeat_interval_ms: u32,
        #[prost(string, tag = "8")]
        pub offset_reset: String,
    }

    pub struct HeartbeatRequest {
        #[prost(string, tag = "1")]
        pub group: String,
        #[prost(string, tag = "2")]
        pub member_id: String,
        #[prost(uint64, tag = "3")]
        pub member_epoch: u64,
        /// Partitions the member is consuming now (it has let go of every
        /// partition not listed).
        #[prost(message, repeated, tag = "4")]
        pub owned: Vec<TopicPartition>,
    }

    pub struct LeaveGroupRequest {
        #[prost(string, tag = "1")]
        pub group: String,
        #[prost(string, tag = "2")]
        pub member_id: String,
    }

    pub struct OffsetCommitEntry {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(uint32, tag = "2")]
        pub partition: u32,
        /// The next offset to consume.
        #[prost(uint64, tag = "3")]
        pub offset: u64,
        #[prost(string, tag = "4")]
        pub metadata: String,
    }

    /// Commit offsets. Fenced: only a live member owning the partitions may
    /// commit (or anyone, when the group has no members).
    pub struct OffsetCommitRequest {
        #[prost(string, tag = "1")]
        pub group: String,
        #[prost(string, tag = "2")]
        pub member_id: String,
        #[prost(uint64, tag = "3")]
        pub member_epoch: u64,
        /// At most 10000.
        #[prost(message, repeated, tag = "4")]
        pub offsets: Vec<OffsetCommitEntry>,
    }

    pub struct OffsetFetchRequest {
        #[prost(string, tag = "1")]
        pub group: String,
        /// Empty: every committed offset of the group.
        #[prost(message, repeated, tag = "2")]
        pub partitions: Vec<TopicPartition>,
    }

    pub struct CommittedOffset {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(uint32, tag = "2")]
        pub partition: u32,
        /// Absent when nothing was committed.
        #[prost(uint64, optional, tag = "3")]
        pub offset: Option<u64>,
        #[prost(string, tag = "4")]
        pub metadata: String,
    }

    pub struct OffsetFetchResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub offsets: Vec<CommittedOffset>,
    }

    pub struct DescribeGroupRequest {
        #[prost(string, tag = "1")]
        pub group: String,
    }

    pub struct GroupMemberInfo {
        #[prost(string, tag = "1")]
        pub member_id: String,
        #[prost(string, tag = "2")]
        pub client_id: String,
        #[prost(uint64, tag = "3")]
        pub member_epoch: u64,
        #[prost(string, repeated, tag = "4")]
        pub topics: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub assignment: Vec<TopicPartition>,
    }

    pub struct GroupPartitionInfo {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(uint32, tag = "2")]
        pub partition: u32,
        #[prost(uint64, optional, tag = "3")]
        pub committed: Option<u64>,
        #[prost(uint64, tag = "4")]
        pub end_offset: u64,
        /// end_offset - committed (or - start offset when nothing is committed).
        #[prost(uint64, tag = "5")]
        pub lag: u64,
        /// Member consuming it now, if any.
        #[prost(string, tag = "6")]
        pub member_id: String,
    }

    pub struct DescribeGroupResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(string, tag = "3")]
        pub group: String,
        /// "stable", "reconciling" or "empty".
        #[prost(string, tag = "4")]
        pub state: String,
        #[prost(uint64, tag = "5")]
        pub group_epoch: u64,
        #[prost(string, tag = "6")]
        pub assignor: String,
        #[prost(message, repeated, tag = "7")]
        pub members: Vec<GroupMemberInfo>,
        #[prost(message, repeated, tag = "8")]
        pub partitions: Vec<GroupPartitionInfo>,
    }

    pub struct ListGroupsRequest {}

    pub struct GroupSummary {
        #[prost(string, tag = "1")]
        pub group: String,
        #[prost(string, tag = "2")]
        pub state: String,
        #[prost(uint32, tag = "3")]
        pub members: u32,
    }

    pub struct ListGroupsResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub groups: Vec<GroupSummary>,
    }

    pub struct DeleteGroupRequest {
        #[prost(string, tag = "1")]
        pub group: String,
    }

    /// Move a group's committed offsets (refused while it has live members).
    pub struct ResetOffsetsRequest {
        #[prost(string, tag = "1")]
        pub group: String,
        #[prost(string, tag = "2")]
        pub topic: String,
        /// 0 earliest, 1 latest, 2 timestamp_ms, 3 explicit offset.
        #[prost(uint32, tag = "3")]
        pub spec: u32,
        #[prost(int64, tag = "4")]
        pub timestamp_ms: i64,
        #[prost(uint64, tag = "5")]
        pub offset: u64,
        /// When set, `spec` is ignored: each partition moves this many
        /// records from its committed offset (its start if none), kept
        /// within the partition's start and end.
        #[prost(int64, optional, tag = "6")]
        pub shift_by: Option<i64>,
        /// Answer the offsets the reset would set, and set nothing (also
        /// allowed while the group has live members).
        #[prost(bool, tag = "7")]
        pub dry_run: bool,
    }

    pub struct ResetOffsetsResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub offsets: Vec<CommittedOffset>,
    }

    pub struct CreateQueueRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
        /// 0 = 30000: redeliver a message not acked within this long.
        #[prost(uint32, tag = "3")]
        pub ack_timeout_ms: u32,
        /// 0 = 5: dead-letter after this many deliveries.
        #[prost(uint32, tag = "4")]
        pub max_deliveries: u32,
        /// "earliest" (default) or "latest".
        #[prost(string, tag = "5")]
        pub start: String,
        /// Default "<topic>.<queue>.dlq", created on demand (1 partition).
        #[prost(string, tag = "6")]
        pub dead_letter_topic: String,
    }

    pub struct DeleteQueueRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
    }

    pub struct ListQueuesRequest {}

    /// A queue's full name.
    pub struct QueueName {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
    }

    pub struct ListQueuesResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub queues: Vec<QueueName>,
    }

    pub struct DescribeQueueRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
    }

    /// Ready messages of a queue, as the next deliveries would carry them,
    /// without delivering or changing anything.
    pub struct PeekQueueRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
        /// At most this many (the broker caps it at 1000, and at 4 MiB of
        /// record data).
        #[prost(uint32, tag = "3")]
        pub max_messages: u32,
    }

    pub struct PeekQueueResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        /// In delivery order; `delivery_id` is 0 (nothing was delivered),
        /// `delivery_count` the deliveries so far.
        #[prost(message, repeated, tag = "3")]
        pub messages: Vec<Delivery>,
    }

    /// Drops every ready message of a queue (not those in flight), like
    /// RabbitMQ's queue.purge. Answered once the purge is durable.
    pub struct PurgeQueueRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
    }

    pub struct PurgeQueueResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        /// Messages dropped.
        #[prost(uint64, tag = "3")]
        pub purged: u64,
    }

    pub struct QueueConsumerInfo {
        #[prost(uint64, tag = "1")]
        pub subscription_id: u64,
        #[prost(uint32, tag = "2")]
        pub prefetch: u32,
        #[prost(uint32, tag = "3")]
        pub in_flight: u32,
        #[prost(uint64, tag = "4")]
        pub delivered: u64,
    }

    pub struct DescribeQueueResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(string, tag = "3")]
        pub topic: String,
        #[prost(string, tag = "4")]
        pub queue: String,
        /// Backlog: not settled and not in flight (scheduled ones included).
        #[prost(uint64, tag = "5")]
        pub ready: u64,
        #[prost(uint64, tag = "6")]
        pub in_flight: u64,
        #[prost(uint64, tag = "7")]
        pub acked: u64,
        #[prost(uint64, tag = "8")]
        pub dead_lettered: u64,
        #[prost(uint64, tag = "9")]
        pub scheduled: u64,
        #[prost(message, repeated, tag = "10")]
        pub consumers: Vec<QueueConsumerInfo>,
        #[prost(uint32, tag = "11")]
        pub ack_timeout_ms: u32,
        #[prost(uint32, tag = "12")]
        pub max_deliveries: u32,
        #[prost(string, tag = "13")]
        pub dead_letter_topic: String,
    }

    pub struct QueueSubscribeRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
        /// 1..10000 unacknowledged deliveries at once for this consumer.
        #[prost(uint32, tag = "3")]
        pub prefetch: u32,
        /// Non-zero: change that subscription's prefetch instead of
        /// subscribing (0 pauses; deliveries in flight stay with the consumer
        /// until settled).
        #[prost(uint64, tag = "4")]
        pub subscription_id: u64,
    }

    pub struct QueueSubscribeResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(uint64, tag = "3")]
        pub subscription_id: u64,
    }

    /// Settle deliveries for good; answered once the acks are fsynced.
    pub struct AckRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
        /// At most 10000.
        #[prost(uint64, repeated, tag = "3")]
        pub delivery_ids: Vec<u64>,
    }

    /// Reject deliveries: deliver again (`requeue`) or dead-letter them.
    pub struct NackRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
        /// At most 10000.
        #[prost(uint64, repeated, tag = "3")]
        pub delivery_ids: Vec<u64>,
        /// True = deliver again, false = dead-letter.
        #[prost(bool, tag = "4")]
        pub requeue: bool,
        /// With requeue: available again after this long.
        #[prost(uint32, tag = "5")]
        pub delay_ms: u32,
    }

    /// Restart the ack deadline of deliveries still being worked on.
    pub struct InProgressRequest {
        #[prost(string, tag = "1")]
        pub topic: String,
        #[prost(string, tag = "2")]
        pub queue: String,
        /// At most 10000.
        #[prost(uint64, repeated, tag = "3")]
        pub delivery_ids: Vec<u64>,
    }

    pub struct DeliveryHeader {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(bytes = "bytes", optional, tag = "2")]
        pub value: Option<Bytes>,
    }

    pub struct Delivery {
        #[prost(uint64, tag = "1")]
        pub delivery_id: u64,
        #[prost(uint32, tag = "2")]
        pub partition: u32,
        #[prost(uint64, tag = "3")]
        pub offset: u64,
        /// 1 on the first delivery.
        #[prost(uint32, tag = "4")]
        pub delivery_count: u32,
        #[prost(int64, tag = "5")]
        pub timestamp_ms: i64,
        #[prost(bytes = "bytes", optional, tag = "6")]
        pub key: Option<Bytes>,
        #[prost(bytes = "bytes", optional, tag = "7")]
        pub value: Option<Bytes>,
        #[prost(message, repeated, tag = "8")]
        pub headers: Vec<DeliveryHeader>,
    }

    /// Pushed by the broker (api key `Deliver`, `FLAG_PUSH`, correlation id 0).
    pub struct DeliverBatch {
        #[prost(uint64, tag = "1")]
        pub subscription_id: u64,
        #[prost(string, tag = "2")]
        pub topic: String,
        #[prost(string, tag = "3")]
        pub queue: String,
        #[prost(message, repeated, tag = "4")]
        pub deliveries: Vec<Delivery>,
    }

    /// One round of a SASL exchange. SCRAM-SHA-256 takes two: client-first
    /// (with `mechanism`), then client-final (same mechanism). FERRY-TOKEN
    /// takes one: `auth_bytes` is the token.
    pub struct SaslAuthenticateRequest {
        #[prost(string, tag = "1")]
        pub mechanism: String,
        /// At most 1024 bytes.
        #[prost(bytes = "vec", tag = "2")]
        pub auth_bytes: Vec<u8>,
    }

    pub struct SaslAuthenticateResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        /// The server's SASL message (server-first, then server-final).
        #[prost(bytes = "vec", tag = "3")]
        pub auth_bytes: Vec<u8>,
        /// True once the connection is authenticated.
        #[prost(bool, tag = "4")]
        pub complete: bool,
        /// With `complete`: the principal, e.g. `User:alice`.
        #[prost(string, tag = "5")]
        pub principal: String,
    }

    /// Who the broker takes this connection to be.
    pub struct WhoAmIRequest {}

    pub struct WhoAmIResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        /// `User:<name>`, or `User:ANONYMOUS` when not authenticated.
        #[prost(string, tag = "3")]
        pub principal: String,
        /// "none", "SCRAM-SHA-256", "FERRY-TOKEN" or "certificate".
        #[prost(string, tag = "4")]
        pub authenticated_by: String,
        #[prost(bool, tag = "5")]
        pub super_user: bool,
    }

    /// What the broker stores for a SCRAM user (RFC 5802): computed by the
    /// client, so the password never reaches the broker.
    pub struct ScramCredentials {
        /// 16..64 bytes.
        #[prost(bytes = "vec", tag = "1")]
        pub salt: Vec<u8>,
        /// 4096..=1000000.
        #[prost(uint32, tag = "2")]
        pub iterations: u32,
        /// 32 bytes.
        #[prost(bytes = "vec", tag = "3")]
        pub stored_key: Vec<u8>,
        /// 32 bytes.
        #[prost(bytes = "vec", tag = "4")]
        pub server_key: Vec<u8>,
    }

    pub struct CreateUserRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub credentials: Option<ScramCredentials>,
    }

    /// Deletes the user, its tokens and its ACL entries; its connections
    /// are closed within a second.
    pub struct DeleteUserRequest {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    /// Replaces a user's credentials (its open connections stay).
    pub struct ChangePasswordRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub credentials: Option<ScramCredentials>,
    }

    pub struct ListUsersRequest {}

    pub struct UserInfo {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint32, tag = "2")]
        pub iterations: u32,
        /// Named in `--super-users`.
        #[prost(bool, tag = "3")]
        pub super_user: bool,
        /// Live (unexpired) tokens.
        #[prost(uint32, tag = "4")]
        pub tokens: u32,
    }

    pub struct ListUsersResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub users: Vec<UserInfo>,
    }

    /// An access token for `user`, shown once in the response.
    pub struct CreateTokenRequest {
        #[prost(string, tag = "1")]
        pub user: String,
        /// 0 = never expires.
        #[prost(uint64, tag = "2")]
        pub expires_in_ms: u64,
    }

    pub struct CreateTokenResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        /// The secret: the broker keeps only its SHA-256.
        #[prost(string, tag = "3")]
        pub token: String,
        #[prost(string, tag = "4")]
        pub id: String,
        /// Unix ms; 0 = never.
        #[prost(uint64, tag = "5")]
        pub expires_at_ms: u64,
    }

    /// Revokes a token; connections that authenticated with it close
    /// within a second.
    pub struct RevokeTokenRequest {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    pub struct ListTokensRequest {
        /// Empty = every user's.
        #[prost(string, tag = "1")]
        pub user: String,
    }

    pub struct TokenInfo {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub user: String,
        #[prost(uint64, tag = "3")]
        pub created_at_ms: u64,
        /// 0 = never.
        #[prost(uint64, tag = "4")]
        pub expires_at_ms: u64,
    }

    pub struct ListTokensResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub tokens: Vec<TokenInfo>,
    }

    /// One ACL entry (Kafka's model).
    pub struct AclBinding {
        /// `User:<name>`, or `User:*` for every principal.
        #[prost(string, tag = "1")]
        pub principal: String,
        /// 0 cluster, 1 topic, 2 group, 3 queue.
        #[prost(uint32, tag = "2")]
        pub resource_type: u32,
        /// 0 literal, 1 prefixed.
        #[prost(uint32, tag = "3")]
        pub pattern: u32,
        /// A name, a prefix, or `*` (literal) for every resource of the type.
        /// Queues are named `topic/queue`; the cluster is `*`.
        #[prost(string, tag = "4")]
        pub resource_name: String,
        /// 0 read, 1 write, 2 create, 3 delete, 4 alter, 5 describe.
        #[prost(uint32, tag = "5")]
        pub operation: u32,
        /// 0 allow, 1 deny.
        #[prost(uint32, tag = "6")]
        pub permission: u32,
        /// An IP address, or empty for every host.
        #[prost(string, tag = "7")]
        pub host: String,
    }

    pub struct CreateAclRequest {
        #[prost(message, optional, tag = "1")]
        pub acl: Option<AclBinding>,
    }

    pub struct DeleteAclRequest {
        #[prost(message, optional, tag = "1")]
        pub acl: Option<AclBinding>,
    }

    pub struct ListAclsRequest {}

    pub struct ListAclsResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub acls: Vec<AclBinding>,
    }

    /// Rates for one principal; an unset rate is unlimited.
    pub struct QuotaEntry {
        /// `User:<name>`.
        #[prost(string, tag = "1")]
        pub principal: String,
        #[prost(uint64, optional, tag = "2")]
        pub produce_bytes_per_sec: Option<u64>,
        #[prost(uint64, optional, tag = "3")]
        pub fetch_bytes_per_sec: Option<u64>,
        #[prost(uint64, optional, tag = "4")]
        pub requests_per_sec: Option<u64>,
    }

    pub struct SetQuotaRequest {
        #[prost(message, optional, tag = "1")]
        pub quota: Option<QuotaEntry>,
    }

    pub struct DeleteQuotaRequest {
        #[prost(string, tag = "1")]
        pub principal: String,
    }

    pub struct ListQuotasRequest {}

    pub struct ListQuotasResponse {
        #[prost(uint32, tag = "1")]
        pub error_code: u32,
        #[prost(string, tag = "2")]
        pub error_message: String,
        /// Time the broker held this connection back for a quota (0 when
        /// not throttled); in every response.
        #[prost(uint32, tag = "14")]
        pub throttle_time_ms: u32,
        #[prost(message, repeated, tag = "3")]
        pub quotas: Vec<QuotaEntry>,
    }
}
