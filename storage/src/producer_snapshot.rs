//! Idempotent producers' state on disk: a snapshot file per segment roll,
//! and the rebuild on open (the newest usable snapshot, then a walk of the
//! batch headers after it).
//!
//! When the log rolls, the state of every producer as of the new segment's
//! base offset is written to `<base>.producers` (atomically: temporary
//! file, fsync, rename, directory fsync), and all but the newest
//! [`PRODUCER_SNAPSHOTS_KEPT`] snapshots are deleted. On open, the newest
//! snapshot at or below the recovered end whose checksum holds is loaded
//! (newer ones, left by a tail recovery cut, are deleted; corrupt ones are
//! skipped and deleted), and the headers of the batches from its offset to
//! the end are replayed. Rebuild work is therefore bounded by one segment
//! plus whatever was appended since the last roll; with no usable snapshot
//! every segment is walked (headers only), which is logged.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! magic          8   "FRYPRD02"
//! offset         8   the state covers every batch below this offset
//! count          4   producers, at most PRODUCERS_PER_PARTITION_LIMIT
//! per producer:
//!   producer_id  8
//!   epoch        2
//!   floor        4   the first sequence taken in this epoch
//!   last_write   8   ms since the epoch
//!   batches      1   at most PRODUCER_BATCHES_KEPT, oldest first
//!   per batch:   first_sequence 4, last_sequence 4, base_offset 8, last_offset 8
//! crc32c         4   of every byte before it
//! ```
//!
//! A snapshot only saves work: losing one (a crash before its rename, a
//! corrupt file) costs a longer header walk, never a wrong answer, because
//! every field of the state is in the batch headers themselves.

use std::collections::VecDeque;
use std::sync::Arc;

use ferry_protocol::batch::BatchHeader;

use crate::error::{IoContext, Result};
use crate::producers::{
    BatchIdentity, KeptBatch, ProducerEntry, ProducerStates, PRODUCERS_PER_PARTITION_LIMIT,
    PRODUCER_BATCHES_KEPT,
};
use crate::segment::{self, Segment, SegmentHome};
use crate::vfs::{read_small_file, write_atomic};

pub const PRODUCERS_SUFFIX: &str = ".producers";
/// Snapshots kept after a roll: the newest, and one before it in case a
/// tail recovery cuts the log below the newest.
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 2;
const MAGIC: &[u8; 8] = b"FRYPRD02";
const HEADER_BYTES: usize = 8 + 8 + 4;
const PRODUCER_BYTES: usize = 8 + 2 + 4 + 8 + 1;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8;
/// The largest snapshot a partition can have.
pub const SNAPSHOT_BYTES_LIMIT: usize = HEADER_BYTES
    + PRODUCERS_PER_PARTITION_LIMIT * (PRODUCER_BYTES + PRODUCER_BATCHES_KEPT * BATCH_BYTES)
    + 4;

/// The identity of an idempotent producer's batch, or `None` for a batch
/// without a producer id.
pub fn identity(header: &BatchHeader) -> Option<BatchIdentity> {
    (header.producer_id >= 0).then_some(BatchIdentity {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        record_count: header.record_count,
    })
}

/// Encodes `states` as the state below `offset`.
pub fn encode(states: &ProducerStates, offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + states.len() * PRODUCER_BYTES + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(states.len() as u32).to_be_bytes());
    for (producer_id, entry) in states.iter() {
        out.extend_from_slice(&producer_id.to_be_bytes());
        out.extend_from_slice(&entry.epoch.to_be_bytes());
        out.extend_from_slice(&entry.floor_sequence.to_be_bytes());
        out.extend_from_slice(&entry.last_write_ms.to_be_bytes());
        out.push(entry.batches.len() as u8);
        for kept in &entry.batches {
            out.extend_from_slice(&kept.first_sequence.to_be_bytes());
            out.extend_from_slice(&kept.last_sequence.to_be_bytes());
            out.extend_from_slice(&kept.base_offset.to_be_bytes());
            out.extend_from_slice(&kept.last_offset.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    debug_assert!(out.len() <= SNAPSHOT_BYTES_LIMIT);
    out
}

/// Decodes a snapshot: `(offset, states)`, or `None` if it is not one
/// (wrong magic, checksum, counts or length).
pub fn decode(bytes: &[u8]) -> Option<(u64, ProducerStates)> {
    if bytes.len() < HEADER_BYTES + 4 || &bytes[..8] != MAGIC {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut reader = Reader { buf: body, at: 8 };
    let offset = reader.u64()?;
    let count = reader.u32()? as usize;
    if count > PRODUCERS_PER_PARTITION_LIMIT {
        return None;
    }
    let mut states = ProducerStates::new();
    for _ in 0..count {
        let (producer_id, entry) = reader.producer()?;
        states.restore(producer_id, entry);
    }
    (reader.at == body.len()).then_some((offset, states))
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.buf.get(self.at..self.at + N)?;
        self.at += N;
        bytes.try_into().ok()
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }

    fn producer(&mut self) -> Option<(i64, ProducerEntry)> {
        let producer_id = self.take().map(i64::from_be_bytes)?;
        let epoch = self.take().map(i16::from_be_bytes)?;
        let floor_sequence = self.take().map(i32::from_be_bytes)?;
        let last_write_ms = self.take().map(i64::from_be_bytes)?;
        let [count] = self.take::<1>()?;
        if producer_id < 0 || usize::from(count) > PRODUCER_BATCHES_KEPT {
            return None;
        }
        let mut batches = VecDeque::with_capacity(usize::from(count));
        for _ in 0..count {
            let first_sequence = self.take().map(i32::from_be_bytes)?;
            let last_sequence = self.take().map(i32::from_be_bytes)?;
            let base_offset = self.u64()?;
            let last_offset = self.u64()?;
            if base_offset > last_offset {
                return None;
            }
            batches.push_back(KeptBatch {
                first_sequence,
                last_sequence,
                base_offset,
                last_offset,
            });
        }
        let entry = ProducerEntry {
            epoch,
            floor_sequence,
            batches,
            last_write_ms,
        };
        Some((producer_id, entry))
    }
}

/// Snapshot offsets present in the log's directory, newest first.
fn list(home: &SegmentHome) -> Result<Vec<u64>> {
    let names = home.vfs.list_dir(&home.dir).at(&home.dir)?;
    let mut offsets: Vec<u64> = names
        .iter()
        .filter_map(|name| segment::parse_file_name(name, PRODUCERS_SUFFIX))
        .collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    Ok(offsets)
}

fn remove(home: &SegmentHome, offset: u64) -> Result<()> {
    let path = home.dir.join(segment::file_name(offset, PRODUCERS_SUFFIX));
    home.vfs.remove_file(&path).at(&path)
}

/// Writes the snapshot of `states` at `offset` (a new segment's base) and
/// deletes all but the newest [`PRODUCER_SNAPSHOTS_KEPT`].
pub(crate) fn write(home: &SegmentHome, states: &ProducerStates, offset: u64) -> Result<()> {
    let name = segment::file_name(offset, PRODUCERS_SUFFIX);
    write_atomic(&*home.vfs, &home.dir, &name, &encode(states, offset))
        .at(&home.dir.join(&name))?;
    for old in list(home)?.into_iter().skip(PRODUCER_SNAPSHOTS_KEPT) {
        remove(home, old)?;
    }
    Ok(())
}

/// The newest usable snapshot at or below `end_offset`. Removes the ones
/// above it and the unusable ones met on the way (and makes the removals
/// durable: a snapshot above the end must not come back after another
/// power loss, once the log has grown past it again). A snapshot that
/// cannot be read or removed is skipped with a warning: it only saves work.
fn load_newest(home: &SegmentHome, name: &str, end_offset: u64) -> Result<(u64, ProducerStates)> {
    let mut removed = false;
    let mut found = None;
    for offset in list(home)? {
        let path = home.dir.join(segment::file_name(offset, PRODUCERS_SUFFIX));
        if offset <= end_offset {
            let bytes = read_small_file(&*home.vfs, &path, SNAPSHOT_BYTES_LIMIT as u64);
            match bytes.ok().flatten().as_deref().and_then(decode) {
                Some((stored, states)) if stored == offset => {
                    found = Some((offset, states));
                    break;
                }
                _ => {
                    tracing::warn!(partition = name, path = %path.display(), "unusable producer snapshot: removing it")
                }
            }
        } else {
            tracing::info!(
                partition = name,
                offset,
                "removing producer snapshot past the recovered end"
            );
        }
        match remove(home, offset) {
            Ok(()) => removed = true,
            Err(error) => {
                tracing::warn!(partition = name, %error, "could not remove a producer snapshot")
            }
        }
    }
    if removed {
        home.vfs.sync_dir(&home.dir).at(&home.dir)?;
    }
    Ok(found.unwrap_or_else(|| (0, ProducerStates::new())))
}

/// The producers' state at the end of the opened log: the newest snapshot,
/// then every idempotent batch from its offset to `end_offset` replayed.
/// Replayed producers count as having written at `now_ms` (the open): a
/// batch's own timestamps are its producer's clock, and could expire it
/// at once.
pub(crate) fn rebuild(
    home: &SegmentHome,
    name: &str,
    segments: &[Arc<Segment>],
    end_offset: u64,
    now_ms: i64,
) -> Result<ProducerStates> {
    let (from, mut states) = load_newest(home, name, end_offset)?;
    if from == 0 && end_offset > 0 {
        tracing::info!(
            partition = name,
            end_offset,
            "no producer snapshot: walking every batch header"
        );
    }
    let mut replayed = 0u64;
    for segment in segments.iter().filter(|s| s.next_offset() > from) {
        let reader = segment.reader()?;
        let limit = segment.size_bytes();
        let mut position = 0;
        while let Some(header) = reader.header_at(position, limit)? {
            position += header.total_bytes() as u64;
            if header.base_offset < from {
                continue;
            }
            if let Some(batch) = identity(&header) {
                states.record(&batch, header.base_offset, header.last_offset(), now_ms);
                replayed += 1;
            }
        }
    }
    tracing::debug!(
        partition = name,
        from,
        replayed,
        producers = states.len(),
        "producer state rebuilt"
    );
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn states_from(ops: &[(i64, i16, u32)]) -> ProducerStates {
        let mut states = ProducerStates::new();
        let mut offset = 0u64;
        let mut sequences = std::collections::HashMap::new();
        for &(producer_id, epoch, records) in ops {
            let sequence = sequences.entry((producer_id, epoch)).or_insert(0i32);
            let batch = BatchIdentity {
                producer_id,
                producer_epoch: epoch,
                base_sequence: *sequence,
                record_count: records,
            };
            states.record(
                &batch,
                offset,
                offset + u64::from(records) - 1,
                offset as i64,
            );
            *sequence += records as i32;
            offset += u64::from(records);
        }
        states
    }

    #[test]
    fn an_empty_state_round_trips() {
        let encoded = encode(&ProducerStates::new(), 7);
        assert_eq!(decode(&encoded), Some((7, ProducerStates::new())));
    }

    proptest! {
        #[test]
        fn snapshots_round_trip(ops in proptest::collection::vec((0i64..20, 0i16..3, 1u32..9), 0..200)) {
            let states = states_from(&ops);
            let encoded = encode(&states, 1234);
            prop_assert_eq!(decode(&encoded), Some((1234, states)));
        }

        /// Any flipped byte or cut is noticed: a snapshot is used whole or
        /// not at all.
        #[test]
        fn damaged_snapshots_are_refused(
            ops in proptest::collection::vec((0i64..20, 0i16..3, 1u32..9), 1..50),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
            cut in any::<bool>(),
        ) {
            let mut encoded = encode(&states_from(&ops), 99);
            let at = at.index(encoded.len());
            if cut {
                encoded.truncate(at);
            } else {
                encoded[at] ^= flip;
            }
            prop_assert_eq!(decode(&encoded), None);
        }
    }
}
