//! Changes made by the admin APIs: users, access tokens, ACL entries and
//! quotas. Each goes through [`Security::change`] (durable before applied).
//!
//! Access tokens look like `ferry_<id>_<secret>`: a 16-hex-digit id (to find
//! the record) and a 64-hex-digit random secret, of which only the SHA-256
//! is stored. A token is shown once, in the answer to its creation.

use ferry_protocol::scram::StoredCredentials;

use super::acl::AclEntry;
use super::quota::QuotaLimits;
use super::store::{hex, unhex, TokenRecord, UserRecord};
use super::{now_ms, random_bytes, Principal, Security, UserName};
use crate::error::{BrokerError, Result};

/// Users the broker holds.
pub const USERS_LIMIT: usize = 10_000;
/// Access tokens the broker holds (all users together).
pub const TOKENS_LIMIT: usize = 10_000;
/// Access tokens one user may hold.
pub const TOKENS_PER_USER_LIMIT: usize = 100;
/// Longest token lifetime (10 years); 0 means "never expires".
pub const TOKEN_LIFETIME_MS_LIMIT: u64 = 10 * 365 * 24 * 3600 * 1000;
/// Longest token text accepted from a client.
pub const TOKEN_BYTES_LIMIT: usize = 128;
const TOKEN_PREFIX: &str = "ferry_";
const TOKEN_ID_BYTES: usize = 8;
const TOKEN_SECRET_BYTES: usize = 32;

/// A user as `ListUsers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub iterations: u32,
    pub super_user: bool,
    pub tokens: u32,
}

/// A token just created: the only time its secret is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub token: String,
    pub id: String,
    pub expires_at_ms: Option<u64>,
}

/// A token as `ListTokens` shows it (no secret, no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    pub id: String,
    pub user: String,
    pub created_at_ms: u64,
    pub expires_at_ms: Option<u64>,
}

/// What is stored for `credentials`.
pub fn user_record(credentials: &StoredCredentials) -> UserRecord {
    UserRecord {
        salt_hex: hex(&credentials.salt),
        iterations: credentials.iterations,
        stored_key_hex: hex(&credentials.stored_key),
        server_key_hex: hex(&credentials.server_key),
    }
}

/// Whether `token` has expired at `now_ms`.
pub fn expired(token: &TokenRecord, now_ms: u64) -> bool {
    token.expires_at_ms.is_some_and(|at| at <= now_ms)
}

impl Security {
    pub fn create_user(&self, name: &UserName, credentials: &StoredCredentials) -> Result<()> {
        self.change(|state| {
            if state.users.contains_key(name.as_str()) {
                return Err(BrokerError::UserExists(name.to_string()));
            }
            if state.users.len() >= USERS_LIMIT {
                return Err(BrokerError::Full {
                    what: "users",
                    limit: USERS_LIMIT as u64,
                });
            }
            state
                .users
                .insert(name.to_string(), user_record(credentials));
            Ok(())
        })?;
        tracing::info!(user = %name, "user created");
        Ok(())
    }

    /// Deletes the user with its tokens, ACL entries and quota.
    pub fn delete_user(&self, name: &str) -> Result<()> {
        self.change(|state| {
            if state.users.remove(name).is_none() {
                return Err(BrokerError::UnknownUser(clip(name)));
            }
            state.tokens.retain(|_, token| token.user != name);
            let principal = format!("User:{name}");
            state.acls.remove_principal(&principal);
            state.quotas.remove(&principal);
            Ok(())
        })?;
        self.quotas.remove(&format!("User:{name}"));
        tracing::info!(user = %name, "user deleted");
        Ok(())
    }

    pub fn change_password(&self, name: &str, credentials: &StoredCredentials) -> Result<()> {
        self.change(|state| match state.users.get_mut(name) {
            Some(record) => {
                *record = user_record(credentials);
                Ok(())
            }
            None => Err(BrokerError::UnknownUser(clip(name))),
        })?;
        tracing::info!(user = %name, "password changed");
        Ok(())
    }

    pub fn list_users(&self) -> Vec<UserSummary> {
        let state = self.state.read();
        let now = now_ms();
        state
            .users
            .iter()
            .map(|(name, record)| UserSummary {
                name: name.clone(),
                iterations: record.iterations,
                super_user: UserName::parse(name)
                    .is_some_and(|user| self.is_super_user(&Principal::user(user))),
                tokens: state
                    .tokens
                    .values()
                    .filter(|t| t.user == *name && !expired(t, now))
                    .count() as u32,
            })
            .collect()
    }

    /// A new token for `user`, valid for `lifetime_ms` (`None`: forever).
    pub fn create_token(&self, user: &str, lifetime_ms: Option<u64>) -> Result<NewToken> {
        if let Some(lifetime) = lifetime_ms {
            if lifetime > TOKEN_LIFETIME_MS_LIMIT {
                return Err(BrokerError::OverLimit {
                    what: "token lifetime (ms)",
                    requested: lifetime,
                    limit: TOKEN_LIFETIME_MS_LIMIT,
                });
            }
        }
        let id = hex(&random_bytes::<TOKEN_ID_BYTES>());
        let secret = hex(&random_bytes::<TOKEN_SECRET_BYTES>());
        let created_at_ms = now_ms();
        let expires_at_ms = lifetime_ms.map(|lifetime| created_at_ms.saturating_add(lifetime));
        self.change(|state| {
            if !state.users.contains_key(user) {
                return Err(BrokerError::UnknownUser(clip(user)));
            }
            let owned = state.tokens.values().filter(|t| t.user == user).count();
            if owned >= TOKENS_PER_USER_LIMIT || state.tokens.len() >= TOKENS_LIMIT {
                return Err(BrokerError::Full {
                    what: "access tokens (for this user or in all)",
                    limit: TOKENS_PER_USER_LIMIT as u64,
                });
            }
            let record = TokenRecord {
                user: user.to_string(),
                secret_sha256_hex: hex(&sha256(secret.as_bytes())),
                created_at_ms,
                expires_at_ms,
            };
            state.tokens.insert(id.clone(), record);
            Ok(())
        })?;
        tracing::info!(user, token_id = %id, ?expires_at_ms, "access token created");
        Ok(NewToken {
            token: format!("{TOKEN_PREFIX}{id}_{secret}"),
            id,
            expires_at_ms,
        })
    }

    pub fn revoke_token(&self, id: &str) -> Result<()> {
        self.change(|state| match state.tokens.remove(id) {
            Some(_) => Ok(()),
            None => Err(BrokerError::UnknownToken(clip(id))),
        })?;
        tracing::info!(token_id = %id, "access token revoked");
        Ok(())
    }

    /// Tokens of `user` (every user's when `None`), expired ones included.
    pub fn list_tokens(&self, user: Option<&str>) -> Vec<TokenSummary> {
        let state = self.state.read();
        state
            .tokens
            .iter()
            .filter(|(_, token)| user.is_none_or(|u| token.user == u))
            .map(|(id, token)| TokenSummary {
                id: id.clone(),
                user: token.user.clone(),
                created_at_ms: token.created_at_ms,
                expires_at_ms: token.expires_at_ms,
            })
            .collect()
    }

    /// The user and token id `token` authenticates, if it is live.
    pub fn verify_token(&self, token: &str, now_ms: u64) -> Option<(UserName, String)> {
        use subtle::ConstantTimeEq;
        if token.len() > TOKEN_BYTES_LIMIT {
            return None;
        }
        let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
        let state = self.state.read();
        let record = state.tokens.get(id)?;
        let stored = unhex(&record.secret_sha256_hex)?;
        let presented = sha256(secret.as_bytes());
        let matches: bool = stored.ct_eq(&presented).into();
        if !matches || expired(record, now_ms) {
            return None;
        }
        Some((UserName::parse(&record.user)?, id.to_string()))
    }

    pub fn add_acl(&self, entry: AclEntry) -> Result<()> {
        entry.validate().map_err(BrokerError::InvalidAcl)?;
        let added = self.change(|state| state.acls.add(entry).map_err(BrokerError::InvalidAcl))?;
        tracing::info!(added, "ACL entry added");
        Ok(())
    }

    pub fn remove_acl(&self, entry: &AclEntry) -> Result<()> {
        self.change(|state| match state.acls.remove(entry) {
            true => Ok(()),
            false => Err(BrokerError::UnknownAcl),
        })?;
        tracing::info!("ACL entry removed");
        Ok(())
    }

    pub fn list_acls(&self) -> Vec<AclEntry> {
        self.state.read().acls.entries().to_vec()
    }

    pub fn set_quota(&self, principal: &UserName, limits: QuotaLimits) -> Result<()> {
        let key = Principal::user(principal.clone()).text().to_string();
        limits.validate().map_err(BrokerError::InvalidQuota)?;
        self.change(|state| {
            state.quotas.insert(key.clone(), limits);
            Ok(())
        })?;
        self.quotas
            .set(&key, limits)
            .map_err(BrokerError::InvalidQuota)?;
        tracing::info!(principal = %key, ?limits, "quota set");
        Ok(())
    }

    pub fn delete_quota(&self, principal: &str) -> Result<()> {
        self.change(|state| match state.quotas.remove(principal) {
            Some(_) => Ok(()),
            None => Err(BrokerError::UnknownQuota(clip(principal))),
        })?;
        self.quotas.remove(principal);
        tracing::info!(principal, "quota deleted");
        Ok(())
    }

    pub fn list_quotas(&self) -> Vec<(String, QuotaLimits)> {
        let state = self.state.read();
        state.quotas.iter().map(|(p, l)| (p.clone(), *l)).collect()
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A name from the network, cut short for an error message.
fn clip(name: &str) -> String {
    name.chars().take(256).collect()
}

impl Security {
    /// When token `id` expires (unix ms), if it does.
    pub fn token_expiry(&self, id: &str) -> Option<u64> {
        self.state.read().tokens.get(id)?.expires_at_ms
    }
}
