//! The data directory's format version: the file `FORMAT` in its root, one
//! line `ferry-data-format N`.
//!
//! Format 2 stores Kafka's RecordBatch v2 layout (magic 2, CRC32C), in
//! partition logs and in the internal state logs alike. Format 1, Ferry's
//! own batch layout, was written by builds that had no `FORMAT` file: a
//! directory that holds data but no `FORMAT` is format 1. It is refused at
//! start with what to do — never misread — as is a directory of a newer
//! format than this build knows.
//!
//! An empty directory is marked at its first start, before anything else is
//! written to it, with an atomic, fsynced replace: a crash leaves it empty
//! (and unmarked) or marked, never holding data without a mark.

use std::path::{Path, PathBuf};

use ferry_storage::vfs::{read_small_file, write_atomic, Vfs};

use crate::error::{BrokerError, Result};

/// The format this build reads and writes.
pub const DATA_FORMAT_VERSION: u32 = 2;
const FORMAT_FILE: &str = "FORMAT";
const FORMAT_PREFIX: &str = "ferry-data-format ";
const FORMAT_FILE_BYTES_LIMIT: u64 = 256;
/// Entries that mean the directory holds data of some format.
const DATA_ENTRIES: [&str; 3] = ["topics", "meta", "internal"];

/// Checks the directory's format, marking an empty one as this build's.
pub fn check_or_mark(vfs: &dyn Vfs, data_dir: &Path) -> Result<()> {
    let path = data_dir.join(FORMAT_FILE);
    let bytes = read_small_file(vfs, &path, FORMAT_FILE_BYTES_LIMIT)
        .map_err(BrokerError::metadata_io(path.clone()))?;
    match bytes {
        Some(bytes) => check(&path, &bytes),
        None if holds_data(vfs, data_dir) => Err(BrokerError::DataFormatUnsupported {
            dir: data_dir.to_path_buf(),
            found: 1,
            supported: DATA_FORMAT_VERSION,
        }),
        None => mark(vfs, data_dir),
    }
}

fn holds_data(vfs: &dyn Vfs, data_dir: &Path) -> bool {
    DATA_ENTRIES
        .iter()
        .any(|entry| vfs.exists(&data_dir.join(entry)))
}

fn check(path: &Path, bytes: &[u8]) -> Result<()> {
    let corrupt = || BrokerError::MetadataCorrupt {
        path: PathBuf::from(path),
        what: "it must hold one line `ferry-data-format N`",
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt())?;
    let version: u32 = text
        .trim_end()
        .strip_prefix(FORMAT_PREFIX)
        .and_then(|number| number.parse().ok())
        .ok_or_else(corrupt)?;
    match version {
        DATA_FORMAT_VERSION => Ok(()),
        found => Err(BrokerError::DataFormatUnsupported {
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            found,
            supported: DATA_FORMAT_VERSION,
        }),
    }
}

fn mark(vfs: &dyn Vfs, data_dir: &Path) -> Result<()> {
    vfs.create_dir_all(data_dir)
        .map_err(BrokerError::metadata_io(data_dir))?;
    let line = format!("{FORMAT_PREFIX}{DATA_FORMAT_VERSION}\n");
    write_atomic(vfs, data_dir, FORMAT_FILE, line.as_bytes())
        .map_err(BrokerError::metadata_io(data_dir.join(FORMAT_FILE)))?;
    tracing::info!(format = DATA_FORMAT_VERSION, dir = %data_dir.display(), "data directory marked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_storage::vfs::OsFs;

    #[test]
    fn an_empty_dir_is_marked_and_then_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = OsFs::new();
        check_or_mark(&vfs, dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FORMAT_FILE)).unwrap();
        assert_eq!(text, "ferry-data-format 2\n");
        check_or_mark(&vfs, dir.path()).unwrap();
    }

    #[test]
    fn data_without_a_mark_is_format_1_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("topics/orders/0")).unwrap();
        let refused = check_or_mark(&OsFs::new(), dir.path()).unwrap_err();
        assert!(matches!(
            refused,
            BrokerError::DataFormatUnsupported { found: 1, .. }
        ));
        assert!(!dir.path().join(FORMAT_FILE).exists(), "nothing written");
    }

    #[test]
    fn a_newer_or_garbled_mark_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FORMAT_FILE);
        std::fs::write(&path, "ferry-data-format 3\n").unwrap();
        let newer = check_or_mark(&OsFs::new(), dir.path()).unwrap_err();
        assert!(matches!(
            newer,
            BrokerError::DataFormatUnsupported { found: 3, .. }
        ));
        std::fs::write(&path, "garbage").unwrap();
        let garbled = check_or_mark(&OsFs::new(), dir.path()).unwrap_err();
        assert!(matches!(garbled, BrokerError::MetadataCorrupt { .. }));
    }
}
