//! Idempotent producers' state in one partition: for each producer id, its
//! epoch and the sequence ranges and offsets of its last
//! [`PRODUCER_BATCHES_KEPT`] batches. Before a batch with a producer id is
//! appended, [`ProducerStates::check`] says what to do with it:
//!
//! - the next sequence (or sequence 0 of a newer epoch), or any sequence
//!   of a producer this partition does not know (new, expired, or whose
//!   batches retention deleted: as Kafka, its first batch here is taken
//!   as it comes): append it;
//! - the same sequence range as one of the kept batches: a retry of a batch
//!   already stored: answer with that batch's offsets, write nothing;
//! - a sequence range wholly before the oldest kept batch but at or after
//!   the first sequence this partition took from the producer in its epoch
//!   (same epoch): a retry of a batch stored earlier still (from that first
//!   batch on, batches are only ever taken in sequence order, so everything
//!   between it and the kept ones was stored):
//!   `DuplicateOlder`, acknowledged without its offsets (Kafka's
//!   `DUPLICATE_SEQUENCE_NUMBER`), so a producer may keep more than five
//!   batches in flight and stay exactly-once;
//! - a gap after the last sequence: `OutOfOrder` (a batch was lost in
//!   between; the producer must not skip it);
//! - an older epoch: `Fenced` (a newer instance of the producer took over);
//! - a newer epoch whose first sequence is not 0: `OutOfOrder`.
//!
//! Sequences are Kafka's: `i32`, per producer and partition, starting at 0
//! and wrapping to 0 after `i32::MAX`. The state is rebuilt from the batch
//! headers on recovery (every field it needs is in the header) and
//! snapshotted so that rebuild reads a bounded tail of the log.
//!
//! A producer that has not written for `expiry_ms` is forgotten; the number
//! of producers kept per partition is bounded by
//! [`PRODUCERS_PER_PARTITION_LIMIT`] (past it the longest idle is dropped, as
//! if it had expired).

use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer (Kafka keeps 5: a producer with up to 5
/// requests in flight can have all of them retried).
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Producers remembered per partition.
pub const PRODUCERS_PER_PARTITION_LIMIT: usize = 10_000;

/// What identifies a batch of an idempotent producer (from its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: u32,
}

impl BatchIdentity {
    /// The sequence of the batch's last record (wrapping like Kafka's).
    pub fn last_sequence(&self) -> i32 {
        wrap_add(self.base_sequence, self.record_count.saturating_sub(1))
    }
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Append,
    /// Already stored at these offsets: acknowledge them, write nothing.
    Duplicate {
        base_offset: u64,
        last_offset: u64,
    },
    /// Stored before the oldest kept batch (which starts at
    /// `before_offset`); its own offsets are no longer known.
    DuplicateOlder {
        before_offset: u64,
    },
    /// Not the next sequence: refused.
    OutOfOrder {
        expected: i32,
        got: i32,
    },
    /// An older epoch than the producer's current one: refused.
    Fenced {
        current_epoch: i16,
    },
}

/// One stored batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: u64,
    pub last_offset: u64,
}

/// One producer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// The first sequence this partition took in this epoch: from it on,
    /// every sequence below the kept batches was stored.
    pub floor_sequence: i32,
    /// Oldest first; at most [`PRODUCER_BATCHES_KEPT`].
    pub batches: VecDeque<KeptBatch>,
    /// When it last appended (ms since the epoch), for expiry.
    pub last_write_ms: i64,
}

/// Every producer of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    pub fn new() -> ProducerStates {
        ProducerStates::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// What to do with a batch of `batch` (not yet appended).
    pub fn check(&self, batch: &BatchIdentity) -> Check {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // A producer this partition does not know (new, expired, or
            // its batches deleted): nothing to compare with.
            return Check::Append;
        };
        if batch.producer_epoch < entry.epoch {
            return Check::Fenced {
                current_epoch: entry.epoch,
            };
        }
        if batch.producer_epoch > entry.epoch {
            return expect(0, batch.base_sequence);
        }
        let last = batch.last_sequence();
        let kept = entry
            .batches
            .iter()
            .find(|kept| kept.first_sequence == batch.base_sequence && kept.last_sequence == last);
        if let Some(kept) = kept {
            return Check::Duplicate {
                base_offset: kept.base_offset,
                last_offset: kept.last_offset,
            };
        }
        if let Some(oldest) = entry.batches.front() {
            // Sequences wrap: "before" is a distance of less than half
            // the sequence space, counted modulo 2^31.
            let within = distance(entry.floor_sequence, batch.base_sequence)
                < distance(entry.floor_sequence, oldest.first_sequence);
            let ends_before = (1..SEQUENCE_HALF).contains(&distance(last, oldest.first_sequence));
            if within && ends_before {
                return Check::DuplicateOlder {
                    before_offset: oldest.base_offset,
                };
            }
        }
        let next = entry
            .batches
            .back()
            .map_or(0, |newest| wrap_add(newest.last_sequence, 1));
        expect(next, batch.base_sequence)
    }

    /// Records a batch just appended at `base_offset..=last_offset` (it
    /// passed [`ProducerStates::check`] with `Append`, or recovery read it
    /// from the log).
    pub fn record(
        &mut self,
        batch: &BatchIdentity,
        base_offset: u64,
        last_offset: u64,
        now_ms: i64,
    ) {
        debug_assert!(base_offset <= last_offset);
        if !self.producers.contains_key(&batch.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_LIMIT
        {
            self.drop_longest_idle();
        }
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.producer_epoch,
                floor_sequence: batch.base_sequence,
                batches: VecDeque::with_capacity(PRODUCER_BATCHES_KEPT),
                last_write_ms: now_ms,
            });
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.floor_sequence = batch.base_sequence;
            entry.batches.clear();
        }
        if entry.batches.len() == PRODUCER_BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(KeptBatch {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            base_offset,
            last_offset,
        });
        entry.last_write_ms = entry.last_write_ms.max(now_ms);
        assert!(entry.batches.len() <= PRODUCER_BATCHES_KEPT);
        assert!(self.producers.len() <= PRODUCERS_PER_PARTITION_LIMIT);
    }

    /// Forgets producers idle for `expiry_ms` or longer; how many.
    pub fn expire(&mut self, now_ms: i64, expiry_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| now_ms.saturating_sub(entry.last_write_ms) < expiry_ms);
        before - self.producers.len()
    }

    /// Forgets the batches at or after `offset` (the log was truncated
    /// there): producers whose every kept batch is gone are forgotten.
    pub fn truncate(&mut self, offset: u64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|kept| kept.last_offset < offset);
        }
        self.producers.retain(|_, entry| !entry.batches.is_empty());
    }

    /// Every producer, in no particular order (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }

    /// Puts back a producer read from a snapshot.
    pub fn restore(&mut self, producer_id: i64, entry: ProducerEntry) {
        assert!(entry.batches.len() <= PRODUCER_BATCHES_KEPT);
        if self.producers.len() < PRODUCERS_PER_PARTITION_LIMIT {
            self.producers.insert(producer_id, entry);
        }
    }

    fn drop_longest_idle(&mut self) {
        let idle = self
            .producers
            .iter()
            .min_by_key(|(_, entry)| entry.last_write_ms)
            .map(|(id, _)| *id);
        if let Some(id) = idle {
            self.producers.remove(&id);
        }
    }
}

fn expect(expected: i32, got: i32) -> Check {
    match expected == got {
        true => Check::Append,
        false => Check::OutOfOrder { expected, got },
    }
}

/// Half the sequence space: sequences closer than this compare as
/// before/after across the wrap.
const SEQUENCE_HALF: i64 = 1 << 30;

/// How far `to` is after `from`, modulo 2^31 (sequences wrap to 0 after
/// `i32::MAX`).
fn distance(from: i32, to: i32) -> i64 {
    let modulus = i64::from(i32::MAX) + 1;
    (i64::from(to) - i64::from(from)).rem_euclid(modulus)
}

/// `sequence + count`, wrapping from `i32::MAX` to 0 as Kafka's do.
fn wrap_add(sequence: i32, count: u32) -> i32 {
    let modulus = i64::from(i32::MAX) + 1;
    let sum = (i64::from(sequence.max(0)) + i64::from(count)) % modulus;
    sum as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch(producer_id: i64, epoch: i16, base_sequence: i32, records: u32) -> BatchIdentity {
        BatchIdentity {
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            record_count: records,
        }
    }

    #[test]
    fn sequences_follow_on_and_retries_get_their_offsets() {
        let mut states = ProducerStates::new();
        assert_eq!(
            states.check(&batch(7, 0, 42, 1)),
            Check::Append,
            "unknown: as it comes"
        );
        let first = batch(7, 0, 0, 3);
        assert_eq!(states.check(&first), Check::Append);
        states.record(&first, 100, 102, 1);
        let second = batch(7, 0, 3, 2);
        assert_eq!(states.check(&second), Check::Append);
        states.record(&second, 103, 104, 2);
        assert_eq!(
            states.check(&first),
            Check::Duplicate {
                base_offset: 100,
                last_offset: 102
            }
        );
        assert_eq!(
            states.check(&batch(7, 0, 9, 1)),
            Check::OutOfOrder {
                expected: 5,
                got: 9
            }
        );
    }

    #[test]
    fn epochs_fence_the_old_and_restart_the_new_at_zero() {
        let mut states = ProducerStates::new();
        states.record(&batch(1, 3, 0, 1), 0, 0, 0);
        assert_eq!(
            states.check(&batch(1, 2, 1, 1)),
            Check::Fenced { current_epoch: 3 }
        );
        assert_eq!(states.check(&batch(1, 4, 0, 1)), Check::Append);
        assert!(matches!(
            states.check(&batch(1, 4, 5, 1)),
            Check::OutOfOrder { expected: 0, .. }
        ));
        states.record(&batch(1, 4, 0, 1), 1, 1, 1);
        assert_eq!(states.get(1).map(|e| e.epoch), Some(4));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::new();
        for n in 0..7 {
            states.record(&batch(1, 0, n, 1), n as u64, n as u64, 0);
        }
        assert_eq!(
            states.check(&batch(1, 0, 1, 1)),
            Check::DuplicateOlder { before_offset: 2 }
        );
        assert!(matches!(
            states.check(&batch(1, 0, 2, 1)),
            Check::Duplicate { .. }
        ));
        assert_eq!(
            states.get(1).map(|e| e.batches.len()),
            Some(PRODUCER_BATCHES_KEPT)
        );
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        let mut states = ProducerStates::new();
        let near_end = batch(1, 0, i32::MAX - 1, 2);
        assert_eq!(near_end.last_sequence(), i32::MAX);
        states.record(&batch(1, 0, 0, 1), 0, 0, 0);
        states.producers.get_mut(&1).unwrap().batches[0].last_sequence = i32::MAX - 2;
        assert_eq!(states.check(&near_end), Check::Append);
        states.record(&near_end, 1, 2, 0);
        assert_eq!(states.check(&batch(1, 0, 0, 1)), Check::Append);
    }

    #[test]
    fn an_older_retry_is_recognised_across_the_wrap_and_never_below_the_floor() {
        let mut states = ProducerStates::new();
        let start = i32::MAX - 6;
        let mut sequence = start;
        for offset in 0..8u64 {
            let next = batch(1, 0, sequence, 1);
            assert_eq!(states.check(&next), Check::Append, "sequence {sequence}");
            states.record(&next, offset, offset, 0);
            sequence = wrap_add(sequence, 1);
        }
        // Kept: MAX-3 ..= 0 (offsets 3..=7); the floor is MAX-6.
        assert_eq!(sequence, 1);
        assert_eq!(
            states.check(&batch(1, 0, i32::MAX - 5, 1)),
            Check::DuplicateOlder { before_offset: 3 }
        );
        assert_eq!(
            states.check(&batch(1, 0, 1, 3)),
            Check::Append,
            "after the wrap"
        );
        assert!(
            matches!(
                states.check(&batch(1, 0, i32::MAX - 9, 1)),
                Check::OutOfOrder { .. }
            ),
            "below the floor: never taken, not a duplicate"
        );
        assert!(matches!(
            states.check(&batch(1, 0, 500, 2)),
            Check::OutOfOrder { .. }
        ));
    }

    #[test]
    fn a_producer_taken_as_it_came_has_no_duplicates_below_its_first_batch() {
        let mut states = ProducerStates::new();
        for (n, sequence) in (10..17).enumerate() {
            states.record(&batch(4, 0, sequence, 1), n as u64, n as u64, 0);
        }
        assert_eq!(
            states.check(&batch(4, 0, 11, 1)),
            Check::DuplicateOlder { before_offset: 2 }
        );
        assert!(matches!(
            states.check(&batch(4, 0, 9, 1)),
            Check::OutOfOrder { .. }
        ));
    }

    #[test]
    fn idle_producers_expire_and_truncation_forgets_lost_batches() {
        let mut states = ProducerStates::new();
        states.record(&batch(1, 0, 0, 1), 0, 0, 1_000);
        states.record(&batch(2, 0, 0, 1), 1, 1, 5_000);
        assert_eq!(states.expire(6_000, 2_000), 1);
        assert!(states.get(1).is_none() && states.get(2).is_some());
        states.record(&batch(2, 0, 1, 1), 2, 2, 6_000);
        states.truncate(2);
        assert_eq!(states.get(2).map(|e| e.batches.len()), Some(1));
        states.truncate(0);
        assert!(states.is_empty());
    }

    proptest! {
        /// Whatever a producer sends, an exact retry of any of its last five
        /// appended batches is a duplicate with the offsets first given.
        #[test]
        fn retries_of_recent_batches_are_duplicates(sizes in proptest::collection::vec(1u32..20, 1..30)) {
            let mut states = ProducerStates::new();
            let (mut sequence, mut offset) = (0i32, 0u64);
            let mut appended = Vec::new();
            for size in sizes {
                let next = batch(9, 0, sequence, size);
                prop_assert_eq!(states.check(&next), Check::Append);
                states.record(&next, offset, offset + u64::from(size) - 1, 0);
                appended.push((next, offset));
                sequence += size as i32;
                offset += u64::from(size);
            }
            for (sent, base) in appended.iter().rev().take(PRODUCER_BATCHES_KEPT) {
                let is_duplicate = matches!(
                    states.check(sent),
                    Check::Duplicate { base_offset, .. } if base_offset == *base
                );
                prop_assert!(is_duplicate);
            }
        }
    }
}
