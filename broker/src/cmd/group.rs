//! Consumer group APIs: JoinGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, DescribeGroup, ListGroups, DeleteGroup, ResetOffsets. Each
//! handler turns the wire request into typed arguments (validated once,
//! here), calls the coordinator in `groups/` or the offset store, and
//! encodes the typed answer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::{
    CommittedOffset, DeleteGroupRequest, DescribeGroupRequest, DescribeGroupResponse,
    GroupAssignmentResponse, GroupMemberInfo, GroupPartitionInfo, GroupSummary, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetFetchResponse, ResetOffsetsRequest, ResetOffsetsResponse,
    StatusResponse, TopicPartition,
};

use super::{blocking, offset_spec, respond, respond_error, when_durable, Reply};
use crate::broker::Broker;
use crate::domain::{GroupName, OffsetReset, OffsetSpec, TopicName};
use crate::error::BrokerError;
use crate::groups::{Assignor, GroupState, GroupView, JoinArgs, MemberAssignment, Tp};
use crate::topics::Topic;

/// Offsets one commit request may carry.
pub const COMMIT_ENTRIES_LIMIT: usize = 10_000;
/// Partitions one heartbeat may report as owned.
pub const OWNED_PARTITIONS_LIMIT: usize = 100_000;

fn now_or_error<M: prost::Message>(
    broker: &Arc<Broker>,
    header: FrameHeader,
    result: Result<M, BrokerError>,
) -> Reply {
    Reply::Now(match result {
        Ok(message) => respond(header, &message),
        Err(error) => respond_error(broker, header, &error),
    })
}

fn to_wire(tps: impl IntoIterator<Item = Tp>) -> Vec<TopicPartition> {
    tps.into_iter()
        .map(|(topic, partition)| TopicPartition { topic, partition })
        .collect()
}

fn assignment_response(answer: MemberAssignment) -> GroupAssignmentResponse {
    GroupAssignmentResponse {
        member_id: answer.member_id,
        member_epoch: answer.member_epoch,
        group_epoch: answer.group_epoch,
        assignment: to_wire(answer.assignment),
        heartbeat_interval_ms: answer.heartbeat_interval_ms,
        offset_reset: answer.offset_reset.as_str().to_string(),
        ..GroupAssignmentResponse::default()
    }
}

fn join_args(request: JoinGroupRequest) -> Result<JoinArgs, BrokerError> {
    let assignor =
        Assignor::parse(&request.assignor).ok_or_else(|| BrokerError::InvalidChoice {
            field: "assignor",
            expected: "sticky, range or roundrobin",
            value: request.assignor.chars().take(64).collect(),
        })?;
    let topics = request
        .topics
        .into_iter()
        .map(TopicName::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JoinArgs {
        group: GroupName::new(request.group)?,
        member_id: request.member_id,
        client_id: request.client_id,
        topics,
        assignor,
        session_timeout_ms: request.session_timeout_ms,
        offset_reset: OffsetReset::parse(&request.offset_reset)?,
    })
}

pub fn join(broker: &Arc<Broker>, header: FrameHeader, request: JoinGroupRequest) -> Reply {
    let result = join_args(request)
        .and_then(|args| broker.groups.join(args, &broker.topics.partition_counts()))
        .map(assignment_response);
    now_or_error(broker, header, result)
}

pub fn heartbeat(broker: &Arc<Broker>, header: FrameHeader, request: HeartbeatRequest) -> Reply {
    let result = if request.owned.len() > OWNED_PARTITIONS_LIMIT {
        Err(BrokerError::OverLimit {
            what: "the owned partition count",
            requested: request.owned.len() as u64,
            limit: OWNED_PARTITIONS_LIMIT as u64,
        })
    } else {
        let owned: BTreeSet<Tp> = request
            .owned
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect();
        broker
            .groups
            .heartbeat(&request.group, &request.member_id, owned)
            .map(assignment_response)
    };
    now_or_error(broker, header, result)
}

pub fn leave(broker: &Arc<Broker>, header: FrameHeader, request: LeaveGroupRequest) -> Reply {
    let result = broker
        .groups
        .leave(
            &request.group,
            &request.member_id,
            &broker.topics.partition_counts(),
        )
        .map(|()| StatusResponse::default());
    now_or_error(broker, header, result)
}

/// Checks a commit's entries against the partitions and the group's
/// ownership; returns them as offset-store entries.
fn commit_entries(
    broker: &Broker,
    group: &GroupName,
    request: OffsetCommitRequest,
) -> Result<Vec<(String, u32, u64, String)>, BrokerError> {
    if request.offsets.len() > COMMIT_ENTRIES_LIMIT {
        return Err(BrokerError::OverLimit {
            what: "the offsets in one commit",
            requested: request.offsets.len() as u64,
            limit: COMMIT_ENTRIES_LIMIT as u64,
        });
    }
    let mut tps = Vec::with_capacity(request.offsets.len());
    for entry in &request.offsets {
        let log = broker.topics.partition(&entry.topic, entry.partition)?;
        if entry.offset > log.end_offset() {
            return Err(BrokerError::OffsetOutsidePartition {
                topic: entry.topic.clone(),
                partition: entry.partition,
                offset: entry.offset,
                start: log.start_offset(),
                end: log.end_offset(),
            });
        }
        tps.push((entry.topic.clone(), entry.partition));
    }
    broker
        .groups
        .check_commit(group, &request.member_id, &tps)?;
    Ok(request
        .offsets
        .into_iter()
        .map(|e| (e.topic, e.partition, e.offset, e.metadata))
        .collect())
}

pub fn commit(broker: &Arc<Broker>, header: FrameHeader, request: OffsetCommitRequest) -> Reply {
    let appended = GroupName::new(request.group.clone()).and_then(|group| {
        let entries = commit_entries(broker, &group, request)?;
        broker.offsets.commit(&group, entries)
    });
    match appended {
        Err(error) => Reply::Now(respond_error(broker, header, &error)),
        Ok(durable) => when_durable(broker, header, durable, StatusResponse::default()),
    }
}

pub fn fetch_offsets(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: OffsetFetchRequest,
) -> Reply {
    let offsets = if request.partitions.is_empty() {
        broker
            .offsets
            .group(&request.group)
            .into_iter()
            .map(|((topic, partition), c)| CommittedOffset {
                topic,
                partition,
                offset: Some(c.offset),
                metadata: c.metadata,
            })
            .collect()
    } else {
        request
            .partitions
            .into_iter()
            .map(|tp| {
                let committed = broker.offsets.get(&request.group, &tp.topic, tp.partition);
                CommittedOffset {
                    topic: tp.topic,
                    partition: tp.partition,
                    offset: committed.as_ref().map(|c| c.offset),
                    metadata: committed.map(|c| c.metadata).unwrap_or_default(),
                }
            })
            .collect()
    };
    let response = OffsetFetchResponse {
        offsets,
        ..OffsetFetchResponse::default()
    };
    Reply::Now(respond(header, &response))
}

/// Committed offset, end and lag of every partition of `topic`.
fn partition_infos(
    topic: &Topic,
    committed: &BTreeMap<Tp, crate::groups::offsets::Committed>,
    owners: &BTreeMap<Tp, String>,
) -> Vec<GroupPartitionInfo> {
    let name = topic.meta.name.to_string();
    topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, log)| {
            let key = (name.clone(), index as u32);
            let committed = committed.get(&key).map(|c| c.offset);
            let end_offset = log.end_offset();
            GroupPartitionInfo {
                topic: name.clone(),
                partition: index as u32,
                committed,
                end_offset,
                lag: end_offset.saturating_sub(committed.unwrap_or_else(|| log.start_offset())),
                member_id: owners.get(&key).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

pub fn describe(broker: &Arc<Broker>, header: FrameHeader, request: DescribeGroupRequest) -> Reply {
    let committed = broker.offsets.group(&request.group);
    let described = broker.groups.describe(&request.group);
    if described.is_none() && committed.is_empty() {
        let error = BrokerError::UnknownGroup(request.group.chars().take(256).collect());
        return Reply::Now(respond_error(broker, header, &error));
    }
    let view = described.unwrap_or_else(GroupView::empty);
    let mut topics = view.topics.clone();
    topics.extend(committed.keys().map(|(t, _)| t.clone()));
    let partitions = topics
        .iter()
        .filter_map(|topic| broker.topics.get(topic).ok())
        .flat_map(|topic| partition_infos(&topic, &committed, &view.owners))
        .collect();
    let members = view
        .members
        .into_iter()
        .map(|m| GroupMemberInfo {
            member_id: m.member_id,
            client_id: m.client_id,
            member_epoch: m.member_epoch,
            topics: m.topics,
            assignment: to_wire(m.assignment),
        })
        .collect();
    let response = DescribeGroupResponse {
        group: request.group,
        state: view.state.as_str().to_string(),
        group_epoch: view.epoch,
        assignor: view.assignor.name().to_string(),
        members,
        partitions,
        ..DescribeGroupResponse::default()
    };
    Reply::Now(respond(header, &response))
}

pub fn list(broker: &Arc<Broker>, header: FrameHeader) -> Reply {
    let mut groups: BTreeMap<String, (GroupState, u32)> = broker
        .offsets
        .groups()
        .into_iter()
        .map(|group| (group, (GroupState::Empty, 0)))
        .collect();
    for (group, state, members) in broker.groups.list() {
        groups.insert(group, (state, members));
    }
    let groups = groups
        .into_iter()
        .map(|(group, (state, members))| GroupSummary {
            group,
            state: state.as_str().to_string(),
            members,
        })
        .collect();
    let response = ListGroupsResponse {
        groups,
        ..ListGroupsResponse::default()
    };
    Reply::Now(respond(header, &response))
}

fn refuse_live(broker: &Broker, group: &str, action: &'static str) -> Result<(), BrokerError> {
    match broker.groups.live_members(group) {
        0 => Ok(()),
        members => Err(BrokerError::GroupNotEmpty {
            group: group.to_string(),
            members,
            action,
        }),
    }
}

pub fn delete(broker: &Arc<Broker>, header: FrameHeader, request: DeleteGroupRequest) -> Reply {
    blocking(broker, header, move |broker| {
        let group = GroupName::new(request.group)?;
        refuse_live(broker, &group, "delete it")?;
        if broker.offsets.group(&group).is_empty() && broker.groups.describe(&group).is_none() {
            return Err(BrokerError::UnknownGroup(group.to_string()));
        }
        futures::executor::block_on(broker.offsets.delete_group(&group)?)?;
        broker.groups.forget(&group);
        Ok(respond(header, &StatusResponse::default()))
    })
}

/// Where `spec` puts a partition's committed offset.
fn reset_target(
    log: &ferry_storage::Log,
    topic: &str,
    partition: usize,
    spec: OffsetSpec,
) -> Result<u64, BrokerError> {
    let (start, end) = (log.start_offset(), log.end_offset());
    Ok(match spec {
        OffsetSpec::Earliest => start,
        OffsetSpec::Latest => end,
        OffsetSpec::Timestamp(ms) => log.offset_for_timestamp(ms)?.unwrap_or(end),
        OffsetSpec::Offset(offset) if (start..=end).contains(&offset) => offset,
        OffsetSpec::Offset(offset) => {
            return Err(BrokerError::OffsetOutsidePartition {
                topic: topic.to_string(),
                partition: partition as u32,
                offset,
                start,
                end,
            })
        }
    })
}

pub fn reset(broker: &Arc<Broker>, header: FrameHeader, request: ResetOffsetsRequest) -> Reply {
    blocking(broker, header, move |broker| {
        let group = GroupName::new(request.group)?;
        let spec = offset_spec(request.spec, request.timestamp_ms, request.offset)?;
        refuse_live(broker, &group, "reset its offsets")?;
        let topic = broker.topics.get(&request.topic)?;
        let name = topic.meta.name.to_string();
        let mut entries = Vec::with_capacity(topic.partitions.len());
        for (index, log) in topic.partitions.iter().enumerate() {
            let offset = reset_target(log, &name, index, spec)?;
            entries.push((name.clone(), index as u32, offset, String::new()));
        }
        let offsets = entries
            .iter()
            .map(|(topic, partition, offset, _)| CommittedOffset {
                topic: topic.clone(),
                partition: *partition,
                offset: Some(*offset),
                metadata: String::new(),
            })
            .collect();
        futures::executor::block_on(broker.offsets.commit(&group, entries)?)?;
        let response = ResetOffsetsResponse {
            offsets,
            ..ResetOffsetsResponse::default()
        };
        Ok(respond(header, &response))
    })
}
