//! The security state that survives restarts, and its file.
//!
//! `meta/security.meta` holds users (SCRAM salt, iteration count, StoredKey
//! and ServerKey: never a password or SaltedPassword), access tokens (the
//! SHA-256 of each secret, never the secret), ACL entries, quotas, who was
//! bootstrapped as admin, and a random server secret (the seed of the fake
//! salts unknown users get). It is replaced atomically on every change
//! (`metafile.rs`: temp file, fsync, rename, fsync of the directory) before
//! the change is acknowledged or applied, so a crash leaves the old state or
//! the new one, and an acknowledged change survives `kill -9` and power
//! loss — the same promise as the topic and queue definitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_storage::vfs::Vfs;
use serde::{Deserialize, Serialize};

use super::acl::Acls;
use super::quota::QuotaLimits;
use crate::error::{BrokerError, Result};
use crate::metafile::{self, Loaded};

const SECURITY_FILE: &str = "security.meta";
const SECURITY_MAGIC: &[u8; 8] = b"FRYSEC01";
/// Bytes of the random server secret.
pub const SERVER_SECRET_BYTES: usize = 32;

/// What is stored for one SCRAM user (hex-encoded bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub salt_hex: String,
    pub iterations: u32,
    pub stored_key_hex: String,
    pub server_key_hex: String,
}

/// One access token: its owner and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user: String,
    pub secret_sha256_hex: String,
    pub created_at_ms: u64,
    /// Unix ms; `None` = never.
    pub expires_at_ms: Option<u64>,
}

/// Everything in `security.meta`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecurityState {
    pub server_secret_hex: String,
    pub users: BTreeMap<String, UserRecord>,
    /// By token id.
    pub tokens: BTreeMap<String, TokenRecord>,
    pub acls: Acls,
    /// By principal text (`User:<name>`).
    pub quotas: BTreeMap<String, QuotaLimits>,
    /// The user created by `--bootstrap-admin-password-file` (a super user).
    pub bootstrap_admin: Option<String>,
}

/// Reads and replaces `security.meta` through the storage `Vfs`.
pub struct Store {
    vfs: Arc<dyn Vfs>,
    meta_dir: PathBuf,
}

impl Store {
    pub fn new(vfs: Arc<dyn Vfs>, data_dir: &Path) -> Store {
        Store {
            vfs,
            meta_dir: data_dir.join("meta"),
        }
    }

    /// The stored state, or `None` before the first start with security.
    pub fn load(&self) -> Result<Option<SecurityState>> {
        let path = self.meta_dir.join(SECURITY_FILE);
        match metafile::read(&*self.vfs, &path, SECURITY_MAGIC)? {
            Loaded::Missing => Ok(None),
            Loaded::Valid(state) => Ok(Some(state)),
            Loaded::Corrupt => Err(BrokerError::MetadataCorrupt {
                path,
                what: "restore it from a backup; moving it aside deletes every user, token, ACL and quota",
            }),
        }
    }

    /// Replaces the file with `state`, durably.
    pub fn save(&self, state: &SecurityState) -> Result<()> {
        self.vfs
            .create_dir_all(&self.meta_dir)
            .map_err(BrokerError::metadata_io(self.meta_dir.clone()))?;
        metafile::write(
            &*self.vfs,
            &self.meta_dir,
            SECURITY_FILE,
            SECURITY_MAGIC,
            state,
        )
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The bytes of lowercase or uppercase hex, or `None`.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex("0001abff").as_deref(), Some(&bytes[..]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
