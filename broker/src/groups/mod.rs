//! Consumer groups, coordinated by the broker (in the spirit of Kafka's
//! KIP-848): members join with their subscriptions, the broker computes the
//! target assignment and every member converges to it through heartbeats.
//!
//! Rebalancing is incremental. On each heartbeat a member's assignment
//! becomes `assigned ∩ target` (partitions to revoke disappear at once and
//! the member stops fetching them) plus every partition of its target that
//! no other member still owns. A partition moves only after its previous
//! owner has reported, in a heartbeat, that it let go — so two members never
//! consume one partition at the same time, and members whose partitions do
//! not move keep consuming throughout.
//!
//! Commits are fenced by ownership: only a live member that owns (or is
//! still releasing) a partition may commit it; members removed for a missed
//! session are remembered and refused. Offsets live in [`offsets`].

pub mod assignor;
pub mod offsets;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use ferry_protocol::messages::{GroupAssignmentResponse, GroupMemberInfo, TopicPartition};
use parking_lot::Mutex;

use assignor::{Assignor, MemberView, Tp};

use crate::error::{BrokerError, Result};

pub const SESSION_TIMEOUT_MIN_MS: u32 = 100;
pub const SESSION_TIMEOUT_MAX_MS: u32 = 300_000;
pub const MEMBERS_PER_GROUP_LIMIT: usize = 1000;
pub const GROUPS_LIMIT: usize = 100_000;
/// Member ids remembered after removal, per group, to refuse zombie commits.
const FENCED_MEMORY: usize = 256;

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub default_session_timeout_ms: u32,
    /// Empty groups (and their offsets) are deleted after this long.
    pub empty_group_retention_ms: u64,
}

struct Member {
    client_id: String,
    topics: BTreeSet<String>,
    session_timeout: Duration,
    last_seen: Instant,
    epoch: u64,
    /// What the member may consume now.
    assigned: BTreeSet<Tp>,
    /// What it last said it was consuming.
    owned: BTreeSet<Tp>,
    offset_reset: String,
}

struct Group {
    assignor: Assignor,
    epoch: u64,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, BTreeSet<Tp>>,
    fenced: VecDeque<String>,
    empty_since: Option<Instant>,
}

impl Group {
    fn new(assignor: Assignor) -> Group {
        Group {
            assignor,
            epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            fenced: VecDeque::new(),
            empty_since: Some(Instant::now()),
        }
    }

    fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "empty"
        } else if self.members.iter().all(|(id, m)| {
            self.target
                .get(id)
                .is_some_and(|t| *t == m.assigned && m.owned == m.assigned)
        }) {
            "stable"
        } else {
            "reconciling"
        }
    }

    fn retarget(&mut self, partitions: &BTreeMap<String, u32>) {
        self.epoch += 1;
        let views: BTreeMap<String, MemberView> = self
            .members
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    MemberView {
                        topics: &m.topics,
                        current: self.target.get(id).unwrap_or(&m.assigned),
                    },
                )
            })
            .collect();
        self.target = assignor::assign(self.assignor, &views, partitions);
    }

    /// Moves `member` toward its target (see the module comment).
    fn reconcile(&mut self, member_id: &str) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let taken: BTreeSet<Tp> = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.assigned.iter().chain(m.owned.iter()).cloned())
            .collect();
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        let mut next: BTreeSet<Tp> = member.assigned.intersection(&target).cloned().collect();
        next.extend(target.iter().filter(|tp| !taken.contains(*tp)).cloned());
        if next != member.assigned {
            member.assigned = next;
            member.epoch += 1;
        }
    }

    fn remove(&mut self, member_id: &str, fenced: bool) -> bool {
        if self.members.remove(member_id).is_none() {
            return false;
        }
        self.target.remove(member_id);
        if fenced {
            self.fenced.push_back(member_id.to_string());
            while self.fenced.len() > FENCED_MEMORY {
                self.fenced.pop_front();
            }
        }
        if self.members.is_empty() {
            self.empty_since = Some(Instant::now());
        }
        true
    }
}

fn to_wire(tps: &BTreeSet<Tp>) -> Vec<TopicPartition> {
    tps.iter()
        .map(|(topic, partition)| TopicPartition {
            topic: topic.clone(),
            partition: *partition,
        })
        .collect()
}

pub struct GroupView {
    pub state: String,
    pub epoch: u64,
    pub assignor: String,
    pub members: Vec<GroupMemberInfo>,
    /// Which member consumes each partition now.
    pub owners: BTreeMap<Tp, String>,
    /// Every topic some member subscribes to.
    pub topics: BTreeSet<String>,
}

pub struct JoinArgs {
    pub group: String,
    pub member_id: String,
    pub client_id: String,
    pub topics: Vec<String>,
    pub assignor: String,
    pub session_timeout_ms: u32,
    pub offset_reset: String,
}

pub struct GroupCoordinator {
    groups: Mutex<BTreeMap<String, Group>>,
    pub config: GroupConfig,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            groups: Mutex::new(BTreeMap::new()),
            config,
        }
    }

    fn heartbeat_interval_ms(session: Duration) -> u32 {
        (session.as_millis() as u32 / 5).clamp(20, 3000)
    }

    fn answer(group: &Group, member_id: &str) -> GroupAssignmentResponse {
        let member = &group.members[member_id];
        GroupAssignmentResponse {
            member_id: member_id.to_string(),
            member_epoch: member.epoch,
            group_epoch: group.epoch,
            assignment: to_wire(&member.assigned),
            heartbeat_interval_ms: Self::heartbeat_interval_ms(member.session_timeout),
            offset_reset: member.offset_reset.clone(),
            ..GroupAssignmentResponse::default()
        }
    }

    /// `partitions`: partition count of every topic any member may name.
    pub fn join(
        &self,
        args: JoinArgs,
        partitions: &BTreeMap<String, u32>,
    ) -> Result<GroupAssignmentResponse> {
        crate::topics::validate_topic_name(&args.group).map_err(|_| {
            BrokerError::InvalidGroup(format!("invalid group name {:?}", args.group))
        })?;
        if args.topics.is_empty() {
            return Err(BrokerError::InvalidRequest(
                "a member must subscribe to at least one topic".into(),
            ));
        }
        for topic in &args.topics {
            if !partitions.contains_key(topic) {
                return Err(BrokerError::UnknownTopic(topic.clone()));
            }
        }
        let assignor = Assignor::parse(&args.assignor).ok_or_else(|| {
            BrokerError::InvalidRequest(format!("unknown assignor {:?}", args.assignor))
        })?;
        let offset_reset = match args.offset_reset.as_str() {
            "" | "earliest" => "earliest",
            "latest" => "latest",
            other => {
                return Err(BrokerError::InvalidRequest(format!(
                    "offset_reset must be earliest or latest, not {other:?}"
                )))
            }
        };
        let session_ms = match args.session_timeout_ms {
            0 => self.config.default_session_timeout_ms,
            ms => ms.clamp(SESSION_TIMEOUT_MIN_MS, SESSION_TIMEOUT_MAX_MS),
        };
        let mut groups = self.groups.lock();
        if !groups.contains_key(&args.group) && groups.len() >= GROUPS_LIMIT {
            return Err(BrokerError::InvalidGroup(format!(
                "the broker holds the maximum of {GROUPS_LIMIT} groups"
            )));
        }
        let group = groups
            .entry(args.group.clone())
            .or_insert_with(|| Group::new(assignor));
        let member_id = if args.member_id.is_empty() {
            format!(
                "{}-{:016x}",
                sanitize(&args.client_id),
                rand::random::<u64>()
            )
        } else {
            args.member_id.clone()
        };
        if !group.members.contains_key(&member_id) && group.members.len() >= MEMBERS_PER_GROUP_LIMIT
        {
            return Err(BrokerError::InvalidGroup(format!(
                "group is at its limit of {MEMBERS_PER_GROUP_LIMIT} members"
            )));
        }
        if group.members.is_empty() {
            group.assignor = assignor;
        }
        let topics: BTreeSet<String> = args.topics.into_iter().collect();
        let member = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                client_id: args.client_id.clone(),
                topics: BTreeSet::new(),
                session_timeout: Duration::from_millis(u64::from(session_ms)),
                last_seen: Instant::now(),
                epoch: 0,
                assigned: BTreeSet::new(),
                owned: BTreeSet::new(),
                offset_reset: offset_reset.to_string(),
            });
        member.last_seen = Instant::now();
        member.session_timeout = Duration::from_millis(u64::from(session_ms));
        member.offset_reset = offset_reset.to_string();
        let changed = member.topics != topics;
        member.topics = topics;
        group.empty_since = None;
        group.fenced.retain(|id| *id != member_id);
        if changed || !group.target.contains_key(&member_id) {
            group.retarget(partitions);
        }
        group.reconcile(&member_id);
        tracing::info!(group = %args.group, member = %member_id, epoch = group.epoch, "member joined");
        Ok(Self::answer(group, &member_id))
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        owned: &[TopicPartition],
    ) -> Result<GroupAssignmentResponse> {
        let mut groups = self.groups.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or_else(|| BrokerError::UnknownMember(member_id.to_string()))?;
        let Some(member) = group.members.get_mut(member_id) else {
            return Err(if group.fenced.iter().any(|id| id == member_id) {
                BrokerError::FencedMember(format!(
                    "member {member_id} was removed from group {group_id}; rejoin"
                ))
            } else {
                BrokerError::UnknownMember(member_id.to_string())
            });
        };
        member.last_seen = Instant::now();
        member.owned = owned
            .iter()
            .map(|tp| (tp.topic.clone(), tp.partition))
            .collect();
        group.reconcile(member_id);
        Ok(Self::answer(group, member_id))
    }

    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        partitions: &BTreeMap<String, u32>,
    ) -> Result<()> {
        let mut groups = self.groups.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or_else(|| BrokerError::UnknownMember(member_id.to_string()))?;
        if !group.remove(member_id, false) {
            return Err(BrokerError::UnknownMember(member_id.to_string()));
        }
        group.retarget(partitions);
        tracing::info!(group = group_id, member = member_id, "member left");
        Ok(())
    }

    /// Removes members whose session lapsed; returns (group, member) pairs.
    pub fn expire_sessions(&self, partitions: &BTreeMap<String, u32>) -> Vec<(String, String)> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut groups = self.groups.lock();
        for (group_id, group) in groups.iter_mut() {
            let lapsed: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| now.duration_since(m.last_seen) > m.session_timeout)
                .map(|(id, _)| id.clone())
                .collect();
            for member_id in &lapsed {
                group.remove(member_id, true);
                tracing::info!(group = %group_id, member = %member_id, "member session expired: removed and fenced");
                expired.push((group_id.clone(), member_id.clone()));
            }
            if !lapsed.is_empty() {
                group.retarget(partitions);
            }
        }
        expired
    }

    /// Groups empty for longer than the retention; they are forgotten here
    /// (the caller deletes their offsets).
    pub fn expired_empty_groups(&self, with_offsets: &[String]) -> Vec<String> {
        let retention = Duration::from_millis(self.config.empty_group_retention_ms);
        let mut groups = self.groups.lock();
        for group in with_offsets {
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(Assignor::Sticky));
        }
        let doomed: Vec<String> = groups
            .iter()
            .filter(|(_, g)| {
                g.members.is_empty() && g.empty_since.is_some_and(|t| t.elapsed() > retention)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &doomed {
            groups.remove(id);
        }
        doomed
    }

    /// Whether `member_id` may commit `tps` in `group_id` now.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        tps: &[(String, u32)],
    ) -> Result<()> {
        let groups = self.groups.lock();
        let Some(group) = groups.get(group_id) else {
            return if member_id.is_empty() {
                Ok(())
            } else {
                Err(BrokerError::FencedMember(format!(
                    "member {member_id} is not in group {group_id}"
                )))
            };
        };
        if group.fenced.iter().any(|id| id == member_id) {
            return Err(BrokerError::FencedMember(format!(
                "member {member_id} was removed from group {group_id}; its commits are refused"
            )));
        }
        if group.members.is_empty() {
            return Ok(());
        }
        let Some(member) = group.members.get(member_id) else {
            return Err(BrokerError::FencedMember(format!(
                "{} is not a live member of group {group_id}",
                if member_id.is_empty() {
                    "an anonymous client"
                } else {
                    member_id
                }
            )));
        };
        for tp in tps {
            if !member.assigned.contains(tp) && !member.owned.contains(tp) {
                return Err(BrokerError::FencedMember(format!(
                    "member {member_id} does not own {}/{}; the commit is refused",
                    tp.0, tp.1
                )));
            }
        }
        Ok(())
    }

    pub fn live_members(&self, group_id: &str) -> usize {
        self.groups
            .lock()
            .get(group_id)
            .map_or(0, |g| g.members.len())
    }

    pub fn forget(&self, group_id: &str) {
        self.groups.lock().remove(group_id);
    }

    /// Drops a deleted topic from every subscription and assignment.
    pub fn topic_deleted(&self, topic: &str, partitions: &BTreeMap<String, u32>) {
        let mut groups = self.groups.lock();
        for group in groups.values_mut() {
            let mut touched = false;
            for member in group.members.values_mut() {
                touched |= member.topics.remove(topic);
                member.assigned.retain(|(t, _)| t != topic);
                member.owned.retain(|(t, _)| t != topic);
            }
            if touched {
                group.retarget(partitions);
            }
        }
    }

    /// The group's state as DescribeGroup shows it.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let groups = self.groups.lock();
        let group = groups.get(group_id)?;
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
                GroupMemberInfo {
                    member_id: id.clone(),
                    client_id: m.client_id.clone(),
                    member_epoch: m.epoch,
                    topics: m.topics.iter().cloned().collect(),
                    assignment: to_wire(&m.assigned),
                }
            })
            .collect();
        Some(GroupView {
            state: group.state().to_string(),
            epoch: group.epoch,
            assignor: group.assignor.name().to_string(),
            members,
            owners,
            topics,
        })
    }

    /// Every group with live members, with its state and member count.
    pub fn list(&self) -> Vec<(String, String, u32)> {
        self.groups
            .lock()
            .iter()
            .map(|(id, g)| (id.clone(), g.state().to_string(), g.members.len() as u32))
            .collect()
    }
}

fn sanitize(client_id: &str) -> String {
    let clean: String = client_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    if clean.is_empty() {
        "member".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions() -> BTreeMap<String, u32> {
        [("t".to_string(), 6)].into()
    }

    fn join(c: &GroupCoordinator, id: &str) -> GroupAssignmentResponse {
        c.join(
            JoinArgs {
                group: "g".into(),
                member_id: id.into(),
                client_id: "test".into(),
                topics: vec!["t".into()],
                assignor: String::new(),
                session_timeout_ms: 10_000,
                offset_reset: String::new(),
            },
            &partitions(),
        )
        .unwrap()
    }

    fn coordinator() -> GroupCoordinator {
        GroupCoordinator::new(GroupConfig {
            default_session_timeout_ms: 10_000,
            empty_group_retention_ms: 60_000,
        })
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_lets_go() {
        let c = coordinator();
        let a = join(&c, "a");
        assert_eq!(a.assignment.len(), 6);
        c.heartbeat("g", "a", &a.assignment).unwrap();
        let b = join(&c, "b");
        assert!(b.assignment.is_empty(), "a still owns everything");
        // a learns it must give up 3; until it reports so, b gets nothing.
        let a2 = c.heartbeat("g", "a", &a.assignment).unwrap();
        assert_eq!(a2.assignment.len(), 3);
        assert!(a2.member_epoch > a.member_epoch);
        assert!(c.heartbeat("g", "b", &[]).unwrap().assignment.is_empty());
        // a releases; now b gets its three.
        c.heartbeat("g", "a", &a2.assignment).unwrap();
        let b2 = c.heartbeat("g", "b", &[]).unwrap();
        assert_eq!(b2.assignment.len(), 3);
        let overlap: Vec<_> = b2
            .assignment
            .iter()
            .filter(|tp| a2.assignment.contains(tp))
            .collect();
        assert!(overlap.is_empty());
        // Commits are fenced by ownership.
        let mine = (b2.assignment[0].topic.clone(), b2.assignment[0].partition);
        assert!(c
            .check_commit("g", "b", std::slice::from_ref(&mine))
            .is_ok());
        assert!(matches!(
            c.check_commit("g", "a", &[mine]),
            Err(BrokerError::FencedMember(_))
        ));
        assert!(matches!(
            c.check_commit("g", "zombie", &[]),
            Err(BrokerError::FencedMember(_))
        ));
    }
}
