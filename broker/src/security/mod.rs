//! Security: who a connection is and what it may do.
//!
//! - `principal.rs`: user names, principals, how a connection authenticated.
//! - `store.rs`: the durable state (users, tokens, ACLs, quotas) and its file.
//! - `acl.rs`: Kafka's ACL model and its rule (deny wins, then allow, else deny).
//! - `authz.rs`: the table of what every API needs.
//! - `quota.rs`: per-principal token buckets; `ratelimit.rs`: failed
//!   authentications per source IP.
//! - `session.rs`: one connection's identity and its SASL exchange.
//! - `admin.rs`: users, tokens, ACLs and quotas changed by the admin APIs.
//!
//! [`Security`] is the shared handle. A change is written to
//! `security.meta` before it is applied in memory, and every change bumps
//! [`Security::changes`]: connections re-check their credentials on it, so
//! a deleted user or a revoked token loses its connections at once (within
//! a second), and ACL and quota changes apply to the next request.

pub mod acl;
pub mod admin;
pub mod authz;
pub mod principal;
pub mod quota;
pub mod ratelimit;
pub mod session;
pub mod store;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ferry_protocol::scram::StoredCredentials;
use ferry_storage::vfs::Vfs;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::config::{AuthMode, Config};
use crate::error::{BrokerError, Result};
pub use acl::{Operation, ResourceType};
pub use principal::{AuthMethod, Principal, UserName};
use quota::Quotas;
use ratelimit::AuthFailures;
use store::{hex, unhex, SecurityState, Store};

/// The SASL mechanism of access tokens: one round, the token's bytes.
pub const TOKEN_MECHANISM: &str = "FERRY-TOKEN";
/// The user `--bootstrap-admin-password-file` creates.
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// Iterations of the bootstrap admin's SCRAM credentials: the count fake
/// credentials of unknown users carry too, so the two look alike.
pub const BOOTSTRAP_ITERATIONS: u32 = ferry_protocol::scram::ITERATIONS_MIN;
/// Longest password file read at bootstrap.
pub const PASSWORD_FILE_BYTES_LIMIT: u64 = 4096;

pub struct Security {
    pub mode: AuthMode,
    /// From `--super-users`, plus the bootstrapped admin.
    super_users: Vec<UserName>,
    state: RwLock<SecurityState>,
    store: Store,
    /// Serializes changes: read, write the file, then swap in memory.
    writes: Mutex<()>,
    changes: watch::Sender<u64>,
    pub quotas: Quotas,
    /// Whether any quota is set (so requests skip the buckets when none is).
    quotas_active: std::sync::atomic::AtomicBool,
    pub auth_failures: AuthFailures,
}

impl Security {
    /// Loads `security.meta` (creating it with a fresh server secret), runs
    /// the admin bootstrap, and refuses to start with authentication on and
    /// nobody able to authenticate.
    pub fn open(vfs: Arc<dyn Vfs>, data_dir: &Path, config: &Config) -> Result<Security> {
        let store = Store::new(vfs, data_dir);
        let mut state = match store.load()? {
            Some(state) => state,
            None => fresh_state(&store)?,
        };
        if let Some(path) = &config.bootstrap_admin_password_file {
            bootstrap_admin(&store, &mut state, path)?;
        }
        if config.auth == AuthMode::Required
            && state.users.is_empty()
            && config.tls_client_ca.is_none()
        {
            return Err(BrokerError::NoUsers);
        }
        let mut super_users: Vec<UserName> = config
            .super_users
            .iter()
            .filter_map(|text| Principal::parse_user(text))
            .collect();
        super_users.extend(state.bootstrap_admin.as_deref().and_then(UserName::parse));
        let quotas_active = !state.quotas.is_empty();
        let quotas = Quotas::new();
        quotas.replace_all(state.quotas.iter().map(|(p, l)| (p.clone(), *l)).collect());
        tracing::info!(
            auth = ?config.auth,
            users = state.users.len(),
            tokens = state.tokens.len(),
            acls = state.acls.len(),
            super_users = super_users.len(),
            "security state loaded"
        );
        Ok(Security {
            mode: config.auth,
            super_users,
            state: RwLock::new(state),
            store,
            writes: Mutex::new(()),
            changes: watch::Sender::new(0),
            quotas_active: std::sync::atomic::AtomicBool::new(quotas_active),
            quotas,
            auth_failures: AuthFailures::new(),
        })
    }

    /// True when requests are checked against the ACLs.
    pub fn enforcing(&self) -> bool {
        self.mode == AuthMode::Required
    }

    /// Whether any principal has a quota.
    pub fn quotas_active(&self) -> bool {
        self.quotas_active
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bumped on every change; connections re-check their credentials.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn is_super_user(&self, principal: &Principal) -> bool {
        principal
            .name()
            .is_some_and(|user| self.super_users.contains(user))
    }

    /// Whether `principal` connected from `host` may do `operation` on the
    /// named resource. With `--auth off` everything is allowed.
    pub fn authorize(
        &self,
        principal: &Principal,
        host: IpAddr,
        resource: ResourceType,
        name: &str,
        operation: Operation,
    ) -> bool {
        if !self.enforcing() || self.is_super_user(principal) {
            return true;
        }
        let text = principal.text();
        self.state
            .read()
            .acls
            .authorize(text, host, resource, name, operation)
    }

    /// The SCRAM credentials of `user`, or — for an unknown user — fake
    /// ones derived from the server secret, so both look the same.
    pub fn scram_credentials(&self, user: &str) -> StoredCredentials {
        let state = self.state.read();
        let stored = state.users.get(user).and_then(|record| {
            Some(StoredCredentials {
                salt: unhex(&record.salt_hex)?,
                iterations: record.iterations,
                stored_key: unhex(&record.stored_key_hex)?.try_into().ok()?,
                server_key: unhex(&record.server_key_hex)?.try_into().ok()?,
            })
        });
        match stored {
            Some(credentials) => credentials,
            None => {
                let secret = unhex(&state.server_secret_hex).unwrap_or_default();
                StoredCredentials::fake(user, &secret)
            }
        }
    }

    /// Whether a connection that authenticated as `principal` by `method`
    /// still may: its user exists, its token is neither revoked nor expired.
    pub fn still_valid(&self, principal: &Principal, method: &AuthMethod, now_ms: u64) -> bool {
        let state = self.state.read();
        match method {
            AuthMethod::None | AuthMethod::Certificate => true,
            AuthMethod::Scram => principal
                .name()
                .is_some_and(|user| state.users.contains_key(user.as_str())),
            AuthMethod::Token { id } => state
                .tokens
                .get(id)
                .is_some_and(|token| !admin::expired(token, now_ms)),
        }
    }

    /// Applies `change` to a copy of the state, writes it durably, then
    /// makes it current and tells the connections.
    fn change<T>(&self, change: impl FnOnce(&mut SecurityState) -> Result<T>) -> Result<T> {
        let _serial = self.writes.lock();
        let mut next = self.state.read().clone();
        let answer = change(&mut next)?;
        self.store.save(&next)?;
        let active = !next.quotas.is_empty();
        *self.state.write() = next;
        self.quotas_active
            .store(active, std::sync::atomic::Ordering::Relaxed);
        self.changes.send_modify(|generation| *generation += 1);
        Ok(answer)
    }
}

/// A new state with a random server secret, written at once so the fake
/// salts of unknown users stay the same across restarts.
fn fresh_state(store: &Store) -> Result<SecurityState> {
    let state = SecurityState {
        server_secret_hex: hex(&random_bytes::<{ store::SERVER_SECRET_BYTES }>()),
        ..SecurityState::default()
    };
    store.save(&state)?;
    Ok(state)
}

/// Creates the super user `admin` from the password file, once: with users
/// already there it is ignored, with a warning.
fn bootstrap_admin(store: &Store, state: &mut SecurityState, path: &Path) -> Result<()> {
    if !state.users.is_empty() {
        tracing::warn!(file = %path.display(), "users exist: --bootstrap-admin-password-file is ignored");
        return Ok(());
    }
    let password = read_password_file(path)?;
    let credentials = StoredCredentials::generate(password.as_bytes(), BOOTSTRAP_ITERATIONS)?;
    state.users.insert(
        BOOTSTRAP_ADMIN.to_string(),
        admin::user_record(&credentials),
    );
    state.bootstrap_admin = Some(BOOTSTRAP_ADMIN.to_string());
    store.save(state)?;
    tracing::info!(
        user = BOOTSTRAP_ADMIN,
        "bootstrap: created the admin user (a super user)"
    );
    Ok(())
}

/// The password in `path`: its first line, which must not be empty.
fn read_password_file(path: &Path) -> Result<String> {
    let io = |source| BrokerError::PasswordFileIo {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |reason| BrokerError::PasswordFileInvalid {
        path: path.to_path_buf(),
        reason,
    };
    if std::fs::metadata(path).map_err(io)?.len() > PASSWORD_FILE_BYTES_LIMIT {
        return Err(invalid("over 4096 bytes: not a password file"));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(invalid("the first line (the password) is empty"));
    }
    Ok(password)
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
