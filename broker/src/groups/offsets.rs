//! Committed group offsets, kept durably in a [`StateLog`]
//! (`<data>/internal/group-offsets/`): every commit request is one batch,
//! acknowledged only once fsynced; the map is rebuilt at start from the
//! snapshot plus the operations after it, and compacted past
//! `SNAPSHOT_AFTER_BYTES`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ferry_storage::vfs::Vfs;
use ferry_storage::Flusher;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::statelog::{Durable, StateLog};

/// Fold the log into a snapshot past this size.
pub const SNAPSHOT_AFTER_BYTES: u64 = 64 * 1024 * 1024;
/// Longest offset metadata string kept.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: u64,
    pub metadata: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Commit {
        g: String,
        t: String,
        p: u32,
        o: u64,
        m: String,
    },
    DeleteGroup {
        g: String,
    },
    DeleteTopic {
        t: String,
    },
}

/// group -> (topic, partition) -> committed. Serialized as lists (JSON keys
/// must be strings).
type GroupMap = BTreeMap<String, BTreeMap<(String, u32), Committed>>;

#[derive(Default, Serialize, Deserialize)]
struct Offsets {
    #[serde(with = "as_list")]
    groups: GroupMap,
}

mod as_list {
    use super::*;
    type Entry = (String, Vec<((String, u32), Committed)>);

    pub fn serialize<S: serde::Serializer>(
        map: &GroupMap,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let list: Vec<Entry> = map
            .iter()
            .map(|(g, m)| {
                (
                    g.clone(),
                    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                )
            })
            .collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<GroupMap, D::Error> {
        let list: Vec<Entry> = Vec::deserialize(d)?;
        Ok(list
            .into_iter()
            .map(|(g, entries)| (g, entries.into_iter().collect()))
            .collect())
    }
}

fn apply(state: &mut Offsets, op: Op) {
    let map = &mut state.groups;
    match op {
        Op::Commit { g, t, p, o, m } => {
            map.entry(g).or_default().insert(
                (t, p),
                Committed {
                    offset: o,
                    metadata: m,
                },
            );
        }
        Op::DeleteGroup { g } => {
            map.remove(&g);
        }
        Op::DeleteTopic { t } => {
            for offsets in map.values_mut() {
                offsets.retain(|(topic, _), _| *topic != t);
            }
            map.retain(|_, offsets| !offsets.is_empty());
        }
    }
}

pub struct OffsetStore {
    log: StateLog,
    state: Mutex<Offsets>,
    snapshot_after_bytes: u64,
}

impl OffsetStore {
    pub fn open(vfs: Arc<dyn Vfs>, data_dir: &Path, flusher: &Flusher) -> Result<OffsetStore> {
        OffsetStore::open_with(vfs, data_dir, flusher, SNAPSHOT_AFTER_BYTES)
    }

    pub fn open_with(
        vfs: Arc<dyn Vfs>,
        data_dir: &Path,
        flusher: &Flusher,
        snapshot_after_bytes: u64,
    ) -> Result<OffsetStore> {
        let (log, state) = StateLog::open(vfs, data_dir, "group-offsets", flusher, apply)?;
        Ok(OffsetStore {
            log,
            state: Mutex::new(state),
            snapshot_after_bytes,
        })
    }

    /// Appends and applies under one lock so log order is map order.
    fn record(&self, ops: Vec<Op>) -> Result<Durable> {
        let mut state = self.state.lock();
        let durable = self.log.append(&ops)?;
        for op in ops {
            apply(&mut state, op);
        }
        Ok(durable)
    }

    pub fn commit(&self, group: &str, entries: Vec<(String, u32, u64, String)>) -> Result<Durable> {
        let ops = entries
            .into_iter()
            .map(|(t, p, o, mut m)| {
                truncate_at_char(&mut m, OFFSET_METADATA_MAX_BYTES);
                Op::Commit {
                    g: group.to_string(),
                    t,
                    p,
                    o,
                    m,
                }
            })
            .collect();
        self.record(ops)
    }

    pub fn delete_group(&self, group: &str) -> Result<Durable> {
        self.record(vec![Op::DeleteGroup {
            g: group.to_string(),
        }])
    }

    pub fn delete_topic(&self, topic: &str) -> Result<Durable> {
        self.record(vec![Op::DeleteTopic {
            t: topic.to_string(),
        }])
    }

    pub fn get(&self, group: &str, topic: &str, partition: u32) -> Option<Committed> {
        self.state
            .lock()
            .groups
            .get(group)
            .and_then(|g| g.get(&(topic.to_string(), partition)))
            .cloned()
    }

    pub fn group(&self, group: &str) -> BTreeMap<(String, u32), Committed> {
        self.state
            .lock()
            .groups
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    pub fn groups(&self) -> Vec<String> {
        self.state.lock().groups.keys().cloned().collect()
    }

    /// Snapshots and compacts once the log is past its threshold (blocking).
    pub fn maybe_compact(&self) -> Result<bool> {
        if self.log.size_bytes() < self.snapshot_after_bytes {
            return Ok(false);
        }
        let (covers, json_ready) = {
            let state = self.state.lock();
            (
                self.log.end_offset(),
                Offsets {
                    groups: state.groups.clone(),
                },
            )
        };
        self.log.compact(&json_ready, covers)?;
        Ok(true)
    }

    pub fn close(&self) -> Result<()> {
        self.log.close()
    }
}

/// Cuts `text` to at most `max_bytes`, at a character boundary.
pub fn truncate_at_char(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let cut = (0..=max_bytes)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_storage::vfs::SimFs;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn acknowledged_commits_survive_power_loss_and_compaction() {
        let flusher = Flusher::start(1);
        let mut fs = SimFs::new(1);
        let data = Path::new("/data");
        let mut expected: BTreeMap<(String, u32), u64> = BTreeMap::new();
        for round in 0..20u64 {
            let store = OffsetStore::open_with(Arc::new(fs.clone()), data, &flusher, 4096).unwrap();
            for ((t, p), o) in &expected {
                assert_eq!(
                    store.get("g", t, *p).map(|c| c.offset),
                    Some(*o),
                    "round {round}: {t}/{p}"
                );
            }
            for i in 0..50u64 {
                let entries = vec![(
                    "t".to_string(),
                    (i % 4) as u32,
                    round * 100 + i,
                    String::new(),
                )];
                block_on(store.commit("g", entries).unwrap()).unwrap();
                expected.insert(("t".to_string(), (i % 4) as u32), round * 100 + i);
            }
            // Unacknowledged commit: may or may not survive.
            let _maybe = store
                .commit("g", vec![("u".to_string(), 0, 1, String::new())])
                .unwrap();
            if round == 10 {
                block_on(store.delete_topic("u").unwrap()).unwrap();
            }
            if round % 3 == 0 {
                assert!(store.maybe_compact().unwrap());
            }
            fs = fs.power_loss(round);
        }
    }

    #[test]
    fn long_metadata_is_cut_at_a_character_boundary() {
        let mut text = format!("a{}", "é".repeat(3000));
        truncate_at_char(&mut text, OFFSET_METADATA_MAX_BYTES);
        assert!(text.len() <= OFFSET_METADATA_MAX_BYTES);
        assert!(text.len() >= OFFSET_METADATA_MAX_BYTES - 1);
        let mut short = "é".to_string();
        truncate_at_char(&mut short, 1);
        assert_eq!(short, "");
    }
}
