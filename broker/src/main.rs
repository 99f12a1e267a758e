//! `ferry-broker`: parse configuration, set up logging, budget open files,
//! run the server.
//!
//! Open files: the soft `RLIMIT_NOFILE` is raised to the hard limit (or set
//! to `--max-open-files`), and split between connections, the broker's own
//! files and partition logs (see `ferry_storage::fd_budget`): topic
//! creation is refused before partitions would take descriptors that
//! accepting connections, or reopening the data dir, needs.

use ferry_broker::config::{Config, ConfigError, LogFormat};
use ferry_storage::fd_budget::{self, FDS_PER_PARTITION, STORAGE_HEADROOM_FDS};
use tracing_subscriber::EnvFilter;

/// Internal state logs the broker keeps open: group offsets, queue acks.
const INTERNAL_LOGS: u64 = 2;
/// Descriptors of the broker itself: standard streams, the client and
/// metrics listeners, the runtime's epoll and wakers, the data-dir lock, a
/// metadata file being replaced, and spare.
const BROKER_OWN_FDS: u64 = 64;
/// Connections never take more than this share of what the open-files
/// limit leaves after the broker's own needs (the rest is for partitions).
const CONNECTIONS_SHARE_DIVISOR: u64 = 2;
/// Below this many descriptors for connections and partitions together,
/// the broker cannot do useful work: it refuses to start.
const WORKING_FDS_MIN: u64 = 64;

fn main() {
    let mut config = match Config::load() {
        Ok(config) => config,
        // --help, --version and usage errors, printed the way clap prints them.
        Err(ConfigError::Args(error)) => error.exit(),
        Err(message) => {
            eprintln!("ferry-broker: {message}");
            std::process::exit(2);
        }
    };
    init_logging(config.log_format);
    if let Err(message) = budget_open_files(&mut config) {
        fail(2, &message);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => fail(1, &format!("cannot start the runtime: {error}")),
    };
    if let Err(message) = runtime.block_on(ferry_broker::run(config)) {
        fail(1, &message.to_string());
    }
}

/// Logs go to stderr (stdout stays free for anything a supervisor pipes),
/// coloured only when stderr is a terminal and `NO_COLOR` is unset.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(ansi).init(),
    }
}

/// Reports a fatal error once, through the log (which is on stderr), or
/// straight to stderr when `FERRY_LOG` filters errors out; exits with `code`.
fn fail(code: i32, message: &str) -> ! {
    if tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!("ferry-broker: {message}");
    } else {
        eprintln!("ferry-broker: {message}");
    }
    std::process::exit(code);
}

/// Sets the open-files limit, fits `max_connections` under it, and reserves
/// what connections and the broker's own files need, leaving the rest to
/// partition logs.
fn budget_open_files(config: &mut Config) -> Result<(), String> {
    let limit = fd_budget::set_open_files_limit(config.max_open_files)
        .map_err(|error| format!("cannot set the open-files limit: {error}"))?;
    let own = BROKER_OWN_FDS + STORAGE_HEADROOM_FDS + INTERNAL_LOGS * FDS_PER_PARTITION;
    let working = limit.soft.saturating_sub(own);
    if working < WORKING_FDS_MIN {
        return Err(format!(
            "the open-files limit is {} (hard {}); the broker needs at least {}: raise ulimit -n or --max-open-files",
            limit.soft,
            limit.hard,
            own + WORKING_FDS_MIN
        ));
    }
    let connections_cap = working / CONNECTIONS_SHARE_DIVISOR;
    if config.max_connections as u64 > connections_cap {
        tracing::warn!(
            max_connections = config.max_connections,
            lowered_to = connections_cap,
            open_files_limit = limit.soft,
            "max_connections does not fit the open-files limit beside partitions: lowered (raise ulimit -n or --max-open-files)"
        );
        config.max_connections = connections_cap as usize;
    }
    let reserved = own + config.max_connections as u64;
    fd_budget::reserve_fds(reserved);
    let partitions = fd_budget::budget().map_or(0, |budget| budget.partitions());
    tracing::info!(
        open_files_limit = limit.soft,
        hard_limit = limit.hard,
        max_connections = config.max_connections,
        reserved_fds = reserved,
        partitions_budget = partitions,
        "open files budgeted"
    );
    Ok(())
}
