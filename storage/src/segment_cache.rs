//! What sealed segments may hold, bounded process-wide.
//!
//! A sealed, fsynced segment holds no open file. Reading it maps its three
//! files read-only ([`crate::vfs::Vfs::map_read_only`], which closes the
//! descriptor once mapped) and keeps the maps in the [`SegmentCache`]: at
//! most [`OPEN_SEALED_SEGMENTS_LIMIT`] segments are mapped at once, and
//! mapping one more unmaps the least recently used. Bytes already handed to
//! readers stay valid after that: they own a reference to their map, which
//! is unmapped only when the last of them is dropped.
//!
//! A segment just sealed by a roll keeps its files open until the group
//! commit that fsyncs it (an fsync error is only reliably reported on a
//! descriptor that was open when the write failed). The cache counts those
//! too: past [`UNSYNCED_SEALED_SEGMENTS_LIMIT`] a roll fsyncs the sealed
//! segment at once instead, so they cannot pile up open files either.
//!
//! One cache serves every log of the process ([`SegmentCache::global`]),
//! because the limits it enforces (open files, memory maps) are the
//! process's. Tests may build their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::Result;

/// Sealed segments mapped at once, process-wide. Each holds up to three
/// maps (log and both indexes) and no file descriptor; 1024 segments are
/// 3,072 of the kernel's default 65,530 maps per process.
pub const OPEN_SEALED_SEGMENTS_LIMIT: usize = 1024;

/// Sealed segments that may keep their three files open while they wait for
/// their first fsync, process-wide; each roll past it fsyncs at once.
pub const UNSYNCED_SEALED_SEGMENTS_LIMIT: usize = 64;

/// The read-only maps of one sealed segment's files.
pub(crate) struct SealedViews {
    pub log: Bytes,
    pub index: Bytes,
    pub time_index: Bytes,
}

/// One segment's place in the cache.
pub(crate) struct SealedSlot {
    id: u64,
    views: Mutex<Option<Arc<SealedViews>>>,
    last_used: AtomicU64,
}

/// Counts, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCacheStats {
    /// Sealed segments mapped now.
    pub mapped: usize,
    pub limit: usize,
    /// Sealed segments mapped since start (cache misses).
    pub loads: u64,
    /// Sealed segments unmapped to make room.
    pub evictions: u64,
    /// Sealed segments holding their files open until their first fsync.
    pub unsynced: usize,
}

/// The process-wide bound on what sealed segments hold (see the module
/// documentation).
pub struct SegmentCache {
    limit: AtomicUsize,
    unsynced_limit: usize,
    clock: AtomicU64,
    next_id: AtomicU64,
    /// Slots whose views are mapped, by id. Lock order: this, then a slot.
    mapped: Mutex<HashMap<u64, Weak<SealedSlot>>>,
    unsynced: AtomicUsize,
    loads: AtomicU64,
    evictions: AtomicU64,
}

/// A sealed segment's permission to keep its files open until its first
/// fsync; dropping it gives the place back.
pub(crate) struct UnsyncedHold {
    cache: Arc<SegmentCache>,
}

impl Drop for UnsyncedHold {
    fn drop(&mut self) {
        self.cache.unsynced.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SegmentCache {
    /// A cache mapping at most `limit` sealed segments (at least one) and
    /// letting at most `unsynced_limit` wait for their fsync with open files.
    pub fn new(limit: usize, unsynced_limit: usize) -> Arc<SegmentCache> {
        Arc::new(SegmentCache {
            limit: AtomicUsize::new(limit.max(1)),
            unsynced_limit,
            clock: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            mapped: Mutex::new(HashMap::new()),
            unsynced: AtomicUsize::new(0),
            loads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    /// The cache every log opened with [`crate::Log::open`] shares.
    pub fn global() -> Arc<SegmentCache> {
        static GLOBAL: OnceLock<Arc<SegmentCache>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                SegmentCache::new(OPEN_SEALED_SEGMENTS_LIMIT, UNSYNCED_SEALED_SEGMENTS_LIMIT)
            })
            .clone()
    }

    pub fn stats(&self) -> SegmentCacheStats {
        SegmentCacheStats {
            mapped: self.mapped.lock().len(),
            limit: self.limit.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            unsynced: self.unsynced.load(Ordering::Relaxed),
        }
    }

    /// A place for a new segment (nothing mapped yet).
    pub(crate) fn slot(&self) -> Arc<SealedSlot> {
        Arc::new(SealedSlot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            views: Mutex::new(None),
            last_used: AtomicU64::new(0),
        })
    }

    /// The slot's views, mapped with `load` if they are not; mapping one
    /// more segment than the limit unmaps the least recently used.
    pub(crate) fn views(
        &self,
        slot: &Arc<SealedSlot>,
        load: impl FnOnce() -> Result<SealedViews>,
    ) -> Result<Arc<SealedViews>> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        slot.last_used.store(now, Ordering::Relaxed);
        let loaded = {
            let mut views = slot.views.lock();
            if let Some(views) = views.as_ref() {
                return Ok(views.clone());
            }
            let loaded = Arc::new(load()?);
            *views = Some(loaded.clone());
            loaded
        };
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.admit(slot);
        Ok(loaded)
    }

    /// Records `slot` as mapped and unmaps the least recently used slots
    /// past the limit (an O(limit) scan, paid only on a miss, next to three
    /// `mmap`s).
    fn admit(&self, slot: &Arc<SealedSlot>) {
        let mut mapped = self.mapped.lock();
        mapped.insert(slot.id, Arc::downgrade(slot));
        let limit = self.limit.load(Ordering::Relaxed);
        if mapped.len() <= limit {
            return;
        }
        mapped.retain(|_, weak| weak.strong_count() > 0);
        while mapped.len() > limit {
            let victim = mapped
                .iter()
                .filter_map(|(id, weak)| weak.upgrade().map(|slot| (*id, slot)))
                .min_by_key(|(_, slot)| slot.last_used.load(Ordering::Relaxed));
            let Some((id, victim)) = victim else {
                break;
            };
            mapped.remove(&id);
            victim.views.lock().take();
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets the slot's views (its files are about to change, or were
    /// reopened): the next read maps them again.
    pub(crate) fn drop_views(&self, slot: &SealedSlot) {
        let had = slot.views.lock().take().is_some();
        if had {
            self.mapped.lock().remove(&slot.id);
        }
    }

    /// Lets one more sealed segment keep its files open until its first
    /// fsync, or `None` if [`UNSYNCED_SEALED_SEGMENTS_LIMIT`] already do.
    pub(crate) fn hold_unsynced(self: &Arc<Self>) -> Option<UnsyncedHold> {
        let granted = self
            .unsynced
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.unsynced_limit).then_some(held + 1)
            })
            .is_ok();
        granted.then(|| UnsyncedHold {
            cache: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(tag: u8) -> SealedViews {
        SealedViews {
            log: Bytes::from(vec![tag; 16]),
            index: Bytes::new(),
            time_index: Bytes::new(),
        }
    }

    #[test]
    fn the_least_recently_used_segment_is_unmapped_and_remapped_on_demand() {
        let cache = SegmentCache::new(2, 0);
        let slots: Vec<_> = (0..3).map(|_| cache.slot()).collect();
        let loads: Vec<std::cell::Cell<u32>> = (0..3).map(|_| Default::default()).collect();
        let read = |i: usize| {
            cache
                .views(&slots[i], || {
                    loads[i].set(loads[i].get() + 1);
                    Ok(views(i as u8))
                })
                .unwrap()
        };
        let counts = || loads.iter().map(|c| c.get()).collect::<Vec<_>>();
        let first = read(0);
        read(1);
        read(0); // 1 is now the least recently used
        read(2);
        assert_eq!(counts(), [1, 1, 1]);
        read(0);
        assert_eq!(counts(), [1, 1, 1], "0 stayed mapped");
        read(1);
        assert_eq!(counts(), [1, 2, 1], "1 was unmapped and mapped again");
        let stats = cache.stats();
        assert_eq!((stats.mapped, stats.loads, stats.evictions), (2, 4, 2));
        // Bytes handed out before an eviction stay readable.
        for i in 0..3 {
            read(i);
        }
        assert_eq!(&first.log[..], &[0u8; 16][..]);
    }

    #[test]
    fn dropped_segments_leave_the_cache_and_failed_maps_are_not_kept() {
        let cache = SegmentCache::new(1, 0);
        let gone = cache.slot();
        cache.views(&gone, || Ok(views(1))).unwrap();
        drop(gone);
        let kept = cache.slot();
        let failed = cache.views(&kept, || Err(crate::StorageError::Closed("test".into())));
        assert!(failed.is_err());
        assert_eq!(cache.stats().mapped, 1, "the dead slot is still counted");
        cache.views(&kept, || Ok(views(2))).unwrap();
        assert_eq!(cache.stats().mapped, 1, "dead slots are swept first");
        assert_eq!(cache.stats().evictions, 0);
        cache.drop_views(&kept);
        assert_eq!(cache.stats().mapped, 0);
    }

    #[test]
    fn unsynced_holds_are_bounded_and_given_back_on_drop() {
        let cache = SegmentCache::new(1, 2);
        let a = cache.hold_unsynced().unwrap();
        let _b = cache.hold_unsynced().unwrap();
        assert!(cache.hold_unsynced().is_none());
        assert_eq!(cache.stats().unsynced, 2);
        drop(a);
        assert!(cache.hold_unsynced().is_some());
    }
}
