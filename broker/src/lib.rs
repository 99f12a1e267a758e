//! The Ferry broker: a tokio TCP server over the storage engine.
//!
//! Request path, top to bottom: `server` accepts, `connection` frames and
//! budgets, `cmd` dispatches to one handler per API, handlers use `topics`
//! (the registry of partition logs). `broker` holds the shared state,
//! `config` the settings, `metrics` the counters.

pub mod broker;
pub mod cmd;
pub mod config;
pub mod connection;
pub mod data_format;
pub mod domain;
pub mod error;
pub mod groups;
pub mod lock;
pub mod metafile;
pub mod metrics;
pub mod producer_ids;
pub mod queues;
pub mod security;
pub mod server;
pub mod state_metrics;
pub mod statelog;
pub mod tls;
pub mod topics;
pub mod units;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use broker::Broker;
pub use config::Config;
pub use error::BrokerError;

/// The broker once it has opened its data dir; empty while it recovers.
type Opened = Arc<std::sync::OnceLock<Arc<Broker>>>;

/// Binds `--metrics-listen` and serves `/metrics`, `/health` and `/ready`
/// from before recovery until the broker has stopped: `/health` answers
/// throughout, `/ready` only while recovered and serving, `/metrics` once
/// the data dir is open. Returns the bound address and the token that ends it.
async fn start_metrics(
    opened: &Opened,
    addr: std::net::SocketAddr,
    readiness: metrics::Readiness,
) -> Result<(std::net::SocketAddr, tokio_util::sync::CancellationToken), BrokerError> {
    let cannot_listen = |source| BrokerError::Listen {
        what: "metrics",
        addr,
        source,
    };
    let listener = metrics::bind(addr).await.map_err(cannot_listen)?;
    let local = listener.local_addr().map_err(cannot_listen)?;
    let scraped = opened.clone();
    let render = move || {
        let broker = scraped.get()?;
        let mut text = broker.metrics.render(broker.topics.fsyncs());
        metrics::render_quotas(&mut text, &broker.security.quotas.metrics());
        state_metrics::render(&mut text, broker);
        Some(text)
    };
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(metrics::serve(render, readiness, listener, stop.clone()));
    Ok((local, stop))
}

/// Runs the broker until SIGINT/SIGTERM, then shuts down gracefully: stop
/// accepting, finish in-flight requests, fsync and close every log (writing
/// the clean-shutdown markers).
pub async fn run(config: Config) -> Result<(), BrokerError> {
    let listen = config.listen;
    let tls = tls::Tls::from_config(&config)?;
    let readiness = metrics::Readiness::default();
    let opened = Opened::default();
    let metrics = match config.metrics_listen {
        Some(addr) => Some(start_metrics(&opened, addr, readiness.clone()).await?),
        None => None,
    };
    // The endpoint stops when `run` returns, whichever way it returns.
    let _stop_metrics = metrics.as_ref().map(|(_, stop)| stop.clone().drop_guard());
    let broker = tokio::task::spawn_blocking(move || Broker::open(config)).await??;
    let _ = opened.set(broker.clone());
    let cannot_listen = |what| {
        move |source| BrokerError::Listen {
            what,
            addr: listen,
            source,
        }
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(cannot_listen("clients"))?;
    let local = listener.local_addr().map_err(cannot_listen("clients"))?;
    if broker.config.insecure() {
        tracing::warn!(listen = %local, "--allow-insecure: clients off this host connect without TLS and authentication, and may read, write and delete everything");
    }
    if broker.config.auth == config::AuthMode::Off && !broker.config.super_users.is_empty() {
        tracing::warn!(
            "--super-users has no effect with --auth off: every client may do everything"
        );
    }
    let metrics_listen = metrics.as_ref().map(|(addr, _)| *addr);
    log_ready(&broker.config, local, metrics_listen, tls.is_some());
    readiness.set(true);
    tokio::spawn(retention_loop(broker.clone()));
    tokio::spawn(group_sweeper(broker.clone()));
    for (topic, name) in broker.queues.list() {
        if let Ok(queue) = broker.queues.get(&topic, &name) {
            tokio::spawn(queues::drive(broker.queue_handles(), queue));
        }
    }
    tokio::spawn(wait_for_signal(broker.clone(), readiness));
    server::serve(broker.clone(), listener, tls.map(Arc::new)).await;
    tracing::info!("closing partition logs");
    let closing = broker.clone();
    tokio::task::spawn_blocking(move || {
        closing.topics.close_all();
        // A snapshot now makes the next start replay less.
        compact_state(&closing);
        if let Err(error) = closing.offsets.close() {
            tracing::error!(%error, "closing the group offset log failed");
        }
        if let Err(error) = closing.queues.close() {
            tracing::error!(%error, "closing the queue ack log failed");
        }
    })
    .await?;
    tracing::info!("ferry broker stopped cleanly");
    Ok(())
}

/// The one start-up line an operator reads: what runs, where, on which
/// data, and how durable a default topic is.
fn log_ready(
    config: &Config,
    listen: std::net::SocketAddr,
    metrics_listen: Option<std::net::SocketAddr>,
    tls: bool,
) {
    let metrics = metrics_listen.map_or_else(|| "off".to_owned(), |addr| addr.to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %listen,
        metrics_listen = %metrics,
        data_dir = %config.data_dir.display(),
        fsync = %config.fsync,
        fsync_threads = config.fsync_threads,
        segment_bytes = config.segment_bytes,
        tls,
        auth = ?config.auth,
        "ferry broker ready"
    );
}

/// At SIGTERM or SIGINT: not ready any more (before anything stops), then
/// shut down.
async fn wait_for_signal(broker: Arc<Broker>, readiness: metrics::Readiness) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    readiness.set(false);
    broker.shutdown.cancel();
}

/// How often member sessions are checked.
const SESSION_CHECK_MS: u64 = 50;
/// How often (at most) empty groups expire and the offset log is compacted.
const GROUP_HOUSEKEEPING_MS: u64 = 30_000;

async fn group_sweeper(broker: Arc<Broker>) {
    let mut last_housekeeping = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(SESSION_CHECK_MS)) => {}
            _ = broker.shutdown.cancelled() => return,
        }
        broker
            .groups
            .expire_sessions(&broker.topics.partition_counts());
        let period =
            (broker.config.group_retention_ms / 4).clamp(SESSION_CHECK_MS, GROUP_HOUSEKEEPING_MS);
        if last_housekeeping.elapsed() >= Duration::from_millis(period) {
            last_housekeeping = tokio::time::Instant::now();
            let worker = broker.clone();
            let _ = tokio::task::spawn_blocking(move || group_housekeeping(&worker)).await;
        }
    }
}

fn group_housekeeping(broker: &Broker) {
    for group in broker.groups.expired_empty_groups(&broker.offsets.groups()) {
        tracing::info!(group = %group, "deleting empty group after its retention");
        if let Err(error) = broker.offsets.delete_group(&group) {
            tracing::warn!(group = %group, %error, "could not delete expired group offsets");
        }
    }
    compact_state(broker);
}

/// Snapshots the internal state logs that have grown past the threshold.
fn compact_state(broker: &Broker) {
    if let Err(error) = broker.offsets.maybe_compact() {
        tracing::warn!(%error, "group offset compaction failed");
    }
    if let Err(error) = broker.queues.maybe_compact() {
        tracing::warn!(%error, "queue ack compaction failed");
    }
}

async fn retention_loop(broker: Arc<Broker>) {
    let period = Duration::from_millis(broker.config.retention_check_ms.max(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = broker.shutdown.cancelled() => return,
        }
        let worker = broker.clone();
        let _ = tokio::task::spawn_blocking(move || worker.topics.apply_retention()).await;
    }
}
