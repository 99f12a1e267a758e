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
//! session are remembered and refused. What a member reports owning is cut
//! to what it was given, so it can neither hold nor commit partitions it
//! was never assigned. Offsets live in [`offsets`].

pub mod assignor;
pub mod coordinator;
pub mod group;
pub mod offsets;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

pub use assignor::{Assignor, Tp};
pub use coordinator::{
    Coordinator, GroupConfig, GroupView, JoinArgs, MemberAssignment, MemberInfo,
};
pub use group::GroupState;

use crate::domain::GroupName;
use crate::error::Result;

/// Longest client-supplied string (member id, group or topic name) put in
/// a log field or an error message.
pub const LOG_FIELD_MAX_BYTES: usize = 128;

/// `text` cut to [`LOG_FIELD_MAX_BYTES`] at a character boundary, for logs.
pub fn for_log(text: &str) -> &str {
    if text.len() <= LOG_FIELD_MAX_BYTES {
        return text;
    }
    let cut = (0..=LOG_FIELD_MAX_BYTES)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    &text[..cut]
}

/// The shared coordinator: the state machine behind a lock, with the clock
/// read at each call.
pub struct GroupCoordinator {
    inner: Mutex<Coordinator>,
    /// Set once the offset store's groups were taken in (fast path).
    adopted: AtomicBool,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            inner: Mutex::new(Coordinator::new(config)),
            adopted: AtomicBool::new(false),
        }
    }

    /// Takes in the groups of the offset store (`stored` lists them) once
    /// after start, before any group is created, so the group limits count
    /// them. Called by every path that may create a group.
    pub fn adopt_stored(&self, stored: impl FnOnce() -> Vec<String>) {
        if self.adopted.load(Ordering::Acquire) {
            return;
        }
        let groups = stored();
        let mut inner = self.inner.lock();
        if !inner.adopted() {
            inner.adopt(&groups, Instant::now());
        }
        self.adopted.store(true, Ordering::Release);
    }

    pub fn join(
        &self,
        args: JoinArgs,
        partitions: &BTreeMap<String, u32>,
    ) -> Result<MemberAssignment> {
        self.inner.lock().join(args, partitions, Instant::now())
    }

    pub fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        owned: BTreeSet<Tp>,
    ) -> Result<MemberAssignment> {
        self.inner
            .lock()
            .heartbeat(group, member_id, owned, Instant::now())
    }

    pub fn leave(
        &self,
        group: &str,
        member_id: &str,
        partitions: &BTreeMap<String, u32>,
    ) -> Result<()> {
        self.inner
            .lock()
            .leave(group, member_id, partitions, Instant::now())
    }

    pub fn expire_sessions(&self, partitions: &BTreeMap<String, u32>) -> Vec<(String, String)> {
        self.inner
            .lock()
            .expire_sessions(partitions, Instant::now())
    }

    pub fn expired_empty_groups(&self, with_offsets: &[String]) -> Vec<String> {
        self.inner
            .lock()
            .expired_empty_groups(with_offsets, Instant::now())
    }

    pub fn admit_commit(&self, group: &GroupName, member_id: &str, tps: &[Tp]) -> Result<()> {
        self.inner
            .lock()
            .admit_commit(group, member_id, tps, Instant::now())
    }

    pub fn live_members(&self, group: &str) -> usize {
        self.inner.lock().live_members(group)
    }

    pub fn forget(&self, group: &str) {
        self.inner.lock().forget(group)
    }

    pub fn topic_deleted(&self, topic: &str, partitions: &BTreeMap<String, u32>) {
        self.inner.lock().topic_deleted(topic, partitions)
    }

    pub fn describe(&self, group: &str) -> Option<GroupView> {
        self.inner.lock().describe(group)
    }

    pub fn list(&self) -> Vec<(String, GroupState, u32)> {
        self.inner.lock().list()
    }
}

#[cfg(test)]
mod tests;
