//! The one place admin types meet wire messages: typed configs become wire
//! requests, wire answers become the typed descriptions of `types.rs`. A
//! value the client does not know (a group state, an fsync policy, an
//! assignor) is a [`ClientError::UnexpectedAnswer`], never a panic.

use std::time::Duration;

use ferry_protocol::messages as wire;

use super::types::{
    BrokerStatus, CommittedOffset, FsyncPolicy, GroupDescription, GroupInfo, GroupPartitionInfo,
    GroupState, MemberInfo, PartitionInfo, QueueConfig, QueueConsumerInfo, QueueDescription,
    QueueId, StartFrom, TopicConfig, TopicDescription, TopicInfo,
};
use crate::error::{ClientError, Result};
use crate::group::Assignor;
use crate::seek::SeekTo;

/// The wire form of a topic config.
pub(crate) fn topic_config_to_wire(config: &TopicConfig) -> wire::TopicConfig {
    wire::TopicConfig {
        partitions: config.partitions,
        retention_ms: config.retention_ms,
        retention_bytes: config.retention_bytes,
        segment_bytes: config.segment_bytes,
        fsync: config.fsync.map(|policy| policy.to_string()),
        segment_ms: config.segment_ms,
    }
}

fn topic_config(config: wire::TopicConfig) -> Result<TopicConfig> {
    let fsync = config
        .fsync
        .map(|text| {
            text.parse::<FsyncPolicy>()
                .map_err(|_| unexpected("fsync policy", text))
        })
        .transpose()?;
    Ok(TopicConfig {
        partitions: config.partitions,
        retention_ms: config.retention_ms,
        retention_bytes: config.retention_bytes,
        segment_bytes: config.segment_bytes,
        segment_ms: config.segment_ms,
        fsync,
    })
}

pub(crate) fn topic_info(topic: wire::TopicSummary) -> TopicInfo {
    TopicInfo {
        name: topic.name,
        partitions: topic.partitions,
    }
}

pub(crate) fn topic_description(topic: wire::DescribeTopicResponse) -> Result<TopicDescription> {
    Ok(TopicDescription {
        name: topic.name,
        config: topic.config.map(topic_config).transpose()?,
        partitions: topic.partitions.into_iter().map(partition_info).collect(),
    })
}

fn partition_info(p: wire::PartitionInfo) -> PartitionInfo {
    PartitionInfo {
        partition: p.partition,
        start_offset: p.start_offset,
        end_offset: p.end_offset,
        size_bytes: p.size_bytes,
        segments: p.segments,
        durable_offset: p.durable_offset,
        problem: non_empty(p.problem),
    }
}

/// The spec, timestamp and offset fields of a ListOffsets or ResetOffsets
/// request for `seek`.
pub(crate) fn offset_spec(seek: SeekTo) -> (wire::OffsetSpecCode, i64, u64) {
    match seek {
        SeekTo::Earliest => (wire::OffsetSpecCode::Earliest, 0, 0),
        SeekTo::Latest => (wire::OffsetSpecCode::Latest, 0, 0),
        SeekTo::Timestamp(ts) => (wire::OffsetSpecCode::Timestamp, ts, 0),
        SeekTo::Offset(offset) => (wire::OffsetSpecCode::Offset, 0, offset),
    }
}

pub(crate) fn topic_partitions(partitions: &[(String, u32)]) -> Vec<wire::TopicPartition> {
    partitions
        .iter()
        .map(|(topic, partition)| wire::TopicPartition {
            topic: topic.clone(),
            partition: *partition,
        })
        .collect()
}

pub(crate) fn committed_offset(offset: wire::CommittedOffset) -> CommittedOffset {
    CommittedOffset {
        topic: offset.topic,
        partition: offset.partition,
        offset: offset.offset,
        metadata: offset.metadata,
    }
}

fn group_state(state: String) -> Result<GroupState> {
    match state.as_str() {
        "empty" => Ok(GroupState::Empty),
        "stable" => Ok(GroupState::Stable),
        "reconciling" => Ok(GroupState::Reconciling),
        _ => Err(unexpected("group state", state)),
    }
}

pub(crate) fn group_info(group: wire::GroupSummary) -> Result<GroupInfo> {
    Ok(GroupInfo {
        group: group.group,
        state: group_state(group.state)?,
        members: group.members,
    })
}

pub(crate) fn group_description(group: wire::DescribeGroupResponse) -> Result<GroupDescription> {
    // The broker names the default (sticky) assignor "" in old records.
    let assignor = match group.assignor.as_str() {
        "" => Assignor::Sticky,
        name => name
            .parse()
            .map_err(|_| unexpected("assignor", group.assignor.clone()))?,
    };
    Ok(GroupDescription {
        group: group.group,
        state: group_state(group.state)?,
        group_epoch: group.group_epoch,
        assignor,
        members: group.members.into_iter().map(member_info).collect(),
        partitions: group
            .partitions
            .into_iter()
            .map(group_partition_info)
            .collect(),
    })
}

fn member_info(member: wire::GroupMemberInfo) -> MemberInfo {
    MemberInfo {
        member_id: member.member_id,
        client_id: member.client_id,
        member_epoch: member.member_epoch,
        topics: member.topics,
        assignment: member
            .assignment
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect(),
    }
}

fn group_partition_info(p: wire::GroupPartitionInfo) -> GroupPartitionInfo {
    GroupPartitionInfo {
        topic: p.topic,
        partition: p.partition,
        committed: p.committed,
        end_offset: p.end_offset,
        lag: p.lag,
        member_id: non_empty(p.member_id),
    }
}

/// The wire request creating queue `topic`/`queue` with `config`.
pub(crate) fn create_queue_request(
    topic: &str,
    queue: &str,
    config: &QueueConfig,
) -> wire::CreateQueueRequest {
    wire::CreateQueueRequest {
        topic: topic.to_string(),
        queue: queue.to_string(),
        ack_timeout_ms: config.ack_timeout_ms,
        max_deliveries: config.max_deliveries,
        start: match config.start {
            StartFrom::Earliest => "earliest".into(),
            StartFrom::Latest => "latest".into(),
        },
        dead_letter_topic: config.dead_letter_topic.clone().unwrap_or_default(),
    }
}

pub(crate) fn queue_id(queue: wire::QueueName) -> QueueId {
    QueueId {
        topic: queue.topic,
        queue: queue.queue,
    }
}

pub(crate) fn queue_description(d: wire::DescribeQueueResponse) -> QueueDescription {
    QueueDescription {
        topic: d.topic,
        queue: d.queue,
        ready: d.ready,
        in_flight: d.in_flight,
        acked: d.acked,
        dead_lettered: d.dead_lettered,
        scheduled: d.scheduled,
        consumers: d.consumers.into_iter().map(queue_consumer_info).collect(),
        ack_timeout_ms: d.ack_timeout_ms,
        max_deliveries: d.max_deliveries,
        dead_letter_topic: d.dead_letter_topic,
    }
}

fn queue_consumer_info(c: wire::QueueConsumerInfo) -> QueueConsumerInfo {
    QueueConsumerInfo {
        subscription_id: c.subscription_id,
        prefetch: c.prefetch,
        in_flight: c.in_flight,
        delivered: c.delivered,
    }
}

pub(crate) fn broker_status(status: wire::BrokerStatusResponse) -> BrokerStatus {
    BrokerStatus {
        broker_version: status.broker_version,
        uptime: Duration::from_millis(status.uptime_ms),
        data_dir: status.data_dir,
        topics: status.topics,
        partitions: status.partitions,
        groups: status.groups,
        queues: status.queues,
        connections_open: status.connections_open,
        unhealthy_partitions: status.unhealthy_partitions,
    }
}

/// The wire's "empty means none".
fn non_empty(text: String) -> Option<String> {
    Some(text).filter(|t| !t.is_empty())
}

fn unexpected(field: &'static str, value: String) -> ClientError {
    ClientError::UnexpectedAnswer {
        field,
        // Bounded: the value ends up in messages and logs.
        value: value.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policies_round_trip_through_the_wire_form() {
        for policy in [
            FsyncPolicy::Always,
            FsyncPolicy::Never,
            FsyncPolicy::IntervalMs(250),
        ] {
            let config = TopicConfig {
                fsync: Some(policy),
                ..TopicConfig::default()
            };
            let back = topic_config(topic_config_to_wire(&config));
            assert_eq!(back.ok(), Some(config));
        }
    }

    #[test]
    fn unknown_values_from_the_broker_are_errors_not_panics() {
        let summary = wire::GroupSummary {
            group: "g".into(),
            state: "dead".into(),
            members: 0,
        };
        assert!(matches!(
            group_info(summary),
            Err(ClientError::UnexpectedAnswer {
                field: "group state",
                ..
            })
        ));
        let described = wire::DescribeTopicResponse {
            config: Some(wire::TopicConfig {
                fsync: Some("sometimes".into()),
                ..wire::TopicConfig::default()
            }),
            ..wire::DescribeTopicResponse::default()
        };
        assert!(topic_description(described).is_err());
    }

    #[test]
    fn empty_wire_strings_become_none() {
        let p = partition_info(wire::PartitionInfo::default());
        assert_eq!(p.problem, None);
        let g = group_partition_info(wire::GroupPartitionInfo {
            member_id: "m-1".into(),
            ..wire::GroupPartitionInfo::default()
        });
        assert_eq!(g.member_id.as_deref(), Some("m-1"));
    }
}
