//! The one place admin types meet wire messages: typed configs (and ACL
//! rules, quotas, SCRAM credentials) become wire requests, wire answers
//! become the typed descriptions of `types.rs`. A value the client does not
//! know (a group state, an fsync policy, an assignor, an ACL operation
//! number, an authentication method) is a [`ClientError::UnexpectedAnswer`],
//! never a panic.

use std::net::IpAddr;
use std::time::Duration;

use ferry_protocol::messages as wire;
use ferry_protocol::scram::StoredCredentials;

use super::types::{
    AclOperation, AclPermission, AclRule, AuthMethod, BrokerStatus, CommittedOffset, FsyncPolicy,
    GroupDescription, GroupInfo, GroupPartitionInfo, GroupState, MemberInfo, NewToken,
    PartitionInfo, PatternType, QueueConfig, QueueConsumerInfo, QueueDescription, QueueId,
    QuotaSpec, ResourceType, StartFrom, TokenInfo, TopicConfig, TopicDescription, TopicInfo,
    UserInfo, WhoAmI,
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
        producers: p.producers,
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

pub(crate) fn who_am_i(answer: wire::WhoAmIResponse) -> Result<WhoAmI> {
    let authenticated_by = answer
        .authenticated_by
        .parse::<AuthMethod>()
        .map_err(|_| unexpected("authenticated_by", answer.authenticated_by.clone()))?;
    Ok(WhoAmI {
        principal: answer.principal,
        authenticated_by,
        super_user: answer.super_user,
    })
}

/// The wire form of what the broker stores for a SCRAM user.
pub(crate) fn scram_credentials(credentials: &StoredCredentials) -> wire::ScramCredentials {
    wire::ScramCredentials {
        salt: credentials.salt.clone(),
        iterations: credentials.iterations,
        stored_key: credentials.stored_key.to_vec(),
        server_key: credentials.server_key.to_vec(),
    }
}

pub(crate) fn user_info(user: wire::UserInfo) -> UserInfo {
    UserInfo {
        name: user.name,
        iterations: user.iterations,
        super_user: user.super_user,
        tokens: user.tokens,
    }
}

/// `CreateTokenRequest::expires_in_ms`: 0 = never, so a zero lifetime is
/// the shortest one the wire can say (1 ms), not "never".
pub(crate) fn expires_in_ms(expires_in: Option<Duration>) -> u64 {
    match expires_in {
        None => 0,
        Some(lifetime) => u64::try_from(lifetime.as_millis())
            .unwrap_or(u64::MAX)
            .max(1),
    }
}

pub(crate) fn new_token(answer: wire::CreateTokenResponse) -> NewToken {
    NewToken {
        token: answer.token,
        id: answer.id,
        expires_at_ms: non_zero(answer.expires_at_ms),
    }
}

pub(crate) fn token_info(token: wire::TokenInfo) -> TokenInfo {
    TokenInfo {
        id: token.id,
        user: token.user,
        created_at_ms: token.created_at_ms,
        expires_at_ms: non_zero(token.expires_at_ms),
    }
}

/// The wire form of an ACL rule: enums as their position in `ALL` (the
/// wire order), no host as "".
pub(crate) fn acl_to_wire(rule: &AclRule) -> wire::AclBinding {
    wire::AclBinding {
        principal: rule.principal.clone(),
        resource_type: wire_value(ResourceType::ALL, rule.resource_type),
        pattern: wire_value(PatternType::ALL, rule.pattern),
        resource_name: rule.resource_name.clone(),
        operation: wire_value(AclOperation::ALL, rule.operation),
        permission: wire_value(AclPermission::ALL, rule.permission),
        host: rule.host.map(|ip| ip.to_string()).unwrap_or_default(),
    }
}

pub(crate) fn acl_rule(binding: wire::AclBinding) -> Result<AclRule> {
    let host = match binding.host.as_str() {
        "" => None,
        text => Some(
            text.parse::<IpAddr>()
                .map_err(|_| unexpected("ACL host", binding.host.clone()))?,
        ),
    };
    Ok(AclRule {
        principal: binding.principal,
        resource_type: from_wire(
            ResourceType::ALL,
            "ACL resource type",
            binding.resource_type,
        )?,
        pattern: from_wire(PatternType::ALL, "ACL pattern", binding.pattern)?,
        resource_name: binding.resource_name,
        operation: from_wire(AclOperation::ALL, "ACL operation", binding.operation)?,
        permission: from_wire(AclPermission::ALL, "ACL permission", binding.permission)?,
        host,
    })
}

/// `value`'s wire number: its position in `all`.
fn wire_value<T: Copy + PartialEq>(all: &[T], value: T) -> u32 {
    let position = all.iter().position(|v| *v == value);
    // Every value is in its type's `ALL`, which is at most a few long.
    position.map_or(u32::MAX, |p| p as u32)
}

/// The value whose wire number is `number`.
fn from_wire<T: Copy>(all: &[T], field: &'static str, number: u32) -> Result<T> {
    usize::try_from(number)
        .ok()
        .and_then(|index| all.get(index).copied())
        .ok_or_else(|| unexpected(field, number.to_string()))
}

pub(crate) fn quota_to_wire(quota: &QuotaSpec) -> wire::QuotaEntry {
    wire::QuotaEntry {
        principal: quota.principal.clone(),
        produce_bytes_per_sec: quota.produce_bytes_per_sec,
        fetch_bytes_per_sec: quota.fetch_bytes_per_sec,
        requests_per_sec: quota.requests_per_sec,
    }
}

pub(crate) fn quota_spec(entry: wire::QuotaEntry) -> QuotaSpec {
    QuotaSpec {
        principal: entry.principal,
        produce_bytes_per_sec: entry.produce_bytes_per_sec,
        fetch_bytes_per_sec: entry.fetch_bytes_per_sec,
        requests_per_sec: entry.requests_per_sec,
    }
}

/// The wire's "0 means never".
fn non_zero(value: u64) -> Option<u64> {
    Some(value).filter(|v| *v != 0)
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

    fn rule(host: Option<IpAddr>) -> AclRule {
        AclRule {
            principal: "User:alice".into(),
            resource_type: ResourceType::Queue,
            pattern: PatternType::Prefixed,
            resource_name: "orders/".into(),
            operation: AclOperation::Describe,
            permission: AclPermission::Deny,
            host,
        }
    }

    #[test]
    fn acl_rules_round_trip_through_the_wire_form() {
        for host in [
            None,
            Some("10.0.0.7".parse().unwrap()),
            Some("::1".parse().unwrap()),
        ] {
            let rule = rule(host);
            assert_eq!(acl_rule(acl_to_wire(&rule)).ok(), Some(rule));
        }
    }

    #[test]
    fn acl_enums_have_the_documented_wire_numbers() {
        let types: Vec<u32> = ResourceType::ALL
            .iter()
            .map(|t| wire_value(ResourceType::ALL, *t))
            .collect();
        assert_eq!(types, [0, 1, 2, 3]);
        assert_eq!(wire_value(ResourceType::ALL, ResourceType::Cluster), 0);
        assert_eq!(wire_value(ResourceType::ALL, ResourceType::Queue), 3);
        assert_eq!(wire_value(PatternType::ALL, PatternType::Prefixed), 1);
        assert_eq!(wire_value(AclOperation::ALL, AclOperation::Read), 0);
        assert_eq!(wire_value(AclOperation::ALL, AclOperation::Write), 1);
        assert_eq!(wire_value(AclOperation::ALL, AclOperation::Alter), 4);
        assert_eq!(wire_value(AclOperation::ALL, AclOperation::Describe), 5);
        assert_eq!(wire_value(AclPermission::ALL, AclPermission::Deny), 1);
        let binding = acl_to_wire(&rule(None));
        assert_eq!(
            (
                binding.resource_type,
                binding.pattern,
                binding.operation,
                binding.permission
            ),
            (3, 1, 5, 1)
        );
        assert_eq!(binding.host, "");
    }

    #[test]
    fn unknown_acl_numbers_and_hosts_are_errors_not_panics() {
        let bad_operation = wire::AclBinding {
            operation: 6,
            ..acl_to_wire(&rule(None))
        };
        assert!(matches!(
            acl_rule(bad_operation),
            Err(ClientError::UnexpectedAnswer {
                field: "ACL operation",
                ..
            })
        ));
        let bad_host = wire::AclBinding {
            host: "somewhere".into(),
            ..acl_to_wire(&rule(None))
        };
        assert!(acl_rule(bad_host).is_err());
        let huge = wire::AclBinding {
            resource_type: u32::MAX,
            ..acl_to_wire(&rule(None))
        };
        assert!(acl_rule(huge).is_err());
    }

    #[test]
    fn quotas_round_trip_and_unset_rates_stay_unset() {
        let quota = QuotaSpec {
            principal: "User:bob".into(),
            produce_bytes_per_sec: Some(1 << 20),
            fetch_bytes_per_sec: None,
            requests_per_sec: Some(0),
        };
        assert_eq!(quota_spec(quota_to_wire(&quota)), quota);
    }

    #[test]
    fn token_lifetimes_and_expiries_map_zero_to_never() {
        assert_eq!(expires_in_ms(None), 0);
        assert_eq!(expires_in_ms(Some(Duration::ZERO)), 1);
        assert_eq!(
            expires_in_ms(Some(Duration::from_secs(30 * 86_400))),
            2_592_000_000
        );
        assert_eq!(expires_in_ms(Some(Duration::MAX)), u64::MAX);
        let listed = token_info(wire::TokenInfo {
            id: "t1".into(),
            user: "alice".into(),
            created_at_ms: 5,
            expires_at_ms: 0,
        });
        assert_eq!(listed.expires_at_ms, None);
        let made = new_token(wire::CreateTokenResponse {
            token: "secret".into(),
            id: "t2".into(),
            expires_at_ms: 99,
            ..wire::CreateTokenResponse::default()
        });
        assert_eq!((made.id.as_str(), made.expires_at_ms), ("t2", Some(99)));
        assert!(!format!("{made:?}").contains("secret"));
    }

    #[test]
    fn who_am_i_methods_parse_and_unknown_ones_are_refused() {
        let answer = |method: &str| wire::WhoAmIResponse {
            principal: "User:admin".into(),
            authenticated_by: method.into(),
            super_user: true,
            ..wire::WhoAmIResponse::default()
        };
        let me = who_am_i(answer("SCRAM-SHA-256")).ok();
        assert_eq!(me.map(|m| m.authenticated_by), Some(AuthMethod::Scram));
        for (text, method) in [
            ("none", AuthMethod::None),
            ("FERRY-TOKEN", AuthMethod::Token),
            ("certificate", AuthMethod::Certificate),
        ] {
            assert_eq!(
                who_am_i(answer(text)).ok().map(|m| m.authenticated_by),
                Some(method)
            );
        }
        assert!(who_am_i(answer("kerberos")).is_err());
    }

    #[test]
    fn acl_names_parse_case_insensitively_and_display_lowercase() {
        assert_eq!("WRITE".parse::<AclOperation>(), Ok(AclOperation::Write));
        assert_eq!(AclOperation::Write.to_string(), "write");
        assert_eq!("prefixed".parse::<PatternType>(), Ok(PatternType::Prefixed));
        let refused = "publish".parse::<AclOperation>().unwrap_err();
        assert!(refused.to_string().contains("read, write"), "{refused}");
    }
}
