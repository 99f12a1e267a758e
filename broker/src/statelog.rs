//! Durable broker state kept as an internal log of operations plus a
//! snapshot: group offsets and queue ack state both use it.
//!
//! - `append(ops)` writes the operations as one record batch (all or nothing
//!   after a crash) to a log with `fsync = always`; the returned future
//!   resolves once the group commit covering it is done — acknowledge only
//!   then.
//! - At start, the state is the snapshot (if its CRC holds) with every
//!   operation after it replayed.
//! - `compact(snapshot)` writes `<name>.snapshot` (magic, CRC, JSON, replaced
//!   atomically) with the log offset it covers, then deletes the segments
//!   below it.
//!
//! Everything goes through the storage `Vfs`, so power-loss tests apply.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, BatchIter, NewRecord, RecordIter, BATCH_BYTES_LIMIT};
use ferry_storage::vfs::{read_small_file, write_atomic, Vfs};
use ferry_storage::{Flusher, FsyncPolicy, Log, LogConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

const SNAPSHOT_MAGIC: &[u8; 8] = b"FSNP0001";
const SNAPSHOT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
const STATE_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const STATE_INDEX_BYTES: u64 = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct Envelope<S> {
    covers_offset: u64,
    state: S,
}

pub struct StateLog {
    log: Log,
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    snapshot_file: String,
}

/// A durable-append future.
pub type Durable = futures::future::BoxFuture<'static, Result<()>>;

impl StateLog {
    /// Opens `<data>/internal/<name>/` and returns the log with the state
    /// rebuilt: `apply` is called for every operation after the snapshot.
    pub fn open<S, Op>(
        vfs: Arc<dyn Vfs>,
        data_dir: &Path,
        name: &str,
        flusher: &Flusher,
        mut apply: impl FnMut(&mut S, Op),
    ) -> Result<(StateLog, S)>
    where
        S: DeserializeOwned + Default,
        Op: DeserializeOwned,
    {
        let dir = data_dir.join("internal").join(name);
        let config = LogConfig {
            segment_bytes: STATE_SEGMENT_BYTES,
            fsync: FsyncPolicy::Always,
            // 8 MiB segments need ~2k index entries; a full index just rolls.
            index_max_bytes: STATE_INDEX_BYTES,
            ..LogConfig::default()
        };
        let log = Log::open(vfs.clone(), &dir, &format!("__{name}"), config, flusher)?;
        let snapshot_file = format!("{name}.snapshot");
        let (mut state, covers) = load_snapshot::<S>(&*vfs, &dir.join(&snapshot_file));
        if covers < log.start_offset() {
            tracing::error!(
                state = name,
                snapshot_covers = covers,
                log_start = log.start_offset(),
                "state snapshot is missing or corrupt and older log segments are gone: some state is lost"
            );
        }
        let replayed = replay(&log, covers.max(log.start_offset()), |op| {
            apply(&mut state, op)
        })?;
        tracing::info!(state = name, replayed, "internal state loaded");
        Ok((
            StateLog {
                log,
                vfs,
                dir,
                snapshot_file,
            },
            state,
        ))
    }

    /// Appends `ops` as one batch. Call with the caller's state lock held so
    /// log order and in-memory order agree.
    pub fn append<Op: Serialize>(&self, ops: &[Op]) -> Result<Durable> {
        if ops.is_empty() {
            return Ok(Box::pin(std::future::ready(Ok(()))));
        }
        let mut builder = BatchBuilder::new();
        let now = ferry_storage::now_ms() as i64;
        for op in ops {
            let value = serde_json::to_vec(op).map_err(|e| BrokerError::Metadata(e.to_string()))?;
            builder.push(&NewRecord {
                timestamp_ms: now,
                value: Some(Bytes::from(value)),
                ..NewRecord::default()
            });
        }
        let info = self.log.append(&builder.finish())?;
        let durable = self.log.wait_durable(info.last_offset + 1);
        Ok(Box::pin(
            async move { durable.await.map_err(BrokerError::from) },
        ))
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.stats().size_bytes
    }

    /// The log offset a snapshot taken now covers (call under the state lock).
    pub fn end_offset(&self) -> u64 {
        self.log.end_offset()
    }

    /// Writes `state` as the snapshot covering `covers_offset` and drops the
    /// segments below it (blocking).
    pub fn compact<S: Serialize>(&self, state: &S, covers_offset: u64) -> Result<()> {
        let json = serde_json::to_vec(&Envelope {
            covers_offset,
            state,
        })
        .map_err(|e| BrokerError::Metadata(e.to_string()))?;
        let mut bytes = Vec::with_capacity(json.len() + 12);
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
        bytes.extend_from_slice(&json);
        write_atomic(&*self.vfs, &self.dir, &self.snapshot_file, &bytes)
            .map_err(|e| BrokerError::Metadata(e.to_string()))?;
        self.log.sync()?;
        let deleted = self.log.delete_segments_below(covers_offset)?;
        tracing::info!(snapshot = %self.snapshot_file, covers_offset, deleted_segments = deleted, "internal state compacted");
        Ok(())
    }

    pub fn close(&self) -> Result<()> {
        Ok(self.log.close()?)
    }
}

fn load_snapshot<S: DeserializeOwned + Default>(vfs: &dyn Vfs, path: &Path) -> (S, u64) {
    let bytes = match read_small_file(vfs, path, SNAPSHOT_MAX_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return (S::default(), 0),
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "cannot read state snapshot");
            return (S::default(), 0);
        }
    };
    let intact = bytes.len() >= 12
        && &bytes[..8] == SNAPSHOT_MAGIC
        && bytes[8..12].try_into().map(u32::from_be_bytes).ok()
            == Some(crc32fast::hash(&bytes[12..]));
    match intact
        .then(|| serde_json::from_slice::<Envelope<S>>(&bytes[12..]).ok())
        .flatten()
    {
        Some(envelope) => (envelope.state, envelope.covers_offset),
        None => {
            tracing::error!(path = %path.display(), "state snapshot is corrupt: ignoring it");
            (S::default(), 0)
        }
    }
}

/// Applies every operation from `from` to the end; returns how many.
fn replay<Op: DeserializeOwned>(log: &Log, from: u64, mut apply: impl FnMut(Op)) -> Result<u64> {
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
                match serde_json::from_slice::<Op>(&record.value.unwrap_or_default()) {
                    Ok(op) => apply(op),
                    Err(error) => {
                        tracing::warn!(offset = record.offset, %error, "skipping an unreadable state record")
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
