//! The two small state files of a log directory: `recovery-checkpoint` (how
//! far the log is known durable, written after an fsync) and `clean-shutdown`
//! (written last on a clean close, removed first on open). Both have the same
//! checksummed layout and are replaced atomically (see `vfs::write_atomic`).

use std::path::Path;

use crate::error::{IoContext, Result};
use crate::vfs::{read_small_file, write_atomic, Vfs};

pub const CHECKPOINT_FILE: &str = "recovery-checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
const MAGIC: &[u8; 4] = b"FRCP";
const VERSION: u8 = 1;
const ENCODED_BYTES: usize = 4 + 1 + 8 * 7 + 4;

/// A consistent point of the log: everything before `position` in segment
/// `segment_base` (and every earlier segment) is durable, and so are the
/// first `index_entries` / `time_entries` entries of its indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub segment_base: u64,
    pub position: u64,
    pub next_offset: u64,
    pub index_entries: u64,
    pub time_entries: u64,
    pub max_timestamp_ms: i64,
    pub last_time_entry_ms: i64,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_BYTES);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        for value in [
            self.segment_base,
            self.position,
            self.next_offset,
            self.index_entries,
            self.time_entries,
            self.max_timestamp_ms as u64,
            self.last_time_entry_ms as u64,
        ] {
            out.extend_from_slice(&value.to_be_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// `None` for anything but an intact file of this version.
    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        if bytes.len() != ENCODED_BYTES || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return None;
        }
        let body = &bytes[..ENCODED_BYTES - 4];
        let stored = u32::from_be_bytes(bytes[ENCODED_BYTES - 4..].try_into().ok()?);
        if crc32fast::hash(body) != stored {
            return None;
        }
        let field = |i: usize| {
            u64::from_be_bytes(bytes[5 + 8 * i..13 + 8 * i].try_into().unwrap_or([0; 8]))
        };
        Some(Checkpoint {
            segment_base: field(0),
            position: field(1),
            next_offset: field(2),
            index_entries: field(3),
            time_entries: field(4),
            max_timestamp_ms: field(5) as i64,
            last_time_entry_ms: field(6) as i64,
        })
    }

    pub fn write(&self, vfs: &dyn Vfs, dir: &Path, name: &str) -> Result<()> {
        write_atomic(vfs, dir, name, &self.encode()).at(&dir.join(name))
    }

    /// Reads a checkpoint file: `Ok(None)` when absent, `Err` never for bad
    /// contents (they are reported as `Some(Err(()))` via `Invalid`).
    pub fn read(vfs: &dyn Vfs, dir: &Path, name: &str) -> Result<CheckpointFile> {
        let path = dir.join(name);
        match read_small_file(vfs, &path, 4096).at(&path)? {
            None => Ok(CheckpointFile::Missing),
            Some(bytes) => Ok(match Checkpoint::decode(&bytes) {
                Some(checkpoint) => CheckpointFile::Valid(checkpoint),
                None => CheckpointFile::Invalid,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFile {
    Missing,
    Invalid,
    Valid(Checkpoint),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_any_flipped_byte() {
        let checkpoint = Checkpoint {
            segment_base: 7,
            position: 4096,
            next_offset: 99,
            index_entries: 3,
            time_entries: 2,
            max_timestamp_ms: -5,
            last_time_entry_ms: 1_700_000_000_000,
        };
        let bytes = checkpoint.encode();
        assert_eq!(Checkpoint::decode(&bytes), Some(checkpoint));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert_eq!(Checkpoint::decode(&bad), None, "flip at {i}");
        }
        assert_eq!(Checkpoint::decode(&bytes[..bytes.len() - 1]), None);
    }
}
