//! The accept loop: caps connections at `max_connections` (past it a client
//! gets a `TooManyConnections` error frame and is closed), spawns a task per
//! connection, and on shutdown stops accepting and waits for the connections
//! to finish their in-flight requests.

use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::frame::FrameHeader;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::cmd;
use crate::error::BrokerError;
use crate::metrics::Metrics;

pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = broker.shutdown.cancelled() => break,
        };
        let (mut stream, peer) = match accepted {
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
            tracker.spawn(async move {
                let frame = cmd::connection_error(FrameHeader::request(0, 0, 0), &error);
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(&frame.head).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let broker = broker.clone();
        tracker.spawn(async move {
            // The slot is released however the task ends (a panic included).
            let _slot = slot;
            crate::connection::serve(broker, stream, peer).await;
        });
    }
    tracker.close();
    let timeout = Duration::from_millis(broker.config.shutdown_timeout_ms);
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        tracing::warn!("shutdown timeout: some connections did not finish in time");
    }
}
