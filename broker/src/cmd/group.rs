//! Consumer group APIs: JoinGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, DescribeGroup, ListGroups, DeleteGroup, ResetOffsets. Each
//! handler turns the wire request into typed arguments (validated once,
//! here), calls the coordinator in `groups/` or the offset store, and
//! encodes the typed answer.
//!
//! Every string and list a client sends is bounded here, before anything
//! is stored or logged: group and topic names (`NAME_MAX_BYTES`), member
//! ids ([`MEMBER_ID_MAX_BYTES`]), client ids ([`CLIENT_ID_MAX_BYTES`]),
//! offset metadata ([`OFFSET_METADATA_MAX_BYTES`]) and the lists of
//! topics, partitions and offsets (the `*_LIMIT`s below). Answers are
//! bounded by the frame limit: DescribeGroup and ListGroups list what fits
//! (members and partitions, groups), and an OffsetFetch that would not fit
//! is refused (leaving offsets out would restart partitions elsewhere).

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
use crate::domain::{GroupName, OffsetReset, OffsetSpec, TopicName, NAME_MAX_BYTES};
use crate::error::BrokerError;
use crate::groups::offsets::Committed;
use crate::groups::{Assignor, GroupState, GroupView, JoinArgs, MemberAssignment, MemberInfo, Tp};
use crate::topics::{Topic, MAX_TOPICS};

pub use crate::groups::coordinator::{CLIENT_ID_MAX_BYTES, MEMBER_ID_MAX_BYTES};
pub use crate::groups::offsets::OFFSET_METADATA_MAX_BYTES;

/// Offsets one commit request may carry.
pub const COMMIT_ENTRIES_LIMIT: usize = 10_000;
/// Partitions one heartbeat may report as owned.
pub const OWNED_PARTITIONS_LIMIT: usize = 100_000;
/// Topics one join may subscribe to (the broker holds no more).
pub const JOIN_TOPICS_LIMIT: usize = MAX_TOPICS;
/// Partitions one OffsetFetch may ask for.
pub const OFFSET_FETCH_PARTITIONS_LIMIT: usize = 10_000;
/// Room left in a frame for the header and an answer's fixed fields.
pub const RESPONSE_HEADROOM_BYTES: usize = 1024;

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

/// Refuses `text` longer than `limit` bytes.
fn bounded(field: &'static str, text: &str, limit: usize) -> Result<(), BrokerError> {
    match text.len() <= limit {
        true => Ok(()),
        false => Err(BrokerError::TooLong {
            field,
            bytes: text.len(),
            limit,
        }),
    }
}

/// Refuses a list of more than `limit` entries.
fn counted(what: &'static str, count: usize, limit: usize) -> Result<(), BrokerError> {
    match count <= limit {
        true => Ok(()),
        false => Err(BrokerError::TooMany { what, count, limit }),
    }
}

fn member_id(text: &str) -> Result<(), BrokerError> {
    bounded("member_id", text, MEMBER_ID_MAX_BYTES)
}

fn topic(text: &str) -> Result<(), BrokerError> {
    bounded("topic", text, NAME_MAX_BYTES)
}

/// The coordinator counts the groups of the offset store before it lets
/// any path create one (once per start).
fn adopt_stored(broker: &Broker) {
    broker.groups.adopt_stored(|| broker.offsets.groups());
}

/// Bytes an answer's repeated fields may take.
fn response_budget(broker: &Broker) -> usize {
    broker
        .config
        .max_frame_bytes
        .saturating_sub(RESPONSE_HEADROOM_BYTES)
}

/// What is left of a byte budget for the entries of a repeated field.
struct Budget {
    left: usize,
}

impl Budget {
    fn new(bytes: usize) -> Budget {
        Budget { left: bytes }
    }

    /// Whether `item` fits; if so its encoded size is spent.
    fn take(&mut self, item: &impl prost::Message) -> bool {
        let len = item.encoded_len();
        let bytes = 1 + prost::length_delimiter_len(len) + len;
        let fits = bytes <= self.left;
        if fits {
            self.left -= bytes;
        }
        fits
    }
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
    member_id(&request.member_id)?;
    bounded("client_id", &request.client_id, CLIENT_ID_MAX_BYTES)?;
    counted(
        "topics in one join",
        request.topics.len(),
        JOIN_TOPICS_LIMIT,
    )?;
    let group = GroupName::new(request.group)?;
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
        group,
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
        .and_then(|args| {
            adopt_stored(broker);
            broker.groups.join(args, &broker.topics.partition_counts())
        })
        .map(assignment_response);
    now_or_error(broker, header, result)
}

/// A heartbeat's owned partitions, checked.
fn owned_partitions(owned: Vec<TopicPartition>) -> Result<BTreeSet<Tp>, BrokerError> {
    counted(
        "partitions reported owned",
        owned.len(),
        OWNED_PARTITIONS_LIMIT,
    )?;
    owned
        .into_iter()
        .map(|tp| topic(&tp.topic).map(|()| (tp.topic, tp.partition)))
        .collect()
}

fn heartbeat_answer(
    broker: &Broker,
    request: HeartbeatRequest,
) -> Result<GroupAssignmentResponse, BrokerError> {
    let group = GroupName::new(request.group)?;
    member_id(&request.member_id)?;
    let owned = owned_partitions(request.owned)?;
    broker
        .groups
        .heartbeat(&group, &request.member_id, owned)
        .map(assignment_response)
}

pub fn heartbeat(broker: &Arc<Broker>, header: FrameHeader, request: HeartbeatRequest) -> Reply {
    let result = heartbeat_answer(broker, request);
    now_or_error(broker, header, result)
}

pub fn leave(broker: &Arc<Broker>, header: FrameHeader, request: LeaveGroupRequest) -> Reply {
    let result = GroupName::new(request.group).and_then(|group| {
        member_id(&request.member_id)?;
        broker
            .groups
            .leave(
                &group,
                &request.member_id,
                &broker.topics.partition_counts(),
            )
            .map(|()| StatusResponse::default())
    });
    now_or_error(broker, header, result)
}

/// Checks a commit's entries against the partitions and the group's
/// ownership (creating the group, within its limit, if it is new);
/// returns them as offset-store entries.
fn commit_entries(
    broker: &Broker,
    group: &GroupName,
    request: OffsetCommitRequest,
) -> Result<Vec<(String, u32, u64, String)>, BrokerError> {
    member_id(&request.member_id)?;
    counted(
        "offsets in one commit",
        request.offsets.len(),
        COMMIT_ENTRIES_LIMIT,
    )?;
    let mut tps = Vec::with_capacity(request.offsets.len());
    for entry in &request.offsets {
        topic(&entry.topic)?;
        bounded(
            "offset metadata",
            &entry.metadata,
            OFFSET_METADATA_MAX_BYTES,
        )?;
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
    adopt_stored(broker);
    broker
        .groups
        .admit_commit(group, &request.member_id, &tps)?;
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

fn committed_offset(
    topic: String,
    partition: u32,
    committed: Option<Committed>,
) -> CommittedOffset {
    CommittedOffset {
        topic,
        partition,
        offset: committed.as_ref().map(|c| c.offset),
        metadata: committed.map(|c| c.metadata).unwrap_or_default(),
    }
}

/// The committed offsets asked for (every one of the group's when none
/// is named); refused if they would not fit in a frame.
fn fetched_offsets(
    broker: &Broker,
    request: OffsetFetchRequest,
) -> Result<OffsetFetchResponse, BrokerError> {
    let group = GroupName::new(request.group)?;
    counted(
        "partitions in one offset fetch",
        request.partitions.len(),
        OFFSET_FETCH_PARTITIONS_LIMIT,
    )?;
    for tp in &request.partitions {
        topic(&tp.topic)?;
    }
    let wanted: Vec<CommittedOffset> = if request.partitions.is_empty() {
        broker
            .offsets
            .group(&group)
            .into_iter()
            .map(|((topic, partition), c)| committed_offset(topic, partition, Some(c)))
            .collect()
    } else {
        request
            .partitions
            .into_iter()
            .map(|tp| {
                let committed = broker.offsets.get(&group, &tp.topic, tp.partition);
                committed_offset(tp.topic, tp.partition, committed)
            })
            .collect()
    };
    let limit = response_budget(broker);
    let mut budget = Budget::new(limit);
    if !wanted.iter().all(|offset| budget.take(offset)) {
        return Err(BrokerError::ResponseTooLarge {
            what: "OffsetFetch answer",
            limit,
        });
    }
    Ok(OffsetFetchResponse {
        offsets: wanted,
        ..OffsetFetchResponse::default()
    })
}

pub fn fetch_offsets(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: OffsetFetchRequest,
) -> Reply {
    let result = fetched_offsets(broker, request);
    now_or_error(broker, header, result)
}

/// Committed offset, end and lag of partition `index` of `topic`.
fn partition_info(
    topic: &Topic,
    index: usize,
    committed: &BTreeMap<Tp, Committed>,
    owners: &BTreeMap<Tp, String>,
) -> Option<GroupPartitionInfo> {
    let log = topic.partitions.get(index)?;
    let key = (topic.meta.name.to_string(), index as u32);
    let committed = committed.get(&key).map(|c| c.offset);
    let end_offset = log.end_offset();
    Some(GroupPartitionInfo {
        member_id: owners.get(&key).cloned().unwrap_or_default(),
        topic: key.0,
        partition: index as u32,
        committed,
        end_offset,
        lag: end_offset.saturating_sub(committed.unwrap_or_else(|| log.start_offset())),
    })
}

fn member_info(member: MemberInfo) -> GroupMemberInfo {
    GroupMemberInfo {
        member_id: member.member_id,
        client_id: member.client_id,
        member_epoch: member.member_epoch,
        topics: member.topics,
        assignment: to_wire(member.assignment),
    }
}

/// The group as DescribeGroup shows it: members (within half the frame)
/// and partitions (within the rest), as many as fit.
fn described_group(
    broker: &Broker,
    request: DescribeGroupRequest,
) -> Result<DescribeGroupResponse, BrokerError> {
    let group = GroupName::new(request.group)?;
    let committed = broker.offsets.group(&group);
    let described = broker.groups.describe(&group);
    if described.is_none() && committed.is_empty() {
        return Err(BrokerError::UnknownGroup(group.to_string()));
    }
    let view = described.unwrap_or_else(GroupView::empty);
    let total = response_budget(broker);
    let mut budget = Budget::new(total / 2);
    let members: Vec<GroupMemberInfo> = view
        .members
        .into_iter()
        .map(member_info)
        .take_while(|m| budget.take(m))
        .collect();
    let mut budget = Budget::new(total - (total / 2 - budget.left));
    let mut topics = view.topics;
    topics.extend(committed.keys().map(|(t, _)| t.clone()));
    let (committed, owners) = (&committed, &view.owners);
    let partitions = topics
        .iter()
        .filter_map(|topic| broker.topics.get(topic).ok())
        .flat_map(|topic| {
            (0..topic.partitions.len())
                .filter_map(move |index| partition_info(&topic, index, committed, owners))
        })
        .take_while(|p| budget.take(p))
        .collect();
    Ok(DescribeGroupResponse {
        group: group.to_string(),
        state: view.state.as_str().to_string(),
        group_epoch: view.epoch,
        assignor: view.assignor.name().to_string(),
        members,
        partitions,
        ..DescribeGroupResponse::default()
    })
}

pub fn describe(broker: &Arc<Broker>, header: FrameHeader, request: DescribeGroupRequest) -> Reply {
    let result = described_group(broker, request);
    now_or_error(broker, header, result)
}

/// Every group (with members or committed offsets), as many as fit.
/// Groups the caller may describe (`visible`).
pub fn list(broker: &Arc<Broker>, header: FrameHeader, visible: &dyn Fn(&str) -> bool) -> Reply {
    let mut groups: BTreeMap<String, (GroupState, u32)> = broker
        .offsets
        .groups()
        .into_iter()
        .map(|group| (group, (GroupState::Empty, 0)))
        .collect();
    for (group, state, members) in broker.groups.list() {
        groups.insert(group, (state, members));
    }
    groups.retain(|group, _| visible(group));
    let mut budget = Budget::new(response_budget(broker));
    let groups = groups
        .into_iter()
        .map(|(group, (state, members))| GroupSummary {
            group,
            state: state.as_str().to_string(),
            members,
        })
        .take_while(|summary| budget.take(summary))
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

/// Where a reset moves each partition.
#[derive(Debug, Clone, Copy)]
enum ResetTo {
    Spec(OffsetSpec),
    /// From the committed offset (the start if none), within the partition.
    ShiftBy(i64),
}

/// A partition's offset `shift` records from `from`, within `start..=end`.
fn shifted(from: u64, shift: i64, start: u64, end: u64) -> u64 {
    let moved = match shift.is_negative() {
        true => from.saturating_sub(shift.unsigned_abs()),
        false => from.saturating_add(shift.unsigned_abs()),
    };
    moved.clamp(start, end.max(start))
}

pub fn reset(broker: &Arc<Broker>, header: FrameHeader, request: ResetOffsetsRequest) -> Reply {
    blocking(broker, header, move |broker| {
        let group = GroupName::new(request.group)?;
        let to = match request.shift_by {
            Some(shift) => ResetTo::ShiftBy(shift),
            None => ResetTo::Spec(offset_spec(
                request.spec,
                request.timestamp_ms,
                request.offset,
            )?),
        };
        topic(&request.topic)?;
        if !request.dry_run {
            refuse_live(broker, &group, "reset its offsets")?;
        }
        let topic = broker.topics.get(&request.topic)?;
        let name = topic.meta.name.to_string();
        let mut entries = Vec::with_capacity(topic.partitions.len());
        for (index, log) in topic.partitions.iter().enumerate() {
            let offset = match to {
                ResetTo::Spec(spec) => reset_target(log, &name, index, spec)?,
                ResetTo::ShiftBy(shift) => {
                    let (start, end) = (log.start_offset(), log.end_offset());
                    let committed = broker.offsets.get(group.as_str(), &name, index as u32);
                    shifted(committed.map_or(start, |c| c.offset), shift, start, end)
                }
            };
            entries.push((name.clone(), index as u32, offset, String::new()));
        }
        if request.dry_run {
            return Ok(respond(header, &reset_response(&entries)));
        }
        adopt_stored(broker);
        broker.groups.admit_commit(&group, "", &[])?;
        let response = reset_response(&entries);
        futures::executor::block_on(broker.offsets.commit(&group, entries)?)?;
        Ok(respond(header, &response))
    })
}

/// The answer to a reset: every partition's new offset.
fn reset_response(entries: &[(String, u32, u64, String)]) -> ResetOffsetsResponse {
    let offsets = entries
        .iter()
        .map(|(topic, partition, offset, _)| CommittedOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: Some(*offset),
            metadata: String::new(),
        })
        .collect();
    ResetOffsetsResponse {
        offsets,
        ..ResetOffsetsResponse::default()
    }
}
