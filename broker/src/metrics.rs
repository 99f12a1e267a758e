//! Counters users can scrape: kept as atomics on the request path and
//! rendered in the Prometheus text format at `GET /metrics` on
//! `--metrics-listen` (a deliberately tiny HTTP/1.0 responder).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferry_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;

/// Longest HTTP request head the metrics endpoint reads.
const METRICS_REQUEST_MAX_BYTES: usize = 8192;

#[derive(Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub requests: [AtomicU64; 16],
    pub request_errors: AtomicU64,
    pub produce_records: AtomicU64,
    pub produce_bytes: AtomicU64,
    pub fetch_bytes: AtomicU64,
    pub protocol_errors: AtomicU64,
}

impl Metrics {
    pub fn count_request(&self, key: ApiKey) {
        if let Some(counter) = self.requests.get(key as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    pub fn render(&self, fsyncs: u64) -> String {
        let mut out = String::new();
        let mut line = |name: &str, help: &str, kind: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        line(
            "ferry_connections_open",
            "Open client connections.",
            "gauge",
            get(&self.connections_open),
        );
        line(
            "ferry_connections_accepted_total",
            "Connections accepted.",
            "counter",
            get(&self.connections_accepted),
        );
        line(
            "ferry_connections_refused_total",
            "Connections refused over max_connections.",
            "counter",
            get(&self.connections_refused),
        );
        line(
            "ferry_request_errors_total",
            "Requests answered with an error code.",
            "counter",
            get(&self.request_errors),
        );
        line(
            "ferry_protocol_errors_total",
            "Connections closed for bad frames.",
            "counter",
            get(&self.protocol_errors),
        );
        line(
            "ferry_produce_records_total",
            "Records appended.",
            "counter",
            get(&self.produce_records),
        );
        line(
            "ferry_produce_bytes_total",
            "Record batch bytes appended.",
            "counter",
            get(&self.produce_bytes),
        );
        line(
            "ferry_fetch_bytes_total",
            "Record batch bytes served by fetch.",
            "counter",
            get(&self.fetch_bytes),
        );
        line(
            "ferry_fsyncs_total",
            "Group-commit fsyncs run by open partitions.",
            "counter",
            fsyncs,
        );
        out.push_str("# HELP ferry_requests_total Requests received by API.\n# TYPE ferry_requests_total counter\n");
        for key in ApiKey::ALL {
            let value = self.requests.get(key as usize).map_or(0, get);
            out.push_str(&format!(
                "ferry_requests_total{{api=\"{}\"}} {value}\n",
                key.name()
            ));
        }
        out
    }
}

/// Serves `GET /metrics` until shutdown.
pub async fn serve(
    broker: Arc<Broker>,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics endpoint listening");
    loop {
        let (mut stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut head = vec![0u8; METRICS_REQUEST_MAX_BYTES];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut head))
                    .await;
            let Ok(Ok(n)) = read else { return };
            let ok = head[..n].starts_with(b"GET /metrics");
            let (status, body) = if ok {
                let fsyncs = tokio::task::spawn_blocking({
                    let broker = broker.clone();
                    move || broker.topics.fsyncs()
                })
                .await
                .unwrap_or(0);
                ("200 OK", broker.metrics.render(fsyncs))
            } else {
                ("404 Not Found", "try GET /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.0 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
