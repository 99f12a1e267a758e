//! A log's health: whether it takes appends and serves reads, and the one
//! rule for how that changes. A failure (read-only after a failed fsync,
//! fenced at corrupt data) sticks until restart and the first one wins;
//! closing overrides anything.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{RwLock, RwLockReadGuard};

use crate::error::{Result, StorageError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    Ok,
    /// An fsync failed; writes refused until restart.
    ReadOnly(String),
    /// Corrupt data found at `offset`; reads at or past it and writes refused.
    Fenced {
        offset: u64,
        reason: String,
    },
    Closed,
}

/// A log's [`Health`], with a lock-free check for the common healthy case.
pub(crate) struct HealthCell {
    health: RwLock<Health>,
    /// `health == Health::Ok`, readable without the lock.
    healthy: AtomicBool,
}

impl HealthCell {
    pub fn new(health: Health) -> HealthCell {
        let healthy = health == Health::Ok;
        HealthCell {
            health: RwLock::new(health),
            healthy: AtomicBool::new(healthy),
        }
    }

    /// True while nothing has gone wrong (no lock taken).
    pub fn is_ok(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Health> {
        self.health.read()
    }

    /// Records a failure or the close. Only a healthy log takes a failure
    /// (the first cause is kept); `Closed` replaces anything.
    pub fn set(&self, health: Health) {
        debug_assert!(health != Health::Ok, "health never returns to Ok");
        let mut slot = self.health.write();
        if *slot == Health::Ok || matches!(health, Health::Closed) {
            *slot = health;
            self.healthy.store(false, Ordering::Release);
        }
    }

    /// `Ok` if `partition` takes appends, else the error saying why not.
    pub fn check_writable(&self, partition: &str) -> Result<()> {
        if self.is_ok() {
            return Ok(());
        }
        match &*self.read() {
            Health::Ok => Ok(()),
            Health::ReadOnly(_) => Err(StorageError::ReadOnly(partition.to_string())),
            Health::Fenced { offset, reason } => Err(StorageError::CorruptData {
                partition: partition.to_string(),
                offset: *offset,
                reason: reason.clone(),
            }),
            Health::Closed => Err(StorageError::Closed(partition.to_string())),
        }
    }
}
