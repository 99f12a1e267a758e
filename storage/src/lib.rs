//! Ferry's storage engine: every topic partition is a [`Log`], a directory of
//! segments holding record batches byte for byte, with sparse offset and time
//! indexes, group-committed fsyncs and crash recovery. It knows nothing of
//! sockets; all file I/O goes through [`vfs::Vfs`] so tests can pull the plug.
//!
//! The on-disk format and the crash-safety argument are in `FORMAT.md`.

pub mod checkpoint;
mod clock;
pub mod config;
mod cursor;
pub mod error;
pub mod fd_budget;
mod flusher;
mod health;
mod index;
mod log;
mod producer_snapshot;
pub mod producers;
mod recovery;
mod segment;
mod segment_cache;
pub mod vfs;

pub use clock::now_ms;
pub use config::{FsyncPolicy, LogConfig};
pub use error::{Result, StorageError};
pub use flusher::{Flusher, FLUSHER_THREADS_LIMIT};
pub use log::{AppendInfo, Durable, EndWatch, Isolation, Log, LogGone, LogStats, ReadResult};
pub use segment_cache::{
    SegmentCache, SegmentCacheStats, OPEN_SEALED_SEGMENTS_LIMIT, UNSYNCED_SEALED_SEGMENTS_LIMIT,
};

/// The `partitionLeaderEpoch` of every stored batch: `Log::append` stamps
/// it whatever the producer sent (it lies outside the CRC, like the base
/// offset) and recovery checks it. Ferry has no leader epochs yet, so it is
/// Kafka's "no epoch"; a replication term is what will go here.
pub const STORED_LEADER_EPOCH: i32 = ferry_protocol::batch::NO_PARTITION_LEADER_EPOCH;

#[cfg(test)]
mod producer_tests;
#[cfg(test)]
mod sealed_tests;
#[cfg(test)]
mod tests;
