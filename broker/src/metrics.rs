//! Counters users can scrape: kept as atomics on the request path (request
//! counts and latency histograms by API, errors by code, bytes, records)
//! and rendered in the Prometheus text format at `GET /metrics` on
//! `--metrics-listen` (a deliberately tiny HTTP/1.0 responder). Gauges of
//! the broker's state (partitions, groups, queues) are in `state_metrics`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::api::{ApiKey, API_COUNT};
use ferry_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Longest HTTP request head the metrics endpoint reads.
const METRICS_REQUEST_MAX_BYTES: usize = 8192;
/// First and longest wait after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Scrapes answered at once; a connection past them is closed at once.
pub const METRICS_CONNECTIONS_LIMIT: usize = 16;
/// Upper bounds of the request latency buckets (µs), from a cached fetch
/// to a long poll that waited its whole time.
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000, 30_000_000,
];
const ERROR_CODE_COUNT: usize = ErrorCode::ALL.len();
/// What a connection is doing: before its handshake, handshaken but not
/// yet authenticated (with `--auth required`), serving requests.
pub const CONNECTION_STATES: [&str; 3] = ["handshaking", "authenticating", "serving"];

/// A latency histogram: a count per bucket (not cumulative: rendering adds
/// them up), the total count and the sum.
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::default()),
            count: AtomicU64::default(),
            sum_us: AtomicU64::default(),
        }
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // Past the last bound only `+Inf` (the count) holds it.
        if let Some(bucket) = LATENCY_BUCKETS_US.iter().position(|&bound| us <= bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The series of one histogram labelled `labels` (e.g. `api="fetch"`).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            out.push_str(&format!(
                "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}\n"
            ));
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!("{name}_bucket{{{labels},le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!("{name}_sum{{{labels}}} {sum}\n"));
        out.push_str(&format!("{name}_count{{{labels}}} {count}\n"));
    }
}

pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Requests received, indexed by [`ApiKey::index`].
    pub requests: [AtomicU64; API_COUNT],
    /// Frames pushed unasked (queue deliveries), indexed by [`ApiKey::index`].
    pub pushes: [AtomicU64; API_COUNT],
    pub request_errors: AtomicU64,
    /// Open connections by [`CONNECTION_STATES`].
    pub connections_by_state: [AtomicU64; CONNECTION_STATES.len()],
    /// Errors answered, indexed like [`ErrorCode::ALL`].
    pub errors_by_code: [AtomicU64; ERROR_CODE_COUNT],
    /// Time from a request's dispatch to its answer, by API.
    pub request_latency: [Histogram; API_COUNT],
    pub produce_records: AtomicU64,
    pub produce_bytes: AtomicU64,
    pub produce_duplicate_batches: AtomicU64,
    pub fetch_bytes: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub auth_successes: AtomicU64,
    pub auth_failures: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            connections_open: AtomicU64::default(),
            connections_accepted: AtomicU64::default(),
            connections_refused: AtomicU64::default(),
            requests: std::array::from_fn(|_| AtomicU64::default()),
            pushes: std::array::from_fn(|_| AtomicU64::default()),
            request_errors: AtomicU64::default(),
            connections_by_state: std::array::from_fn(|_| AtomicU64::default()),
            errors_by_code: std::array::from_fn(|_| AtomicU64::default()),
            request_latency: std::array::from_fn(|_| Histogram::default()),
            produce_records: AtomicU64::default(),
            produce_bytes: AtomicU64::default(),
            produce_duplicate_batches: AtomicU64::default(),
            fetch_bytes: AtomicU64::default(),
            protocol_errors: AtomicU64::default(),
            auth_successes: AtomicU64::default(),
            auth_failures: AtomicU64::default(),
        }
    }
}

impl Metrics {
    pub fn count_request(&self, key: ApiKey) {
        self.requests[key.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_push(&self, key: ApiKey) {
        self.pushes[key.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    /// One error answered with `code` (counted in the total too).
    pub fn count_error(&self, code: ErrorCode) {
        self.request_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(index) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors_by_code[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request of `key` answered `elapsed` after dispatch.
    pub fn observe_latency(&self, key: ApiKey, elapsed: Duration) {
        self.request_latency[key.index()].observe(elapsed);
    }

    /// The scalar series: (name, help, type, value).
    fn scalars(&self, fsyncs: u64) -> [(&'static str, &'static str, &'static str, u64); 12] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        const COUNTER: &str = "counter";
        [
            (
                "ferry_connections_open",
                "Open client connections.",
                "gauge",
                get(&self.connections_open),
            ),
            (
                "ferry_connections_accepted_total",
                "Connections accepted.",
                COUNTER,
                get(&self.connections_accepted),
            ),
            (
                "ferry_connections_refused_total",
                "Connections refused over max_connections.",
                COUNTER,
                get(&self.connections_refused),
            ),
            (
                "ferry_request_errors_total",
                "Requests answered with an error code.",
                COUNTER,
                get(&self.request_errors),
            ),
            (
                "ferry_protocol_errors_total",
                "Connections closed for bad frames.",
                COUNTER,
                get(&self.protocol_errors),
            ),
            (
                "ferry_produce_records_total",
                "Records appended.",
                COUNTER,
                get(&self.produce_records),
            ),
            (
                "ferry_produce_bytes_total",
                "Record batch bytes appended.",
                COUNTER,
                get(&self.produce_bytes),
            ),
            (
                "ferry_produce_duplicate_batches_total",
                "Idempotent producers' retries of batches already stored (answered, not written).",
                COUNTER,
                get(&self.produce_duplicate_batches),
            ),
            (
                "ferry_fetch_bytes_total",
                "Record batch bytes served by fetch.",
                COUNTER,
                get(&self.fetch_bytes),
            ),
            (
                "ferry_auth_successes_total",
                "SASL authentications that succeeded.",
                COUNTER,
                get(&self.auth_successes),
            ),
            (
                "ferry_auth_failures_total",
                "SASL authentications that failed (refused or rate-limited).",
                COUNTER,
                get(&self.auth_failures),
            ),
            (
                "ferry_fsyncs_total",
                "Group-commit fsyncs run by partitions since start.",
                COUNTER,
                fsyncs,
            ),
        ]
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self, fsyncs: u64) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, kind, value) in self.scalars(fsyncs) {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        let requests = ApiKey::ALL.into_iter().filter(|k| !k.row().push);
        let values = requests.map(|key| (key, get(&self.requests[key.index()])));
        let help = "Requests received by API.";
        render_by_api(&mut out, "ferry_requests_total", help, values);
        let pushes = ApiKey::ALL.into_iter().filter(|k| k.row().push);
        let values = pushes.map(|key| (key, get(&self.pushes[key.index()])));
        let help = "Frames pushed to clients unasked, by API.";
        render_by_api(&mut out, "ferry_pushes_total", help, values);
        self.render_errors_and_latency(&mut out);
        out
    }

    /// Errors by code, latency by API, connections by state, the build.
    fn render_errors_and_latency(&self, out: &mut String) {
        let name = "ferry_connections";
        out.push_str(&format!(
            "# HELP {name} Open connections by state.\n# TYPE {name} gauge\n"
        ));
        for (state, count) in CONNECTION_STATES.iter().zip(&self.connections_by_state) {
            let count = count.load(Ordering::Relaxed);
            out.push_str(&format!("{name}{{state=\"{state}\"}} {count}\n"));
        }
        let name = "ferry_request_errors_by_code_total";
        out.push_str(&format!(
            "# HELP {name} Requests answered with an error, by code.\n# TYPE {name} counter\n"
        ));
        for (code, count) in ErrorCode::ALL.iter().zip(&self.errors_by_code) {
            let count = count.load(Ordering::Relaxed);
            let label = code.name().replace(' ', "_");
            out.push_str(&format!("{name}{{code=\"{label}\"}} {count}\n"));
        }
        let name = "ferry_request_duration_seconds";
        out.push_str(&format!("# HELP {name} Time from a request's dispatch to its answer (a long poll's wait included), by API.\n# TYPE {name} histogram\n"));
        for key in ApiKey::ALL.into_iter().filter(|k| !k.row().push) {
            let labels = format!("api=\"{}\"", key.name());
            self.request_latency[key.index()].render(out, name, &labels);
        }
        let name = "ferry_build_info";
        out.push_str(&format!(
            "# HELP {name} The running build (always 1).\n# TYPE {name} gauge\n"
        ));
        out.push_str(&format!(
            "{name}{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ));
    }
}

/// The quota series: per principal and kind, the limit, the throttled
/// charges and the throttle time handed out.
pub fn render_quotas(out: &mut String, quotas: &[crate::security::quota::QuotaMetric]) {
    let families: [(&str, &str, &str); 3] = [
        (
            "ferry_quota_limit_per_second",
            "Quota rate, per principal and kind.",
            "gauge",
        ),
        (
            "ferry_quota_throttled_total",
            "Requests whose cost throttled the connection.",
            "counter",
        ),
        (
            "ferry_quota_throttle_ms_total",
            "Throttle time handed out (ms).",
            "counter",
        ),
    ];
    for (index, (name, help, kind)) in families.iter().enumerate() {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for metric in quotas {
            let value = match index {
                0 => metric.limit_per_sec,
                1 => metric.throttled_total,
                _ => metric.throttle_ms_total,
            };
            let principal = metric.principal.replace(['\\', '"'], "_");
            out.push_str(&format!(
                "{name}{{principal=\"{principal}\",kind=\"{}\"}} {value}\n",
                metric.kind.name()
            ));
        }
    }
}

/// One counter family labelled by API.
fn render_by_api(
    out: &mut String,
    name: &str,
    help: &str,
    values: impl Iterator<Item = (ApiKey, u64)>,
) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
    for (key, value) in values {
        out.push_str(&format!("{name}{{api=\"{}\"}} {value}\n", key.name()));
    }
}

/// Binds the metrics endpoint: called at start, so a taken or invalid
/// address stops the broker from starting instead of going unnoticed.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics endpoint listening");
    Ok(listener)
}

/// Whether the broker is ready: recovered and serving clients (set once
/// the client listener is up, cleared when shutdown starts).
#[derive(Clone, Default)]
pub struct Readiness(Arc<std::sync::atomic::AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Serves `GET /metrics`, `GET /health` (the process answers) and
/// `GET /ready` (200 once recovered and serving, 503 before and while
/// stopping) on `listener` until shutdown; other paths get 404. `render`
/// (run on the blocking pool) produces the metrics. An accept error (fd
/// exhaustion, say) is logged and retried after a capped, doubling backoff:
/// it never ends the endpoint.
pub async fn serve<R>(
    render: R,
    readiness: Readiness,
    listener: TcpListener,
    shutdown: CancellationToken,
) where
    R: Fn() -> Option<String> + Clone + Send + Sync + 'static,
{
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let slots = Arc::new(Semaphore::new(METRICS_CONNECTIONS_LIMIT));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "metrics accept failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = ACCEPT_BACKOFF_MIN;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(
                limit = METRICS_CONNECTIONS_LIMIT,
                "too many metrics connections: closing one"
            );
            continue;
        };
        let render = render.clone();
        let ready = readiness.is_ready();
        tokio::spawn(async move {
            answer(stream, render, ready).await;
            drop(slot);
        });
    }
}

/// The path of a `GET` request head, if it is one.
fn get_path(head: &[u8]) -> Option<&[u8]> {
    let rest = head.strip_prefix(b"GET ")?;
    let end = rest.iter().position(|b| *b == b' ' || *b == b'\r')?;
    Some(&rest[..end])
}

/// Answers one request, reading at most `METRICS_REQUEST_MAX_BYTES` of
/// request head within 5 s.
async fn answer<R>(mut stream: tokio::net::TcpStream, render: R, ready: bool)
where
    R: Fn() -> Option<String> + Send + 'static,
{
    let mut head = vec![0u8; METRICS_REQUEST_MAX_BYTES];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head)).await;
    let Ok(Ok(n)) = read else { return };
    let (status, body) = match get_path(&head[..n]) {
        Some(b"/metrics") => match tokio::task::spawn_blocking(render).await {
            Ok(Some(body)) => ("200 OK", body),
            // The data dir is still being recovered.
            _ => ("503 Service Unavailable", "recovering\n".to_string()),
        },
        Some(b"/health") => ("200 OK", "ok\n".to_string()),
        Some(b"/ready") if ready => ("200 OK", "ready\n".to_string()),
        Some(b"/ready") => ("503 Service Unavailable", "not ready\n".to_string()),
        _ => (
            "404 Not Found",
            "try GET /metrics, /health or /ready\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.0 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_get_paths_are_routed() {
        assert_eq!(get_path(b"GET /ready HTTP/1.0\r\n"), Some(&b"/ready"[..]));
        assert_eq!(get_path(b"GET /metrics\r\n"), Some(&b"/metrics"[..]));
        assert_eq!(get_path(b"POST /metrics HTTP/1.0"), None);
        assert_eq!(get_path(b"GET /unterminated"), None);
    }
}
