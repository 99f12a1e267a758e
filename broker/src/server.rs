//! The accept loop: caps connections at `max_connections`, and per source
//! IP at `max_connections_per_ip` when set (past either a client gets a
//! `TooManyConnections` error frame and is closed), spawns a task per
//! connection, and on shutdown stops accepting and waits for the
//! connections to finish their in-flight requests. With TLS configured,
//! each connection first completes its TLS handshake (`tls.rs`: at most
//! `TLS_HANDSHAKES_LIMIT` at once, past it a connection is closed), and is
//! served as the user its client certificate names, if any; SIGHUP reloads
//! the certificates (`tls::reload_on_hangup`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::frame::FrameHeader;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::cmd;
use crate::error::BrokerError;
use crate::metrics::Metrics;
use crate::tls::{Tls, TLS_HANDSHAKES_LIMIT};

/// Open connections per source IP (only tracked when a limit is set).
#[derive(Default)]
struct PerIp {
    open: parking_lot::Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its IP's count, given back on drop.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A place for one more connection from `ip`, unless it has `limit`.
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Answers a refused connection with `error` and closes it (within 1 s).
fn refuse(tracker: &TaskTracker, mut stream: TcpStream, error: BrokerError) {
    tracker.spawn(async move {
        let frame = cmd::connection_error(FrameHeader::request(0, 0, 0), &error);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = stream.write_all(&frame.head).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}

/// Serves one accepted connection: over TLS when `tls` is set (after the
/// handshake, whose `slot` it holds), else plaintext.
async fn serve_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<(Arc<Tls>, OwnedSemaphorePermit)>,
) {
    let Some((tls, slot)) = tls else {
        return crate::connection::serve(broker, stream, peer).await;
    };
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
    }
    let Some(stream) = tls.accept_logged(slot, stream, peer).await else {
        return;
    };
    let user = crate::tls::certificate_user(stream.get_ref().1);
    let (reader, writer) = tokio::io::split(stream);
    crate::connection::serve_halves(broker, reader, writer, peer, user).await;
}

/// A place for one more TLS handshake, or `None` (counted and logged) when
/// [`TLS_HANDSHAKES_LIMIT`] run: the connection is then closed.
fn handshake_slot(
    broker: &Broker,
    tls: &Arc<Tls>,
    peer: SocketAddr,
) -> Option<(Arc<Tls>, OwnedSemaphorePermit)> {
    let Some(handshake) = tls.handshake_slot() else {
        Metrics::add(&broker.metrics.connections_refused, 1);
        tracing::debug!(%peer, limit = TLS_HANDSHAKES_LIMIT, "closing connection: too many TLS handshakes");
        return None;
    };
    Some((tls.clone(), handshake))
}

pub async fn serve(broker: Arc<Broker>, listener: TcpListener, tls: Option<Arc<Tls>>) {
    // Before the first await: a SIGHUP from then on reloads, never kills.
    match crate::tls::reload_on_hangup(tls.clone(), broker.shutdown.clone()) {
        Ok(reloads) => drop(tokio::spawn(reloads)),
        Err(error) => {
            tracing::error!(%error, "cannot handle SIGHUP: certificates cannot be reloaded")
        }
    }
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let per_ip_limit = broker.config.max_connections_per_ip;
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = broker.shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        Metrics::add(&broker.metrics.connections_accepted, 1);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            Metrics::add(&broker.metrics.connections_refused, 1);
            tracing::warn!(%peer, max = broker.config.max_connections, "refusing connection: too many connections");
            let error = BrokerError::TooManyConnections {
                limit: broker.config.max_connections,
            };
            refuse(&tracker, stream, error);
            continue;
        };
        let ip_slot = match per_ip_limit {
            0 => None,
            limit => match per_ip.take(peer.ip(), limit) {
                Some(slot) => Some(slot),
                None => {
                    Metrics::add(&broker.metrics.connections_refused, 1);
                    tracing::warn!(%peer, limit, "refusing connection: too many from this address");
                    let error = BrokerError::TooManyConnectionsFromIp { limit };
                    refuse(&tracker, stream, error);
                    continue;
                }
            },
        };
        let tls = match &tls {
            None => None,
            Some(tls) => match handshake_slot(&broker, tls, peer) {
                Some(slot) => Some(slot),
                None => continue,
            },
        };
        let broker = broker.clone();
        tracker.spawn(async move {
            // The slots are released however the task ends (a panic included).
            let _slots = (slot, ip_slot);
            serve_connection(broker, stream, peer, tls).await;
        });
    }
    tracker.close();
    let timeout = Duration::from_millis(broker.config.shutdown_timeout_ms);
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        tracing::warn!("shutdown timeout: some connections did not finish in time");
    }
}
