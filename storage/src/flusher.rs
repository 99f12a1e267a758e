//! Group commit. A small pool of threads runs every fsync; logs ask for one
//! with [`FlusherShared::request`], and a log already queued is not queued
//! twice, so all the appends that arrive while one fsync runs are covered by
//! the next one. Durable throughput therefore grows with the number of
//! concurrent appenders instead of being capped at one fsync per batch.
//!
//! A ticker thread drives interval fsyncs and periodic recovery checkpoints.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::log::LogInner;

/// How often the ticker looks at interval policies and checkpoints.
pub const TICK_MS: u64 = 5;
pub const FLUSHER_THREADS_LIMIT: usize = 64;

pub(crate) struct FlusherShared {
    queue: Mutex<VecDeque<Arc<LogInner>>>,
    ready: Condvar,
    logs: Mutex<Vec<Weak<LogInner>>>,
    stopping: AtomicBool,
}

impl FlusherShared {
    /// Asks for an fsync of `log` soon. Cheap when one is already queued.
    pub fn request(&self, log: &Arc<LogInner>) {
        if self.stopping.load(Ordering::Acquire) {
            log.sync_now();
            return;
        }
        if log.sync_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        self.queue.lock().push_back(log.clone());
        self.ready.notify_one();
    }

    pub fn register(&self, log: &Arc<LogInner>) {
        self.logs.lock().push(Arc::downgrade(log));
    }

    fn next(&self) -> Option<Arc<LogInner>> {
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
        let now_ms = crate::log::now_ms();
        let live: Vec<Arc<LogInner>> = {
            let mut logs = self.logs.lock();
            logs.retain(|weak| weak.strong_count() > 0);
            logs.iter().filter_map(Weak::upgrade).collect()
        };
        for log in live {
            if log.sync_due(now_ms) {
                self.request(&log);
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
        let shared = Arc::new(FlusherShared {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            logs: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let mut handles = Vec::with_capacity(threads + 1);
        for i in 0..threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ferry-fsync-{i}"))
                .spawn(move || {
                    while let Some(log) = shared.next() {
                        log.sync_queued.store(false, Ordering::Release);
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
            shared: Arc::new(FlusherShared {
                queue: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                logs: Mutex::new(Vec::new()),
                stopping: AtomicBool::new(false),
            }),
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
            log.sync_queued.store(false, Ordering::Release);
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
