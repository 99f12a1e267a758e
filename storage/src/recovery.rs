//! Opening a log directory, and recovering it after an unclean shutdown.
//!
//! - Clean shutdown marker present and consistent: trust the log bytes, no
//!   scan; offset indexes (the active one's too) are checked against the
//!   batch headers, and rebuilt if they do not match.
//! - Otherwise: segments before the recovery checkpoint's segment are sealed
//!   and were fsynced (with trimmed indexes) before the checkpoint was
//!   written, so they are trusted. From the checkpoint's position on, every
//!   batch is checked (header, length, CRC, dense offsets, and the leader
//!   epoch `Log::append` stamps) and indexed again;
//!   the log is cut at the first torn or corrupt batch and later segments are
//!   deleted. Recovery work is therefore bounded by the unflushed tail.
//! - The recovered tail is fsynced and a new checkpoint written before the
//!   log accepts appends, so its durable offset is its end offset.
//!
//! Trusted sealed segments are opened without opening their files (see
//! `segment/mod.rs`): their index is checked through read-only maps. Only
//! the segments recovery writes (the tail, a rebuilt index) are pinned, one
//! at a time, and each is fsynced before its files are closed, so opening
//! a log holds a bounded number of files however many segments it has.
//!
//! Bytes before the checkpoint are never truncated: if they are missing the
//! log is fenced instead (that is lost durable data, not a torn write).
//!
//! The result is a plain [`Recovered`] value; `log.rs` builds the live log
//! from it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use ferry_protocol::batch;

use crate::checkpoint::{Checkpoint, CheckpointFile, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
use crate::config::LogConfig;
use crate::cursor::{IndexCursor, Indexed};
use crate::error::{IoContext, Result};
use crate::health::Health;
use crate::index::{OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use crate::segment::{
    self, Segment, SegmentHome, SegmentReader, SegmentState, INDEX_SUFFIX, LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
};
use crate::vfs::Vfs;
use crate::STORED_LEADER_EPOCH;

/// A log directory as opening left it: every segment and the directory
/// fsynced, and `recovery-checkpoint` naming the end of the log.
pub(crate) struct Recovered {
    /// Oldest first, never empty. The last is the active segment, pinned,
    /// with its indexes preallocated; the others hold no open file.
    pub segments: Vec<Arc<Segment>>,
    /// Where appends to the active segment continue.
    pub cursor: IndexCursor,
    /// The checkpoint just written: everything before the end is durable.
    pub checkpoint: Checkpoint,
    /// `Fenced` if durable data was found missing, else `Ok`.
    pub health: Health,
}

/// Opens the log in `home.dir` (created if missing) as of `now_ms`,
/// recovering it after an unclean shutdown. `config` must be valid.
pub(crate) fn open_dir(
    home: &Arc<SegmentHome>,
    name: &str,
    config: &LogConfig,
    now_ms: u64,
) -> Result<Recovered> {
    let (vfs, dir) = (&*home.vfs, home.dir.as_path());
    vfs.create_dir_all(dir).at(dir)?;
    let bases = list_segments(vfs, dir)?;
    let opening = Opening {
        vfs,
        dir,
        home,
        name,
        config,
        now_ms,
    };
    let opened = opening.open_segments(&bases)?;
    opening.make_durable(opened)
}

/// The directory being opened, and what every step needs with it.
struct Opening<'a> {
    vfs: &'a dyn Vfs,
    dir: &'a Path,
    home: &'a Arc<SegmentHome>,
    /// The partition's name, for logging.
    name: &'a str,
    config: &'a LogConfig,
    now_ms: u64,
}

/// The segments and writer position found, before they are made durable.
struct Opened {
    segments: Vec<Arc<Segment>>,
    cursor: IndexCursor,
    health: Health,
}

impl Opened {
    fn healthy(segments: Vec<Arc<Segment>>, cursor: IndexCursor) -> Opened {
        Opened {
            segments,
            cursor,
            health: Health::Ok,
        }
    }
}

/// How recovery left one segment of the tail.
enum SegmentEnd {
    /// Every byte of the file checked out.
    Intact,
    /// Cut at the first torn or corrupt batch; later segments must go.
    Truncated,
    /// Shorter than its checkpoint says: durable data is missing.
    Fenced { reason: String },
}

/// Segment base offsets present, after removing leftovers: temporary files
/// and index files whose log is gone (a retention delete cut short).
fn list_segments(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<u64>> {
    let names = vfs.list_dir(dir).at(dir)?;
    let bases: BTreeSet<u64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n, LOG_SUFFIX))
        .collect();
    for name in &names {
        let orphan_index = [INDEX_SUFFIX, TIME_INDEX_SUFFIX].iter().any(|suffix| {
            segment::parse_file_name(name, suffix).is_some_and(|base| !bases.contains(&base))
        });
        if orphan_index || name.ends_with(".tmp") {
            let path = dir.join(name);
            tracing::info!(path = %path.display(), "removing leftover file");
            vfs.remove_file(&path).at(&path)?;
        }
    }
    Ok(bases.into_iter().collect())
}

/// The clean-shutdown marker, if it is intact and matches the files.
fn clean_marker(
    vfs: &dyn Vfs,
    dir: &Path,
    bases: &[u64],
    clean: CheckpointFile,
) -> Result<Option<Checkpoint>> {
    let CheckpointFile::Valid(marker) = clean else {
        return Ok(None);
    };
    let last = *bases.last().expect("non-empty");
    let path = dir.join(segment::file_name(last, LOG_SUFFIX));
    let len = vfs.open(&path, false).and_then(|f| f.len()).at(&path)?;
    Ok((marker.segment_base == last && marker.position == len).then_some(marker))
}

impl Opening<'_> {
    /// Opens the segments `bases` by the cheapest safe path: a new log, a
    /// clean open, or recovery of the tail.
    fn open_segments(&self, bases: &[u64]) -> Result<Opened> {
        let (vfs, dir, name) = (self.vfs, self.dir, self.name);
        let clean = Checkpoint::read(vfs, dir, CLEAN_SHUTDOWN_FILE)?;
        let stored_checkpoint = Checkpoint::read(vfs, dir, CHECKPOINT_FILE)?;
        if clean != CheckpointFile::Missing {
            // Removed before anything else is written, so a crash from here on is
            // seen as unclean.
            vfs.remove_file(&dir.join(CLEAN_SHUTDOWN_FILE)).at(dir)?;
            vfs.sync_dir(dir).at(dir)?;
        }
        if bases.is_empty() {
            return self.create_first();
        }
        if let Some(marker) = clean_marker(vfs, dir, bases, clean)? {
            tracing::debug!(
                partition = name,
                end_offset = marker.next_offset,
                "clean open"
            );
            return self.open_clean(bases, &marker);
        }
        tracing::warn!(
            partition = name,
            "unclean shutdown: recovering the log tail"
        );
        let checkpoint = match stored_checkpoint {
            CheckpointFile::Valid(cp) if bases.contains(&cp.segment_base) => Some(cp),
            other => {
                tracing::warn!(partition = name, checkpoint = ?other, "no usable recovery checkpoint: scanning every segment");
                None
            }
        };
        self.recover_tail(bases, checkpoint)
    }

    /// Fsyncs what was opened and writes a checkpoint at its end, so the
    /// opened log's durable offset is its end offset.
    fn make_durable(&self, opened: Opened) -> Result<Recovered> {
        let Opened {
            segments,
            cursor,
            health,
        } = opened;
        let (active, sealed) = segments.split_last().expect("a log always has a segment");
        active.preallocate_indexes()?;
        // Sealed segments hold no open file here: each is opened, fsynced
        // and closed in turn.
        for segment in &segments {
            segment.sync_all()?;
        }
        self.vfs.sync_dir(self.dir).at(self.dir)?;
        let checkpoint = cursor.checkpoint(active);
        checkpoint.write(self.vfs, self.dir, CHECKPOINT_FILE)?;
        // Fsynced above: a sealed segment recovery still had open (one it
        // could not seal, before a fenced one) closes its files now.
        for segment in sealed {
            segment.unpin();
        }
        Ok(Recovered {
            segments,
            cursor,
            checkpoint,
            health,
        })
    }

    /// Opens segment `base` pinned (the active segment, or one of the tail
    /// that recovery checks and writes).
    fn open_segment(&self, base: u64, state: SegmentState) -> Result<Arc<Segment>> {
        let segment = Segment::open(self.home, base, self.config, state, self.now_ms)?;
        Ok(Arc::new(segment))
    }

    fn create_first(&self) -> Result<Opened> {
        let segment = self.open_segment(0, SegmentState::empty(0))?;
        Ok(Opened::healthy(vec![segment], IndexCursor::new(0)))
    }

    fn file_len(&self, base: u64, suffix: &str) -> Result<u64> {
        let path = self.dir.join(segment::file_name(base, suffix));
        if !self.vfs.exists(&path) {
            return Ok(0);
        }
        self.vfs.open(&path, false).and_then(|f| f.len()).at(&path)
    }

    /// Opens a sealed segment that was fsynced with trimmed indexes, without
    /// keeping a file open. If its offset index does not match the log it is
    /// rebuilt from the log.
    fn open_sealed(&self, base: u64, next_base: u64) -> Result<Arc<Segment>> {
        let size = self.file_len(base, LOG_SUFFIX)?;
        let state = SegmentState {
            size_bytes: size,
            next_offset: next_base,
            max_timestamp_ms: i64::MIN,
            index_entries: self.file_len(base, INDEX_SUFFIX)? / OFFSET_ENTRY_BYTES,
            time_entries: self.file_len(base, TIME_INDEX_SUFFIX)? / TIME_ENTRY_BYTES,
        };
        let segment = Arc::new(Segment::sealed(self.home, base, self.config, state));
        if !index_consistent(&segment.reader()?)? {
            tracing::warn!(segment = %segment.log_path.display(), "index does not match the log: rebuilding it");
            self.rebuild_index(&segment)?;
        }
        let max = segment
            .reader()?
            .last_time_entry()?
            .map_or(i64::MIN, |(ts, _)| ts);
        segment.publish(size, next_base, max);
        Ok(segment)
    }

    /// Rewrites both indexes of a sealed segment from its log, fsyncs them
    /// and closes the files again.
    fn rebuild_index(&self, segment: &Segment) -> Result<()> {
        segment.pin()?;
        segment.preallocate_indexes()?;
        let mut cursor = IndexCursor::new(segment.base_offset);
        reindex(segment, self.config, &mut cursor)?;
        segment.trim_indexes()?;
        segment.sync_all()?;
        segment.unpin();
        Ok(())
    }

    /// Clean open: the marker gives the active segment's state.
    fn open_clean(&self, bases: &[u64], marker: &Checkpoint) -> Result<Opened> {
        let mut segments = Vec::with_capacity(bases.len());
        for pair in bases.windows(2) {
            segments.push(self.open_sealed(pair[0], pair[1])?);
        }
        let last = *bases.last().expect("non-empty");
        let active = self.open_segment(last, SegmentState::checkpointed(marker))?;
        if !index_consistent(&active.reader()?)? {
            // A damaged index that was trusted would hide the batches past its
            // bad entry (reads found nothing there, without an error).
            tracing::warn!(segment = %active.log_path.display(), "active segment's index does not match the log: rebuilding it");
            return self.reindex_active(segments, active, marker);
        }
        let cursor = IndexCursor::resume(&active, marker.next_offset, marker.last_time_entry_ms)?;
        segments.push(active);
        Ok(Opened::healthy(segments, cursor))
    }

    /// Rebuilds the active segment's indexes from its log on a clean open.
    /// Every byte the clean marker names was fsynced: if the log does not
    /// check out that far, the partition is fenced there (never truncated).
    fn reindex_active(
        &self,
        mut segments: Vec<Arc<Segment>>,
        active: Arc<Segment>,
        marker: &Checkpoint,
    ) -> Result<Opened> {
        let mut cursor = IndexCursor::new(active.base_offset);
        let end = reindex(&active, self.config, &mut cursor)?;
        let mut health = Health::Ok;
        if end != marker.position || cursor.next_offset() != marker.next_offset {
            let reason = format!(
                "{} checks out to byte {end} (offset {}) but {} bytes (offset {}) were cleanly closed",
                active.log_path.display(),
                cursor.next_offset(),
                marker.position,
                marker.next_offset
            );
            tracing::error!(partition = self.name, %reason, "durable data damaged: fencing the partition");
            health = Health::Fenced {
                offset: cursor.next_offset(),
                reason,
            };
        }
        segments.push(active);
        Ok(Opened {
            segments,
            cursor,
            health,
        })
    }

    /// Unclean open: trusts the segments before the checkpoint's, checks
    /// every batch from the checkpoint on, and cuts the log at the first one
    /// that fails (or fences it if checkpointed bytes are missing).
    fn recover_tail(&self, bases: &[u64], checkpoint: Option<Checkpoint>) -> Result<Opened> {
        let start_base = checkpoint.map_or(bases[0], |cp| cp.segment_base);
        let mut segments = Vec::with_capacity(bases.len());
        for pair in bases.windows(2).filter(|pair| pair[0] < start_base) {
            segments.push(self.open_sealed(pair[0], pair[1])?);
        }
        let mut cursor = IndexCursor::new(start_base);
        let mut health = Health::Ok;
        let mut cut = false;
        for &base in bases.iter().filter(|&&base| base >= start_base) {
            if cut || base != cursor.next_offset() {
                self.delete_segment(base)?;
                cut = true;
                continue;
            }
            let trusted = checkpoint.filter(|cp| cp.segment_base == base);
            let (segment, end) = self.recover_segment(base, trusted, &mut cursor)?;
            match end {
                SegmentEnd::Intact => {}
                SegmentEnd::Truncated => cut = true,
                SegmentEnd::Fenced { reason } => {
                    health = Health::Fenced {
                        offset: base,
                        reason,
                    };
                    segments.push(segment);
                    cut = true;
                    continue;
                }
            }
            if let Some(previous) = segments.last() {
                seal_recovered(previous)?;
            }
            segments.push(segment);
        }
        if segments.is_empty() {
            return self.create_first();
        }
        Ok(Opened {
            segments,
            cursor,
            health,
        })
    }

    /// Deletes the files of segment `base`, which lies past the recovered end.
    fn delete_segment(&self, base: u64) -> Result<()> {
        tracing::warn!(
            partition = self.name,
            base,
            "deleting segment after the recovered end of the log"
        );
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = self.dir.join(segment::file_name(base, suffix));
            if self.vfs.exists(&path) {
                self.vfs.remove_file(&path).at(&path)?;
            }
        }
        Ok(())
    }

    /// Opens segment `base` of the tail (`trusted`: the checkpoint, if it
    /// names this segment), then checks and indexes its batches from the
    /// checkpointed position on, leaving `cursor` after the last good one.
    fn recover_segment(
        &self,
        base: u64,
        trusted: Option<Checkpoint>,
        cursor: &mut IndexCursor,
    ) -> Result<(Arc<Segment>, SegmentEnd)> {
        let len = self.file_len(base, LOG_SUFFIX)?;
        let state = match &trusted {
            Some(cp) => SegmentState::checkpointed(cp),
            None => SegmentState::empty(base),
        };
        let segment = self.open_segment(base, state)?;
        segment.preallocate_indexes()?;
        match trusted {
            Some(cp) => {
                let missing =
                    (len < cp.position).then(|| self.durable_data_missing(&segment, len, &cp));
                *cursor = IndexCursor::resume(&segment, cp.next_offset, cp.last_time_entry_ms)?;
                if let Some(reason) = missing {
                    return Ok((segment, SegmentEnd::Fenced { reason }));
                }
            }
            None => cursor.start_segment(),
        }
        let from = segment.size_bytes();
        let end = scan(&segment, from, self.config, cursor)?;
        if end >= len {
            return Ok((segment, SegmentEnd::Intact));
        }
        tracing::warn!(
            partition = self.name,
            segment = %segment.log_path.display(),
            kept_bytes = end,
            dropped_bytes = len - end,
            "truncating torn or corrupt tail"
        );
        segment.set_log_len(end)?;
        Ok((segment, SegmentEnd::Truncated))
    }

    /// Logs and describes a segment file shorter than its checkpoint.
    fn durable_data_missing(&self, segment: &Segment, len: u64, cp: &Checkpoint) -> String {
        let reason = format!(
            "{} is {len} bytes but {} bytes were checkpointed as durable",
            segment.log_path.display(),
            cp.position
        );
        tracing::error!(partition = self.name, %reason, "durable data missing: fencing the partition");
        reason
    }
}

/// Every offset index entry must name the start of a batch with that offset.
fn index_consistent(reader: &SegmentReader<'_>) -> Result<bool> {
    let segment = reader.segment();
    let limit = segment.size_bytes();
    let mut previous: Option<(u32, u32)> = None;
    for (relative, position) in reader.offset_entries_all()? {
        if previous.is_some_and(|(r, p)| relative <= r || position <= p) {
            return Ok(false);
        }
        match reader.header_at(u64::from(position), limit)? {
            Some(header) if header.base_offset == segment.base_offset + u64::from(relative) => {}
            _ => return Ok(false),
        }
        previous = Some((relative, position));
    }
    Ok(previous.is_some() || limit == 0)
}

/// A segment that recovery found followed by another is sealed as a roll
/// seals it, from what its files say (the cursor has moved past it). A
/// segment of the recovered tail is then fsynced and its files closed, so
/// recovering a long tail holds one segment's files at a time; a trusted
/// one (before the checkpoint's) was sealed before the checkpoint was
/// written and holds none.
fn seal_recovered(segment: &Segment) -> Result<()> {
    if !segment.is_pinned() {
        return Ok(());
    }
    let last_time_entry_ms = segment
        .reader()?
        .last_time_entry()?
        .map_or(i64::MIN, |(ts, _)| ts);
    IndexCursor::resume(segment, segment.next_offset(), last_time_entry_ms)?.seal(segment)?;
    segment.sync_all()?;
    segment.unpin();
    Ok(())
}

/// Checks batches from `position` to the end of the file, indexing each one
/// and publishing it; returns where the valid data ends.
/// Forgets `segment`'s index entries and what it published, then indexes
/// its log again from the start (see `scan`); returns where the scan ended.
fn reindex(segment: &Segment, config: &LogConfig, cursor: &mut IndexCursor) -> Result<u64> {
    segment.reset_published();
    segment.index.0.truncate_entries(0);
    segment.time_index.0.truncate_entries(0);
    scan(segment, 0, config, cursor)
}

fn scan(
    segment: &Segment,
    mut position: u64,
    config: &LogConfig,
    cursor: &mut IndexCursor,
) -> Result<u64> {
    let len = segment.log_file_len()?;
    let reader = segment.reader()?;
    while let Some(header) = reader.header_at(position, len)? {
        // The bytes outside the CRC are checked by value: the base offset,
        // the leader epoch (the length is checked by framing and the CRC).
        if header.base_offset != cursor.next_offset()
            || header.partition_leader_epoch != STORED_LEADER_EPOCH
        {
            break;
        }
        let bytes = reader.log_bytes(position, header.total_bytes())?;
        if batch::check_batch(&bytes, config.max_batch_bytes).is_err() {
            break;
        }
        let indexed =
            cursor.index_batch(segment, position, &header, config.index_interval_bytes)?;
        if indexed == Indexed::IndexFull {
            break;
        }
        debug_assert_eq!(cursor.next_offset(), header.next_offset());
        position += header.total_bytes() as u64;
        segment.publish(position, cursor.next_offset(), header.max_timestamp_ms);
    }
    Ok(position)
}
