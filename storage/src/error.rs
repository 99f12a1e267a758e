//! The storage crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

use ferry_protocol::ProtocolError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("disk full while writing {path}")]
    DiskFull { path: PathBuf },
    #[error("offset {offset} is out of range: the log holds [{start_offset}, {end_offset})")]
    OffsetOutOfRange {
        offset: u64,
        start_offset: u64,
        end_offset: u64,
    },
    #[error("corrupt data in partition {partition} at offset {offset}: {reason}")]
    CorruptData {
        partition: String,
        offset: u64,
        reason: String,
    },
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] ProtocolError),
    #[error("partition {0} is read-only after an fsync failure; restart the broker to recover it")]
    ReadOnly(String),
    /// An idempotent producer's batch that does not follow its last one:
    /// a batch in between is missing.
    #[error("out-of-order sequence from producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// An idempotent producer's batch from an epoch older than the
    /// producer's current one: a newer instance took over.
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current_epoch}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("log {0} is closed")]
    Closed(String),
    /// A `LogConfig` field outside the range the log supports.
    #[error("invalid storage config: {key} must be in [{min}, {max}], not {value}")]
    ConfigOutOfRange {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    /// A `LogConfig` size or interval that must not be zero.
    #[error("invalid storage config: {key} must be positive")]
    ConfigNotPositive { key: &'static str },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Wraps an I/O error with the path it happened on; ENOSPC becomes `DiskFull`.
pub fn io_error(path: &Path, source: io::Error) -> StorageError {
    if source.raw_os_error() == Some(libc::ENOSPC) || source.raw_os_error() == Some(libc::EDQUOT) {
        return StorageError::DiskFull {
            path: path.to_path_buf(),
        };
    }
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| io_error(path, e))
    }
}
