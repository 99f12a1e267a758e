//! Opening a log directory, and recovering it after an unclean shutdown.
//!
//! - Clean shutdown marker present and consistent: trust every file, no scan.
//! - Otherwise: segments before the recovery checkpoint's segment are sealed
//!   and were fsynced (with trimmed indexes) before the checkpoint was
//!   written, so they are trusted. From the checkpoint's position on, every
//!   batch is checked (header, length, CRC, dense offsets) and indexed again;
//!   the log is cut at the first torn or corrupt batch and later segments are
//!   deleted. Recovery work is therefore bounded by the unflushed tail.
//! - The recovered tail is fsynced and a new checkpoint written before the
//!   log accepts appends, so its durable offset is its end offset.
//!
//! Bytes before the checkpoint are never truncated: if they are missing the
//! log is fenced instead (that is lost durable data, not a torn write).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use ferry_protocol::batch;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::checkpoint::{Checkpoint, CheckpointFile, CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE};
use crate::clock::now_ms;
use crate::config::LogConfig;
use crate::cursor::{IndexCursor, Indexed};
use crate::error::{IoContext, Result};
use crate::flusher::FlusherShared;
use crate::index::{OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use crate::log::{Durable, Health, Log, LogInner, SyncProgress, Writer};
use crate::segment::{self, Segment, SegmentState, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::vfs::Vfs;

pub(crate) fn open(
    vfs: Arc<dyn Vfs>,
    dir: &Path,
    name: &str,
    config: LogConfig,
    flusher: Arc<FlusherShared>,
) -> Result<Log> {
    config.validate()?;
    vfs.create_dir_all(dir).at(dir)?;
    let bases = list_segments(&*vfs, dir)?;
    let now = now_ms();
    let clean = Checkpoint::read(&*vfs, dir, CLEAN_SHUTDOWN_FILE)?;
    let stored_checkpoint = Checkpoint::read(&*vfs, dir, CHECKPOINT_FILE)?;
    if clean != CheckpointFile::Missing {
        // Removed before anything else is written, so a crash from here on is
        // seen as unclean.
        vfs.remove_file(&dir.join(CLEAN_SHUTDOWN_FILE)).at(dir)?;
        vfs.sync_dir(dir).at(dir)?;
    }
    let mut fence = None;
    let (segments, tail) = if bases.is_empty() {
        create_first(&*vfs, dir, &config, now)?
    } else if let Some(marker) = clean_marker(&*vfs, dir, &bases, clean)? {
        tracing::debug!(
            partition = name,
            end_offset = marker.next_offset,
            "clean open"
        );
        open_clean(&*vfs, dir, &config, &bases, &marker, now)?
    } else {
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
        recover(
            &*vfs, dir, name, &config, &bases, checkpoint, now, &mut fence,
        )?
    };
    let active = segments
        .last()
        .cloned()
        .expect("a log always has a segment");
    active.index.0.preallocate()?;
    active.time_index.0.preallocate()?;
    for segment in &segments {
        segment.sync_all()?;
    }
    vfs.sync_dir(dir).at(dir)?;
    let checkpoint = tail.checkpoint(&active);
    let next_offset = tail.next_offset();
    let writer = Writer {
        active: active.clone(),
        cursor: tail,
        unsynced_sealed: Vec::new(),
    };
    checkpoint.write(&*vfs, dir, CHECKPOINT_FILE)?;
    let health = match fence {
        Some((offset, reason)) => Health::Fenced { offset, reason },
        None => Health::Ok,
    };
    let healthy = health == Health::Ok;
    let (end_tx, _) = watch::channel(next_offset);
    let (durable_tx, _) = watch::channel(Durable {
        offset: next_offset,
        failed: false,
    });
    let inner = Arc::new(LogInner {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        vfs,
        config,
        segments: RwLock::new(segments),
        writer: Mutex::new(writer),
        sync_progress: Mutex::new(SyncProgress {
            checkpoint,
            checkpoint_at_ms: now,
        }),
        health: RwLock::new(health),
        healthy: AtomicBool::new(healthy),
        end_tx,
        durable_tx,
        sync_queued: AtomicBool::new(false),
        last_sync_ms: AtomicU64::new(now),
        checkpoint_offset: AtomicU64::new(checkpoint.next_offset),
        checkpoint_segment: AtomicU64::new(checkpoint.segment_base),
        fsyncs: AtomicU64::new(0),
        flusher: flusher.clone(),
    });
    flusher.register(&inner);
    Ok(Log { inner })
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

fn create_first(
    vfs: &dyn Vfs,
    dir: &Path,
    config: &LogConfig,
    now: u64,
) -> Result<(Vec<Arc<Segment>>, IndexCursor)> {
    let state = SegmentState {
        size_bytes: 0,
        next_offset: 0,
        max_timestamp_ms: i64::MIN,
        index_entries: 0,
        time_entries: 0,
    };
    let segment = Arc::new(Segment::open(vfs, dir, 0, config, state, now)?);
    Ok((vec![segment], IndexCursor::new(0)))
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

fn file_len(vfs: &dyn Vfs, dir: &Path, base: u64, suffix: &str) -> Result<u64> {
    let path = dir.join(segment::file_name(base, suffix));
    if !vfs.exists(&path) {
        return Ok(0);
    }
    vfs.open(&path, false).and_then(|f| f.len()).at(&path)
}

/// Opens a sealed segment that was fsynced with trimmed indexes. If its
/// offset index does not match the log it is rebuilt from the log.
fn open_sealed(
    vfs: &dyn Vfs,
    dir: &Path,
    config: &LogConfig,
    base: u64,
    next_base: u64,
    now: u64,
) -> Result<Arc<Segment>> {
    let size = file_len(vfs, dir, base, LOG_SUFFIX)?;
    let state = SegmentState {
        size_bytes: size,
        next_offset: next_base,
        max_timestamp_ms: i64::MIN,
        index_entries: file_len(vfs, dir, base, INDEX_SUFFIX)? / OFFSET_ENTRY_BYTES,
        time_entries: file_len(vfs, dir, base, TIME_INDEX_SUFFIX)? / TIME_ENTRY_BYTES,
    };
    let segment = Arc::new(Segment::open(vfs, dir, base, config, state, now)?);
    if !index_consistent(&segment)? {
        tracing::warn!(segment = %segment.log_path.display(), "index does not match the log: rebuilding it");
        segment.reset_published();
        segment.index.0.truncate_entries(0);
        segment.time_index.0.truncate_entries(0);
        segment.index.0.preallocate()?;
        segment.time_index.0.preallocate()?;
        let mut cursor = IndexCursor::new(base);
        scan(&segment, 0, config, &mut cursor)?;
        segment.index.0.trim()?;
        segment.time_index.0.trim()?;
    }
    let max = segment.time_index.last()?.map_or(i64::MIN, |(ts, _)| ts);
    segment.publish(size, next_base, max);
    Ok(segment)
}

/// Every offset index entry must name the start of a batch with that offset.
fn index_consistent(segment: &Segment) -> Result<bool> {
    let limit = segment.size_bytes();
    let mut previous: Option<(u32, u32)> = None;
    for (relative, position) in segment.index.all()? {
        if previous.is_some_and(|(r, p)| relative <= r || position <= p) {
            return Ok(false);
        }
        match segment.header_at(u64::from(position), limit)? {
            Some(header) if header.base_offset == segment.base_offset + u64::from(relative) => {}
            _ => return Ok(false),
        }
        previous = Some((relative, position));
    }
    Ok(previous.is_some() || limit == 0)
}

fn open_clean(
    vfs: &dyn Vfs,
    dir: &Path,
    config: &LogConfig,
    bases: &[u64],
    marker: &Checkpoint,
    now: u64,
) -> Result<(Vec<Arc<Segment>>, IndexCursor)> {
    let mut segments = Vec::with_capacity(bases.len());
    for pair in bases.windows(2) {
        segments.push(open_sealed(vfs, dir, config, pair[0], pair[1], now)?);
    }
    let last = *bases.last().expect("non-empty");
    let state = SegmentState {
        size_bytes: marker.position,
        next_offset: marker.next_offset,
        max_timestamp_ms: marker.max_timestamp_ms,
        index_entries: marker.index_entries,
        time_entries: marker.time_entries,
    };
    let active = Arc::new(Segment::open(vfs, dir, last, config, state, now)?);
    let tail = IndexCursor::resume(&active, marker.next_offset, marker.last_time_entry_ms)?;
    segments.push(active);
    Ok((segments, tail))
}

#[allow(clippy::too_many_arguments)]
fn recover(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    config: &LogConfig,
    bases: &[u64],
    checkpoint: Option<Checkpoint>,
    now: u64,
    fence: &mut Option<(u64, String)>,
) -> Result<(Vec<Arc<Segment>>, IndexCursor)> {
    let start_base = checkpoint.map_or(bases[0], |cp| cp.segment_base);
    let mut segments = Vec::with_capacity(bases.len());
    for pair in bases.windows(2).filter(|pair| pair[0] < start_base) {
        segments.push(open_sealed(vfs, dir, config, pair[0], pair[1], now)?);
    }
    let mut tail = IndexCursor::new(start_base);
    let mut cut = false;
    for &base in bases.iter().filter(|&&base| base >= start_base) {
        if cut || base != tail.next_offset() {
            tracing::warn!(
                partition = name,
                base,
                "deleting segment after the recovered end of the log"
            );
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                let path = dir.join(segment::file_name(base, suffix));
                if vfs.exists(&path) {
                    vfs.remove_file(&path).at(&path)?;
                }
            }
            cut = true;
            continue;
        }
        let trusted = checkpoint.filter(|cp| cp.segment_base == base);
        let len = file_len(vfs, dir, base, LOG_SUFFIX)?;
        let state = match trusted {
            Some(cp) => SegmentState {
                size_bytes: cp.position,
                next_offset: cp.next_offset,
                max_timestamp_ms: cp.max_timestamp_ms,
                index_entries: cp.index_entries,
                time_entries: cp.time_entries,
            },
            None => SegmentState {
                size_bytes: 0,
                next_offset: base,
                max_timestamp_ms: i64::MIN,
                index_entries: 0,
                time_entries: 0,
            },
        };
        let segment = Arc::new(Segment::open(vfs, dir, base, config, state, now)?);
        segment.index.0.preallocate()?;
        segment.time_index.0.preallocate()?;
        if let Some(cp) = trusted {
            if len < cp.position {
                let reason = format!(
                    "{} is {len} bytes but {} bytes were checkpointed as durable",
                    segment.log_path.display(),
                    cp.position
                );
                tracing::error!(partition = name, %reason, "durable data missing: fencing the partition");
                *fence = Some((base, reason));
                tail = IndexCursor::resume(&segment, cp.next_offset, cp.last_time_entry_ms)?;
                segments.push(segment);
                cut = true;
                continue;
            }
            tail = IndexCursor::resume(&segment, cp.next_offset, cp.last_time_entry_ms)?;
        }
        if trusted.is_none() {
            tail.start_segment();
        }
        let from = segment.size_bytes();
        let end = scan(&segment, from, config, &mut tail)?;
        if end < len {
            tracing::warn!(
                partition = name,
                segment = %segment.log_path.display(),
                kept_bytes = end,
                dropped_bytes = len - end,
                "truncating torn or corrupt tail"
            );
            segment.log.set_len(end).at(&segment.log_path)?;
            cut = true;
        }
        if let Some(previous) = segments.last() {
            seal_recovered(previous)?;
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return create_first(vfs, dir, config, now);
    }
    Ok((segments, tail))
}

/// A segment that recovery found followed by another is sealed as a roll
/// seals it, from what its files say (the cursor has moved past it).
fn seal_recovered(segment: &Segment) -> Result<()> {
    let last_time_entry_ms = segment.time_index.last()?.map_or(i64::MIN, |(ts, _)| ts);
    IndexCursor::resume(segment, segment.next_offset(), last_time_entry_ms)?.seal(segment)
}

/// Checks batches from `position` to the end of the file, indexing each one
/// and publishing it; returns where the valid data ends.
fn scan(
    segment: &Segment,
    mut position: u64,
    config: &LogConfig,
    cursor: &mut IndexCursor,
) -> Result<u64> {
    let len = segment.log.len().at(&segment.log_path)?;
    while let Some(header) = segment.header_at(position, len)? {
        if header.base_offset != cursor.next_offset() {
            break;
        }
        let bytes = segment
            .log
            .read_view(position, header.total_bytes())
            .at(&segment.log_path)?;
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
