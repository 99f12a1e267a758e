//! Committed group offsets, kept durably in an internal log
//! (`<data>/internal/group-offsets/`, fsync = always): every commit request
//! is one record batch (so it is all or nothing after a crash), acknowledged
//! only once the group commit covering it is done. The in-memory map is
//! rebuilt at start by replaying the log on top of the last snapshot.
//!
//! Compaction: once the log holds more than `SNAPSHOT_AFTER_BYTES`, the map
//! is written to `offsets.snapshot` (magic, CRC, JSON; replaced atomically)
//! together with the log offset it covers, and the segments below it are
//! deleted. A snapshot is never trusted if its CRC fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, BatchIter, NewRecord, RecordIter, BATCH_BYTES_LIMIT};
use ferry_storage::vfs::{read_small_file, write_atomic, Vfs};
use ferry_storage::{Flusher, FsyncPolicy, Log, LogConfig};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

const SNAPSHOT_FILE: &str = "offsets.snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"FOFS0001";
const SNAPSHOT_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// Fold the log into a snapshot past this size.
pub const SNAPSHOT_AFTER_BYTES: u64 = 64 * 1024 * 1024;
const INTERNAL_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
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

type Map = BTreeMap<String, BTreeMap<(String, u32), Committed>>;
type SnapshotGroup = (String, Vec<((String, u32), Committed)>);

#[derive(Serialize, Deserialize)]
struct Snapshot {
    covers_offset: u64,
    groups: Vec<SnapshotGroup>,
}

pub struct OffsetStore {
    log: Log,
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    map: Mutex<Map>,
    /// Serializes appends with map updates so both follow log order.
    writer: Mutex<()>,
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
        let dir = data_dir.join("internal").join("group-offsets");
        let config = LogConfig {
            segment_bytes: INTERNAL_SEGMENT_BYTES,
            fsync: FsyncPolicy::Always,
            ..LogConfig::default()
        };
        let log = Log::open(vfs.clone(), &dir, "__group_offsets", config, flusher)?;
        let (mut map, covers) = load_snapshot(&*vfs, &dir);
        let from = covers.max(log.start_offset());
        if covers < log.start_offset() && log.start_offset() > 0 {
            tracing::error!(
                snapshot_covers = covers,
                log_start = log.start_offset(),
                "group offset snapshot is missing or corrupt and older log segments are gone: some committed offsets are lost"
            );
        }
        let replayed = replay(&log, from, &mut map)?;
        tracing::info!(groups = map.len(), replayed, "group offsets loaded");
        Ok(OffsetStore {
            log,
            vfs,
            dir,
            map: Mutex::new(map),
            writer: Mutex::new(()),
            snapshot_after_bytes,
        })
    }

    /// Appends the operations as one batch and applies them; the future
    /// resolves when they are durable.
    fn apply(
        &self,
        ops: Vec<Op>,
    ) -> Result<impl std::future::Future<Output = Result<()>> + Send + 'static> {
        if ops.is_empty() {
            return Ok(futures::future::Either::Left(std::future::ready(Ok(()))));
        }
        let mut builder = BatchBuilder::new();
        let now = ferry_storage::now_ms() as i64;
        for op in &ops {
            let value = serde_json::to_vec(op).map_err(|e| BrokerError::Metadata(e.to_string()))?;
            builder.push(&NewRecord {
                timestamp_ms: now,
                value: Some(Bytes::from(value)),
                ..NewRecord::default()
            });
        }
        let batch = builder.finish();
        let _writer = self.writer.lock();
        let info = self.log.append(&batch)?;
        {
            let mut map = self.map.lock();
            for op in ops {
                apply_op(&mut map, op);
            }
        }
        let durable = self.log.wait_durable(info.last_offset + 1);
        Ok(futures::future::Either::Right(async move {
            durable.await.map_err(BrokerError::from)
        }))
    }

    pub fn commit(
        &self,
        group: &str,
        entries: Vec<(String, u32, u64, String)>,
    ) -> Result<impl std::future::Future<Output = Result<()>> + Send + 'static> {
        let ops = entries
            .into_iter()
            .map(|(t, p, o, mut m)| {
                m.truncate(OFFSET_METADATA_MAX_BYTES);
                Op::Commit {
                    g: group.to_string(),
                    t,
                    p,
                    o,
                    m,
                }
            })
            .collect();
        self.apply(ops)
    }

    pub fn delete_group(
        &self,
        group: &str,
    ) -> Result<impl std::future::Future<Output = Result<()>> + Send + 'static> {
        self.apply(vec![Op::DeleteGroup {
            g: group.to_string(),
        }])
    }

    pub fn delete_topic(
        &self,
        topic: &str,
    ) -> Result<impl std::future::Future<Output = Result<()>> + Send + 'static> {
        self.apply(vec![Op::DeleteTopic {
            t: topic.to_string(),
        }])
    }

    pub fn get(&self, group: &str, topic: &str, partition: u32) -> Option<Committed> {
        self.map
            .lock()
            .get(group)
            .and_then(|g| g.get(&(topic.to_string(), partition)))
            .cloned()
    }

    pub fn group(&self, group: &str) -> BTreeMap<(String, u32), Committed> {
        self.map.lock().get(group).cloned().unwrap_or_default()
    }

    pub fn groups(&self) -> Vec<String> {
        self.map.lock().keys().cloned().collect()
    }

    /// Writes a snapshot and drops the log segments it covers, when the log
    /// has grown past `SNAPSHOT_AFTER_BYTES` (blocking).
    pub fn maybe_compact(&self) -> Result<bool> {
        if self.log.stats().size_bytes < self.snapshot_after_bytes {
            return Ok(false);
        }
        let (covers, snapshot) = {
            let _writer = self.writer.lock();
            let map = self.map.lock();
            let snapshot = Snapshot {
                covers_offset: self.log.end_offset(),
                groups: map
                    .iter()
                    .map(|(g, m)| {
                        (
                            g.clone(),
                            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        )
                    })
                    .collect(),
            };
            (snapshot.covers_offset, snapshot)
        };
        let json =
            serde_json::to_vec(&snapshot).map_err(|e| BrokerError::Metadata(e.to_string()))?;
        let mut bytes = Vec::with_capacity(json.len() + 12);
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
        bytes.extend_from_slice(&json);
        write_atomic(&*self.vfs, &self.dir, SNAPSHOT_FILE, &bytes)
            .map_err(|e| BrokerError::Metadata(e.to_string()))?;
        self.log.sync()?;
        let deleted = self.log.delete_segments_below(covers)?;
        tracing::info!(
            covers,
            deleted_segments = deleted,
            "group offsets compacted into a snapshot"
        );
        Ok(true)
    }

    pub fn close(&self) -> Result<()> {
        Ok(self.log.close()?)
    }
}

fn apply_op(map: &mut Map, op: Op) {
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

fn load_snapshot(vfs: &dyn Vfs, dir: &Path) -> (Map, u64) {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match read_small_file(vfs, &path, SNAPSHOT_MAX_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return (Map::new(), 0),
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "cannot read the group offset snapshot");
            return (Map::new(), 0);
        }
    };
    let valid = bytes.len() >= 12
        && &bytes[..8] == SNAPSHOT_MAGIC
        && bytes[8..12].try_into().map(u32::from_be_bytes).ok()
            == Some(crc32fast::hash(&bytes[12..]));
    let parsed: Option<Snapshot> = valid
        .then(|| serde_json::from_slice(&bytes[12..]).ok())
        .flatten();
    match parsed {
        Some(snapshot) => {
            let map = snapshot
                .groups
                .into_iter()
                .map(|(g, entries)| (g, entries.into_iter().collect()))
                .collect();
            (map, snapshot.covers_offset)
        }
        None => {
            tracing::error!(path = %path.display(), "group offset snapshot is corrupt: ignoring it");
            (Map::new(), 0)
        }
    }
}

/// Applies every record from `from` to the end; returns how many.
fn replay(log: &Log, from: u64, map: &mut Map) -> Result<u64> {
    let mut offset = from;
    let mut count = 0;
    while offset < log.end_offset() {
        let read = log.read(offset, 4 * 1024 * 1024)?;
        for item in BatchIter::new(read.data, BATCH_BYTES_LIMIT) {
            let (header, bytes) = item.map_err(|e| BrokerError::Metadata(e.to_string()))?;
            for record in RecordIter::new(bytes, header) {
                let record = record.map_err(|e| BrokerError::Metadata(e.to_string()))?;
                if record.offset < offset {
                    continue;
                }
                let value = record.value.unwrap_or_default();
                match serde_json::from_slice::<Op>(&value) {
                    Ok(op) => apply_op(map, op),
                    Err(error) => {
                        tracing::warn!(offset = record.offset, %error, "skipping an unreadable offset record")
                    }
                }
                count += 1;
            }
        }
        if read.next_offset <= offset {
            break;
        }
        offset = read.next_offset;
    }
    Ok(count)
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
                store.maybe_compact().unwrap();
            }
            fs = fs.power_loss(round);
        }
    }
}
