//! The durable ack state of every queue, as operations on a [`StateLog`]
//! (`<data>/internal/queue-acks/`): per partition a cursor below which
//! everything is settled plus the settled ranges above it, and how often
//! each unsettled message was delivered (so `max_deliveries` holds across
//! restarts and crashes). `apply` folds an operation into the state at
//! replay; snapshots hold the whole state.
//!
//! [`StateLog`]: crate::statelog::StateLog

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ranges::Settled;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AckOp {
    Init {
        q: String,
        cursors: Vec<u64>,
    },
    Settle {
        q: String,
        p: u32,
        offsets: Vec<u64>,
        dead: bool,
    },
    Delete {
        q: String,
    },
    /// A purge: every offset of partition `p` below `end` is settled but
    /// those in `keep` (messages in flight at the purge).
    Purge {
        q: String,
        p: u32,
        end: u64,
        keep: Vec<u64>,
    },
    /// Delivery counts: (partition, offset, deliveries so far) of messages
    /// that came back unacked, and of every message in flight at a clean
    /// stop. Not waited on: durable with the next fsync of the ack log.
    Attempts {
        q: String,
        at: Vec<(u32, u64, u32)>,
    },
}

/// Delivery counts of unsettled messages: partition -> offset -> count.
pub type Attempts = BTreeMap<u32, BTreeMap<u64, u32>>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueueAcks {
    pub parts: Vec<Settled>,
    pub acked: u64,
    pub dead_lettered: u64,
    /// Absent in snapshots written before delivery counts were kept.
    #[serde(default)]
    pub attempts: Attempts,
}

#[derive(Default, Serialize, Deserialize)]
pub struct AckState {
    pub queues: BTreeMap<String, QueueAcks>,
}

pub fn apply(state: &mut AckState, op: AckOp) {
    match op {
        AckOp::Init { q, cursors } => {
            state.queues.insert(
                q,
                QueueAcks {
                    parts: cursors.into_iter().map(Settled::starting_at).collect(),
                    ..QueueAcks::default()
                },
            );
        }
        AckOp::Settle {
            q,
            p,
            offsets,
            dead,
        } => apply_settle(state, &q, p, offsets, dead),
        AckOp::Delete { q } => {
            state.queues.remove(&q);
        }
        AckOp::Purge { q, p, end, keep } => apply_purge(state, &q, p, end, keep),
        AckOp::Attempts { q, at } => {
            let Some(acks) = state.queues.get_mut(&q) else {
                return;
            };
            for (p, offset, count) in at {
                let settled = acks.parts.get(p as usize).map(|s| s.contains(offset));
                if settled == Some(false) {
                    let known = acks
                        .attempts
                        .entry(p)
                        .or_default()
                        .entry(offset)
                        .or_default();
                    *known = (*known).max(count);
                }
            }
        }
    }
}

/// Settles `offsets` of partition `p`, counting them acked or dead.
fn apply_settle(state: &mut AckState, q: &str, p: u32, offsets: Vec<u64>, dead: bool) {
    let Some(acks) = state.queues.get_mut(q) else {
        return;
    };
    let Some(part) = acks.parts.get_mut(p as usize) else {
        return;
    };
    if let Some(attempts) = acks.attempts.get_mut(&p) {
        for offset in &offsets {
            attempts.remove(offset);
        }
    }
    for offset in offsets {
        if part.insert(offset) {
            if dead {
                acks.dead_lettered += 1;
            } else {
                acks.acked += 1;
            }
        }
    }
}

/// Settles partition `p` below `end` but `keep`, and forgets the delivery
/// counts of what it settled.
fn apply_purge(state: &mut AckState, q: &str, p: u32, end: u64, keep: Vec<u64>) {
    let Some(acks) = state.queues.get_mut(q) else {
        return;
    };
    let Some(part) = acks.parts.get_mut(p as usize) else {
        return;
    };
    let keep: std::collections::BTreeSet<u64> = keep.into_iter().collect();
    part.settle_below_except(end, &keep);
    if let Some(attempts) = acks.attempts.get_mut(&p) {
        attempts.retain(|offset, _| *offset >= end || keep.contains(offset));
    }
}

/// The key of a queue in the ack state.
pub fn key_string(topic: &str, name: &str) -> String {
    format!("{topic}/{name}")
}
