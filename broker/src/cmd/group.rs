//! Consumer group APIs: JoinGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, DescribeGroup, ListGroups, DeleteGroup, ResetOffsets. The
//! state machine is in `groups/`; these handlers translate and validate.

use std::collections::BTreeSet;
use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::{
    CommittedOffset, DescribeGroupResponse, GroupPartitionInfo, GroupRequest, GroupSummary,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetFetchRequest, OffsetFetchResponse, OffsetSpec, ResetOffsetsRequest, ResetOffsetsResponse,
    StatusResponse, RESET_TO_OFFSET,
};

use super::{blocking, respond, respond_error, when_durable, Reply};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::groups::{GroupView, JoinArgs};

/// Offsets one commit request may carry.
pub const COMMIT_ENTRIES_LIMIT: usize = 10_000;

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

pub fn join(broker: &Arc<Broker>, header: FrameHeader, request: JoinGroupRequest) -> Reply {
    let args = JoinArgs {
        group: request.group,
        member_id: request.member_id,
        client_id: request.client_id,
        topics: request.topics,
        assignor: request.assignor,
        session_timeout_ms: request.session_timeout_ms,
        offset_reset: request.offset_reset,
    };
    let result = broker.groups.join(args, &broker.topics.partition_counts());
    now_or_error(broker, header, result)
}

pub fn heartbeat(broker: &Arc<Broker>, header: FrameHeader, request: HeartbeatRequest) -> Reply {
    let result = broker
        .groups
        .heartbeat(&request.group, &request.member_id, &request.owned);
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

pub fn commit(broker: &Arc<Broker>, header: FrameHeader, request: OffsetCommitRequest) -> Reply {
    let appended = (|| {
        if request.offsets.len() > COMMIT_ENTRIES_LIMIT {
            return Err(BrokerError::InvalidRequest(format!(
                "more than {COMMIT_ENTRIES_LIMIT} offsets in one commit"
            )));
        }
        crate::topics::validate_topic_name(&request.group).map_err(|_| {
            BrokerError::InvalidGroup(format!("invalid group name {:?}", request.group))
        })?;
        let mut tps = Vec::with_capacity(request.offsets.len());
        for entry in &request.offsets {
            let log = broker.topics.partition(&entry.topic, entry.partition)?;
            if entry.offset > log.end_offset() {
                return Err(BrokerError::InvalidRequest(format!(
                    "offset {} of {}/{} is past the end of the partition ({})",
                    entry.offset,
                    entry.topic,
                    entry.partition,
                    log.end_offset()
                )));
            }
            tps.push((entry.topic.clone(), entry.partition));
        }
        broker
            .groups
            .check_commit(&request.group, &request.member_id, &tps)?;
        let entries = request
            .offsets
            .into_iter()
            .map(|e| (e.topic, e.partition, e.offset, e.metadata))
            .collect();
        broker.offsets.commit(&request.group, entries)
    })();
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
    Reply::Now(respond(
        header,
        &OffsetFetchResponse {
            offsets,
            ..OffsetFetchResponse::default()
        },
    ))
}

pub fn describe(broker: &Arc<Broker>, header: FrameHeader, request: GroupRequest) -> Reply {
    let committed = broker.offsets.group(&request.group);
    let described = broker.groups.describe(&request.group);
    if described.is_none() && committed.is_empty() {
        return Reply::Now(respond_error(
            broker,
            header,
            &BrokerError::UnknownGroup(request.group),
        ));
    }
    let view = described.unwrap_or_else(|| GroupView {
        state: "empty".into(),
        epoch: 0,
        assignor: "sticky".into(),
        members: Vec::new(),
        owners: Default::default(),
        topics: BTreeSet::new(),
    });
    let GroupView {
        state,
        epoch: group_epoch,
        assignor,
        members,
        owners,
        mut topics,
    } = view;
    topics.extend(committed.keys().map(|(t, _)| t.clone()));
    let mut partitions = Vec::new();
    for topic in topics {
        let Ok(found) = broker.topics.get(&topic) else {
            continue;
        };
        for (index, log) in found.partitions.iter().enumerate() {
            let partition = index as u32;
            let key = (topic.clone(), partition);
            let committed = committed.get(&key).map(|c| c.offset);
            let end_offset = log.end_offset();
            let lag = end_offset.saturating_sub(committed.unwrap_or_else(|| log.start_offset()));
            partitions.push(GroupPartitionInfo {
                topic: topic.clone(),
                partition,
                committed,
                end_offset,
                lag,
                member_id: owners.get(&key).cloned().unwrap_or_default(),
            });
        }
    }
    Reply::Now(respond(
        header,
        &DescribeGroupResponse {
            group: request.group,
            state,
            group_epoch,
            assignor,
            members,
            partitions,
            ..DescribeGroupResponse::default()
        },
    ))
}

pub fn list(broker: &Arc<Broker>, header: FrameHeader) -> Reply {
    let mut groups: std::collections::BTreeMap<String, GroupSummary> = broker
        .offsets
        .groups()
        .into_iter()
        .map(|group| {
            let summary = GroupSummary {
                group: group.clone(),
                state: "empty".into(),
                members: 0,
            };
            (group, summary)
        })
        .collect();
    for (group, state, members) in broker.groups.list() {
        groups.insert(
            group.clone(),
            GroupSummary {
                group,
                state,
                members,
            },
        );
    }
    Reply::Now(respond(
        header,
        &ListGroupsResponse {
            groups: groups.into_values().collect(),
            ..ListGroupsResponse::default()
        },
    ))
}

fn refuse_live(broker: &Broker, group: &str, action: &str) -> Result<(), BrokerError> {
    match broker.groups.live_members(group) {
        0 => Ok(()),
        n => Err(BrokerError::GroupNotEmpty(format!(
            "group {group} has {n} live member(s); stop them before you {action}"
        ))),
    }
}

pub fn delete(broker: &Arc<Broker>, header: FrameHeader, request: GroupRequest) -> Reply {
    blocking(broker, header, move |broker| {
        refuse_live(broker, &request.group, "delete it")?;
        if broker.offsets.group(&request.group).is_empty()
            && broker.groups.describe(&request.group).is_none()
        {
            return Err(BrokerError::UnknownGroup(request.group));
        }
        let durable = broker.offsets.delete_group(&request.group)?;
        futures::executor::block_on(durable)?;
        broker.groups.forget(&request.group);
        Ok(respond(header, &StatusResponse::default()))
    })
}

pub fn reset(broker: &Arc<Broker>, header: FrameHeader, request: ResetOffsetsRequest) -> Reply {
    blocking(broker, header, move |broker| {
        refuse_live(broker, &request.group, "reset its offsets")?;
        crate::topics::validate_topic_name(&request.group).map_err(|_| {
            BrokerError::InvalidGroup(format!("invalid group name {:?}", request.group))
        })?;
        let topic = broker.topics.get(&request.topic)?;
        let mut entries = Vec::new();
        for (index, log) in topic.partitions.iter().enumerate() {
            let offset = match request.spec {
                s if s == OffsetSpec::Earliest as u32 => log.start_offset(),
                s if s == OffsetSpec::Latest as u32 => log.end_offset(),
                s if s == OffsetSpec::Timestamp as u32 => log
                    .offset_for_timestamp(request.timestamp_ms)?
                    .unwrap_or_else(|| log.end_offset()),
                RESET_TO_OFFSET => {
                    if request.offset < log.start_offset() || request.offset > log.end_offset() {
                        return Err(BrokerError::InvalidRequest(format!(
                            "offset {} is outside partition {index} ([{}, {}])",
                            request.offset,
                            log.start_offset(),
                            log.end_offset()
                        )));
                    }
                    request.offset
                }
                other => {
                    return Err(BrokerError::InvalidRequest(format!(
                        "unknown reset spec {other}"
                    )))
                }
            };
            entries.push((request.topic.clone(), index as u32, offset, String::new()));
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
        futures::executor::block_on(broker.offsets.commit(&request.group, entries)?)?;
        Ok(respond(
            header,
            &ResetOffsetsResponse {
                offsets,
                ..ResetOffsetsResponse::default()
            },
        ))
    })
}
