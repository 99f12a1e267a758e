//! How far reads may see. A read under [`Isolation::Durable`] stops at the
//! durable end: what an `acks=durable` append has been answered for. Under
//! `fsync = always` and interval policies that is the end of the last
//! fsynced batch (the durable offset, always a batch boundary); under
//! `never`, where durable appends are answered once written, it is the
//! written end. [`Isolation::Written`] reads up to the written end.
//! [`EndWatch`] wakes long polls when the end they read up to moves.

use bytes::Bytes;
use ferry_protocol::batch;
use tokio::sync::watch;

use super::inner::LogInner;
use super::Durable;
use crate::config::FsyncPolicy;

pub use ferry_protocol::isolation::Isolation;

/// The end a read under one isolation stops at; `changed` resolves when it
/// may have moved.
pub struct EndWatch {
    kind: WatchKind,
}

enum WatchKind {
    Written(watch::Receiver<u64>),
    Durable(watch::Receiver<Durable>),
}

/// The log is gone (deleted or dropped): nothing will change any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogGone;

impl EndWatch {
    /// Resolves when the watched end may have moved (the durable watch also
    /// wakes when an fsync fails), or fails once the log is gone.
    pub async fn changed(&mut self) -> Result<(), LogGone> {
        match &mut self.kind {
            WatchKind::Written(rx) => rx.changed().await.map_err(|_| LogGone),
            WatchKind::Durable(rx) => rx.changed().await.map_err(|_| LogGone),
        }
    }
}

impl LogInner {
    /// Whether reads under `isolation` stop at the durable offset rather
    /// than the written end (see the file comment).
    fn bounded_by_fsync(&self, isolation: Isolation) -> bool {
        isolation == Isolation::Durable && self.config.fsync != FsyncPolicy::Never
    }

    /// The end of what a read under `isolation` may return: at most the
    /// written end `end_offset`.
    pub(super) fn readable_end(&self, isolation: Isolation, end_offset: u64) -> u64 {
        if self.bounded_by_fsync(isolation) {
            self.durable_tx.borrow().offset.min(end_offset)
        } else {
            end_offset
        }
    }

    /// A watch on the end reads under `isolation` stop at. Subscribe before
    /// reading, so a move in between is not missed.
    pub(super) fn watch_readable_end(&self, isolation: Isolation) -> EndWatch {
        let kind = if self.bounded_by_fsync(isolation) {
            WatchKind::Durable(self.durable_tx.subscribe())
        } else {
            WatchKind::Written(self.end_tx.subscribe())
        };
        EndWatch { kind }
    }
}

/// The prefix of `data` (whole batches read from the one holding an
/// offset below `readable_end`; `next_offset` is the offset after its last
/// batch) whose batches all end at or below `readable_end`, and the offset
/// after that prefix. Reads only the batches' offset and length fields (a
/// batch ends where the next begins); CRCs are checked afterwards, on what
/// is kept.
pub(super) fn cut_at(data: Bytes, next_offset: u64, readable_end: u64) -> (Bytes, u64) {
    if next_offset <= readable_end {
        return (data, next_offset);
    }
    let mut kept = 0;
    let Some((mut base_offset, mut length_bytes)) = batch::peek_length(&data) else {
        return (data.slice(..0), next_offset.min(readable_end));
    };
    loop {
        let after = (kept + length_bytes).min(data.len());
        let following = batch::peek_length(&data[after..]);
        let batch_end = following.map_or(next_offset, |(base, _)| base);
        if batch_end > readable_end {
            return (data.slice(..kept), base_offset);
        }
        kept = after;
        match following {
            Some((base, length)) => (base_offset, length_bytes) = (base, length),
            None => return (data.slice(..kept), batch_end),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::tests::{batch_of, block_on, dir, small_config};
    use crate::vfs::{SimFs, SimOptions};
    use crate::{Flusher, Log, LogConfig};

    fn open(fs: &SimFs, flusher: &Flusher, fsync: FsyncPolicy) -> Log {
        let config = LogConfig {
            fsync,
            ..small_config()
        };
        Log::open(Arc::new(fs.clone()), &dir(), "t-0", config, flusher).unwrap()
    }

    /// The future's output if it is ready at its first poll.
    fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
        block_on(async { tokio::time::timeout(Duration::ZERO, future).await.ok() })
    }

    /// Appends batches of `records_per_batch` one-byte records; returns the
    /// offset after each.
    fn append_batches(log: &Log, batches: u8, records_per_batch: u8) -> Vec<u64> {
        (0..batches)
            .map(|b| {
                let values: Vec<Vec<u8>> = (0..records_per_batch).map(|r| vec![b, r]).collect();
                log.append(&batch_of(&values, 0)).unwrap().last_offset + 1
            })
            .collect()
    }

    #[test]
    fn durable_reads_stop_at_the_last_fsync_and_written_reads_do_not() {
        let fs = SimFs::new(1);
        let flusher = Flusher::manual();
        let log = open(&fs, &flusher, FsyncPolicy::Always);
        let ends = append_batches(&log, 3, 2);
        let empty = log.read_isolated(0, 1 << 20, Isolation::Durable).unwrap();
        assert!(empty.data.is_empty(), "nothing is fsynced yet");
        assert_eq!((empty.next_offset, empty.end_offset), (0, 6));
        let written = log.read_isolated(0, 1 << 20, Isolation::Written).unwrap();
        assert_eq!(written.next_offset, 6);
        flusher.run_pending();
        assert_eq!(log.readable_end(Isolation::Durable), 6);
        let more = append_batches(&log, 2, 3);
        assert_eq!(log.readable_end(Isolation::Written), 12);
        for offset in 0..6 {
            let read = log
                .read_isolated(offset, 1 << 20, Isolation::Durable)
                .unwrap();
            assert_eq!(read.next_offset, ends[2], "from {offset}: up to the fsync");
            let (data, next_offset) = cut(log.read(offset, 1 << 20).unwrap(), 6);
            assert_eq!((read.data, read.next_offset), (data, next_offset));
        }
        let past = log.read_isolated(6, 1 << 20, Isolation::Durable).unwrap();
        assert!(past.data.is_empty() && past.next_offset == 6);
        flusher.run_pending();
        let read = log.read_isolated(6, 1 << 20, Isolation::Durable).unwrap();
        assert_eq!(read.next_offset, more[1]);
    }

    /// A written read cut at `end`.
    fn cut(read: crate::ReadResult, end: u64) -> (Bytes, u64) {
        cut_at(read.data, read.next_offset, end)
    }

    #[test]
    fn the_durable_watch_wakes_on_the_fsync_not_on_the_append() {
        let fs = SimFs::new(2);
        let flusher = Flusher::manual();
        let log = open(&fs, &flusher, FsyncPolicy::Always);
        let mut durable = log.watch_readable_end(Isolation::Durable);
        let mut written = log.watch_readable_end(Isolation::Written);
        append_batches(&log, 1, 1);
        assert_eq!(now_or_never(written.changed()), Some(Ok(())));
        assert_eq!(now_or_never(durable.changed()), None, "not yet durable");
        flusher.run_pending();
        assert_eq!(now_or_never(durable.changed()), Some(Ok(())));
        drop(log);
        block_on(async {
            assert_eq!(durable.changed().await, Err(LogGone));
        });
    }

    #[test]
    fn interval_topics_read_durably_up_to_the_last_periodic_fsync() {
        let fs = SimFs::new(3);
        let flusher = Flusher::manual();
        let log = open(&fs, &flusher, FsyncPolicy::IntervalMs(1));
        append_batches(&log, 2, 1);
        assert_eq!(log.readable_end(Isolation::Durable), 0);
        assert_eq!(log.readable_end(Isolation::Written), 2);
        let started = crate::now_ms();
        while crate::now_ms() <= started + 1 {
            std::thread::yield_now();
        }
        flusher.tick_now();
        flusher.run_pending();
        assert_eq!(log.readable_end(Isolation::Durable), 2);
    }

    #[test]
    fn never_topics_read_durably_up_to_the_written_end() {
        let fs = SimFs::new(4);
        let flusher = Flusher::manual();
        let log = open(&fs, &flusher, FsyncPolicy::Never);
        let mut durable = log.watch_readable_end(Isolation::Durable);
        append_batches(&log, 2, 1);
        assert_eq!(log.durable().offset, 0, "nothing fsynced");
        assert_eq!(log.readable_end(Isolation::Durable), 2);
        assert_eq!(now_or_never(durable.changed()), Some(Ok(())));
        let read = log.read_isolated(0, 1 << 20, Isolation::Durable).unwrap();
        assert_eq!(read.next_offset, 2);
    }

    #[test]
    fn a_failed_fsync_window_is_never_visible_to_durable_reads() {
        let fs = SimFs::new(5);
        let flusher = Flusher::manual();
        let log = open(&fs, &flusher, FsyncPolicy::Always);
        append_batches(&log, 1, 1);
        flusher.run_pending();
        fs.set_options(SimOptions {
            sync_failure_probability: 1.0,
            ..SimOptions::default()
        });
        append_batches(&log, 1, 1);
        flusher.run_pending();
        assert!(log.durable().failed);
        assert_eq!(log.readable_end(Isolation::Durable), 1);
        let read = log.read_isolated(0, 1 << 20, Isolation::Durable).unwrap();
        assert_eq!(read.next_offset, 1);
        let read = log.read_isolated(0, 1 << 20, Isolation::Written).unwrap();
        assert_eq!(read.next_offset, 2);
    }

    #[test]
    fn cutting_keeps_exactly_the_batches_that_end_at_or_before_the_bound() {
        let fs = SimFs::new(6);
        let flusher = Flusher::manual();
        let log = open(&fs, &flusher, FsyncPolicy::Always);
        // Batches [0,3) [3,6) [6,9) [9,12).
        append_batches(&log, 4, 3);
        let all = log.read(0, 1 << 20).unwrap();
        assert_eq!(all.next_offset, 12);
        let batch_bytes = all.data.len() / 4;
        for bound in 0..=13 {
            let (data, next) = cut_at(all.data.clone(), all.next_offset, bound);
            let whole_batches = (bound.min(12) / 3) as usize;
            assert_eq!(data.len(), whole_batches * batch_bytes, "bound {bound}");
            let expected_next = if bound >= 12 {
                12
            } else {
                whole_batches as u64 * 3
            };
            assert_eq!(next, expected_next, "bound {bound}");
        }
    }
}
