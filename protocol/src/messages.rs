//! Typed request and response bodies (prost messages, tags are stable) and
//! the API keys that select them. Record data travels as raw batches in
//! `bytes` fields, decoded zero-copy from the frame.

use bytes::Bytes;
use prost::Message;

use crate::error::ErrorCode;
use crate::frame::FrameHeader;

/// Protocol versions this crate speaks (every API is at version 1).
pub const PROTOCOL_VERSION_MIN: u16 = 1;
pub const PROTOCOL_VERSION_MAX: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ApiKey {
    Handshake = 1,
    CreateTopic = 2,
    DeleteTopic = 3,
    ListTopics = 4,
    DescribeTopic = 5,
    Produce = 6,
    Fetch = 7,
    ListOffsets = 8,
    JoinGroup = 20,
    Heartbeat = 21,
    LeaveGroup = 22,
    OffsetCommit = 23,
    OffsetFetch = 24,
    DescribeGroup = 25,
    ListGroups = 26,
    DeleteGroup = 27,
    ResetOffsets = 28,
    CreateQueue = 30,
    DeleteQueue = 31,
    ListQueues = 32,
    DescribeQueue = 33,
    QueueSubscribe = 34,
    Ack = 35,
    Nack = 36,
    InProgress = 37,
    /// Broker to client only, with `FLAG_PUSH`: a `DeliverBatch`.
    Deliver = 40,
}

impl ApiKey {
    pub const ALL: [ApiKey; 26] = [
        ApiKey::Handshake,
        ApiKey::CreateTopic,
        ApiKey::DeleteTopic,
        ApiKey::ListTopics,
        ApiKey::DescribeTopic,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::JoinGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::DescribeGroup,
        ApiKey::ListGroups,
        ApiKey::DeleteGroup,
        ApiKey::ResetOffsets,
        ApiKey::CreateQueue,
        ApiKey::DeleteQueue,
        ApiKey::ListQueues,
        ApiKey::DescribeQueue,
        ApiKey::QueueSubscribe,
        ApiKey::Ack,
        ApiKey::Nack,
        ApiKey::InProgress,
        ApiKey::Deliver,
    ];

    pub fn from_u16(value: u16) -> Option<ApiKey> {
        ApiKey::ALL.iter().copied().find(|k| *k as u16 == value)
    }

    pub fn name(self) -> &'static str {
        match self {
            ApiKey::Handshake => "handshake",
            ApiKey::CreateTopic => "create_topic",
            ApiKey::DeleteTopic => "delete_topic",
            ApiKey::ListTopics => "list_topics",
            ApiKey::DescribeTopic => "describe_topic",
            ApiKey::Produce => "produce",
            ApiKey::Fetch => "fetch",
            ApiKey::ListOffsets => "list_offsets",
            ApiKey::JoinGroup => "join_group",
            ApiKey::Heartbeat => "heartbeat",
            ApiKey::LeaveGroup => "leave_group",
            ApiKey::OffsetCommit => "offset_commit",
            ApiKey::OffsetFetch => "offset_fetch",
            ApiKey::DescribeGroup => "describe_group",
            ApiKey::ListGroups => "list_groups",
            ApiKey::DeleteGroup => "delete_group",
            ApiKey::ResetOffsets => "reset_offsets",
            ApiKey::CreateQueue => "create_queue",
            ApiKey::DeleteQueue => "delete_queue",
            ApiKey::ListQueues => "list_queues",
            ApiKey::DescribeQueue => "describe_queue",
            ApiKey::QueueSubscribe => "queue_subscribe",
            ApiKey::Ack => "ack",
            ApiKey::Nack => "nack",
            ApiKey::InProgress => "in_progress",
            ApiKey::Deliver => "deliver",
        }
    }
}

/// Produce acknowledgement level. The zero value is `Durable`, so a client
/// that does not say gets the safe default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
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

/// Sent with `FLAG_ERROR` when a request cannot be answered with its own
/// response type (unknown API key or version, undecodable body, ...).
#[derive(Clone, PartialEq, Message)]
pub struct ErrorResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct HandshakeRequest {
    #[prost(string, tag = "1")]
    pub client_id: String,
    #[prost(uint32, tag = "2")]
    pub min_version: u32,
    #[prost(uint32, tag = "3")]
    pub max_version: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct HandshakeResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(string, tag = "3")]
    pub broker_version: String,
    #[prost(uint32, tag = "4")]
    pub min_version: u32,
    #[prost(uint32, tag = "5")]
    pub max_version: u32,
    #[prost(uint32, tag = "6")]
    pub max_frame_bytes: u32,
    #[prost(uint32, tag = "7")]
    pub max_batch_bytes: u32,
    #[prost(uint32, tag = "8")]
    pub max_in_flight_requests: u32,
}

/// Per-topic settings; unset fields take the broker's defaults.
#[derive(Clone, PartialEq, Message)]
pub struct TopicConfig {
    #[prost(uint32, tag = "1")]
    pub partitions: u32,
    #[prost(uint64, optional, tag = "2")]
    pub retention_ms: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub retention_bytes: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub segment_bytes: Option<u64>,
    /// "always", "never" or an interval in ms.
    #[prost(string, optional, tag = "5")]
    pub fsync: Option<String>,
    #[prost(uint64, optional, tag = "6")]
    pub segment_ms: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct CreateTopicRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub config: Option<TopicConfig>,
}

/// The response of requests that return nothing but success or an error.
#[derive(Clone, PartialEq, Message)]
pub struct StatusResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct DeleteTopicRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListTopicsRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct TopicSummary {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub partitions: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListTopicsResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(message, repeated, tag = "3")]
    pub topics: Vec<TopicSummary>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DescribeTopicRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct PartitionInfo {
    #[prost(uint32, tag = "1")]
    pub partition: u32,
    #[prost(uint64, tag = "2")]
    pub start_offset: u64,
    #[prost(uint64, tag = "3")]
    pub end_offset: u64,
    #[prost(uint64, tag = "4")]
    pub size_bytes: u64,
    #[prost(uint64, tag = "5")]
    pub segments: u64,
    #[prost(uint64, tag = "6")]
    pub durable_offset: u64,
    /// Empty when healthy, else why the partition is fenced or read-only.
    #[prost(string, tag = "7")]
    pub problem: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct DescribeTopicResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(message, optional, tag = "4")]
    pub config: Option<TopicConfig>,
    #[prost(message, repeated, tag = "5")]
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProduceRequest {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(uint32, tag = "2")]
    pub partition: u32,
    /// An [`Acks`] value.
    #[prost(uint32, tag = "3")]
    pub acks: u32,
    /// One record batch (see the batch format).
    #[prost(bytes = "bytes", tag = "4")]
    pub records: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProduceResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(uint64, tag = "3")]
    pub base_offset: u64,
    #[prost(uint64, tag = "4")]
    pub last_offset: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct FetchRequest {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(uint32, tag = "2")]
    pub partition: u32,
    #[prost(uint64, tag = "3")]
    pub offset: u64,
    /// Upper bound on the records returned (at least one batch is returned).
    #[prost(uint32, tag = "4")]
    pub max_bytes: u32,
    /// Long polling: wait up to this long for `min_bytes` to be available.
    #[prost(uint32, tag = "5")]
    pub max_wait_ms: u32,
    #[prost(uint32, tag = "6")]
    pub min_bytes: u32,
}

/// Tag of `FetchResponse::records`, sent last as a zero-copy tail.
pub const FETCH_RECORDS_TAG: u32 = 15;

#[derive(Clone, PartialEq, Message)]
pub struct FetchResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(uint64, tag = "3")]
    pub start_offset: u64,
    #[prost(uint64, tag = "4")]
    pub end_offset: u64,
    /// Where the next fetch should start.
    #[prost(uint64, tag = "5")]
    pub next_offset: u64,
    /// Whole record batches, back to back; the first may start before the
    /// requested offset (the client skips those records).
    #[prost(bytes = "bytes", tag = "15")]
    pub records: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum OffsetSpec {
    Earliest = 0,
    Latest = 1,
    Timestamp = 2,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListOffsetsRequest {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(uint32, tag = "2")]
    pub partition: u32,
    /// An [`OffsetSpec`] value.
    #[prost(uint32, tag = "3")]
    pub spec: u32,
    #[prost(int64, tag = "4")]
    pub timestamp_ms: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListOffsetsResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    /// For a timestamp with no record at or after it: the end offset.
    #[prost(uint64, tag = "3")]
    pub offset: u64,
}

/// A topic partition, as used by group APIs.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Message)]
pub struct TopicPartition {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(uint32, tag = "2")]
    pub partition: u32,
}

/// Join (or rejoin) a consumer group.
#[derive(Clone, PartialEq, Message)]
pub struct JoinGroupRequest {
    #[prost(string, tag = "1")]
    pub group: String,
    /// Empty on first join; the broker assigns one and the client keeps it.
    #[prost(string, tag = "2")]
    pub member_id: String,
    #[prost(string, tag = "3")]
    pub client_id: String,
    #[prost(string, repeated, tag = "4")]
    pub topics: Vec<String>,
    /// "sticky" (default), "range" or "roundrobin". The group keeps the
    /// assignor of its first member.
    #[prost(string, tag = "5")]
    pub assignor: String,
    /// Removed after this long without a heartbeat (0 = broker default).
    #[prost(uint32, tag = "6")]
    pub session_timeout_ms: u32,
    /// Where to start partitions with no committed offset: "earliest"
    /// (default) or "latest".
    #[prost(string, tag = "7")]
    pub offset_reset: String,
}

/// Answer to JoinGroup and Heartbeat: the member's current assignment.
#[derive(Clone, PartialEq, Message)]
pub struct GroupAssignmentResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(string, tag = "3")]
    pub member_id: String,
    /// Bumped whenever this member's assignment changes; commits carry it.
    #[prost(uint64, tag = "4")]
    pub member_epoch: u64,
    #[prost(uint64, tag = "5")]
    pub group_epoch: u64,
    /// Partitions this member may consume now. Partitions being moved to it
    /// appear only once their previous owner has released them.
    #[prost(message, repeated, tag = "6")]
    pub assignment: Vec<TopicPartition>,
    #[prost(uint32, tag = "7")]
    pub heartbeat_interval_ms: u32,
    #[prost(string, tag = "8")]
    pub offset_reset: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct HeartbeatRequest {
    #[prost(string, tag = "1")]
    pub group: String,
    #[prost(string, tag = "2")]
    pub member_id: String,
    #[prost(uint64, tag = "3")]
    pub member_epoch: u64,
    /// Partitions the member is consuming right now (it has let go of every
    /// partition not listed).
    #[prost(message, repeated, tag = "4")]
    pub owned: Vec<TopicPartition>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LeaveGroupRequest {
    #[prost(string, tag = "1")]
    pub group: String,
    #[prost(string, tag = "2")]
    pub member_id: String,
}

#[derive(Clone, PartialEq, Message)]
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
#[derive(Clone, PartialEq, Message)]
pub struct OffsetCommitRequest {
    #[prost(string, tag = "1")]
    pub group: String,
    #[prost(string, tag = "2")]
    pub member_id: String,
    #[prost(uint64, tag = "3")]
    pub member_epoch: u64,
    #[prost(message, repeated, tag = "4")]
    pub offsets: Vec<OffsetCommitEntry>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OffsetFetchRequest {
    #[prost(string, tag = "1")]
    pub group: String,
    /// Empty: every committed offset of the group.
    #[prost(message, repeated, tag = "2")]
    pub partitions: Vec<TopicPartition>,
}

#[derive(Clone, PartialEq, Message)]
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

#[derive(Clone, PartialEq, Message)]
pub struct OffsetFetchResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(message, repeated, tag = "3")]
    pub offsets: Vec<CommittedOffset>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GroupRequest {
    #[prost(string, tag = "1")]
    pub group: String,
}

#[derive(Clone, PartialEq, Message)]
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

#[derive(Clone, PartialEq, Message)]
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

#[derive(Clone, PartialEq, Message)]
pub struct DescribeGroupResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
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

#[derive(Clone, PartialEq, Message)]
pub struct ListGroupsRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct GroupSummary {
    #[prost(string, tag = "1")]
    pub group: String,
    #[prost(string, tag = "2")]
    pub state: String,
    #[prost(uint32, tag = "3")]
    pub members: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListGroupsResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(message, repeated, tag = "3")]
    pub groups: Vec<GroupSummary>,
}

/// Move a group's committed offsets (refused while it has live members).
#[derive(Clone, PartialEq, Message)]
pub struct ResetOffsetsRequest {
    #[prost(string, tag = "1")]
    pub group: String,
    #[prost(string, tag = "2")]
    pub topic: String,
    /// An [`OffsetSpec`] value, or 3 = explicit `offset`.
    #[prost(uint32, tag = "3")]
    pub spec: u32,
    #[prost(int64, tag = "4")]
    pub timestamp_ms: i64,
    #[prost(uint64, tag = "5")]
    pub offset: u64,
}

/// `ResetOffsetsRequest::spec` value for an explicit offset.
pub const RESET_TO_OFFSET: u32 = 3;

#[derive(Clone, PartialEq, Message)]
pub struct ResetOffsetsResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(message, repeated, tag = "3")]
    pub offsets: Vec<CommittedOffset>,
}

/// The record header that holds a scheduled delivery time: milliseconds
/// since the epoch, as ASCII decimal. Queue consumers do not get the record
/// before then.
pub const DELIVER_AT_HEADER: &str = "x-ferry-deliver-at";

#[derive(Clone, PartialEq, Message)]
pub struct CreateQueueRequest {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(string, tag = "2")]
    pub queue: String,
    /// Redeliver a message not acked within this long (0 = 30 s).
    #[prost(uint32, tag = "3")]
    pub ack_timeout_ms: u32,
    /// Dead-letter a message after this many deliveries (0 = 5).
    #[prost(uint32, tag = "4")]
    pub max_deliveries: u32,
    /// "earliest" (default) or "latest".
    #[prost(string, tag = "5")]
    pub start: String,
    /// Dead-letter topic (default `<topic>.<queue>.dlq`, created on demand).
    #[prost(string, tag = "6")]
    pub dead_letter_topic: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueueRequest {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(string, tag = "2")]
    pub queue: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListQueuesRequest {}

#[derive(Clone, PartialEq, Message)]
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

#[derive(Clone, PartialEq, Message)]
pub struct DescribeQueueResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(string, tag = "3")]
    pub topic: String,
    #[prost(string, tag = "4")]
    pub queue: String,
    /// Messages waiting (not acked, not in flight), scheduled ones included.
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

#[derive(Clone, PartialEq, Message)]
pub struct ListQueuesResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(message, repeated, tag = "3")]
    pub queues: Vec<QueueRequest>,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueueSubscribeRequest {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(string, tag = "2")]
    pub queue: String,
    /// Most unacknowledged deliveries at once for this consumer.
    #[prost(uint32, tag = "3")]
    pub prefetch: u32,
    /// Non-zero: change the prefetch of this existing subscription of the
    /// connection instead of subscribing (0 pauses deliveries; deliveries in
    /// flight stay with the consumer until settled).
    #[prost(uint64, tag = "4")]
    pub subscription_id: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueueSubscribeResponse {
    #[prost(uint32, tag = "1")]
    pub error_code: u32,
    #[prost(string, tag = "2")]
    pub error_message: String,
    #[prost(uint64, tag = "3")]
    pub subscription_id: u64,
}

/// Ack / InProgress: the deliveries named; Nack also: requeue or not, and
/// a delay before the message is available again.
#[derive(Clone, PartialEq, Message)]
pub struct SettleRequest {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(string, tag = "2")]
    pub queue: String,
    #[prost(uint64, repeated, tag = "3")]
    pub delivery_ids: Vec<u64>,
    #[prost(bool, tag = "4")]
    pub requeue: bool,
    #[prost(uint32, tag = "5")]
    pub delay_ms: u32,
}

#[derive(Clone, PartialEq, Message)]
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

#[derive(Clone, PartialEq, Message)]
pub struct DeliveryHeader {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub value: Option<Bytes>,
}

/// Pushed by the broker (api key `Deliver`, `FLAG_PUSH`, correlation id 0).
#[derive(Clone, PartialEq, Message)]
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

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Handshake(HandshakeRequest),
    CreateTopic(CreateTopicRequest),
    DeleteTopic(DeleteTopicRequest),
    ListTopics(ListTopicsRequest),
    DescribeTopic(DescribeTopicRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    JoinGroup(JoinGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    DescribeGroup(GroupRequest),
    ListGroups(ListGroupsRequest),
    DeleteGroup(GroupRequest),
    ResetOffsets(ResetOffsetsRequest),
    CreateQueue(CreateQueueRequest),
    DeleteQueue(QueueRequest),
    ListQueues(ListQueuesRequest),
    DescribeQueue(QueueRequest),
    QueueSubscribe(QueueSubscribeRequest),
    Ack(SettleRequest),
    Nack(SettleRequest),
    InProgress(SettleRequest),
}

impl Request {
    /// Decodes a request body. Errors carry the code to answer with.
    pub fn decode(header: &FrameHeader, body: Bytes) -> Result<Request, (ErrorCode, String)> {
        let Some(key) = ApiKey::from_u16(header.api_key) else {
            return Err((
                ErrorCode::UnknownApiKey,
                format!("unknown api key {}", header.api_key),
            ));
        };
        if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX).contains(&header.api_version) {
            return Err((
                ErrorCode::UnsupportedVersion,
                format!(
                    "{} version {} is not supported (supported: {PROTOCOL_VERSION_MIN}..={PROTOCOL_VERSION_MAX})",
                    key.name(),
                    header.api_version
                ),
            ));
        }
        let bad = |e: prost::DecodeError| {
            (
                ErrorCode::InvalidRequest,
                format!("{} body does not decode: {e}", key.name()),
            )
        };
        macro_rules! decode {
            ($variant:ident, $message:ty) => {
                Request::$variant(<$message>::decode(body).map_err(bad)?)
            };
        }
        Ok(match key {
            ApiKey::Handshake => decode!(Handshake, HandshakeRequest),
            ApiKey::CreateTopic => decode!(CreateTopic, CreateTopicRequest),
            ApiKey::DeleteTopic => decode!(DeleteTopic, DeleteTopicRequest),
            ApiKey::ListTopics => decode!(ListTopics, ListTopicsRequest),
            ApiKey::DescribeTopic => decode!(DescribeTopic, DescribeTopicRequest),
            ApiKey::Produce => decode!(Produce, ProduceRequest),
            ApiKey::Fetch => decode!(Fetch, FetchRequest),
            ApiKey::ListOffsets => decode!(ListOffsets, ListOffsetsRequest),
            ApiKey::JoinGroup => decode!(JoinGroup, JoinGroupRequest),
            ApiKey::Heartbeat => decode!(Heartbeat, HeartbeatRequest),
            ApiKey::LeaveGroup => decode!(LeaveGroup, LeaveGroupRequest),
            ApiKey::OffsetCommit => decode!(OffsetCommit, OffsetCommitRequest),
            ApiKey::OffsetFetch => decode!(OffsetFetch, OffsetFetchRequest),
            ApiKey::DescribeGroup => decode!(DescribeGroup, GroupRequest),
            ApiKey::ListGroups => decode!(ListGroups, ListGroupsRequest),
            ApiKey::DeleteGroup => decode!(DeleteGroup, GroupRequest),
            ApiKey::ResetOffsets => decode!(ResetOffsets, ResetOffsetsRequest),
            ApiKey::CreateQueue => decode!(CreateQueue, CreateQueueRequest),
            ApiKey::DeleteQueue => decode!(DeleteQueue, QueueRequest),
            ApiKey::ListQueues => decode!(ListQueues, ListQueuesRequest),
            ApiKey::DescribeQueue => decode!(DescribeQueue, QueueRequest),
            ApiKey::QueueSubscribe => decode!(QueueSubscribe, QueueSubscribeRequest),
            ApiKey::Ack => decode!(Ack, SettleRequest),
            ApiKey::Nack => decode!(Nack, SettleRequest),
            ApiKey::InProgress => decode!(InProgress, SettleRequest),
            ApiKey::Deliver => {
                return Err((
                    ErrorCode::InvalidRequest,
                    "deliver frames are sent by the broker only".into(),
                ));
            }
        })
    }

    pub fn api_key(&self) -> ApiKey {
        match self {
            Request::Handshake(_) => ApiKey::Handshake,
            Request::CreateTopic(_) => ApiKey::CreateTopic,
            Request::DeleteTopic(_) => ApiKey::DeleteTopic,
            Request::ListTopics(_) => ApiKey::ListTopics,
            Request::DescribeTopic(_) => ApiKey::DescribeTopic,
            Request::Produce(_) => ApiKey::Produce,
            Request::Fetch(_) => ApiKey::Fetch,
            Request::ListOffsets(_) => ApiKey::ListOffsets,
            Request::JoinGroup(_) => ApiKey::JoinGroup,
            Request::Heartbeat(_) => ApiKey::Heartbeat,
            Request::LeaveGroup(_) => ApiKey::LeaveGroup,
            Request::OffsetCommit(_) => ApiKey::OffsetCommit,
            Request::OffsetFetch(_) => ApiKey::OffsetFetch,
            Request::DescribeGroup(_) => ApiKey::DescribeGroup,
            Request::ListGroups(_) => ApiKey::ListGroups,
            Request::DeleteGroup(_) => ApiKey::DeleteGroup,
            Request::ResetOffsets(_) => ApiKey::ResetOffsets,
            Request::CreateQueue(_) => ApiKey::CreateQueue,
            Request::DeleteQueue(_) => ApiKey::DeleteQueue,
            Request::ListQueues(_) => ApiKey::ListQueues,
            Request::DescribeQueue(_) => ApiKey::DescribeQueue,
            Request::QueueSubscribe(_) => ApiKey::QueueSubscribe,
            Request::Ack(_) => ApiKey::Ack,
            Request::Nack(_) => ApiKey::Nack,
            Request::InProgress(_) => ApiKey::InProgress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn garbage_bodies_give_errors_not_panics(key in 0u16..20, version in 0u16..3, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let header = FrameHeader::request(key, version, 1);
            let _ = Request::decode(&header, Bytes::from(body));
        }
    }

    #[test]
    fn unknown_keys_and_versions_map_to_codes() {
        let unknown = Request::decode(&FrameHeader::request(999, 1, 1), Bytes::new()).unwrap_err();
        assert_eq!(unknown.0, ErrorCode::UnknownApiKey);
        let version = Request::decode(
            &FrameHeader::request(ApiKey::Fetch as u16, 9, 1),
            Bytes::new(),
        )
        .unwrap_err();
        assert_eq!(version.0, ErrorCode::UnsupportedVersion);
        let produce = ProduceRequest {
            topic: "t".into(),
            records: Bytes::from_static(b"abc"),
            ..ProduceRequest::default()
        };
        let decoded = Request::decode(
            &FrameHeader::request(ApiKey::Produce as u16, 1, 1),
            produce.encode_to_vec().into(),
        )
        .unwrap();
        assert_eq!(decoded, Request::Produce(produce));
        assert_eq!(
            Acks::from_u32(ProduceRequest::default().acks),
            Some(Acks::Durable)
        );
    }
}
