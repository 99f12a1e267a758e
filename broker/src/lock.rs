//! The data directory's lock: a broker holds an exclusive `flock` on
//! `<data-dir>/LOCK` for as long as it runs, so a second broker on the same
//! directory refuses to start instead of "recovering" live logs and writing
//! over them. The file holds the holder's PID, for the refusal message. The
//! kernel drops the lock when the process dies (`kill -9` included), so a
//! stale file never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{BrokerError, Result};

pub const LOCK_FILE: &str = "LOCK";
/// Longest PID text read back from a lock file.
const PID_MAX_BYTES: u64 = 32;

/// Held for the broker's lifetime; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    pub path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock on `data_dir` (created if missing), or says who has it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock> {
        std::fs::create_dir_all(data_dir).map_err(BrokerError::metadata_io(data_dir))?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(BrokerError::metadata_io(&path))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(BrokerError::MetadataIo {
                    path,
                    source: error,
                });
            }
            return Err(BrokerError::DataDirLocked {
                dir: data_dir.to_path_buf(),
                holder_pid: holder_pid(&mut file),
            });
        }
        let pid = format!("{}\n", std::process::id());
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(pid.as_bytes())
        };
        write(&mut file).map_err(BrokerError::metadata_io(&path))?;
        Ok(DataDirLock { _file: file, path })
    }
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(PID_MAX_BYTES).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        match DataDirLock::acquire(dir.path()) {
            Err(BrokerError::DataDirLocked { holder_pid, .. }) => {
                assert_eq!(holder_pid, Some(std::process::id()));
            }
            other => panic!("expected DataDirLocked, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
