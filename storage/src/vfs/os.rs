//! The real disk: `pwrite`/`pwritev` for writes, `fdatasync` for durability
//! and a shared read-only memory map for reads, so a read is a reference-
//! counted slice of the page cache and never copies or blocks the writer.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::MmapOptions;
use parking_lot::RwLock;

use super::{VFile, Vfs};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

impl OsFs {
    pub fn new() -> OsFs {
        OsFs
    }
}

struct OsFile {
    file: File,
    /// The whole current mapping as `Bytes`; slices of it are handed out.
    view: RwLock<Option<Bytes>>,
    reserve_bytes: AtomicU64,
}

impl OsFile {
    fn mapped(&self, end: u64) -> io::Result<Bytes> {
        if let Some(view) = self.view.read().as_ref() {
            if view.len() as u64 >= end {
                return Ok(view.clone());
            }
        }
        let mut slot = self.view.write();
        if let Some(view) = slot.as_ref() {
            if view.len() as u64 >= end {
                return Ok(view.clone());
            }
        }
        let capacity = end
            .max(self.reserve_bytes.load(Ordering::Relaxed))
            .max(self.file.metadata()?.len())
            .max(4096);
        // SAFETY: the map is read-only and shared. Ferry never truncates a
        // file below bytes it has handed out (truncation happens only during
        // recovery, before any reader exists), and only ranges below the
        // written length are ever sliced, so no access reaches past EOF.
        let map = unsafe { MmapOptions::new().len(capacity as usize).map(&self.file)? };
        let view = Bytes::from_owner(map);
        *slot = Some(view.clone());
        Ok(view)
    }
}

impl VFile for OsFile {
    fn write_at(&self, position: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, position)
    }

    fn write_vectored_at(&self, position: u64, bufs: &[&[u8]]) -> io::Result<()> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: the iovecs point into live slices borrowed for this call.
        let written = unsafe {
            libc::pwritev(
                self.file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                position as libc::off_t,
            )
        };
        if written < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = written as usize;
        if written == total {
            return Ok(());
        }
        // Short write (rare): finish the rest piece by piece.
        let mut skip = written;
        let mut at = position + written as u64;
        for buf in bufs {
            if skip >= buf.len() {
                skip -= buf.len();
                continue;
            }
            self.file.write_all_at(&buf[skip..], at)?;
            at += (buf.len() - skip) as u64;
            skip = 0;
        }
        Ok(())
    }

    fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, position)
    }

    fn read_view(&self, position: u64, len: usize) -> io::Result<Bytes> {
        let end = position + len as u64;
        let view = self.mapped(end)?;
        Ok(view.slice(position as usize..end as usize))
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn reserve_view(&self, bytes: u64) {
        self.reserve_bytes.fetch_max(bytes, Ordering::Relaxed);
    }
}

impl Vfs for OsFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn VFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(OsFile {
            file,
            view: RwLock::new(None),
            reserve_bytes: AtomicU64::new(0),
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn map_read_only(&self, path: &Path) -> io::Result<Bytes> {
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to map"))?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: read-only and shared. Only sealed segment files are mapped
        // this way; they are never written or truncated again while mapped
        // (recovery, the one writer of sealed files, drops their maps from
        // the cache before it opens them for writing), and slices are only
        // taken within `len`, so no access reaches past EOF.
        let map = unsafe { MmapOptions::new().len(len).map(&file)? };
        // The map stays valid without the descriptor.
        drop(file);
        Ok(Bytes::from_owner(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_see_writes_past_the_first_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let file = fs.open(&dir.path().join("f"), true).unwrap();
        file.write_at(0, b"hello").unwrap();
        assert_eq!(&file.read_view(0, 5).unwrap()[..], b"hello");
        let big = vec![7u8; 10_000];
        file.write_vectored_at(5, &[&big, b"tail"]).unwrap();
        assert_eq!(&file.read_view(10_005, 4).unwrap()[..], b"tail");
        assert_eq!(file.len().unwrap(), 10_009);
    }

    #[test]
    fn a_read_only_map_outlives_its_descriptor_and_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("sealed");
        let file = fs.open(&path, true).unwrap();
        file.write_at(0, &[5u8; 9000]).unwrap();
        drop(file);
        let whole = fs.map_read_only(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(whole.len(), 9000);
        assert!(whole.iter().all(|b| *b == 5));
        let empty = dir.path().join("empty");
        drop(fs.open(&empty, true).unwrap());
        assert!(fs.map_read_only(&empty).unwrap().is_empty());
    }
}
