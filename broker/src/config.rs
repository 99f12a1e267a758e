//! Broker configuration: command-line flags, each also an environment
//! variable `FERRY_*` and a key of an optional TOML file (`--config`).
//! Precedence: flag > environment > file > built-in default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use ferry_storage::{FsyncPolicy, LogConfig};
use serde::Deserialize;

use crate::units;

pub const STATE_SNAPSHOT_BYTES_MIN: u64 = 4096;
pub const STATE_SNAPSHOT_BYTES_LIMIT: u64 = 1024 * 1024 * 1024;
pub const HANDSHAKE_TIMEOUT_MS_MIN: u64 = 100;
pub const HANDSHAKE_TIMEOUT_MS_LIMIT: u64 = 600_000;
pub const MAX_FRAME_BYTES_MIN: u64 = 4096;
/// The shortest idle and frame-read timeouts: below this a connection
/// could not send its next request.
pub const CONNECTION_TIMEOUT_MS_MIN: u64 = 100;
pub const IDLE_TIMEOUT_MS_LIMIT: u64 = 7 * DAY_MS;
pub const FRAME_READ_TIMEOUT_MS_LIMIT: u64 = 3_600_000;
pub const SHUTDOWN_TIMEOUT_MS_LIMIT: u64 = 3_600_000;
pub const RETENTION_CHECK_MS_MIN: u64 = 100;
pub const RETENTION_CHECK_MS_LIMIT: u64 = DAY_MS;
pub const GROUP_RETENTION_MS_MIN: u64 = 100;
pub const GROUP_RETENTION_MS_LIMIT: u64 = 3650 * DAY_MS;
const DAY_MS: u64 = 86_400_000;

/// Whether clients must authenticate (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication and no authorization: every client may do
    /// everything. Allowed on loopback, elsewhere only with
    /// `--allow-insecure`.
    #[default]
    Off,
    /// Every connection authenticates (SCRAM-SHA-256, an access token, or a
    /// client certificate) before anything else, and every request is
    /// checked against the ACLs.
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Ferry message broker.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ferry-broker",
    version,
    about,
    after_help = "Sizes (*-bytes) take a number of bytes or units: 1GiB, 64MiB, 512KiB, 16MB, 2kB.\nDurations (*-ms) take a number of milliseconds or units: 500ms, 30s, 10m, 1h, 7d.\nThe same forms work in the --config file (`segment_bytes = \"1GiB\"`)."
)]
pub struct Config {
    /// TOML file with any of the settings below (keys as the flags, with `_`).
    #[arg(long, env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on: `host:port`, a host alone (port 7171), or a
    /// DNS name, resolved once at start.
    #[arg(long, env = "FERRY_LISTEN", value_parser = units::parse_listen, default_value = "127.0.0.1:7171")]
    pub listen: SocketAddr,
    /// Directory for all data (topics, metadata).
    #[arg(long, env = "FERRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Log output format.
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Address for the Prometheus metrics endpoint (`GET /metrics`); off if unset.
    #[arg(long, env = "FERRY_METRICS_LISTEN", value_parser = units::parse_address_with_port)]
    pub metrics_listen: Option<SocketAddr>,
    /// Largest frame accepted; larger declared lengths close the connection.
    #[arg(long, env = "FERRY_MAX_FRAME_BYTES", value_parser = units::parse_size_bytes_usize, default_value_t = 16 * 1024 * 1024)]
    pub max_frame_bytes: usize,
    /// Largest record batch accepted.
    #[arg(long, env = "FERRY_MAX_BATCH_BYTES", value_parser = units::parse_size_bytes_usize, default_value_t = 8 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// Connections beyond this are refused with an error.
    #[arg(long, env = "FERRY_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Open files the broker may use: its soft RLIMIT_NOFILE is set to this
    /// at start (at most the hard limit); default: the hard limit. Topic
    /// creation is refused when partitions would not fit.
    #[arg(long, env = "FERRY_MAX_OPEN_FILES")]
    pub max_open_files: Option<u64>,
    /// Requests in flight per connection before the broker stops reading it.
    #[arg(long, env = "FERRY_MAX_IN_FLIGHT_REQUESTS", default_value_t = 512)]
    pub max_in_flight_requests: usize,
    /// Connections from one source IP beyond this are refused; 0 = no limit
    /// (many clients on one host are normal).
    #[arg(long, env = "FERRY_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// Close a connection that has not completed its handshake this long
    /// after it was accepted (ms).
    #[arg(long, env = "FERRY_HANDSHAKE_TIMEOUT_MS", value_parser = units::parse_duration_ms, default_value_t = 5_000)]
    pub handshake_timeout_ms: u64,
    /// Request and response bytes in flight per connection before the broker
    /// stops reading it (backpressure).
    #[arg(long, env = "FERRY_MAX_IN_FLIGHT_BYTES", value_parser = units::parse_size_bytes_usize, default_value_t = 64 * 1024 * 1024)]
    pub max_in_flight_bytes: usize,
    /// Close a connection with nothing in flight after this long without a request.
    #[arg(long, env = "FERRY_IDLE_TIMEOUT_MS", value_parser = units::parse_duration_ms, default_value_t = 600_000)]
    pub idle_timeout_ms: u64,
    /// Close a connection that takes longer than this to send one frame.
    #[arg(long, env = "FERRY_FRAME_READ_TIMEOUT_MS", value_parser = units::parse_duration_ms, default_value_t = 30_000)]
    pub frame_read_timeout_ms: u64,
    /// Partitions of a topic created without saying.
    #[arg(long, env = "FERRY_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: u32,
    /// Segment size in bytes.
    #[arg(long, env = "FERRY_SEGMENT_BYTES", value_parser = units::parse_size_bytes, default_value_t = ferry_storage::config::DEFAULT_SEGMENT_BYTES)]
    pub segment_bytes: u64,
    /// Roll segments older than this (ms); off if unset.
    #[arg(long, env = "FERRY_SEGMENT_MS", value_parser = units::parse_duration_ms)]
    pub segment_ms: Option<u64>,
    /// Delete segments whose newest record is older than this (ms); off if unset.
    #[arg(long, env = "FERRY_RETENTION_MS", value_parser = units::parse_duration_ms)]
    pub retention_ms: Option<u64>,
    /// Keep each partition under about this many bytes; off if unset.
    #[arg(long, env = "FERRY_RETENTION_BYTES", value_parser = units::parse_size_bytes)]
    pub retention_bytes: Option<u64>,
    /// How often retention runs (ms).
    #[arg(long, env = "FERRY_RETENTION_CHECK_MS", value_parser = units::parse_duration_ms, default_value_t = 60_000)]
    pub retention_check_ms: u64,
    /// Default fsync policy: always, never, or an interval in ms.
    #[arg(long, env = "FERRY_FSYNC", value_parser = units::parse_fsync, default_value = "always")]
    pub fsync: FsyncPolicy,
    /// Threads that run fsyncs (group commit).
    #[arg(long, env = "FERRY_FSYNC_THREADS", default_value_t = 2)]
    pub fsync_threads: usize,
    /// Session timeout of group members that do not choose one (ms).
    #[arg(long, env = "FERRY_GROUP_SESSION_TIMEOUT_MS", value_parser = units::parse_duration_ms_u32, default_value_t = 10_000)]
    pub group_session_timeout_ms: u32,
    /// Groups without members are deleted, with their offsets, after this long (ms).
    #[arg(long, env = "FERRY_GROUP_RETENTION_MS", value_parser = units::parse_duration_ms, default_value_t = 7 * 24 * 3600 * 1000)]
    pub group_retention_ms: u64,
    /// An idempotent producer that has not written to a partition for this
    /// long is forgotten there (ms, at least 1000).
    #[arg(long, env = "FERRY_PRODUCER_EXPIRY_MS", value_parser = units::parse_duration_ms, default_value_t = ferry_storage::config::DEFAULT_PRODUCER_EXPIRY_MS)]
    pub producer_expiry_ms: u64,
    /// Internal state logs (group offsets, queue acks) are snapshotted once
    /// this large, by housekeeping and at shutdown.
    #[arg(long, env = "FERRY_STATE_SNAPSHOT_BYTES", value_parser = units::parse_size_bytes, default_value_t = 64 * 1024 * 1024)]
    pub state_snapshot_bytes: u64,
    /// How long a graceful shutdown waits for in-flight requests (ms).
    #[arg(long, env = "FERRY_SHUTDOWN_TIMEOUT_MS", value_parser = units::parse_duration_ms, default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,
    /// PEM certificate chain the broker presents. With `--tls-key`, every
    /// client connection must speak TLS; without both, plaintext.
    #[arg(long, env = "FERRY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "FERRY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate they signed
    /// (mutual TLS). Needs `--tls-cert` and `--tls-key`.
    #[arg(long, env = "FERRY_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Listen on an address other than loopback without TLS and client
    /// authentication. Refused without this flag; logged at every start
    /// with it.
    #[arg(long, env = "FERRY_ALLOW_INSECURE", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_insecure: bool,
    /// `required`: every connection authenticates and every request is
    /// checked against the ACLs; `off`: anyone who connects may do anything.
    #[arg(long, env = "FERRY_AUTH", value_enum, default_value = "off")]
    pub auth: AuthMode,
    /// At first start (no users yet), create the super user `admin` with
    /// the password in this file. Ignored, with a warning, once users exist.
    #[arg(long, env = "FERRY_BOOTSTRAP_ADMIN_PASSWORD_FILE")]
    pub bootstrap_admin_password_file: Option<PathBuf>,
    /// Principals that bypass the ACLs, e.g. `User:ops,User:backup`
    /// (never a wildcard or the anonymous principal).
    #[arg(long, env = "FERRY_SUPER_USERS", value_delimiter = ',')]
    pub super_users: Vec<String>,
}

/// The TOML file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default, deserialize_with = "units::listen")]
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    #[serde(default, deserialize_with = "units::address_with_port")]
    metrics_listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "units::size_bytes")]
    max_frame_bytes: Option<usize>,
    #[serde(default, deserialize_with = "units::size_bytes")]
    max_batch_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_open_files: Option<u64>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    handshake_timeout_ms: Option<u64>,
    max_in_flight_requests: Option<usize>,
    #[serde(default, deserialize_with = "units::size_bytes")]
    max_in_flight_bytes: Option<usize>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    idle_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    frame_read_timeout_ms: Option<u64>,
    default_partitions: Option<u32>,
    #[serde(default, deserialize_with = "units::size_bytes")]
    segment_bytes: Option<u64>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    segment_ms: Option<u64>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    retention_ms: Option<u64>,
    #[serde(default, deserialize_with = "units::size_bytes")]
    retention_bytes: Option<u64>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    retention_check_ms: Option<u64>,
    #[serde(default, deserialize_with = "units::fsync")]
    fsync: Option<FsyncPolicy>,
    fsync_threads: Option<usize>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    shutdown_timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "units::size_bytes")]
    state_snapshot_bytes: Option<u64>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    group_session_timeout_ms: Option<u32>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    group_retention_ms: Option<u64>,
    #[serde(default, deserialize_with = "units::duration_ms")]
    producer_expiry_ms: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    allow_insecure: Option<bool>,
    auth: Option<AuthMode>,
    bootstrap_admin_password_file: Option<PathBuf>,
    super_users: Option<Vec<String>>,
}

/// Why a configuration was refused (flags, environment or `--config` file).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{key} must be in [{min}, {max}], not {value}")]
    OutOfRange {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("{key} must be at least {min}, not {value} ({why})")]
    TooSmall {
        key: &'static str,
        value: u64,
        min: u64,
        why: &'static str,
    },
    #[error("tls_cert and tls_key go together: {missing} is missing")]
    TlsIncomplete { missing: &'static str },
    #[error("tls_client_ca needs tls_cert and tls_key (mutual TLS is TLS)")]
    TlsClientCaWithoutTls,
    #[error("refusing to listen on {listen} without TLS and client authentication: anyone who can reach it could read, write and delete everything. Listen on 127.0.0.1, add --tls-cert/--tls-key with --tls-client-ca or --auth required, or pass --allow-insecure if the network itself is trusted")]
    Insecure { listen: SocketAddr },
    #[error("super user {0:?} must be User:<name> (1..=128 of A-Z a-z 0-9 . _ @ -); wildcards and User:ANONYMOUS are refused")]
    SuperUser(String),
    #[error("invalid topic defaults: {0}")]
    TopicDefaults(#[from] ferry_storage::StorageError),
}

/// `value` within `[min, max]`, or the error naming `key`.
fn check_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    match (min..=max).contains(&value) {
        true => Ok(()),
        false => Err(ConfigError::OutOfRange {
            key,
            value,
            min,
            max,
        }),
    }
}

impl Config {
    /// Parses flags and environment, then fills what they left at default
    /// from the `--config` file.
    pub fn load() -> Result<Config, ConfigError> {
        let matches = Config::command().try_get_matches()?;
        Config::from_matches(&matches)
    }

    pub fn from_matches(matches: &ArgMatches) -> Result<Config, ConfigError> {
        let mut config = Config::from_arg_matches(matches)?;
        if let Some(path) = config.config.clone() {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let file: FileConfig =
                toml::from_str(&text).map_err(|source| ConfigError::Toml { path, source })?;
            config.merge(matches, file);
        }
        config.validate()?;
        Ok(config)
    }

    fn merge(&mut self, matches: &ArgMatches, file: FileConfig) {
        let defaulted = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        };
        macro_rules! take {
            ($($field:ident),*) => {$(
                if defaulted(stringify!($field)) {
                    if let Some(value) = file.$field { self.$field = value; }
                }
            )*};
        }
        macro_rules! take_optional {
            ($($field:ident),*) => {$(
                if defaulted(stringify!($field)) && file.$field.is_some() {
                    self.$field = file.$field;
                }
            )*};
        }
        take!(
            listen,
            data_dir,
            log_format,
            max_frame_bytes,
            max_batch_bytes,
            max_connections
        );
        take!(max_connections_per_ip, handshake_timeout_ms);
        take!(
            max_in_flight_requests,
            max_in_flight_bytes,
            idle_timeout_ms,
            frame_read_timeout_ms
        );
        take!(
            default_partitions,
            segment_bytes,
            retention_check_ms,
            fsync_threads,
            shutdown_timeout_ms,
            state_snapshot_bytes
        );
        take_optional!(metrics_listen, segment_ms, retention_ms, retention_bytes);
        take_optional!(max_open_files);
        take_optional!(tls_cert, tls_key, tls_client_ca);
        take!(allow_insecure, auth, super_users);
        take_optional!(bootstrap_admin_password_file);
        take!(
            group_session_timeout_ms,
            group_retention_ms,
            producer_expiry_ms
        );
        take!(fsync);
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        use ferry_protocol::frame::MAX_FRAME_BYTES_LIMIT;
        let max_frame_bytes = self.max_frame_bytes as u64;
        check_range(
            "max_frame_bytes",
            max_frame_bytes,
            MAX_FRAME_BYTES_MIN,
            MAX_FRAME_BYTES_LIMIT as u64,
        )?;
        // Room for the frame header and the request around a batch.
        let batch_max = max_frame_bytes - 1024;
        check_range("max_batch_bytes", self.max_batch_bytes as u64, 1, batch_max)?;
        check_range("max_connections", self.max_connections as u64, 1, u64::MAX)?;
        let requests = self.max_in_flight_requests as u64;
        check_range("max_in_flight_requests", requests, 1, u64::from(u32::MAX))?;
        if self.max_in_flight_bytes < self.max_frame_bytes {
            return Err(ConfigError::TooSmall {
                key: "max_in_flight_bytes",
                value: self.max_in_flight_bytes as u64,
                min: max_frame_bytes,
                why: "a whole frame must fit",
            });
        }
        self.validate_timeouts()?;
        let partitions = u64::from(crate::topics::MAX_PARTITIONS_PER_TOPIC);
        check_range(
            "default_partitions",
            u64::from(self.default_partitions),
            1,
            partitions,
        )?;
        check_range(
            "state_snapshot_bytes",
            self.state_snapshot_bytes,
            STATE_SNAPSHOT_BYTES_MIN,
            STATE_SNAPSHOT_BYTES_LIMIT,
        )?;
        self.validate_tls()?;
        for principal in &self.super_users {
            if crate::security::Principal::parse_user(principal).is_none() {
                return Err(ConfigError::SuperUser(principal.clone()));
            }
        }
        if self.insecure() && !self.allow_insecure {
            return Err(ConfigError::Insecure {
                listen: self.listen,
            });
        }
        self.log_defaults().validate_for_topics()?;
        Ok(())
    }

    /// Every timeout and period within a range where the broker still
    /// works: none is zero, none is so long it could not be meant.
    fn validate_timeouts(&self) -> Result<(), ConfigError> {
        use crate::groups::coordinator::{SESSION_TIMEOUT_MAX_MS, SESSION_TIMEOUT_MIN_MS};
        let checks = [
            (
                "handshake_timeout_ms",
                self.handshake_timeout_ms,
                HANDSHAKE_TIMEOUT_MS_MIN,
                HANDSHAKE_TIMEOUT_MS_LIMIT,
            ),
            (
                "idle_timeout_ms",
                self.idle_timeout_ms,
                CONNECTION_TIMEOUT_MS_MIN,
                IDLE_TIMEOUT_MS_LIMIT,
            ),
            (
                "frame_read_timeout_ms",
                self.frame_read_timeout_ms,
                CONNECTION_TIMEOUT_MS_MIN,
                FRAME_READ_TIMEOUT_MS_LIMIT,
            ),
            (
                "shutdown_timeout_ms",
                self.shutdown_timeout_ms,
                0,
                SHUTDOWN_TIMEOUT_MS_LIMIT,
            ),
            (
                "retention_check_ms",
                self.retention_check_ms,
                RETENTION_CHECK_MS_MIN,
                RETENTION_CHECK_MS_LIMIT,
            ),
            (
                "group_retention_ms",
                self.group_retention_ms,
                GROUP_RETENTION_MS_MIN,
                GROUP_RETENTION_MS_LIMIT,
            ),
            (
                "group_session_timeout_ms",
                u64::from(self.group_session_timeout_ms),
                u64::from(SESSION_TIMEOUT_MIN_MS),
                u64::from(SESSION_TIMEOUT_MAX_MS),
            ),
            (
                "fsync_threads",
                self.fsync_threads as u64,
                1,
                ferry_storage::FLUSHER_THREADS_LIMIT as u64,
            ),
        ];
        for (key, value, min, max) in checks {
            check_range(key, value, min, max)?;
        }
        Ok(())
    }

    /// Whether clients off this host could connect without TLS or without
    /// authentication: a non-loopback address without TLS, or with TLS but
    /// neither client certificates nor `--auth required`.
    pub fn insecure(&self) -> bool {
        let tls = self.tls_cert.is_some();
        let authenticated = self.tls_client_ca.is_some() || self.auth == AuthMode::Required;
        !(self.listen.ip().is_loopback() || tls && authenticated)
    }

    /// Certificate and key both or neither; a client CA only with both.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(ConfigError::TlsIncomplete { missing: "tls_key" }),
            (None, Some(_)) => Err(ConfigError::TlsIncomplete {
                missing: "tls_cert",
            }),
            (None, None) if self.tls_client_ca.is_some() => Err(ConfigError::TlsClientCaWithoutTls),
            _ => Ok(()),
        }
    }

    /// Storage defaults for new topics.
    pub fn log_defaults(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            fsync: self.fsync,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            max_batch_bytes: self.max_batch_bytes,
            producer_expiry_ms: self.producer_expiry_ms,
            ..LogConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let argv = std::iter::once("ferry-broker").chain(args.iter().copied());
        let matches = Config::command().try_get_matches_from(argv)?;
        Config::from_matches(&matches)
    }

    #[test]
    fn only_loopback_or_mutual_tls_listens_without_allow_insecure() {
        for listen in ["127.0.0.1:7171", "127.0.0.2:7171", "[::1]:7171"] {
            assert!(parse(&["--listen", listen]).is_ok(), "{listen}");
        }
        for listen in ["0.0.0.0:7171", "192.0.2.1:7171", "[::]:7171"] {
            let refused = parse(&["--listen", listen]);
            assert!(
                matches!(refused, Err(ConfigError::Insecure { .. })),
                "{listen}"
            );
            assert!(
                parse(&["--listen", listen, "--allow-insecure"]).is_ok(),
                "{listen}"
            );
        }
        // TLS alone does not say who the client is; mutual TLS does.
        let tls = [
            "--listen",
            "0.0.0.0:7171",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ];
        assert!(matches!(parse(&tls), Err(ConfigError::Insecure { .. })));
        let mutual = [&tls[..], &["--tls-client-ca", "ca.pem"]].concat();
        assert!(parse(&mutual).is_ok());
        let scram = [&tls[..], &["--auth", "required"]].concat();
        assert!(parse(&scram).is_ok());
        // Authentication without TLS would send tokens in the clear.
        let plain = ["--listen", "0.0.0.0:7171", "--auth", "required"];
        assert!(matches!(parse(&plain), Err(ConfigError::Insecure { .. })));
    }

    #[test]
    fn absurd_timeouts_and_counts_are_refused_by_name() {
        for (flag, value) in [
            ("--idle-timeout-ms", "0"),
            ("--frame-read-timeout-ms", "0"),
            ("--retention-check-ms", "0"),
            ("--group-session-timeout-ms", "0"),
            ("--group-session-timeout-ms", "1h"),
            ("--fsync-threads", "0"),
            ("--fsync-threads", "1000"),
            ("--shutdown-timeout-ms", "30d"),
            ("--max-frame-bytes", "1024"),
        ] {
            let key = flag.trim_start_matches("--").replace('-', "_");
            match parse(&[flag, value]) {
                Err(ConfigError::OutOfRange { key: named, .. }) => assert_eq!(named, key),
                other => panic!("{flag} {value}: {other:?}"),
            }
        }
        assert!(parse(&["--idle-timeout-ms", "10m", "--fsync", "1s"]).is_ok());
    }

    #[test]
    fn super_users_are_named_users_only() {
        assert!(parse(&["--super-users", "User:ops,User:backup"]).is_ok());
        for refused in ["User:*", "User:ANONYMOUS", "ops", "User:", "Group:x"] {
            let result = parse(&["--super-users", refused]);
            assert!(
                matches!(result, Err(ConfigError::SuperUser(_))),
                "{refused}"
            );
        }
    }
}
