//! One consumer group's membership: its members (subscriptions, sessions,
//! what each may consume and says it consumes), the target assignment and
//! the incremental reconciliation that moves members toward it. Plain data
//! driven by [`super::coordinator::Coordinator`]; time comes in as values.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::assignor::{self, Assignor, MemberView, Tp};
use crate::domain::OffsetReset;

/// Member ids remembered after removal, per group, to refuse zombie commits.
pub const FENCED_MEMORY: usize = 256;

/// What a group is doing, as DescribeGroup and ListGroups show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Every member has its target and consumes exactly it.
    Stable,
    /// Partitions are moving.
    Reconciling,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "empty",
            GroupState::Stable => "stable",
            GroupState::Reconciling => "reconciling",
        }
    }
}

pub struct Member {
    pub client_id: String,
    /// Subscribed topics (validated names, kept as the assignor's keys).
    pub topics: BTreeSet<String>,
    pub session_timeout: Duration,
    pub last_seen: Instant,
    /// Bumped whenever `assigned` changes.
    pub epoch: u64,
    /// What the member may consume now.
    pub assigned: BTreeSet<Tp>,
    /// What it last said it was consuming.
    pub owned: BTreeSet<Tp>,
    pub offset_reset: OffsetReset,
}

pub struct Group {
    pub assignor: Assignor,
    /// Bumped whenever membership or subscriptions change.
    pub epoch: u64,
    pub members: BTreeMap<String, Member>,
    /// Where each member should end up.
    pub target: BTreeMap<String, BTreeSet<Tp>>,
    pub fenced: VecDeque<String>,
    pub empty_since: Option<Instant>,
}

impl Group {
    pub fn new(assignor: Assignor, now: Instant) -> Group {
        Group {
            assignor,
            epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            fenced: VecDeque::new(),
            empty_since: Some(now),
        }
    }

    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            return GroupState::Empty;
        }
        let settled = self.members.iter().all(|(id, m)| {
            self.target
                .get(id)
                .is_some_and(|t| *t == m.assigned && m.owned == m.assigned)
        });
        if settled {
            GroupState::Stable
        } else {
            GroupState::Reconciling
        }
    }

    /// Recomputes the target for the current members and partition counts.
    pub fn retarget(&mut self, partitions: &BTreeMap<String, u32>) {
        self.epoch += 1;
        let views: BTreeMap<String, MemberView> = self
            .members
            .iter()
            .map(|(id, m)| {
                let view = MemberView {
                    topics: &m.topics,
                    current: self.target.get(id).unwrap_or(&m.assigned),
                };
                (id.clone(), view)
            })
            .collect();
        self.target = assignor::assign(self.assignor, &views, partitions);
    }

    /// Moves `member_id` toward its target: it keeps `assigned ∩ target`
    /// and gains every target partition no other member holds or still
    /// consumes. So a partition moves only once its owner let go.
    pub fn reconcile(&mut self, member_id: &str) {
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
        self.check_invariants();
    }

    /// Removes a member; `fenced` remembers its id to refuse its commits.
    pub fn remove(&mut self, member_id: &str, fenced: bool, now: Instant) -> bool {
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
            self.empty_since = Some(now);
        }
        true
    }

    pub fn is_fenced(&self, member_id: &str) -> bool {
        self.fenced.iter().any(|id| id == member_id)
    }

    /// A partition is assigned to at most one member at a time; targets
    /// name only members; the fenced memory is bounded.
    pub fn check_invariants(&self) {
        let mut seen = BTreeSet::new();
        for (id, member) in &self.members {
            for tp in &member.assigned {
                assert!(seen.insert(tp), "{tp:?} assigned twice (last to {id})");
            }
        }
        assert!(self.target.keys().all(|id| self.members.contains_key(id)));
        assert!(self.fenced.len() <= FENCED_MEMORY);
    }
}
