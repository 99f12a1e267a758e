//! The typed vocabulary of the admin API: what [`crate::Client`]'s admin
//! methods take (topic and queue settings, ACL rules, quotas) and what they
//! answer (topic, group and queue descriptions, committed offsets, broker
//! status, users, tokens, who the connection is). None of these is a wire
//! message; `convert.rs` is the one place that maps them to and from the
//! protocol.

use std::fmt;
use std::net::IpAddr;
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
    /// The written end: the offset the next record gets. Consumers with
    /// [`Isolation::Written`](crate::Isolation::Written) read up to here.
    pub end_offset: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Segments on disk.
    pub segments: u64,
    /// The durable end: every offset below this is fsynced. Consumers with
    /// the default [`Isolation::Durable`](crate::Isolation::Durable) read up
    /// to here on `fsync=always` and interval topics (to `end_offset` on
    /// `fsync=never` topics).
    pub durable_offset: u64,
    /// Why the partition is fenced or read-only; `None` when healthy.
    pub problem: Option<String>,
    /// Idempotent producers the partition remembers (idle ones expire
    /// after the broker's `--producer-expiry-ms`; at most 10,000).
    pub producers: u64,
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

/// An idempotent producer's id and epoch ([`crate::Client::init_producer_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// The producer id (ids start at 1).
    pub producer_id: i64,
    /// The epoch: batches of older epochs of this id are fenced.
    pub epoch: i16,
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

/// A name that is not one of a typed choice's values (parsing an
/// [`AclOperation`], a [`ResourceType`], ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {expected}, not {value:?}")]
pub struct ParseChoiceError {
    /// What was parsed, e.g. `"ACL operation"`.
    pub what: &'static str,
    /// The names it takes.
    pub expected: &'static str,
    /// What it was given.
    pub value: String,
}

/// Implements `as_str`, `Display` and (case-insensitive) `FromStr` for a
/// fieldless enum from its variants' names.
macro_rules! named_choice {
    ($type:ident, $what:literal, $expected:literal, $($variant:ident => $name:literal),+ $(,)?) => {
        impl $type {
            /// Every value, in wire order.
            pub const ALL: &'static [$type] = &[$($type::$variant),+];

            /// Its name, as `FromStr` takes it and `Display` shows it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $type {
            type Err = ParseChoiceError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $type::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| ParseChoiceError {
                        what: $what,
                        expected: $expected,
                        value: s.to_string(),
                    })
            }
        }
    };
}

/// How a connection proved who it is ([`WhoAmI::authenticated_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// It did not: the anonymous principal (authentication is off).
    None,
    /// SCRAM-SHA-256 with a user's password.
    Scram,
    /// An access token (`FERRY-TOKEN`).
    Token,
    /// A client certificate (mutual TLS).
    Certificate,
}

named_choice!(AuthMethod, "authentication method", "none, SCRAM-SHA-256, FERRY-TOKEN or certificate",
    None => "none",
    Scram => "SCRAM-SHA-256",
    Token => "FERRY-TOKEN",
    Certificate => "certificate",
);

/// Who the broker takes this client's connection to be
/// ([`crate::Client::who_am_i`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WhoAmI {
    /// `User:<name>`, or `User:ANONYMOUS` when not authenticated.
    pub principal: String,
    /// How the connection proved it.
    pub authenticated_by: AuthMethod,
    /// A super user bypasses the ACLs.
    pub super_user: bool,
}

/// A SCRAM user as [`crate::Client::list_users`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// The user's name (its principal is `User:<name>`).
    pub name: String,
    /// PBKDF2 iterations of its stored credentials.
    pub iterations: u32,
    /// Named in the broker's `--super-users` (or the bootstrapped admin).
    pub super_user: bool,
    /// Live (unexpired) access tokens it owns.
    pub tokens: u32,
}

/// A new access token ([`crate::Client::create_token`]): the secret is in
/// this answer only (the broker keeps a hash). `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewToken {
    /// The secret, for [`crate::Credentials::Token`].
    pub token: String,
    /// Its id, to list and revoke it.
    pub id: String,
    /// When it expires (ms since the Unix epoch); `None` = never.
    pub expires_at_ms: Option<u64>,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("token", &"<redacted>")
            .field("id", &self.id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// An access token as [`crate::Client::list_tokens`] lists it (never its
/// secret).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// Its id.
    pub id: String,
    /// The user it authenticates as.
    pub user: String,
    /// When it was made (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it expires (ms since the Unix epoch); `None` = never.
    pub expires_at_ms: Option<u64>,
}

/// What kind of resource an [`AclRule`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceType {
    /// The broker itself (users, tokens, ACLs, quotas, status); its
    /// resource name is `*`.
    Cluster,
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// A queue, named `topic/queue`.
    Queue,
}

named_choice!(ResourceType, "resource type", "cluster, topic, group or queue",
    Cluster => "cluster",
    Topic => "topic",
    Group => "group",
    Queue => "queue",
);

/// How an [`AclRule`]'s resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternType {
    /// The exact name (`*` = every resource of the type).
    Literal,
    /// Every name that starts with it (`orders.` matches `orders.eu`).
    Prefixed,
}

named_choice!(PatternType, "pattern type", "literal or prefixed",
    Literal => "literal",
    Prefixed => "prefixed",
);

/// What an [`AclRule`] allows or denies. Read, write, delete and alter
/// imply describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AclOperation {
    /// Consume (fetch; a group's or queue's deliveries).
    Read,
    /// Produce.
    Write,
    /// Create.
    Create,
    /// Delete.
    Delete,
    /// Change (settings, offsets; users and ACLs on the cluster).
    Alter,
    /// See it (describe, list).
    Describe,
}

named_choice!(AclOperation, "ACL operation", "read, write, create, delete, alter or describe",
    Read => "read",
    Write => "write",
    Create => "create",
    Delete => "delete",
    Alter => "alter",
    Describe => "describe",
);

/// Whether an [`AclRule`] allows or denies. A matching deny wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclPermission {
    /// Allows the operation.
    Allow,
    /// Denies it, whatever allows it.
    Deny,
}

named_choice!(AclPermission, "ACL permission", "allow or deny",
    Allow => "allow",
    Deny => "deny",
);

/// One ACL entry (Kafka's model): `permission` of `operation` on the
/// resources `resource_name` matches (by `pattern`) for `principal`,
/// from `host` (or any).
///
/// ```
/// use ferry_client::{AclOperation, AclPermission, AclRule, PatternType, ResourceType};
/// // alice may produce to every topic whose name starts with "orders.".
/// let rule = AclRule {
///     principal: "User:alice".into(),
///     resource_type: ResourceType::Topic,
///     pattern: PatternType::Prefixed,
///     resource_name: "orders.".into(),
///     operation: AclOperation::Write,
///     permission: AclPermission::Allow,
///     host: None,
/// };
/// assert_eq!(rule.operation.to_string(), "write");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclRule {
    /// `User:<name>`, or `User:*` for every principal.
    pub principal: String,
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// How `resource_name` matches.
    pub pattern: PatternType,
    /// A name, a prefix, or `*` (literal) for every resource of the type;
    /// queues are `topic/queue`, the cluster is `*`.
    pub resource_name: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermission,
    /// Only connections from this address; `None` = from anywhere.
    pub host: Option<IpAddr>,
}

/// One principal's rates ([`crate::Client::set_quota`]); `None` =
/// unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct QuotaSpec {
    /// `User:<name>`.
    pub principal: String,
    /// Bytes of record batches produced per second.
    pub produce_bytes_per_sec: Option<u64>,
    /// Bytes fetched per second.
    pub fetch_bytes_per_sec: Option<u64>,
    /// Requests per second.
    pub requests_per_sec: Option<u64>,
}
