//! The durable ack state of every queue, as operations on a [`StateLog`]
//! (`<data>/internal/queue-acks/`): per partition a cursor below which
//! everything is settled plus the settled ranges above it. `apply` folds an
//! operation into the state at replay; snapshots hold the whole state.
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
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueueAcks {
    pub parts: Vec<Settled>,
    pub acked: u64,
    pub dead_lettered: u64,
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
        } => {
            let Some(acks) = state.queues.get_mut(&q) else {
                return;
            };
            let Some(part) = acks.parts.get_mut(p as usize) else {
                return;
            };
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
        AckOp::Delete { q } => {
            state.queues.remove(&q);
        }
    }
}

/// The key of a queue in the ack state.
pub fn key_string(topic: &str, name: &str) -> String {
    format!("{topic}/{name}")
}
