//! Group commit. A small pool of threads runs every fsync; logs ask for one
//! with [`FlusherShared::request`], and a log already queued is not queued
//! twice, so all the appends that arrive while one fsync runs are covered by
//! the next one. Durable throughput therefore grows with the number of
//! concurrent appenders instead of being capped at one fsync per batch.
//!
//! A ticker thread drives interval fsyncs and periodic recovery checkpoints.
//!
//! The flusher sees a log only through [`GroupCommit`]: it never reaches into
//! the log's state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::clock::now_ms;

/// How often the ticker looks at interval policies and checkpoints.
pub const TICK_MS: u64 = 5;
pub const FLUSHER_THREADS_LIMIT: usize = 64;

/// What the flusher needs of a log.
pub(crate) trait GroupCommit: Send + Sync + 'static {
    /// One group commit: fsync what was written, advance the durable offset.
    fn sync_now(&self);
    /// Whether the ticker should queue a sync now.
    fn sync_due(&self, now_ms: u64) -> bool;
    /// Set while the log waits in the queue, so it is queued at most once.
    fn sync_queued(&self) -> &AtomicBool;
}

pub(crate) struct FlusherShared {
    queue: Mutex<VecDeque<Arc<dyn GroupCommit>>>,
    ready: Condvar,
    logs: Mutex<Vec<Weak<dyn GroupCommit>>>,
    stopping: AtomicBool,
}

impl FlusherShared {
    fn new() -> FlusherShared {
        FlusherShared {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            logs: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Asks for an fsync of `log` soon. Cheap when one is already queued.
    pub fn request<L: GroupCommit>(&self, log: &Arc<L>) {
        if self.claim(&**log) {
            self.push(log.clone());
        }
    }

    /// Whether `log` goes in the queue now: not if it already waits there,
    /// and not once the flusher stops (then it is synced inline instead).
    fn claim(&self, log: &dyn GroupCommit) -> bool {
        if self.stopping.load(Ordering::Acquire) {
            log.sync_now();
            return false;
        }
        !log.sync_queued().swap(true, Ordering::AcqRel)
    }

    fn push(&self, log: Arc<dyn GroupCommit>) {
        self.queue.lock().push_back(log);
        self.ready.notify_one();
    }

    /// Lets the ticker look at `log` until it is dropped.
    pub fn register<L: GroupCommit>(&self, log: &Arc<L>) {
        let log: Arc<dyn GroupCommit> = log.clone();
        self.logs.lock().push(Arc::downgrade(&log));
    }

    fn next(&self) -> Option<Arc<dyn GroupCommit>> {
        let mut queue = self.queue.lock();
        loop {
            if let Some(log) = queue.pop_front() {
                return Some(log);
            }
            if self.stopping.load(Ordering::Acquire) {
                return None;
            }
            self.ready.wait(&mut queue);
        }
    }

    fn tick(&self) {
        let now_ms = now_ms();
        let live: Vec<Arc<dyn GroupCommit>> = {
            let mut logs = self.logs.lock();
            logs.retain(|weak| weak.strong_count() > 0);
            logs.iter().filter_map(Weak::upgrade).collect()
        };
        for log in live {
            if log.sync_due(now_ms) && self.claim(&*log) {
                self.push(log);
            }
        }
    }
}

/// Owns the fsync threads; dropping it stops them (later requests sync inline).
pub struct Flusher {
    shared: Arc<FlusherShared>,
    threads: Vec<JoinHandle<()>>,
}

impl Flusher {
    pub fn start(threads: usize) -> Flusher {
        let threads = threads.clamp(1, FLUSHER_THREADS_LIMIT);
        let shared = Arc::new(FlusherShared::new());
        let mut handles = Vec::with_capacity(threads + 1);
        for i in 0..threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-fsync-{i}"))
                .spawn(move || {
                    while let Some(log) = shared.next() {
                        log.sync_queued().store(false, Ordering::Release);
                        log.sync_now();
                    }
                });
            if let Ok(handle) = spawned {
                handles.push(handle);
            }
        }
        let ticker = shared.clone();
        if let Ok(handle) = std::thread::Builder::new()
            .name("ferry-fsync-tick".into())
            .spawn(move || {
                while !ticker.stopping.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(TICK_MS));
                    ticker.tick();
                }
            })
        {
            handles.push(handle);
        }
        Flusher {
            shared,
            threads: handles,
        }
    }

    /// A flusher without threads, for tests: requested fsyncs wait until
    /// [`Flusher::run_pending`], so a simulated power loss can strike while
    /// they are still queued.
    pub fn manual() -> Flusher {
        Flusher {
            shared: Arc::new(FlusherShared::new()),
            threads: Vec::new(),
        }
    }

    /// Queues an fsync of every interval-policy log whose interval has
    /// passed, as the ticker thread does every `TICK_MS` (manual flushers).
    pub fn tick_now(&self) {
        self.shared.tick();
    }

    /// Runs every queued fsync now (manual flushers); returns how many ran.
    pub fn run_pending(&self) -> usize {
        let queued: Vec<_> = self.shared.queue.lock().drain(..).collect();
        for log in &queued {
            log.sync_queued().store(false, Ordering::Release);
            log.sync_now();
        }
        queued.len()
    }

    pub(crate) fn shared(&self) -> Arc<FlusherShared> {
        self.shared.clone()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.ready.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
        // Anything still queued is synced here rather than forgotten.
        let rest: Vec<_> = self.shared.queue.lock().drain(..).collect();
        for log in rest {
            log.sync_now();
        }
    }
}
