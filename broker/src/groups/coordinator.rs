//! The group coordinator's state machine: every group, driven by method
//! calls that carry the current time (`now`) and the topics' partition
//! counts, and returning what each member should do next
//! ([`MemberAssignment`]). No locks, clocks or wire types here: the shared
//! handle in `mod.rs` adds the lock and the clock, `cmd/group.rs` the wire.
//!
//! Member ids are made here only: a join naming an id that is not a live
//! member of the group joins as a new member, under a fresh id.
//!
//! Groups come into existence three ways, each within a limit: a join
//! ([`GROUPS_LIMIT`] in all); a commit or offset reset to a group that has
//! no members ([`OFFSET_ONLY_GROUPS_LIMIT`] of those, and within the
//! total); and, at start, from the offset store (what was admitted before).
//! Offset-only groups have their own, smaller bound so that a flood of
//! anonymous commits to new names (they cost one request each and are
//! kept for the whole retention) fills at most that share: the rest of the
//! group limit stays free for joins. A join turns an offset-only group
//! into an ordinary one. A group without members that holds no offsets is
//! forgotten after [`EMPTY_GROUP_WITHOUT_OFFSETS_RETENTION_MS`] (or the
//! retention, if shorter), since there is nothing to keep.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::assignor::{Assignor, Tp};
use super::group::{Group, GroupState, Member};
use super::{for_log, offsets::truncate_at_char};
use crate::domain::{GroupName, OffsetReset, TopicName};
use crate::error::{BrokerError, FenceReason, Result};

pub const SESSION_TIMEOUT_MIN_MS: u32 = 100;
pub const SESSION_TIMEOUT_MAX_MS: u32 = 300_000;
pub const MEMBERS_PER_GROUP_LIMIT: usize = 1000;
/// Groups of every kind the broker keeps.
pub const GROUPS_LIMIT: usize = 100_000;
/// Of those, groups known only by committed offsets (see the module doc).
pub const OFFSET_ONLY_GROUPS_LIMIT: usize = 10_000;
// Offset-only groups must leave room for joins.
const _: () = assert!(OFFSET_ONLY_GROUPS_LIMIT < GROUPS_LIMIT);
/// How long a group with neither members nor offsets is kept.
pub const EMPTY_GROUP_WITHOUT_OFFSETS_RETENTION_MS: u64 = 60_000;
/// Longest member id a request may carry (ours are at most 81 bytes).
pub const MEMBER_ID_MAX_BYTES: usize = 128;
/// Longest client id a join may carry.
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
    /// How many of `groups` are `offsets_only`.
    offset_only_groups: usize,
    /// Whether the offset store's groups were taken in (see [`Self::adopt`]).
    adopted: bool,
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

fn too_many_groups(what: &'static str, limit: usize) -> BrokerError {
    BrokerError::TooManyGroups { what, limit }
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            groups: BTreeMap::new(),
            offset_only_groups: 0,
            adopted: false,
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

    /// Whether the offset store's groups were taken in since start.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Takes in the groups the offset store holds (as offset-only groups,
    /// whatever the limits: they were admitted before), so that the limits
    /// count them. Done before the first group is created after a start.
    pub fn adopt(&mut self, with_offsets: &[String], now: Instant) {
        for id in with_offsets {
            if !self.groups.contains_key(id) {
                self.groups.insert(id.clone(), Group::offsets_only(now));
                self.offset_only_groups += 1;
            }
        }
        self.adopted = true;
    }

    /// Groups known, and how many of them are known only by offsets.
    pub fn counts(&self) -> (usize, usize) {
        (self.groups.len(), self.offset_only_groups)
    }

    fn remove_group(&mut self, id: &str) -> Option<Group> {
        let group = self.groups.remove(id)?;
        if group.offsets_only {
            self.offset_only_groups -= 1;
        }
        Some(group)
    }

    /// The group a join enters: created within [`GROUPS_LIMIT`], or an
    /// offset-only group that becomes an ordinary one.
    fn group_to_join(
        &mut self,
        name: &GroupName,
        assignor: Assignor,
        now: Instant,
    ) -> Result<&mut Group> {
        if !self.groups.contains_key(name.as_str()) {
            if self.groups.len() >= GROUPS_LIMIT {
                return Err(too_many_groups("groups", GROUPS_LIMIT));
            }
            self.groups
                .insert(name.to_string(), Group::new(assignor, now));
        }
        let group = self
            .groups
            .get_mut(name.as_str())
            .ok_or_else(|| BrokerError::UnknownGroup(name.to_string()))?;
        if group.offsets_only {
            group.offsets_only = false;
            self.offset_only_groups -= 1;
        }
        Ok(group)
    }

    /// The id a join gets: its own if that is a live member of the group,
    /// else a fresh one; and whether it is a live member.
    fn member_id_for(&self, args: &JoinArgs) -> (String, bool) {
        let known = self
            .groups
            .get(args.group.as_str())
            .is_some_and(|g| g.members.contains_key(&args.member_id));
        match known {
            true => (args.member_id.clone(), true),
            false => (new_member_id(&args.client_id), false),
        }
    }

    /// Joins (or rejoins) a member. `partitions`: partition count of every
    /// topic a member may name. A member id that is not a live member of
    /// the group (never issued, or removed since) joins as a new member.
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
        let session_timeout = self.session_timeout(args.session_timeout_ms);
        let (member_id, known) = self.member_id_for(&args);
        let members = self
            .groups
            .get(args.group.as_str())
            .map_or(0, |g| g.members.len());
        if !known && members >= MEMBERS_PER_GROUP_LIMIT {
            return Err(BrokerError::GroupFull {
                group: args.group.to_string(),
                limit: MEMBERS_PER_GROUP_LIMIT as u64,
            });
        }
        if !known && !args.member_id.is_empty() {
            tracing::info!(group = for_log(&args.group), offered = for_log(&args.member_id), member = %member_id,
                "join with an id that is not a member of the group: joined as a new member");
        }
        let group = self.group_to_join(&args.group, args.assignor, now)?;
        if group.members.is_empty() {
            group.assignor = args.assignor;
        }
        let topics: BTreeSet<String> = args.topics.iter().map(|t| t.to_string()).collect();
        let member = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| new_member(&args.client_id, session_timeout, now));
        member.last_seen = now;
        member.session_timeout = session_timeout;
        member.offset_reset = args.offset_reset;
        let changed = member.topics != topics;
        member.topics = topics;
        group.empty_since = None;
        if changed || !group.target.contains_key(&member_id) {
            group.retarget(partitions);
        }
        group.reconcile(&member_id, now);
        tracing::info!(group = for_log(&args.group), member = %member_id, epoch = group.epoch, "member joined");
        Ok(answer(group, &member_id))
    }

    /// A member reports what it consumes; the answer is what it may consume.
    /// The report is cut to what the member was given (see `group.rs`).
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        owned: BTreeSet<Tp>,
        now: Instant,
    ) -> Result<MemberAssignment> {
        let unknown = || BrokerError::UnknownMember(for_log(member_id).to_string());
        let group = self.groups.get_mut(group_id).ok_or_else(unknown)?;
        let fenced = group.is_fenced(member_id);
        let Some(member) = group.members.get_mut(member_id) else {
            return Err(match fenced {
                true => fenced_error(group_id, member_id, FenceReason::Removed),
                false => unknown(),
            });
        };
        member.last_seen = now;
        group.report_owned(member_id, owned);
        group.reconcile(member_id, now);
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
        let unknown = || BrokerError::UnknownMember(for_log(member_id).to_string());
        let group = self.groups.get_mut(group_id).ok_or_else(unknown)?;
        if !group.remove(member_id, false, now) {
            return Err(unknown());
        }
        group.retarget(partitions);
        group.check_invariants();
        tracing::info!(
            group = for_log(group_id),
            member = for_log(member_id),
            "member left"
        );
        Ok(())
    }

    /// Removes members whose session lapsed, and claims on taken partitions
    /// held past the member's session timeout; returns the (group, member)
    /// pairs removed.
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
                tracing::info!(
                    group = for_log(group_id),
                    member = for_log(member_id),
                    "member session expired: removed and fenced"
                );
                expired.push((group_id.clone(), member_id.clone()));
            }
            let released = group.lapse_releases(now);
            for (member_id, (topic, partition)) in &released {
                tracing::warn!(group = for_log(group_id), member = for_log(member_id),
                    topic = %topic, partition, "member did not let go of a partition within its session timeout: its claim lapsed");
            }
            if !lapsed.is_empty() {
                group.retarget(partitions);
            }
            if !lapsed.is_empty() || !released.is_empty() {
                group.check_invariants();
            }
        }
        expired
    }

    /// Groups to forget: without members for longer than the retention, or
    /// than [`EMPTY_GROUP_WITHOUT_OFFSETS_RETENTION_MS`] for those not in
    /// `with_offsets` (the groups holding committed offsets, which are
    /// taken in first if unknown). The caller deletes their offsets.
    pub fn expired_empty_groups(&mut self, with_offsets: &[String], now: Instant) -> Vec<String> {
        self.adopt(with_offsets, now);
        let retention = Duration::from_millis(self.config.empty_group_retention_ms);
        let bare = retention.min(Duration::from_millis(
            EMPTY_GROUP_WITHOUT_OFFSETS_RETENTION_MS,
        ));
        let holding: BTreeSet<&str> = with_offsets.iter().map(String::as_str).collect();
        let doomed: Vec<String> = self
            .groups
            .iter()
            .filter(|(id, g)| {
                let keep = match holding.contains(id.as_str()) {
                    true => retention,
                    false => bare,
                };
                g.members.is_empty()
                    && g.empty_since
                        .is_some_and(|t| now.saturating_duration_since(t) > keep)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &doomed {
            self.remove_group(id);
        }
        doomed
    }

    /// Whether `member_id` may commit `tps` in `group` now: a live member
    /// holding each partition, or anyone (an empty `member_id` included)
    /// when the group has no members. A commit or reset to a group that
    /// does not exist creates it, as an offset-only group within
    /// [`OFFSET_ONLY_GROUPS_LIMIT`] and [`GROUPS_LIMIT`]; one to a group
    /// without members restarts its retention.
    pub fn admit_commit(
        &mut self,
        group: &GroupName,
        member_id: &str,
        tps: &[Tp],
        now: Instant,
    ) -> Result<()> {
        let group_id = group.as_str();
        let Some(existing) = self.groups.get_mut(group_id) else {
            if !member_id.is_empty() {
                return Err(fenced_error(group_id, member_id, FenceReason::NotAMember));
            }
            return self.create_offsets_only(group, now);
        };
        if existing.is_fenced(member_id) {
            return Err(fenced_error(group_id, member_id, FenceReason::Removed));
        }
        if existing.members.is_empty() {
            existing.empty_since = Some(now);
            return Ok(());
        }
        let Some(member) = existing.members.get(member_id) else {
            return Err(fenced_error(group_id, member_id, FenceReason::NotAMember));
        };
        match tps.iter().find(|tp| !member.holds(tp)) {
            None => Ok(()),
            Some(tp) => Err(BrokerError::FencedMember {
                group: group_id.to_string(),
                member: for_log(member_id).to_string(),
                reason: FenceReason::NotOwner,
                partition: Some(tp.clone()),
            }),
        }
    }

    fn create_offsets_only(&mut self, group: &GroupName, now: Instant) -> Result<()> {
        if self.offset_only_groups >= OFFSET_ONLY_GROUPS_LIMIT {
            return Err(too_many_groups(
                "groups without members (known only by committed offsets)",
                OFFSET_ONLY_GROUPS_LIMIT,
            ));
        }
        if self.groups.len() >= GROUPS_LIMIT {
            return Err(too_many_groups("groups", GROUPS_LIMIT));
        }
        self.groups
            .insert(group.to_string(), Group::offsets_only(now));
        self.offset_only_groups += 1;
        Ok(())
    }

    pub fn live_members(&self, group_id: &str) -> usize {
        self.groups.get(group_id).map_or(0, |g| g.members.len())
    }

    pub fn forget(&mut self, group_id: &str) {
        self.remove_group(group_id);
    }

    /// Drops a deleted topic from every subscription and assignment.
    pub fn topic_deleted(&mut self, topic: &str, partitions: &BTreeMap<String, u32>) {
        for group in self.groups.values_mut() {
            let mut touched = false;
            for member in group.members.values_mut() {
                touched |= member.topics.remove(topic);
                member.assigned.retain(|(t, _)| t != topic);
                member.owned.retain(|(t, _)| t != topic);
                member.releasing.retain(|(t, _), _| t != topic);
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
        member: for_log(member).to_string(),
        reason,
        partition: None,
    }
}

fn new_member(client_id: &str, session_timeout: Duration, now: Instant) -> Member {
    let mut client_id = client_id.to_string();
    truncate_at_char(&mut client_id, CLIENT_ID_MAX_BYTES);
    Member {
        client_id,
        topics: BTreeSet::new(),
        session_timeout,
        last_seen: now,
        epoch: 0,
        assigned: BTreeSet::new(),
        owned: BTreeSet::new(),
        releasing: BTreeMap::new(),
        offset_reset: OffsetReset::Earliest,
    }
}

/// A fresh member id (at most 81 bytes): the client id's safe characters and 64 random bits.
fn new_member_id(client_id: &str) -> String {
    let clean: String = client_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    let prefix = if clean.is_empty() { "member" } else { &clean };
    format!("{prefix}-{:016x}", rand::random::<u64>())
}
