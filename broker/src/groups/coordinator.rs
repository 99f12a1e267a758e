//! The group coordinator's state machine: every group, driven by method
//! calls that carry the current time (`now`) and the topics' partition
//! counts, and returning what each member should do next
//! ([`MemberAssignment`]). No locks, clocks or wire types here: the shared
//! handle in `mod.rs` adds the lock and the clock, `cmd/group.rs` the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::assignor::{Assignor, Tp};
use super::group::{Group, GroupState, Member};
use crate::domain::{GroupName, OffsetReset, TopicName};
use crate::error::{BrokerError, FenceReason, Result};

pub const SESSION_TIMEOUT_MIN_MS: u32 = 100;
pub const SESSION_TIMEOUT_MAX_MS: u32 = 300_000;
pub const MEMBERS_PER_GROUP_LIMIT: usize = 1000;
pub const GROUPS_LIMIT: usize = 100_000;
/// Longest member id a client may send back (ours are far shorter).
pub const MEMBER_ID_MAX_BYTES: usize = 128;
/// Client ids are kept (and logged) up to this length.
pub const CLIENT_ID_MAX_BYTES: usize = 256;
const HEARTBEAT_INTERVAL_MIN_MS: u32 = 20;
const HEARTBEAT_INTERVAL_MAX_MS: u32 = 3000;

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub default_session_timeout_ms: u32,
    /// Empty groups (and their offsets) are deleted after this long.
    pub empty_group_retention_ms: u64,
}

/// A join, with every argument already validated.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    pub group: GroupName,
    /// Empty on a first join: the broker assigns one.
    pub member_id: String,
    pub client_id: String,
    pub topics: Vec<TopicName>,
    pub assignor: Assignor,
    /// 0 = the broker default; otherwise clamped to the allowed range.
    pub session_timeout_ms: u32,
    pub offset_reset: OffsetReset,
}

/// What a member may consume now (the answer to join and heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAssignment {
    pub member_id: String,
    pub member_epoch: u64,
    pub group_epoch: u64,
    pub assignment: BTreeSet<Tp>,
    pub heartbeat_interval_ms: u32,
    pub offset_reset: OffsetReset,
}

/// One member as DescribeGroup shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    pub client_id: String,
    pub member_epoch: u64,
    pub topics: Vec<String>,
    pub assignment: Vec<Tp>,
}

/// A group as DescribeGroup shows it.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub state: GroupState,
    pub epoch: u64,
    pub assignor: Assignor,
    pub members: Vec<MemberInfo>,
    /// Which member consumes each partition now.
    pub owners: BTreeMap<Tp, String>,
    /// Every topic some member subscribes to.
    pub topics: BTreeSet<String>,
}

impl GroupView {
    /// The view of a group known only by its committed offsets.
    pub fn empty() -> GroupView {
        GroupView {
            state: GroupState::Empty,
            epoch: 0,
            assignor: Assignor::Sticky,
            members: Vec::new(),
            owners: BTreeMap::new(),
            topics: BTreeSet::new(),
        }
    }
}

/// Every group of the broker.
pub struct Coordinator {
    groups: BTreeMap<String, Group>,
    config: GroupConfig,
}

fn heartbeat_interval_ms(session: Duration) -> u32 {
    (session.as_millis() as u32 / 5).clamp(HEARTBEAT_INTERVAL_MIN_MS, HEARTBEAT_INTERVAL_MAX_MS)
}

fn answer(group: &Group, member_id: &str) -> MemberAssignment {
    let member = &group.members[member_id];
    MemberAssignment {
        member_id: member_id.to_string(),
        member_epoch: member.epoch,
        group_epoch: group.epoch,
        assignment: member.assigned.clone(),
        heartbeat_interval_ms: heartbeat_interval_ms(member.session_timeout),
        offset_reset: member.offset_reset,
    }
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            groups: BTreeMap::new(),
            config,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn session_timeout(&self, requested_ms: u32) -> Duration {
        let ms = match requested_ms {
            0 => self.config.default_session_timeout_ms,
            ms => ms.clamp(SESSION_TIMEOUT_MIN_MS, SESSION_TIMEOUT_MAX_MS),
        };
        Duration::from_millis(u64::from(ms))
    }

    /// The group, created (within the group limit) if it is new.
    fn group_mut(
        &mut self,
        name: &GroupName,
        assignor: Assignor,
        now: Instant,
    ) -> Result<&mut Group> {
        if !self.groups.contains_key(name.as_str()) && self.groups.len() >= GROUPS_LIMIT {
            return Err(BrokerError::Full {
                what: "groups",
                limit: GROUPS_LIMIT as u64,
            });
        }
        Ok(self
            .groups
            .entry(name.to_string())
            .or_insert_with(|| Group::new(assignor, now)))
    }

    /// Joins (or rejoins) a member. `partitions`: partition count of every
    /// topic a member may name.
    pub fn join(
        &mut self,
        args: JoinArgs,
        partitions: &BTreeMap<String, u32>,
        now: Instant,
    ) -> Result<MemberAssignment> {
        if args.topics.is_empty() {
            return Err(BrokerError::NoTopics);
        }
        if let Some(unknown) = args
            .topics
            .iter()
            .find(|t| !partitions.contains_key(t.as_str()))
        {
            return Err(BrokerError::UnknownTopic(unknown.to_string()));
        }
        if args.member_id.len() > MEMBER_ID_MAX_BYTES {
            return Err(BrokerError::UnknownMember(
                args.member_id.chars().take(64).collect(),
            ));
        }
        let session_timeout = self.session_timeout(args.session_timeout_ms);
        let group = self.group_mut(&args.group, args.assignor, now)?;
        let member_id = match args.member_id.is_empty() {
            true => new_member_id(&args.client_id),
            false => args.member_id.clone(),
        };
        if !group.members.contains_key(&member_id) && group.members.len() >= MEMBERS_PER_GROUP_LIMIT
        {
            return Err(BrokerError::GroupFull {
                group: args.group.to_string(),
                limit: MEMBERS_PER_GROUP_LIMIT as u64,
            });
        }
        if group.members.is_empty() {
            group.assignor = args.assignor;
        }
        let topics: BTreeSet<String> = args.topics.iter().map(|t| t.to_string()).collect();
        let member = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                client_id: args.client_id.chars().take(CLIENT_ID_MAX_BYTES).collect(),
                topics: BTreeSet::new(),
                session_timeout,
                last_seen: now,
                epoch: 0,
                assigned: BTreeSet::new(),
                owned: BTreeSet::new(),
                offset_reset: args.offset_reset,
            });
        member.last_seen = now;
        member.session_timeout = session_timeout;
        member.offset_reset = args.offset_reset;
        let changed = member.topics != topics;
        member.topics = topics;
        group.empty_since = None;
        group.fenced.retain(|id| *id != member_id);
        if changed || !group.target.contains_key(&member_id) {
            group.retarget(partitions);
        }
        group.reconcile(&member_id);
        tracing::info!(group = %args.group, member = %member_id, epoch = group.epoch, "member joined");
        Ok(answer(group, &member_id))
    }

    /// A member reports what it consumes; the answer is what it may consume.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        owned: BTreeSet<Tp>,
        now: Instant,
    ) -> Result<MemberAssignment> {
        let unknown = || BrokerError::UnknownMember(member_id.chars().take(64).collect());
        let group = self.groups.get_mut(group_id).ok_or_else(unknown)?;
        let fenced = group.is_fenced(member_id);
        let Some(member) = group.members.get_mut(member_id) else {
            return Err(match fenced {
                true => fenced_error(group_id, member_id, FenceReason::Removed),
                false => unknown(),
            });
        };
        member.last_seen = now;
        member.owned = owned;
        group.reconcile(member_id);
        Ok(answer(group, member_id))
    }

    /// A member leaves at once (its partitions move).
    pub fn leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        partitions: &BTreeMap<String, u32>,
        now: Instant,
    ) -> Result<()> {
        let unknown = || BrokerError::UnknownMember(member_id.chars().take(64).collect());
        let group = self.groups.get_mut(group_id).ok_or_else(unknown)?;
        if !group.remove(member_id, false, now) {
            return Err(unknown());
        }
        group.retarget(partitions);
        group.check_invariants();
        tracing::info!(group = group_id, member = member_id, "member left");
        Ok(())
    }

    /// Removes members whose session lapsed; returns (group, member) pairs.
    pub fn expire_sessions(
        &mut self,
        partitions: &BTreeMap<String, u32>,
        now: Instant,
    ) -> Vec<(String, String)> {
        let mut expired = Vec::new();
        for (group_id, group) in self.groups.iter_mut() {
            let lapsed: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| now.saturating_duration_since(m.last_seen) > m.session_timeout)
                .map(|(id, _)| id.clone())
                .collect();
            for member_id in &lapsed {
                group.remove(member_id, true, now);
                tracing::info!(group = %group_id, member = %member_id, "member session expired: removed and fenced");
                expired.push((group_id.clone(), member_id.clone()));
            }
            if !lapsed.is_empty() {
                group.retarget(partitions);
                group.check_invariants();
            }
        }
        expired
    }

    /// Groups empty for longer than the retention; they are forgotten here
    /// (the caller deletes their offsets). `with_offsets` are groups known
    /// only by committed offsets: they start their retention now.
    pub fn expired_empty_groups(&mut self, with_offsets: &[String], now: Instant) -> Vec<String> {
        let retention = Duration::from_millis(self.config.empty_group_retention_ms);
        for group in with_offsets {
            self.groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(Assignor::Sticky, now));
        }
        let doomed: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                g.members.is_empty()
                    && g.empty_since
                        .is_some_and(|t| now.saturating_duration_since(t) > retention)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &doomed {
            self.groups.remove(id);
        }
        doomed
    }

    /// Whether `member_id` may commit `tps` in `group_id` now.
    pub fn check_commit(&self, group_id: &str, member_id: &str, tps: &[Tp]) -> Result<()> {
        let Some(group) = self.groups.get(group_id) else {
            return match member_id.is_empty() {
                true => Ok(()),
                false => Err(fenced_error(group_id, member_id, FenceReason::NotAMember)),
            };
        };
        if group.is_fenced(member_id) {
            return Err(fenced_error(group_id, member_id, FenceReason::Removed));
        }
        if group.members.is_empty() {
            return Ok(());
        }
        let Some(member) = group.members.get(member_id) else {
            return Err(fenced_error(group_id, member_id, FenceReason::NotAMember));
        };
        match tps
            .iter()
            .find(|tp| !member.assigned.contains(*tp) && !member.owned.contains(*tp))
        {
            None => Ok(()),
            Some(tp) => Err(BrokerError::FencedMember {
                group: group_id.to_string(),
                member: member_id.chars().take(64).collect(),
                reason: FenceReason::NotOwner,
                partition: Some(tp.clone()),
            }),
        }
    }

    pub fn live_members(&self, group_id: &str) -> usize {
        self.groups.get(group_id).map_or(0, |g| g.members.len())
    }

    pub fn forget(&mut self, group_id: &str) {
        self.groups.remove(group_id);
    }

    /// Drops a deleted topic from every subscription and assignment.
    pub fn topic_deleted(&mut self, topic: &str, partitions: &BTreeMap<String, u32>) {
        for group in self.groups.values_mut() {
            let mut touched = false;
            for member in group.members.values_mut() {
                touched |= member.topics.remove(topic);
                member.assigned.retain(|(t, _)| t != topic);
                member.owned.retain(|(t, _)| t != topic);
            }
            if touched {
                group.retarget(partitions);
            }
            group.check_invariants();
        }
    }

    /// The group's state as DescribeGroup shows it.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let group = self.groups.get(group_id)?;
        let mut owners = BTreeMap::new();
        let mut topics = BTreeSet::new();
        let members = group
            .members
            .iter()
            .map(|(id, m)| {
                for tp in &m.assigned {
                    owners.insert(tp.clone(), id.clone());
                }
                topics.extend(m.topics.iter().cloned());
                MemberInfo {
                    member_id: id.clone(),
                    client_id: m.client_id.clone(),
                    member_epoch: m.epoch,
                    topics: m.topics.iter().cloned().collect(),
                    assignment: m.assigned.iter().cloned().collect(),
                }
            })
            .collect();
        Some(GroupView {
            state: group.state(),
            epoch: group.epoch,
            assignor: group.assignor,
            members,
            owners,
            topics,
        })
    }

    /// Every group known here, with its state and member count.
    pub fn list(&self) -> Vec<(String, GroupState, u32)> {
        self.groups
            .iter()
            .map(|(id, g)| (id.clone(), g.state(), g.members.len() as u32))
            .collect()
    }
}

fn fenced_error(group: &str, member: &str, reason: FenceReason) -> BrokerError {
    BrokerError::FencedMember {
        group: group.to_string(),
        member: member.chars().take(64).collect(),
        reason,
        partition: None,
    }
}

/// A fresh member id: the client id's safe characters and 64 random bits.
fn new_member_id(client_id: &str) -> String {
    let clean: String = client_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    let prefix = if clean.is_empty() { "member" } else { &clean };
    format!("{prefix}-{:016x}", rand::random::<u64>())
}
