//! The typed admin API of [`Client`]: topics, offsets, groups, queues and
//! broker status. Arguments are typed configs; answers are the broker's
//! descriptions.

use std::time::Duration;

use ferry_protocol::messages::{
    BrokerStatusRequest, CommittedOffset, CreateQueueRequest, CreateTopicRequest,
    DeleteGroupRequest, DeleteQueueRequest, DeleteTopicRequest, DescribeGroupRequest,
    DescribeGroupResponse, DescribeQueueRequest, DescribeQueueResponse, DescribeTopicRequest,
    DescribeTopicResponse, GroupSummary, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest,
    ListQueuesRequest, ListTopicsRequest, OffsetFetchRequest, OffsetSpecCode, ResetOffsetsRequest,
    TopicConfig, TopicPartition, TopicSummary,
};

use crate::client::Client;
use crate::error::Result;
use crate::seek::SeekTo;

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

/// What `BrokerStatus` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Client {
    /// Creates a topic with `partitions` and the broker's defaults.
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        let config = TopicConfig {
            partitions,
            ..TopicConfig::default()
        };
        self.create_topic_with(name, &config).await
    }

    /// Creates a topic with its own settings.
    pub async fn create_topic_with(&self, name: &str, config: &TopicConfig) -> Result<()> {
        let request = CreateTopicRequest {
            name: name.to_string(),
            config: Some(config.clone()),
        };
        self.call(&request).await.map(drop)
    }

    /// Deletes a topic, its data, its queues and its groups' offsets.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = DeleteTopicRequest {
            name: name.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Every topic with its partition count.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        Ok(self.call(&ListTopicsRequest {}).await?.topics)
    }

    /// A topic's settings and its partitions' offsets and sizes.
    pub async fn describe_topic(&self, name: &str) -> Result<DescribeTopicResponse> {
        let request = DescribeTopicRequest {
            name: name.to_string(),
        };
        self.call(&request).await
    }

    /// Number of partitions of a topic.
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.describe_topic(topic).await?.partitions.len() as u32)
    }

    /// Resolves `seek` to an offset of `topic`/`partition`.
    pub async fn resolve_offset(&self, topic: &str, partition: u32, seek: SeekTo) -> Result<u64> {
        let (spec, timestamp_ms) = match seek {
            SeekTo::Offset(offset) => return Ok(offset),
            SeekTo::Earliest => (OffsetSpecCode::Earliest, 0),
            SeekTo::Latest => (OffsetSpecCode::Latest, 0),
            SeekTo::Timestamp(ts) => (OffsetSpecCode::Timestamp, ts),
        };
        let request = ListOffsetsRequest {
            topic: topic.to_string(),
            partition,
            spec: spec as u32,
            timestamp_ms,
        };
        Ok(self.call(&request).await?.offset)
    }

    /// Removes a member from a group at once (its partitions move).
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        let request = LeaveGroupRequest {
            group: group.to_string(),
            member_id: member_id.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Committed offsets of `group` (all of them if `partitions` is empty).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<Vec<CommittedOffset>> {
        let request = OffsetFetchRequest {
            group: group.to_string(),
            partitions: partitions
                .iter()
                .map(|(topic, partition)| TopicPartition {
                    topic: topic.clone(),
                    partition: *partition,
                })
                .collect(),
        };
        Ok(self.call(&request).await?.offsets)
    }

    /// A group's members, assignment, committed offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<DescribeGroupResponse> {
        let request = DescribeGroupRequest {
            group: group.to_string(),
        };
        self.call(&request).await
    }

    /// Every group with live members or committed offsets.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        Ok(self.call(&ListGroupsRequest {}).await?.groups)
    }

    /// Deletes a group and its offsets (refused while it has live members).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let request = DeleteGroupRequest {
            group: group.to_string(),
        };
        self.call(&request).await.map(drop)
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
            SeekTo::Earliest => (OffsetSpecCode::Earliest, 0, 0),
            SeekTo::Latest => (OffsetSpecCode::Latest, 0, 0),
            SeekTo::Timestamp(ts) => (OffsetSpecCode::Timestamp, ts, 0),
            SeekTo::Offset(offset) => (OffsetSpecCode::Offset, 0, offset),
        };
        let request = ResetOffsetsRequest {
            group: group.to_string(),
            topic: topic.to_string(),
            spec: spec as u32,
            timestamp_ms,
            offset,
        };
        Ok(self.call(&request).await?.offsets)
    }

    /// Creates a queue on `topic`.
    pub async fn create_queue(&self, topic: &str, queue: &str, config: &QueueConfig) -> Result<()> {
        let request = CreateQueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
            ack_timeout_ms: config.ack_timeout_ms,
            max_deliveries: config.max_deliveries,
            start: match config.start {
                StartFrom::Earliest => "earliest".into(),
                StartFrom::Latest => "latest".into(),
            },
            dead_letter_topic: config.dead_letter_topic.clone().unwrap_or_default(),
        };
        self.call(&request).await.map(drop)
    }

    /// Deletes a queue and its ack state.
    pub async fn delete_queue(&self, topic: &str, queue: &str) -> Result<()> {
        let request = DeleteQueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Every queue.
    pub async fn list_queues(&self) -> Result<Vec<QueueId>> {
        let queues = self.call(&ListQueuesRequest {}).await?.queues;
        Ok(queues
            .into_iter()
            .map(|q| QueueId {
                topic: q.topic,
                queue: q.queue,
            })
            .collect())
    }

    /// A queue's counts, consumers and settings.
    pub async fn describe_queue(&self, topic: &str, queue: &str) -> Result<DescribeQueueResponse> {
        let request = DescribeQueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
        };
        self.call(&request).await
    }

    /// The broker's version, uptime, data directory and counts.
    pub async fn broker_status(&self) -> Result<BrokerStatus> {
        let status = self.call(&BrokerStatusRequest {}).await?;
        Ok(BrokerStatus {
            broker_version: status.broker_version,
            uptime: Duration::from_millis(status.uptime_ms),
            data_dir: status.data_dir,
            topics: status.topics,
            partitions: status.partitions,
            groups: status.groups,
            queues: status.queues,
            connections_open: status.connections_open,
            unhealthy_partitions: status.unhealthy_partitions,
        })
    }
}
