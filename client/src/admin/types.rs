//! The typed vocabulary of the admin API: what [`crate::Client`]'s admin
//! methods take (topic and queue settings) and what they answer (topic,
//! group and queue descriptions, committed offsets, broker status). None of
//! these is a wire message; `convert.rs` is the one place that maps them
//! to and from the protocol.

use std::fmt;

use std::time::Duration;

use crate::group::Assignor;

/// How often a topic's partitions fsync what they append (`always`,
/// `never`, or an interval in ms; displays and parses as those strings).
pub use ferry_protocol::fsync::FsyncPolicy;

/// A topic's settings; `None` (and 0 partitions) take the broker's
/// defaults.
///
/// ```
/// use ferry_client::{FsyncPolicy, TopicConfig};
/// let config = TopicConfig {
///     partitions: 3,
///     retention_ms: Some(7 * 24 * 3600 * 1000),
///     fsync: Some(FsyncPolicy::IntervalMs(100)),
///     ..TopicConfig::default()
/// };
/// assert_eq!(config.segment_bytes, None); // broker default
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions (0 = the broker's default; at most 4096).
    pub partitions: u32,
    /// Delete segments older than this.
    pub retention_ms: Option<u64>,
    /// Keep each partition under about this many bytes.
    pub retention_bytes: Option<u64>,
    /// Roll to a new segment at this size (at least 1 MiB).
    pub segment_bytes: Option<u64>,
    /// Roll to a new segment at this age (at least 60 s).
    pub segment_ms: Option<u64>,
    /// When appends are fsynced.
    pub fsync: Option<FsyncPolicy>,
}

/// A topic as [`crate::Client::list_topics`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// How many partitions it has.
    pub partitions: u32,
}

/// A topic's settings and partitions ([`crate::Client::describe_topic`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// Its settings (`None` fields take the broker's defaults); `None` if
    /// the broker did not say.
    pub config: Option<TopicConfig>,
    /// Every partition, in order.
    pub partitions: Vec<PartitionInfo>,
}

/// One partition of a [`TopicDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionInfo {
    /// The partition's number.
    pub partition: u32,
    /// First readable offset.
    pub start_offset: u64,
    /// Offset the next record gets.
    pub end_offset: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Segments on disk.
    pub segments: u64,
    /// Every offset below this is fsynced.
    pub durable_offset: u64,
    /// Why the partition is fenced or read-only; `None` when healthy.
    pub problem: Option<String>,
}

/// A consumer group's state, as the broker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupState {
    /// No live members (only committed offsets).
    Empty,
    /// Every member consumes what it was assigned.
    Stable,
    /// Partitions are moving between members.
    Reconciling,
}

impl GroupState {
    /// The broker's name for it: `empty`, `stable` or `reconciling`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "empty",
            GroupState::Stable => "stable",
            GroupState::Reconciling => "reconciling",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group as [`crate::Client::list_groups`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The group's name.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// Live members.
    pub members: u32,
}

/// A group's members, partitions, committed offsets and lag
/// ([`crate::Client::describe_group`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group's name.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// Bumped whenever membership or subscriptions change.
    pub group_epoch: u64,
    /// How it spreads partitions over members.
    pub assignor: Assignor,
    /// Live members.
    pub members: Vec<MemberInfo>,
    /// Every partition of its topics (and of topics it committed for).
    pub partitions: Vec<GroupPartitionInfo>,
}

/// One live member of a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// The id the broker gave it.
    pub member_id: String,
    /// The client id it connected with.
    pub client_id: String,
    /// Bumped whenever its assignment changes.
    pub member_epoch: u64,
    /// Topics it subscribed to.
    pub topics: Vec<String>,
    /// (topic, partition) it may consume now.
    pub assignment: Vec<(String, u32)>,
}

/// One partition of a [`GroupDescription`]: committed offset and lag.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupPartitionInfo {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The group's committed offset; `None` if it never committed.
    pub committed: Option<u64>,
    /// Offset the next record gets.
    pub end_offset: u64,
    /// `end_offset - committed` (or minus the start offset when nothing
    /// is committed).
    pub lag: u64,
    /// The member consuming it now, if any.
    pub member_id: Option<String>,
}

/// A group's committed offset of one partition
/// ([`crate::Client::fetch_offsets`], [`crate::Client::reset_offsets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommittedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The next offset to consume; `None` when nothing was committed.
    pub offset: Option<u64>,
    /// What the committer stored along with the offset.
    pub metadata: String,
}

/// Where a new queue starts on its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartFrom {
    /// Every record already in the topic is delivered.
    #[default]
    Earliest,
    /// Only records produced after the queue is created.
    Latest,
}

/// Settings of a new queue; zero values take the broker's defaults.
///
/// ```
/// use ferry_client::{QueueConfig, StartFrom};
/// let config = QueueConfig { max_deliveries: 3, start: StartFrom::Latest, ..QueueConfig::default() };
/// assert_eq!(config.ack_timeout_ms, 0); // broker default: 30 s
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// Redeliver a message not acked within this long (0 = 30 s).
    pub ack_timeout_ms: u32,
    /// Dead-letter a message after this many deliveries (0 = 5).
    pub max_deliveries: u32,
    /// Where the queue starts on its topic.
    pub start: StartFrom,
    /// Dead-letter topic (`None` = `<topic>.<queue>.dlq`, created on demand).
    pub dead_letter_topic: Option<String>,
}

/// A queue's full name: its topic and its name on that topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId {
    /// The topic the queue reads.
    pub topic: String,
    /// The queue's name on that topic.
    pub queue: String,
}

/// A queue's counts, settings and consumers
/// ([`crate::Client::describe_queue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueDescription {
    /// The topic the queue reads.
    pub topic: String,
    /// The queue's name on that topic.
    pub queue: String,
    /// Backlog: neither settled nor in flight (scheduled ones included).
    pub ready: u64,
    /// Delivered and not settled yet.
    pub in_flight: u64,
    /// Acknowledged.
    pub acked: u64,
    /// Moved to the dead-letter topic.
    pub dead_lettered: u64,
    /// Held back until their delivery time.
    pub scheduled: u64,
    /// Subscribed consumers.
    pub consumers: Vec<QueueConsumerInfo>,
    /// A message not acked within this long is delivered again.
    pub ack_timeout_ms: u32,
    /// A message is dead-lettered after this many deliveries.
    pub max_deliveries: u32,
    /// Where dead-lettered messages go.
    pub dead_letter_topic: String,
}

/// One consumer of a [`QueueDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConsumerInfo {
    /// The broker's id of the subscription.
    pub subscription_id: u64,
    /// Most unacknowledged deliveries it takes at once.
    pub prefetch: u32,
    /// Deliveries it holds unsettled now.
    pub in_flight: u32,
    /// Deliveries it got so far.
    pub delivered: u64,
}

/// What `BrokerStatus` reports ([`crate::Client::broker_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStatus {
    /// The broker's version.
    pub broker_version: String,
    /// Since the broker process started.
    pub uptime: Duration,
    /// The broker's data directory, as it sees it.
    pub data_dir: String,
    /// Topics.
    pub topics: u32,
    /// Partitions across every topic.
    pub partitions: u32,
    /// Groups with live members or committed offsets.
    pub groups: u32,
    /// Queues.
    pub queues: u32,
    /// Client connections open now.
    pub connections_open: u64,
    /// Partitions that are fenced or read-only (0 when healthy).
    pub unhealthy_partitions: u32,
}
