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
//!   atomically) with the log offset it covers. The snapshot it replaces is
//!   kept as `<name>.snapshot.prev`, and only the segments below *that* one's
//!   offset are deleted: if the newest snapshot is ever found corrupt, it is
//!   set aside (`.snapshot.corrupt`) and the previous one plus the log still
//!   rebuild the whole state. Both slots bad means state is lost, and the
//!   broker says so loudly.
//!
//! Everything goes through the storage `Vfs`, so power-loss tests apply.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{
    validate_batch, BatchBuilder, BatchIter, NewRecord, RecordIter, BATCH_BYTES_LIMIT,
};
use ferry_storage::vfs::{read_small_file, write_atomic, Vfs};
use ferry_storage::{Flusher, FsyncPolicy, Log, LogConfig};
use parking_lot::Mutex;
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
    /// The log offset the snapshot in the current slot covers (0: none).
    /// After the next compaction it is the fallback: segments from it on stay.
    current_covers: Mutex<u64>,
}

/// What a snapshot slot held.
enum Slot<S> {
    Missing,
    Corrupt,
    Intact(S, u64),
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
        apply: impl FnMut(&mut S, Op),
    ) -> Result<(StateLog, S)>
    where
        S: DeserializeOwned + Default,
        Op: DeserializeOwned,
    {
        StateLog::open_sized(vfs, data_dir, name, flusher, STATE_SEGMENT_BYTES, apply)
    }

    /// [`StateLog::open`] with a given segment size (tests use small ones).
    pub fn open_sized<S, Op>(
        vfs: Arc<dyn Vfs>,
        data_dir: &Path,
        name: &str,
        flusher: &Flusher,
        segment_bytes: u64,
        mut apply: impl FnMut(&mut S, Op),
    ) -> Result<(StateLog, S)>
    where
        S: DeserializeOwned + Default,
        Op: DeserializeOwned,
    {
        let dir = data_dir.join("internal").join(name);
        let config = LogConfig {
            segment_bytes,
            fsync: FsyncPolicy::Always,
            // 8 MiB segments need ~2k index entries; a full index just rolls.
            index_max_bytes: STATE_INDEX_BYTES,
            ..LogConfig::default()
        };
        let log = Log::open(vfs.clone(), &dir, &format!("__{name}"), config, flusher)?;
        let snapshot_file = format!("{name}.snapshot");
        let (mut state, covers) = load_snapshots::<S>(&*vfs, &dir, &snapshot_file);
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
                current_covers: Mutex::new(covers),
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
        let info = self.log.append(&Self::batch(ops)?)?;
        let durable = self.log.wait_durable(info.last_offset + 1);
        Ok(Box::pin(
            async move { durable.await.map_err(BrokerError::from) },
        ))
    }

    /// Appends `ops` without asking for an fsync: they are durable once
    /// the next [`StateLog::append`] is (for bookkeeping a power loss may
    /// cost, such as delivery counts).
    pub fn append_lazy<Op: Serialize>(&self, ops: &[Op]) -> Result<()> {
        if !ops.is_empty() {
            self.log.append_lazy(&Self::batch(ops)?)?;
        }
        Ok(())
    }

    /// One batch holding each op as a JSON record.
    fn batch<Op: Serialize>(ops: &[Op]) -> Result<Bytes> {
        let mut builder = BatchBuilder::new();
        let now = ferry_storage::now_ms() as i64;
        for op in ops {
            let value = serde_json::to_vec(op)?;
            builder.push(&NewRecord {
                timestamp_ms: now,
                value: Some(Bytes::from(value)),
                ..NewRecord::default()
            });
        }
        let batch = builder.finish();
        // Checked like a client's batch: the broker never writes what it
        // would refuse to read.
        validate_batch(&batch, BATCH_BYTES_LIMIT)?;
        Ok(batch)
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.stats().size_bytes
    }

    /// The log offset a snapshot taken now covers (call under the state lock).
    pub fn end_offset(&self) -> u64 {
        self.log.end_offset()
    }

    /// Writes `state` as the snapshot covering `covers_offset`, keeps the one
    /// it replaces as the fallback and drops the segments below the fallback
    /// (blocking; one compaction at a time).
    pub fn compact<S: Serialize>(&self, state: &S, covers_offset: u64) -> Result<()> {
        let mut current_covers = self.current_covers.lock();
        debug_assert!(covers_offset >= *current_covers);
        let json = serde_json::to_vec(&Envelope {
            covers_offset,
            state,
        })?;
        let mut bytes = Vec::with_capacity(json.len() + 12);
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
        bytes.extend_from_slice(&json);
        let current = self.dir.join(&self.snapshot_file);
        if self.vfs.exists(&current) {
            // write_atomic's directory fsync makes this rename durable too.
            let previous = self.dir.join(format!("{}.prev", self.snapshot_file));
            self.vfs
                .rename(&current, &previous)
                .map_err(BrokerError::metadata_io(&current))?;
        }
        write_atomic(&*self.vfs, &self.dir, &self.snapshot_file, &bytes)
            .map_err(BrokerError::metadata_io(&current))?;
        self.log.sync()?;
        let keep_from = std::mem::replace(&mut *current_covers, covers_offset);
        let deleted = self.log.delete_segments_below(keep_from)?;
        tracing::info!(snapshot = %self.snapshot_file, covers_offset, kept_from = keep_from, deleted_segments = deleted, "internal state compacted");
        Ok(())
    }

    pub fn close(&self) -> Result<()> {
        Ok(self.log.close()?)
    }
}

/// The newest intact snapshot and the offset it covers: the current slot,
/// else the previous one (a corrupt current one is set aside), else none.
fn load_snapshots<S: DeserializeOwned + Default>(
    vfs: &dyn Vfs,
    dir: &Path,
    file: &str,
) -> (S, u64) {
    let current = dir.join(file);
    match load_snapshot::<S>(vfs, &current) {
        Slot::Intact(state, covers) => return (state, covers),
        Slot::Missing => {}
        Slot::Corrupt => {
            let aside = dir.join(format!("{file}.corrupt"));
            tracing::error!(path = %current.display(), aside = %aside.display(), "state snapshot is corrupt: setting it aside and using the previous one");
            if let Err(error) = vfs.rename(&current, &aside).and_then(|_| vfs.sync_dir(dir)) {
                tracing::error!(path = %current.display(), %error, "cannot set the corrupt snapshot aside");
            }
        }
    }
    let previous = dir.join(format!("{file}.prev"));
    match load_snapshot::<S>(vfs, &previous) {
        Slot::Intact(state, covers) => (state, covers),
        Slot::Missing => (S::default(), 0),
        Slot::Corrupt => {
            tracing::error!(path = %previous.display(), "previous state snapshot is corrupt too");
            (S::default(), 0)
        }
    }
}

fn load_snapshot<S: DeserializeOwned>(vfs: &dyn Vfs, path: &Path) -> Slot<S> {
    let bytes = match read_small_file(vfs, path, SNAPSHOT_MAX_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Slot::Missing,
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "cannot read state snapshot");
            return Slot::Corrupt;
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
        Some(envelope) => Slot::Intact(envelope.state, envelope.covers_offset),
        None => Slot::Corrupt,
    }
}

/// Applies every operation from `from` to the end; returns how many.
fn replay<Op: DeserializeOwned>(log: &Log, from: u64, mut apply: impl FnMut(Op)) -> Result<u64> {
    let mut offset = from;
    let mut count = 0;
    while offset < log.end_offset() {
        let read = log.read(offset, 4 * 1024 * 1024)?;
        for item in BatchIter::new(read.data, BATCH_BYTES_LIMIT) {
            let (header, bytes) = item.map_err(BrokerError::InvalidBatch)?;
            for record in RecordIter::new(bytes, header) {
                let record = record.map_err(BrokerError::InvalidBatch)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_storage::vfs::SimFs;

    const NAME: &str = "numbers";

    fn open(fs: &SimFs, flusher: &Flusher) -> (StateLog, Vec<u64>) {
        let apply = |state: &mut Vec<u64>, op: u64| state.push(op);
        StateLog::open_sized(
            Arc::new(fs.clone()),
            Path::new("/data"),
            NAME,
            flusher,
            4096,
            apply,
        )
        .unwrap()
    }

    /// Appends `from..to` one op per batch, compacting every `every` ops.
    fn append_range(log: &StateLog, state: &mut Vec<u64>, from: u64, to: u64, every: u64) {
        for op in from..to {
            futures::executor::block_on(log.append(&[op]).unwrap()).unwrap();
            state.push(op);
            if op % every == every - 1 {
                log.compact(state, log.end_offset()).unwrap();
            }
        }
    }

    fn snapshot_path(suffix: &str) -> PathBuf {
        PathBuf::from(format!("/data/internal/{NAME}/{NAME}.snapshot{suffix}"))
    }

    fn flip_byte(fs: &SimFs, path: &Path) {
        let mut bytes = fs.read_file(path).expect("snapshot exists");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        fs.write_file(path, bytes);
    }

    #[test]
    fn a_corrupt_snapshot_falls_back_to_the_previous_one_and_loses_nothing() {
        let flusher = Flusher::start(1);
        let fs = SimFs::new(7);
        let (log, mut state) = open(&fs, &flusher);
        // Enough ops for several compactions and deleted segments.
        append_range(&log, &mut state, 0, 600, 150);
        assert!(
            log.log.start_offset() > 0,
            "compaction deleted no segment: the test tests nothing"
        );
        drop(log);
        flip_byte(&fs, &snapshot_path(""));
        let (log, recovered) = open(&fs, &flusher);
        assert_eq!(recovered, (0..600).collect::<Vec<_>>());
        assert!(
            fs.read_file(&snapshot_path(".corrupt")).is_some(),
            "the corrupt snapshot is kept aside"
        );
        // Compacting again after the fallback keeps the state whole.
        let mut state = recovered;
        append_range(&log, &mut state, 600, 900, 150);
        drop(log);
        flip_byte(&fs, &snapshot_path(""));
        assert_eq!(open(&fs, &flusher).1, (0..900).collect::<Vec<_>>());
    }

    #[test]
    fn power_loss_after_compactions_loses_no_acknowledged_op() {
        let flusher = Flusher::start(1);
        for seed in 0..100u64 {
            let mut fs = SimFs::new(seed);
            let mut acked = 0u64;
            for round in 0..3u64 {
                let (log, mut state) = open(&fs, &flusher);
                assert!(
                    state.len() as u64 >= acked && state.iter().copied().eq(0..state.len() as u64),
                    "seed {seed} round {round}: {} ops recovered, {acked} acknowledged",
                    state.len()
                );
                let from = state.len() as u64;
                append_range(&log, &mut state, from, from + 200, 70);
                acked = from + 200;
                // Power fails right after a compaction: its segment deletions
                // are journaled but not yet synced, so any prefix survives.
                log.compact(&state, log.end_offset()).unwrap();
                let crashed = fs.power_loss(seed * 31 + round);
                drop(log);
                fs = crashed;
            }
        }
    }
}
