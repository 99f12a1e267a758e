//! The file-system seam. Every byte of durable state Ferry keeps goes through
//! [`Vfs`] and [`VFile`], so the same code runs on the real disk ([`OsFs`])
//! and on a simulated disk ([`SimFs`]) that can lose power or fail an fsync.
//!
//! The contract mirrors POSIX: a write is visible to reads at once but durable
//! only after [`VFile::sync`]; creating, renaming or removing a name is durable
//! only after [`Vfs::sync_dir`] on its directory.

mod os;
mod sim;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

pub use os::OsFs;
pub use sim::{SimFs, SimOptions};

/// An open file: positional reads and writes, no cursor.
#[allow(clippy::len_without_is_empty)]
pub trait VFile: Send + Sync + 'static {
    fn write_at(&self, position: u64, buf: &[u8]) -> io::Result<()>;

    /// Writes the pieces back to back starting at `position` (one `pwritev`
    /// on a real disk).
    fn write_vectored_at(&self, position: u64, bufs: &[&[u8]]) -> io::Result<()> {
        let mut at = position;
        for buf in bufs {
            self.write_at(at, buf)?;
            at += buf.len() as u64;
        }
        Ok(())
    }

    /// Fills `buf` from `position`; fails with `UnexpectedEof` past the end.
    fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> io::Result<()>;

    /// `len` bytes at `position` as shared bytes: a slice of a memory map on
    /// a real disk (zero-copy), a copy on the simulated one. The range must
    /// lie within what has been written.
    fn read_view(&self, position: u64, len: usize) -> io::Result<Bytes>;

    fn len(&self) -> io::Result<u64>;

    fn set_len(&self, len: u64) -> io::Result<()>;

    /// `fdatasync`: everything written so far is durable when this returns Ok.
    fn sync(&self) -> io::Result<()>;

    /// Hint that reads will reach up to `bytes` (lets the real disk map a
    /// growing file once instead of remapping).
    fn reserve_view(&self, _bytes: u64) {}
}

/// A file system: names, directories and opening files.
pub trait Vfs: Send + Sync + 'static {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries of a directory, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    /// Opens read-write, creating the file if `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn VFile>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// The whole file as read-only shared bytes that hold no open file once
    /// this returns: a memory map on a real disk (the descriptor is closed
    /// after mapping; the map lives as long as any slice of it), a copy on
    /// the simulated one. The file must not be written or truncated while
    /// the bytes live (sealed segments only).
    fn map_read_only(&self, path: &Path) -> io::Result<Bytes> {
        let file = self.open(path, false)?;
        let len = usize::try_from(file.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to map"))?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        file.read_view(0, len)
    }
}

/// Writes `bytes` to `dir/name` atomically and durably: write a temporary
/// file, fsync it, rename it over the name, fsync the directory. After a
/// crash the name holds either the old or the new contents, never a mix.
pub fn write_atomic(vfs: &dyn Vfs, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp: PathBuf = dir.join(format!("{name}.tmp"));
    let file = vfs.open(&tmp, true)?;
    file.set_len(0)?;
    file.write_at(0, bytes)?;
    file.sync()?;
    drop(file);
    vfs.rename(&tmp, &dir.join(name))?;
    vfs.sync_dir(dir)
}

/// Reads a whole small file, or `None` if it does not exist.
pub fn read_small_file(
    vfs: &dyn Vfs,
    path: &Path,
    limit_bytes: u64,
) -> io::Result<Option<Vec<u8>>> {
    if !vfs.exists(path) {
        return Ok(None);
    }
    let file = vfs.open(path, false)?;
    let len = file.len()?;
    if len > limit_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes, above the limit of {limit_bytes}",
                path.display()
            ),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(0, &mut buf)?;
    Ok(Some(buf))
}
