//! The append path: under the writer lock, roll the active segment if it is
//! due, `pwritev` the batch with its new base offset and leader epoch (the
//! front bytes outside its CRC), add its index entries (see `cursor.rs`),
//! then publish the new size and end offset.

use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{self, BatchHeader, BATCH_ASSIGNED_BYTES};

use super::inner::{LogInner, Writer};
use super::AppendInfo;
use crate::clock::now_ms;
use crate::config::FsyncPolicy;
use crate::cursor::Indexed;
use crate::error::{IoContext, Result, StorageError};
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
        if self.should_roll(&writer, batch.len() as u64, header.record_count, now) {
            self.roll(&mut writer, now)?;
        }
        let segment = writer.active.clone();
        let base_offset = writer.cursor.next_offset();
        let position = segment.size_bytes();
        let prefix = batch::assigned_prefix(batch, base_offset, STORED_LEADER_EPOCH);
        segment.write_log_at(position, &[&prefix, &batch[BATCH_ASSIGNED_BYTES..]])?;
        let indexed = writer.cursor.index_batch(
            &segment,
            position,
            &header,
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
        drop(writer);
        if self.config.fsync == FsyncPolicy::Always && request_sync {
            self.flusher.request(self);
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: base_offset + u64::from(header.record_count) - 1,
            max_timestamp_ms: header.max_timestamp_ms,
        })
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
