//! One consumer group's membership: its members (subscriptions, sessions,
//! what each may consume and says it consumes), the target assignment and
//! the incremental reconciliation that moves members toward it. Plain data
//! driven by [`super::coordinator::Coordinator`]; time comes in as values.
//!
//! What a member says it consumes (`owned`) is a claim the broker checks:
//! it is kept only for partitions the member is assigned, or was assigned
//! and has not let go of yet (`releasing`). A member cannot claim a
//! partition it was never given, so it cannot starve others or commit
//! there; and a claim on a partition taken from it lapses after its session
//! timeout, as the whole membership would if it stopped heartbeating.

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
    /// What it last said it was consuming, cut to `assigned` and
    /// `releasing`: always a subset of the two.
    pub owned: BTreeSet<Tp>,
    /// Partitions taken from it that it still reports consuming, with when
    /// they were taken (a subset of `owned`, disjoint from `assigned`).
    pub releasing: BTreeMap<Tp, Instant>,
    pub offset_reset: OffsetReset,
}

impl Member {
    /// Whether it may commit `tp`: assigned, or still letting go of it.
    pub fn holds(&self, tp: &Tp) -> bool {
        self.assigned.contains(tp) || self.owned.contains(tp)
    }
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
    /// Known only by committed offsets (created by a commit or reset
    /// without members, or found in the offset store at start) and never
    /// joined since: counted against the smaller limit of such groups.
    pub offsets_only: bool,
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
            offsets_only: false,
        }
    }

    /// A group known only by its committed offsets.
    pub fn offsets_only(now: Instant) -> Group {
        Group {
            offsets_only: true,
            ..Group::new(Assignor::Sticky, now)
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

    /// Records what `member_id` reports consuming, cut to what it may
    /// claim: its assignment and the partitions it is still letting go of.
    /// A partition it no longer reports is released for good.
    pub fn report_owned(&mut self, member_id: &str, reported: BTreeSet<Tp>) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.owned = reported
            .into_iter()
            .filter(|tp| member.assigned.contains(tp) || member.releasing.contains_key(tp))
            .collect();
        let owned = &member.owned;
        member.releasing.retain(|tp, _| owned.contains(tp));
    }

    /// Drops every claim on a taken partition older than its member's
    /// session timeout; returns (member, partition) of each.
    pub fn lapse_releases(&mut self, now: Instant) -> Vec<(String, Tp)> {
        let mut lapsed = Vec::new();
        for (id, member) in self.members.iter_mut() {
            let timeout = member.session_timeout;
            let late: Vec<Tp> = member
                .releasing
                .iter()
                .filter(|(_, since)| now.saturating_duration_since(**since) > timeout)
                .map(|(tp, _)| tp.clone())
                .collect();
            for tp in late {
                member.releasing.remove(&tp);
                member.owned.remove(&tp);
                lapsed.push((id.clone(), tp));
            }
        }
        lapsed
    }

    /// Moves `member_id` toward its target: it keeps `assigned ∩ target`
    /// and gains every target partition no other member holds or still
    /// consumes. So a partition moves only once its owner let go (or its
    /// claim lapsed). A partition taken away that the member still reports
    /// starts releasing at `now`.
    pub fn reconcile(&mut self, member_id: &str, now: Instant) {
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
            for tp in member.assigned.difference(&next) {
                if member.owned.contains(tp) {
                    member.releasing.entry(tp.clone()).or_insert(now);
                }
            }
            member.releasing.retain(|tp, _| !next.contains(tp));
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

    /// A partition is held (assigned, or owned while being released) by at
    /// most one member at a time; a member's claims are within what it
    /// was given; targets name only members; the fenced memory is bounded.
    pub fn check_invariants(&self) {
        let mut seen = BTreeSet::new();
        for (id, member) in &self.members {
            for tp in member.assigned.union(&member.owned) {
                assert!(seen.insert(tp), "{tp:?} held twice (last by {id})");
            }
            assert!(member
                .owned
                .iter()
                .all(|tp| member.assigned.contains(tp) || member.releasing.contains_key(tp)));
            assert!(member
                .releasing
                .keys()
                .all(|tp| member.owned.contains(tp) && !member.assigned.contains(tp)));
        }
        assert!(self.target.keys().all(|id| self.members.contains_key(id)));
        assert!(self.fenced.len() <= FENCED_MEMORY);
    }
}
