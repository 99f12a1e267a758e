//! Small metadata files (topic and queue definitions): 8-byte magic, CRC-32
//! of the JSON body, the JSON body; replaced atomically through the storage
//! `Vfs` (write temp, fsync, rename, fsync dir). A file whose magic or CRC
//! does not hold is reported as corrupt, never half-trusted.

use std::path::Path;

use ferry_storage::vfs::{read_small_file, write_atomic, Vfs};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{BrokerError, Result};

const METAFILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

pub enum Loaded<T> {
    Missing,
    Corrupt,
    Valid(T),
}

pub fn write<T: Serialize>(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
    value: &T,
) -> Result<()> {
    let json = serde_json::to_vec(value)?;
    let mut bytes = Vec::with_capacity(json.len() + 12);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
    bytes.extend_from_slice(&json);
    write_atomic(vfs, dir, name, &bytes).map_err(BrokerError::metadata_io(dir.join(name)))
}

pub fn read<T: DeserializeOwned>(vfs: &dyn Vfs, path: &Path, magic: &[u8; 8]) -> Result<Loaded<T>> {
    let bytes =
        read_small_file(vfs, path, METAFILE_MAX_BYTES).map_err(BrokerError::metadata_io(path))?;
    let Some(bytes) = bytes else {
        return Ok(Loaded::Missing);
    };
    if bytes.len() < 12 || &bytes[..8] != magic {
        return Ok(Loaded::Corrupt);
    }
    let crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if crc32fast::hash(&bytes[12..]) != crc {
        return Ok(Loaded::Corrupt);
    }
    Ok(match serde_json::from_slice(&bytes[12..]) {
        Ok(value) => Loaded::Valid(value),
        Err(_) => Loaded::Corrupt,
    })
}
