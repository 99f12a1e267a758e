//! Sealed segments hold no open file: only the active segment (and, until
//! its fsync, a just-sealed one) keeps descriptors; reads map sealed files
//! through a bounded cache that unmaps the least recently used; bytes a
//! reader holds stay valid after their segment is unmapped; and opening,
//! recovery, retention, time look-ups and verification all work on
//! segments that are not mapped.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{BatchIter, BATCH_BYTES_LIMIT};

use crate::tests::{batch_of, block_on, dir, read_all, small_config};
use crate::vfs::{OsFs, SimFs, SimOptions, VFile, Vfs};
use crate::{Flusher, Log, LogConfig, SegmentCache, StorageError, UNSYNCED_SEALED_SEGMENTS_LIMIT};

/// A file system that counts the files open through it, now and at most.
#[derive(Clone)]
struct CountingFs {
    inner: Arc<dyn Vfs>,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

struct CountedFile {
    inner: Arc<dyn VFile>,
    open: Arc<AtomicUsize>,
}

impl Drop for CountedFile {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CountingFs {
    fn new(inner: Arc<dyn Vfs>) -> CountingFs {
        CountingFs {
            inner,
            open: Arc::default(),
            peak: Arc::default(),
        }
    }

    fn open_now(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The most files open at once since the last call.
    fn take_peak(&self) -> usize {
        self.peak.swap(self.open_now(), Ordering::SeqCst)
    }
}

impl VFile for CountedFile {
    fn write_at(&self, position: u64, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(position, buf)
    }
    fn write_vectored_at(&self, position: u64, bufs: &[&[u8]]) -> std::io::Result<()> {
        self.inner.write_vectored_at(position, bufs)
    }
    fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact_at(position, buf)
    }
    fn read_view(&self, position: u64, len: usize) -> std::io::Result<Bytes> {
        self.inner.read_view(position, len)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.inner.sync()
    }
    fn reserve_view(&self, bytes: u64) {
        self.inner.reserve_view(bytes)
    }
}

impl Vfs for CountingFs {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn VFile>> {
        let inner = self.inner.open(path, create)?;
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Ok(Arc::new(CountedFile {
            inner,
            open: self.open.clone(),
        }))
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    // `map_read_only` is the default: open (counted), map, close.
}

/// Files of the active segment: log, offset index, time index.
const ACTIVE_FILES: usize = 3;

fn open_counted(fs: &CountingFs, cache: &Arc<SegmentCache>, flusher: &Flusher) -> Log {
    let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
    Log::open_in(vfs, &dir(), "t-0", small_config(), flusher, cache.clone()).unwrap()
}

/// Appends `count` batches of one 1000-byte record (three fit a segment of
/// `small_config`), numbered from `first`, and waits until they are durable.
fn fill(log: &Log, first: u8, count: u8) {
    for i in first..first + count {
        let info = log
            .append(&batch_of(&[vec![i; 1000]], i64::from(i)))
            .unwrap();
        block_on(log.wait_durable(info.last_offset + 1)).unwrap();
    }
}

fn values(log: &Log) -> Vec<u8> {
    read_all(log, log.start_offset())
        .unwrap()
        .iter()
        .map(|(_, value)| value[0])
        .collect()
}

#[test]
fn sealed_segments_hold_no_open_files() {
    let fs = CountingFs::new(Arc::new(SimFs::new(21)));
    let cache = SegmentCache::new(4, UNSYNCED_SEALED_SEGMENTS_LIMIT);
    let flusher = Flusher::start(1);
    let log = open_counted(&fs, &cache, &flusher);
    fill(&log, 0, 90);
    assert!(log.stats().segment_count >= 30);
    assert_eq!(
        fs.open_now(),
        ACTIVE_FILES,
        "only the active segment's files"
    );
    assert_eq!(values(&log), (0..90).collect::<Vec<_>>());
    assert_eq!(
        fs.open_now(),
        ACTIVE_FILES,
        "reading every segment opens none for good"
    );
    let stats = cache.stats();
    assert!(stats.mapped <= 4 && stats.evictions > 0, "{stats:?}");
    assert_eq!(
        stats.unsynced, 0,
        "every sealed segment was fsynced and closed"
    );
}

/// Lines of `/proc/self/maps` naming a file under `dir`.
fn maps_under(dir: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let dir = dir.to_string_lossy();
    maps.lines().filter(|line| line.contains(&*dir)).count()
}

#[test]
fn bytes_held_across_an_eviction_stay_valid_and_evicted_segments_are_mapped_again() {
    let temp = tempfile::tempdir().unwrap();
    let cache = SegmentCache::new(2, UNSYNCED_SEALED_SEGMENTS_LIMIT);
    let flusher = Flusher::start(1);
    let vfs: Arc<dyn Vfs> = Arc::new(OsFs::new());
    let log = Log::open_in(
        vfs,
        temp.path(),
        "t-0",
        small_config(),
        &flusher,
        cache.clone(),
    )
    .unwrap();
    fill(&log, 0, 60);
    let held = log.read(0, 1).unwrap().data;
    let loads = cache.stats().loads;
    assert_eq!(values(&log), (0..60).collect::<Vec<_>>());
    let stats = cache.stats();
    assert!(stats.evictions > 0 && stats.mapped <= 2, "{stats:?}");
    // The first segment was unmapped from the cache, but `held` keeps its
    // map: still the same bytes, CRC intact.
    let (header, body) = BatchIter::new(held.clone(), BATCH_BYTES_LIMIT)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((header.base_offset, body.len()), (0, held.len()));
    assert!(held.windows(1000).any(|w| w.iter().all(|b| *b == 0)));
    // Maps: the active segment's, at most 3 per cached sealed segment, and
    // the one `held` keeps; not one per segment.
    let mapped = maps_under(temp.path());
    assert!(mapped <= 3 + 2 * 3 + 1, "{mapped} maps for {stats:?}");
    drop(held);
    assert_eq!(log.read(0, 1).unwrap().next_offset, 1);
    assert!(
        cache.stats().loads > loads + 1,
        "segment 0 was mapped again"
    );
}

#[test]
fn retention_recovery_time_lookups_and_verify_work_on_unmapped_segments() {
    let sim = SimFs::new(22);
    let fs = CountingFs::new(Arc::new(sim.clone()));
    let cache = SegmentCache::new(1, UNSYNCED_SEALED_SEGMENTS_LIMIT);
    let flusher = Flusher::start(1);
    let log = open_counted(&fs, &cache, &flusher);
    fill(&log, 0, 60);
    assert_eq!(log.offset_for_timestamp(41).unwrap(), Some(41));
    assert_eq!(log.verify().unwrap(), None);
    drop(log);
    // Unclean: recovery from the checkpoint, sealed segments untouched.
    let disk = sim.power_loss(5);
    let fs = CountingFs::new(Arc::new(disk.clone()));
    let config = LogConfig {
        retention_bytes: Some(8192),
        ..small_config()
    };
    let vfs: Arc<dyn Vfs> = Arc::new(fs.clone());
    let log = Log::open_in(vfs, &dir(), "t-0", config, &flusher, cache.clone()).unwrap();
    assert_eq!(values(&log), (0..60).collect::<Vec<_>>());
    assert_eq!(log.offset_for_timestamp(7).unwrap(), Some(7));
    assert!(log.apply_retention(crate::now_ms()).unwrap() > 0);
    let start = log.start_offset();
    assert!(start > 0);
    assert_eq!(values(&log), (start as u8..60).collect::<Vec<_>>());
    assert_eq!(fs.open_now(), ACTIVE_FILES);
    log.close().unwrap();
    drop(log);
    // Bit rot in a sealed segment nobody has mapped since the reopen.
    let logs: Vec<String> = disk
        .list_dir(&dir())
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(".log"))
        .collect();
    let rotten = dir().join(&logs[1]);
    let rotten_base: u64 = logs[1].trim_end_matches(".log").parse().unwrap();
    let mut bytes = disk.read_file(&rotten).unwrap();
    bytes[100] ^= 0x01;
    disk.write_file(&rotten, bytes);
    let log = open_counted(&fs, &cache, &flusher);
    assert_eq!(log.verify().unwrap(), Some(rotten_base));
    assert_eq!(fs.open_now(), ACTIVE_FILES);
}

#[test]
fn opening_a_log_of_many_segments_holds_few_files_at_a_time() {
    let sim = SimFs::new(23);
    let cache = SegmentCache::new(2, UNSYNCED_SEALED_SEGMENTS_LIMIT);
    let flusher = Flusher::start(1);
    let fs = CountingFs::new(Arc::new(sim.clone()));
    let log = open_counted(&fs, &cache, &flusher);
    fill(&log, 0, 90);
    log.close().unwrap();
    drop(log);
    fs.take_peak();
    let log = open_counted(&fs, &cache, &flusher);
    let clean_peak = fs.take_peak();
    assert_eq!(values(&log), (0..90).collect::<Vec<_>>());
    drop(log);
    // Unclean, and no checkpoint: every segment is the tail, checked and
    // sealed again one after the other.
    sim.remove_file(&dir().join("recovery-checkpoint")).unwrap();
    let log = open_counted(&fs, &cache, &flusher);
    let unclean_peak = fs.take_peak();
    assert_eq!(values(&log), (0..90).collect::<Vec<_>>());
    assert!(log.stats().segment_count >= 30);
    // The active segment's files, a tail segment's, one transient open.
    for (open, peak) in [("clean", clean_peak), ("unclean", unclean_peak)] {
        assert!(
            peak <= 2 * ACTIVE_FILES + 1,
            "{open} open held {peak} files"
        );
    }
    assert_eq!(fs.open_now(), ACTIVE_FILES);
}

#[test]
fn past_the_unsynced_limit_a_roll_fsyncs_the_sealed_segment_at_once() {
    let sim = SimFs::new(24);
    let fs = CountingFs::new(Arc::new(sim.clone()));
    let cache = SegmentCache::new(4, 1);
    // Group commits never run: sealed segments wait for them forever.
    let flusher = Flusher::manual();
    let log = open_counted(&fs, &cache, &flusher);
    for i in 0..30u8 {
        log.append(&batch_of(&[vec![i; 1000]], 0)).unwrap();
    }
    assert!(log.stats().segment_count >= 10);
    assert_eq!(cache.stats().unsynced, 1);
    assert_eq!(
        fs.open_now(),
        2 * ACTIVE_FILES,
        "the active and one waiting segment"
    );
    // Those rolls fsync: one that fails makes the log read-only, as a
    // failed group commit would.
    sim.set_options(SimOptions {
        sync_failure_probability: 1.0,
        ..SimOptions::default()
    });
    let failed = (30..40u8)
        .map(|i| log.append(&batch_of(&[vec![i; 1000]], 0)))
        .find_map(Result::err);
    assert!(
        matches!(failed, Some(StorageError::Io { .. })),
        "{failed:?}"
    );
    assert!(sim.failed_syncs() > 0);
    assert!(log.health_problem().unwrap().contains("read-only"));
    assert!(matches!(
        log.append(&batch_of(&[vec![0]], 0)),
        Err(StorageError::ReadOnly(_))
    ));
}
