//! The open-file budget: how many file descriptors partition logs may use
//! under the process's `RLIMIT_NOFILE`, so that creating partitions is
//! refused before the process runs out of descriptors (after which it could
//! not accept a connection, nor open its own data dir again).
//!
//! What a partition holds open: its active segment's three files (log,
//! offset index, time index). Sealed segments hold none (see
//! `segment_cache.rs`), except for at most [`UNSYNCED_SEALED_SEGMENTS_LIMIT`]
//! waiting for their first fsync; [`STORAGE_HEADROOM_FDS`] covers those and
//! the short-lived opens of directory fsyncs, checkpoints and recovery.
//!
//! The limit is the process's, so the budget is too: a program (the broker)
//! raises the soft limit with [`set_open_files_limit`], then says with
//! [`reserve_fds`] how many descriptors it keeps for everything else
//! (connections, its own files). [`budget`] is `None` until then.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

use crate::segment_cache::UNSYNCED_SEALED_SEGMENTS_LIMIT;

/// Descriptors one open partition log holds: its active segment's log,
/// offset index and time index.
pub const FDS_PER_PARTITION: u64 = 3;

/// Descriptors the storage engine needs beyond [`FDS_PER_PARTITION`] per
/// log: sealed segments waiting for their first fsync, plus 64 for
/// short-lived opens (directory fsyncs, checkpoint writes, recovery).
pub const STORAGE_HEADROOM_FDS: u64 =
    UNSYNCED_SEALED_SEGMENTS_LIMIT as u64 * FDS_PER_PARTITION + 64;

/// Marks "no reservation made yet" in [`RESERVED_FDS`].
const NOT_RESERVED: u64 = u64::MAX;

/// Descriptors kept for everything but partition logs.
static RESERVED_FDS: AtomicU64 = AtomicU64::new(NOT_RESERVED);

/// The process's open-files limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The current `RLIMIT_NOFILE`.
pub fn open_files_limit() -> io::Result<OpenFilesLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OpenFilesLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Sets the soft `RLIMIT_NOFILE` to `wanted` (the hard limit if `None`),
/// capped at the hard limit; lowering it is allowed. Returns the limits now
/// in force.
pub fn set_open_files_limit(wanted: Option<u64>) -> io::Result<OpenFilesLimit> {
    let current = open_files_limit()?;
    let soft = wanted.unwrap_or(current.hard).min(current.hard);
    if soft != current.soft {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: current.hard,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    open_files_limit()
}

/// Keeps `fds` descriptors out of the partitions' budget from now on.
pub fn reserve_fds(fds: u64) {
    RESERVED_FDS.store(fds.min(NOT_RESERVED - 1), Ordering::Release);
}

/// The budget under the current soft limit, or `None` if no program said
/// what it reserves (libraries and tests: no check).
pub fn budget() -> Option<FdBudget> {
    let reserved = RESERVED_FDS.load(Ordering::Acquire);
    if reserved == NOT_RESERVED {
        return None;
    }
    let limit = open_files_limit().ok()?.soft;
    Some(FdBudget { limit, reserved })
}

/// Descriptors partitions may use: the limit less what is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft `RLIMIT_NOFILE`.
    pub limit: u64,
    /// Kept for everything but partition logs.
    pub reserved: u64,
}

impl FdBudget {
    /// Descriptors left for partition logs.
    pub fn partition_fds(&self) -> u64 {
        self.limit.saturating_sub(self.reserved)
    }

    /// Partitions that fit.
    pub fn partitions(&self) -> u64 {
        self.partition_fds() / FDS_PER_PARTITION
    }

    /// Whether `adding` partitions fit beside `open` ones.
    pub fn check(&self, open: u64, adding: u64) -> Result<(), FdBudgetExceeded> {
        let used = open.saturating_mul(FDS_PER_PARTITION);
        let needed = adding.saturating_mul(FDS_PER_PARTITION);
        let free = self.partition_fds().saturating_sub(used);
        if needed <= free {
            return Ok(());
        }
        Err(FdBudgetExceeded {
            adding,
            needed,
            free,
            partition_fds: self.partition_fds(),
            open,
            limit: self.limit,
            reserved: self.reserved,
        })
    }
}

/// Partitions that would not fit the open-files budget.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "creating {adding} partitions needs ~{needed} open files; the broker has {free} of \
     {partition_fds} left for partitions ({open} open, {FDS_PER_PARTITION} files each; open-files \
     limit {limit}, {reserved} kept for connections and the broker itself)"
)]
pub struct FdBudgetExceeded {
    pub adding: u64,
    pub needed: u64,
    pub free: u64,
    pub partition_fds: u64,
    pub open: u64,
    pub limit: u64,
    pub reserved: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_fit_until_their_files_would_pass_the_limit() {
        let budget = FdBudget {
            limit: 1024,
            reserved: 124,
        };
        assert_eq!((budget.partition_fds(), budget.partitions()), (900, 300));
        assert!(budget.check(0, 300).is_ok());
        assert!(budget.check(100, 200).is_ok());
        let refused = budget.check(100, 201).unwrap_err();
        assert_eq!((refused.needed, refused.free), (603, 600));
        let message = refused.to_string();
        for part in [
            "201 partitions",
            "~603 open files",
            "600 of 900",
            "limit 1024",
        ] {
            assert!(message.contains(part), "{message}");
        }
        let tiny = FdBudget {
            limit: 10,
            reserved: 100,
        };
        assert!(
            tiny.check(0, 1).is_err(),
            "a limit below the reserve fits nothing"
        );
        assert!(budget.check(u64::MAX, u64::MAX).is_err(), "no overflow");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let before = open_files_limit().unwrap();
        let after = set_open_files_limit(None).unwrap();
        assert_eq!(after.soft, before.hard);
        assert_eq!(after.hard, before.hard);
    }
}
