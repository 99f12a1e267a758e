//! [`Client`]: a handle to the broker that reconnects with backoff and
//! offers the admin and data APIs as async methods. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::messages::{
    Acks, ApiKey, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest,
    DescribeTopicResponse, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    ListTopicsRequest, ListTopicsResponse, OffsetSpec, ProduceRequest, ProduceResponse,
    StatusResponse, TopicConfig, TopicSummary,
};
use ferry_protocol::messages::{
    CommittedOffset, DescribeGroupResponse, GroupAssignmentResponse, GroupRequest, GroupSummary,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse, ResetOffsetsRequest,
    ResetOffsetsResponse, TopicPartition, RESET_TO_OFFSET,
};
use ferry_protocol::messages::{
    CreateQueueRequest, DescribeQueueResponse, ListQueuesRequest, ListQueuesResponse, QueueRequest,
};
use prost::Message;

use crate::connection::{Connection, Response};
use crate::error::{ClientError, Result};

/// Where to start reading a partition. Parses from the strings `ferryctl` takes.
///
/// ```
/// use ferry_client::SeekTo;
/// assert_eq!("earliest".parse(), Ok(SeekTo::Earliest));
/// assert_eq!("1234".parse(), Ok(SeekTo::Offset(1234)));
/// assert_eq!("@1700000000000".parse(), Ok(SeekTo::Timestamp(1_700_000_000_000)));
/// assert!("yesterday".parse::<SeekTo>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    Earliest,
    Latest,
    Offset(u64),
    /// The first record with timestamp >= this (ms since the epoch).
    Timestamp(i64),
}

impl std::str::FromStr for SeekTo {
    type Err = String;

    /// `earliest`, `latest`, an offset, or `@TIMESTAMP_MS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" | "beginning" => Ok(SeekTo::Earliest),
            "latest" | "end" => Ok(SeekTo::Latest),
            _ => {
                if let Some(ts) = s.strip_prefix('@') {
                    return ts
                        .parse()
                        .map(SeekTo::Timestamp)
                        .map_err(|_| format!("bad timestamp in {s:?}: expected @MILLISECONDS"));
                }
                s.parse().map(SeekTo::Offset).map_err(|_| {
                    format!("expected earliest, latest, an offset or @TIMESTAMP_MS, not {s:?}")
                })
            }
        }
    }
}

/// Connection settings.
///
/// ```
/// use std::time::Duration;
/// use ferry_client::ClientOptions;
/// let options = ClientOptions { client_id: "billing".into(), connect_attempts: 10, ..ClientOptions::default() };
/// assert_eq!(options.backoff, Duration::from_millis(50));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub client_id: String,
    pub connect_timeout: Duration,
    /// Attempts per (re)connection before giving up.
    pub connect_attempts: u32,
    /// First backoff between attempts; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_id: "ferry-client".into(),
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

struct Shared {
    addr: String,
    options: ClientOptions,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

/// A connection to a Ferry broker.
///
/// ```no_run
/// # async fn demo() -> Result<(), ferry_client::ClientError> {
/// use ferry_client::Client;
/// let client = Client::connect("127.0.0.1:7171").await?;
/// client.create_topic("orders", 3).await?;
/// for topic in client.list_topics().await? {
///     println!("{} ({} partitions)", topic.name, topic.partitions);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// Connects with default options.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    pub async fn connect_with(addr: &str, options: ClientOptions) -> Result<Client> {
        let client = Client {
            shared: Arc::new(Shared {
                addr: addr.to_string(),
                options,
                connection: tokio::sync::Mutex::new(None),
            }),
        };
        client.connection().await?;
        Ok(client)
    }

    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// The live connection, reconnecting (with backoff) if it was lost.
    pub async fn connection(&self) -> Result<Arc<Connection>> {
        let mut slot = self.shared.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        let options = &self.shared.options;
        let mut backoff = options.backoff;
        let mut last_error = None;
        for attempt in 0..options.connect_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(options.max_backoff);
            }
            match Connection::connect(
                &self.shared.addr,
                &options.client_id,
                options.connect_timeout,
                None,
            )
            .await
            {
                Ok(connection) => {
                    let connection = Arc::new(connection);
                    *slot = Some(connection.clone());
                    return Ok(connection);
                }
                Err(ClientError::Broker { code, message }) => {
                    return Err(ClientError::Broker { code, message })
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Disconnected("no connection".into())))
    }

    /// Sends a request on the live connection. Idempotent requests are
    /// retried once on a new connection if the old one was lost.
    async fn call<Req: Message, Resp: Response>(
        &self,
        key: ApiKey,
        request: &Req,
        idempotent: bool,
    ) -> Result<Resp> {
        let connection = self.connection().await?;
        match connection.request(key, request).await {
            Err(error) if idempotent && error.is_connection_error() => {
                self.connection().await?.request(key, request).await
            }
            other => other,
        }
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        self.create_topic_with(
            name,
            TopicConfig {
                partitions,
                ..TopicConfig::default()
            },
        )
        .await
    }

    pub async fn create_topic_with(&self, name: &str, config: TopicConfig) -> Result<()> {
        let request = CreateTopicRequest {
            name: name.to_string(),
            config: Some(config),
        };
        self.call::<_, StatusResponse>(ApiKey::CreateTopic, &request, false)
            .await
            .map(drop)
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = DeleteTopicRequest {
            name: name.to_string(),
        };
        self.call::<_, StatusResponse>(ApiKey::DeleteTopic, &request, false)
            .await
            .map(drop)
    }

    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        let response: ListTopicsResponse = self
            .call(ApiKey::ListTopics, &ListTopicsRequest {}, true)
            .await?;
        Ok(response.topics)
    }

    pub async fn describe_topic(&self, name: &str) -> Result<DescribeTopicResponse> {
        let request = DescribeTopicRequest {
            name: name.to_string(),
        };
        self.call(ApiKey::DescribeTopic, &request, true).await
    }

    /// Appends encoded batches to a partition. Returns (base, last) offsets,
    /// or `None` with `Acks::None`.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        records: Bytes,
        acks: Acks,
    ) -> Result<Option<(u64, u64)>> {
        let request = ProduceRequest {
            topic: topic.to_string(),
            partition,
            acks: acks as u32,
            records: Bytes::new(),
        };
        let tail = Some((4, records));
        let connection = self.connection().await?;
        if acks == Acks::None {
            connection
                .send_only(ApiKey::Produce, &request, tail)
                .await?;
            return Ok(None);
        }
        let response: ProduceResponse = connection
            .request_with_tail(ApiKey::Produce, &request, tail)
            .await?;
        Ok(Some((response.base_offset, response.last_offset)))
    }

    pub async fn fetch(&self, request: &FetchRequest) -> Result<FetchResponse> {
        self.call(ApiKey::Fetch, request, true).await
    }

    /// Resolves `seek` to an offset of `topic`/`partition`.
    pub async fn resolve_offset(&self, topic: &str, partition: u32, seek: SeekTo) -> Result<u64> {
        let (spec, timestamp_ms) = match seek {
            SeekTo::Offset(offset) => return Ok(offset),
            SeekTo::Earliest => (OffsetSpec::Earliest, 0),
            SeekTo::Latest => (OffsetSpec::Latest, 0),
            SeekTo::Timestamp(ts) => (OffsetSpec::Timestamp, ts),
        };
        let request = ListOffsetsRequest {
            topic: topic.to_string(),
            partition,
            spec: spec as u32,
            timestamp_ms,
        };
        let response: ListOffsetsResponse = self.call(ApiKey::ListOffsets, &request, true).await?;
        Ok(response.offset)
    }

    pub async fn join_group(&self, request: &JoinGroupRequest) -> Result<GroupAssignmentResponse> {
        self.call(ApiKey::JoinGroup, request, false).await
    }

    pub async fn heartbeat(&self, request: &HeartbeatRequest) -> Result<GroupAssignmentResponse> {
        self.call(ApiKey::Heartbeat, request, true).await
    }

    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        let request = LeaveGroupRequest {
            group: group.to_string(),
            member_id: member_id.to_string(),
        };
        self.call::<_, StatusResponse>(ApiKey::LeaveGroup, &request, false)
            .await
            .map(drop)
    }

    /// Commits offsets (the next offset to read) for a group member; fenced
    /// by the broker if the member does not own the partitions.
    pub async fn commit_offsets(&self, request: &OffsetCommitRequest) -> Result<()> {
        self.call::<_, StatusResponse>(ApiKey::OffsetCommit, request, true)
            .await
            .map(drop)
    }

    /// Committed offsets of `group` (all of them if `partitions` is empty).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<Vec<CommittedOffset>> {
        let request = OffsetFetchRequest {
            group: group.to_string(),
            partitions,
        };
        let response: OffsetFetchResponse = self.call(ApiKey::OffsetFetch, &request, true).await?;
        Ok(response.offsets)
    }

    pub async fn describe_group(&self, group: &str) -> Result<DescribeGroupResponse> {
        let request = GroupRequest {
            group: group.to_string(),
        };
        self.call(ApiKey::DescribeGroup, &request, true).await
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        let response: ListGroupsResponse = self
            .call(ApiKey::ListGroups, &ListGroupsRequest {}, true)
            .await?;
        Ok(response.groups)
    }

    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let request = GroupRequest {
            group: group.to_string(),
        };
        self.call::<_, StatusResponse>(ApiKey::DeleteGroup, &request, false)
            .await
            .map(drop)
    }

    /// Moves a group's committed offsets for every partition of `topic`
    /// (refused while the group has live members).
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: SeekTo,
    ) -> Result<Vec<CommittedOffset>> {
        let (spec, timestamp_ms, offset) = match to {
            SeekTo::Earliest => (OffsetSpec::Earliest as u32, 0, 0),
            SeekTo::Latest => (OffsetSpec::Latest as u32, 0, 0),
            SeekTo::Timestamp(ts) => (OffsetSpec::Timestamp as u32, ts, 0),
            SeekTo::Offset(offset) => (RESET_TO_OFFSET, 0, offset),
        };
        let request = ResetOffsetsRequest {
            group: group.to_string(),
            topic: topic.to_string(),
            spec,
            timestamp_ms,
            offset,
        };
        let response: ResetOffsetsResponse =
            self.call(ApiKey::ResetOffsets, &request, false).await?;
        Ok(response.offsets)
    }

    pub async fn create_queue(&self, request: &CreateQueueRequest) -> Result<()> {
        self.call::<_, StatusResponse>(ApiKey::CreateQueue, request, false)
            .await
            .map(drop)
    }

    pub async fn delete_queue(&self, topic: &str, queue: &str) -> Result<()> {
        let request = QueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
        };
        self.call::<_, StatusResponse>(ApiKey::DeleteQueue, &request, false)
            .await
            .map(drop)
    }

    pub async fn list_queues(&self) -> Result<Vec<QueueRequest>> {
        let response: ListQueuesResponse = self
            .call(ApiKey::ListQueues, &ListQueuesRequest {}, true)
            .await?;
        Ok(response.queues)
    }

    pub async fn describe_queue(&self, topic: &str, queue: &str) -> Result<DescribeQueueResponse> {
        let request = QueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
        };
        self.call(ApiKey::DescribeQueue, &request, true).await
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// Number of partitions of a topic.
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.describe_topic(topic).await?.partitions.len() as u32)
    }
}
