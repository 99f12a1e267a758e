//! The append path: under the writer lock, check an idempotent producer's
//! batch against its recent ones (a retry is answered with the stored
//! offsets and not written; see `producers.rs`), roll the active segment if
//! it is due (snapshotting the producers' state), `pwritev` the batch with
//! its new base offset and leader epoch (the front bytes outside its CRC),
//! add its index entries (see `cursor.rs`), then publish the new size and
//! end offset.

use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{self, BatchHeader, BATCH_ASSIGNED_BYTES};

use super::inner::{LogInner, Writer};
use super::AppendInfo;
use crate::clock::now_ms;
use crate::config::FsyncPolicy;
use crate::cursor::Indexed;
use crate::error::{IoContext, Result, StorageError};
use crate::producer_snapshot;
use crate::producers::{BatchIdentity, Check, ProducerStates};
use crate::segment::{Segment, SegmentState};
use crate::STORED_LEADER_EPOCH;

impl LogInner {
    /// Appends one whole batch at the end offset (see `Log::append`);
    /// `request_sync` false leaves the fsync to whichever append next asks.
    pub(super) fn append(
        self: &Arc<Self>,
        batch: &Bytes,
        request_sync: bool,
    ) -> Result<AppendInfo> {
        let header = BatchHeader::parse(batch, self.config.max_batch_bytes)?;
        if header.total_bytes() != batch.len() {
            return Err(StorageError::InvalidBatch(
                ferry_protocol::ProtocolError::Malformed("batch length does not match its bytes"),
            ));
        }
        self.health.check_writable(&self.name)?;
        let mut writer = self.writer.lock();
        self.health.check_writable(&self.name)?;
        let now = now_ms();
        let producer = producer_snapshot::identity(&header);
        if let Some(identity) = &producer {
            if let Some(stored) = check_producer(&writer.producers, identity, &header)? {
                return Ok(stored);
            }
        }
        if self.should_roll(&writer, batch.len() as u64, header.record_count, now) {
            self.roll(&mut writer, now)?;
        }
        let info = self.write(&mut writer, batch, &header)?;
        if let Some(identity) = &producer {
            let now_ms = now as i64;
            let producers = &mut writer.producers;
            producers.record(identity, info.base_offset, info.last_offset, now_ms);
            self.expire_producers(&mut writer, now_ms, false);
        }
        drop(writer);
        if self.config.fsync == FsyncPolicy::Always && request_sync {
            self.flusher.request(self);
        }
        Ok(info)
    }

    /// Writes `batch` at the end of the active segment, indexes and
    /// publishes it.
    fn write(
        &self,
        writer: &mut Writer,
        batch: &Bytes,
        header: &BatchHeader,
    ) -> Result<AppendInfo> {
        let segment = writer.active.clone();
        let base_offset = writer.cursor.next_offset();
        let position = segment.size_bytes();
        let prefix = batch::assigned_prefix(batch, base_offset, STORED_LEADER_EPOCH);
        segment.write_log_at(position, &[&prefix, &batch[BATCH_ASSIGNED_BYTES..]])?;
        let indexed = writer.cursor.index_batch(
            &segment,
            position,
            header,
            self.config.index_interval_bytes,
        )?;
        assert_eq!(
            indexed,
            Indexed::Done,
            "should_roll leaves room in both indexes"
        );
        let next_offset = writer.cursor.next_offset();
        debug_assert_eq!(next_offset, base_offset + u64::from(header.record_count));
        segment.publish(
            position + batch.len() as u64,
            next_offset,
            header.max_timestamp_ms,
        );
        self.end_tx.send_replace(next_offset);
        Ok(AppendInfo {
            base_offset,
            last_offset: base_offset + u64::from(header.record_count) - 1,
            max_timestamp_ms: header.max_timestamp_ms,
            duplicate: false,
            offsets_known: true,
        })
    }

    /// Forgets producers idle past `producer_expiry_ms`: at most once per
    /// [`PRODUCER_EXPIRY_SCAN_MS`] unless `now` (the walk is over every
    /// producer of the partition).
    pub(super) fn expire_producers(&self, writer: &mut Writer, now_ms: i64, now: bool) {
        if !now && now_ms - writer.producers_expired_at_ms < PRODUCER_EXPIRY_SCAN_MS {
            return;
        }
        writer.producers_expired_at_ms = now_ms;
        let expiry_ms = self.config.producer_expiry_ms as i64;
        let expired = writer.producers.expire(now_ms, expiry_ms);
        if expired > 0 {
            tracing::debug!(partition = %self.name, expired, "idle producers forgotten");
        }
    }

    /// Whether the active segment must be sealed before a batch of
    /// `length` bytes and `records` records goes in.
    fn should_roll(&self, writer: &Writer, length: u64, records: u32, now_ms: u64) -> bool {
        let active = &writer.active;
        let size = active.size_bytes();
        if size == 0 {
            return false;
        }
        let relative_end = writer.cursor.next_offset() - active.base_offset + u64::from(records);
        size + length > self.config.segment_bytes
            || active.index.0.is_full()
            || active.time_index.0.is_full()
            || relative_end > u64::from(u32::MAX)
            || self
                .config
                .segment_ms
                .is_some_and(|ms| now_ms.saturating_sub(active.created_at_ms) >= ms)
    }

    /// Seals the active segment and starts a new one at the end offset. The
    /// sealed segment keeps its files open until the group commit fsyncs it,
    /// unless too many already do (see `segment_cache.rs`): then it is
    /// fsynced here and closed.
    fn roll(self: &Arc<Self>, writer: &mut Writer, now_ms: u64) -> Result<()> {
        let old = writer.active.clone();
        writer.cursor.seal(&old)?;
        old.set_log_len(old.size_bytes())?;
        let held = old.hold_until_synced();
        if !held {
            if let Err(error) = old.sync_all() {
                self.fail_read_only(&error);
                return Err(error);
            }
            old.unpin();
        }
        let next_offset = writer.cursor.next_offset();
        let new = Arc::new(Segment::open(
            &self.home,
            next_offset,
            &self.config,
            SegmentState::empty(next_offset),
            now_ms,
        )?);
        new.preallocate_indexes()?;
        // Only saves recovery work: a failure costs a longer rebuild.
        if let Err(error) = producer_snapshot::write(&self.home, &writer.producers, next_offset) {
            tracing::warn!(partition = %self.name, %error, "could not write the producer snapshot");
        }
        // The new names must be durable before anything in them is acked.
        self.vfs.sync_dir(&self.dir).at(&self.dir)?;
        tracing::debug!(partition = %self.name, base_offset = new.base_offset, "rolled segment");
        if held {
            writer.unsynced_sealed.push(old);
        }
        writer.active = new.clone();
        writer.cursor.start_segment();
        self.segments.write().push(new);
        self.flusher.request(self);
        Ok(())
    }
}

/// How often an append may walk the partition's producers to expire idle
/// ones.
pub(super) const PRODUCER_EXPIRY_SCAN_MS: i64 = 1000;

/// `None` to append an idempotent producer's batch; the stored offsets for
/// a retry of a batch already stored; an error for a gap or a stale epoch.
fn check_producer(
    producers: &ProducerStates,
    identity: &BatchIdentity,
    header: &BatchHeader,
) -> Result<Option<AppendInfo>> {
    match producers.check(identity) {
        Check::Append => Ok(None),
        Check::Duplicate {
            base_offset,
            last_offset,
        } => Ok(Some(AppendInfo {
            base_offset,
            last_offset,
            max_timestamp_ms: header.max_timestamp_ms,
            duplicate: true,
            offsets_known: true,
        })),
        Check::DuplicateOlder { before_offset } => {
            let below = before_offset.saturating_sub(1);
            Ok(Some(AppendInfo {
                base_offset: below,
                last_offset: below,
                max_timestamp_ms: header.max_timestamp_ms,
                duplicate: true,
                offsets_known: false,
            }))
        }
        Check::OutOfOrder { expected, got } => Err(StorageError::OutOfOrderSequence {
            producer_id: identity.producer_id,
            expected,
            got,
        }),
        Check::Fenced { current_epoch } => Err(StorageError::ProducerFenced {
            producer_id: identity.producer_id,
            epoch: identity.producer_epoch,
            current_epoch,
        }),
    }
}
