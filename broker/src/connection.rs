//! One client connection, top to bottom:
//!
//! 1. The read loop splits frames off a buffer. Before taking a frame it
//!    takes a request slot and byte budget (`max_in_flight_requests`,
//!    `max_in_flight_bytes`); without budget it stops reading the socket
//!    (TCP backpressure) until responses are written.
//! 2. The first frame must be a handshake. Each frame is dispatched in
//!    arrival order; deferred replies (durable waits, long polls) run in a
//!    `FuturesUnordered` on this task, so responses may overtake each other
//!    and carry their correlation id.
//! 3. The write task gathers queued responses and writes them with
//!    vectored writes (many frames, record tails included, per syscall).
//!    The budget of a request is returned once its response is written.
//!
//! A declared frame length over `max_frame_bytes`, a malformed frame or a
//! missing handshake gets an error response and the connection is closed;
//! an unknown API gets an error response and the connection lives on.
//! Idle connections, frames sent too slowly and clients that stop reading
//! are disconnected after their timeouts.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ferry_protocol::frame::{self, FrameHeader, OutFrame, FRAME_HEADER_BYTES, LENGTH_PREFIX_BYTES};
use ferry_protocol::ProtocolError;
use ferry_protocol::{ApiKey, Request};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::cmd::{self, Reply};
use crate::error::BrokerError;
use crate::metrics::Metrics;
use crate::security::authz;
use crate::security::quota::QuotaKind;
use crate::security::session::Session;

/// Longest the read loop dispatches frames before yielding to other tasks.
const DISPATCH_SLICE: Duration = Duration::from_millis(1);
/// Frames gathered into one vectored write.
const WRITE_BATCH_FRAMES: usize = 64;
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A response on its way out, holding the budget of its request (or, for
/// a pushed frame, its push budget and what to do once it is written).
struct Outgoing {
    frame: OutFrame,
    _budget: Option<Budget>,
    close_after: bool,
    pushed: Option<cmd::PushHold>,
    /// How long this response's cost mutes the connection (a fetch's bytes
    /// are charged once its answer is ready).
    throttle: Duration,
}

/// A request held back while its connection is muted by a quota.
struct Parked {
    header: FrameHeader,
    request: Request,
    budget: Budget,
    frame_bytes: usize,
}

struct Budget {
    _request: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// What a connection holds outside itself: its queue subscriptions and its
/// place in the open-connections gauge. Released on drop, so a connection
/// task that ends any way at all (a panicking handler included) gives back
/// its unacked deliveries and its count.
struct Held {
    broker: Arc<Broker>,
    subscriptions: Arc<parking_lot::Mutex<Vec<(String, String, u64)>>>,
}

impl Held {
    fn new(broker: &Arc<Broker>) -> Held {
        broker
            .metrics
            .connections_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Held {
            broker: broker.clone(),
            subscriptions: Arc::default(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Unacked deliveries of this connection's subscriptions go back to
        // their queues: on the blocking pool (a thousand subscriptions with
        // ten thousand deliveries each must not stall an async worker).
        let subscriptions: Vec<_> = self.subscriptions.lock().drain(..).collect();
        if !subscriptions.is_empty() {
            let broker = self.broker.clone();
            let release = move || {
                for (topic, queue, id) in subscriptions {
                    broker.queues.unsubscribe(&topic, &queue, id);
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(release)),
                Err(_) => release(),
            }
        }
        let open = &self.broker.metrics.connections_open;
        open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves one TCP client until it leaves, misbehaves or the broker stops.
pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
    }
    let (reader, writer) = stream.into_split();
    serve_halves(broker, reader, writer, peer, None).await;
}

/// Serves a client over any byte stream's two halves: a TCP socket's, or
/// an in-memory pipe's (tests drive the real request path that way).
/// `certificate_user` is the user a verified TLS client certificate names
/// (see `tls.rs`), which authenticates the connection.
pub async fn serve_halves<R, W>(
    broker: Arc<Broker>,
    reader: R,
    writer: W,
    peer: SocketAddr,
    certificate_user: Option<String>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let held = Held::new(&broker);
    let (tx, rx) = mpsc::channel(broker.config.max_in_flight_requests);
    // Pushed deliveries: each holds its bytes of `push_bytes` until written.
    let (push_tx, push_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(writer, rx, push_rx, peer, broker.clone()));
    let mut connection = Connection {
        broker: broker.clone(),
        gauge: StateGauge::new(&broker),
        reader,
        tx,
        buffer: BytesMut::with_capacity(READ_BUFFER_BYTES),
        requests: Arc::new(Semaphore::new(broker.config.max_in_flight_requests)),
        bytes: Arc::new(Semaphore::new(broker.config.max_in_flight_bytes)),
        handshaken: false,
        accepted_at: Instant::now(),
        peer,
        changes: broker.security.changes(),
        muted_until: None,
        parked: VecDeque::new(),
        context: cmd::ConnectionContext {
            push: push_tx,
            push_bytes: Arc::new(Semaphore::new(broker.config.max_in_flight_bytes)),
            max_frame_bytes: broker.config.max_frame_bytes,
            subscriptions: held.subscriptions.clone(),
            session: Session::new(peer, certificate_user),
        },
    };
    let reason = connection.run().await;
    tracing::debug!(%peer, reason, "connection closing");
    drop(connection);
    drop(held);
    let _ = writer.await;
}

/// This connection's place in `Metrics::connections_by_state`, given back
/// when it closes.
struct StateGauge {
    broker: Arc<Broker>,
    state: usize,
}

impl StateGauge {
    fn new(broker: &Arc<Broker>) -> StateGauge {
        broker.metrics.connections_by_state[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StateGauge {
            broker: broker.clone(),
            state: 0,
        }
    }

    fn set(&mut self, state: usize) {
        if state != self.state {
            let gauges = &self.broker.metrics.connections_by_state;
            gauges[self.state].fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            gauges[state].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.state = state;
        }
    }
}

impl Drop for StateGauge {
    fn drop(&mut self) {
        let gauges = &self.broker.metrics.connections_by_state;
        gauges[self.state].fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

struct Connection<R> {
    broker: Arc<Broker>,
    /// Handshaking, authenticating or serving, for the metrics.
    gauge: StateGauge,
    reader: R,
    tx: mpsc::Sender<Outgoing>,
    buffer: BytesMut,
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    handshaken: bool,
    accepted_at: Instant,
    peer: SocketAddr,
    /// Security changes: credentials are checked again on each.
    changes: tokio::sync::watch::Receiver<u64>,
    /// Requests a quota holds back are parked until then.
    muted_until: Option<Instant>,
    /// Requests held back by a quota, in arrival order (each holds its
    /// budget, so they are bounded like any request in flight).
    parked: VecDeque<Parked>,
    context: cmd::ConnectionContext,
}

enum Step {
    Dispatched,
    /// No whole frame in the buffer yet.
    NeedMore,
    /// Send this frame, then close.
    Close(OutFrame),
    Blocked(usize),
}

/// What one dispatch slice ended with.
struct Slice {
    /// Stopped for lack of budget: the bytes the next frame needs.
    blocked: Option<usize>,
    /// Stopped because the time slice ran out (more frames may be waiting).
    sliced: bool,
    /// A frame to send before closing the connection.
    close: Option<OutFrame>,
}

type Pending = FuturesUnordered<futures::future::BoxFuture<'static, Outgoing>>;

impl<R: AsyncRead + Unpin> Connection<R> {
    /// Dispatches whole frames for at most one time slice, then lets the
    /// caller hand finished responses to the writer: a burst of expensive
    /// requests (large fetches are CRC-checked inline) must not hold back
    /// every response or starve the timers.
    fn dispatch_slice(&mut self, pending: &mut Pending, last_frame_at: &mut Instant) -> Slice {
        let slice_start = Instant::now();
        let mut slice = Slice {
            blocked: None,
            sliced: false,
            close: None,
        };
        if let Some(frame) = self.release_parked(pending) {
            slice.close = Some(frame);
            return slice;
        }
        loop {
            match self.next_frame(pending) {
                Step::Dispatched => {
                    *last_frame_at = Instant::now();
                    if last_frame_at.duration_since(slice_start) >= DISPATCH_SLICE {
                        slice.sliced = true;
                        return slice;
                    }
                }
                Step::NeedMore => return slice,
                Step::Close(frame) => {
                    slice.close = Some(frame);
                    return slice;
                }
                Step::Blocked(need) => {
                    slice.blocked = Some(need);
                    return slice;
                }
            }
        }
    }

    async fn run(&mut self) -> &'static str {
        let mut pending = FuturesUnordered::new();
        let mut last_frame_at = Instant::now();
        let mut partial_since: Option<Instant> = None;
        let mut eof = false;
        loop {
            let Slice {
                blocked,
                sliced,
                close,
            } = self.dispatch_slice(&mut pending, &mut last_frame_at);
            if let Some(frame) = close {
                self.send(frame, None, true).await;
                return "protocol error";
            }
            if self.buffer.is_empty() {
                partial_since = None;
            } else if partial_since.is_none() {
                partial_since = Some(Instant::now());
            }
            if eof && pending.is_empty() && self.parked.is_empty() {
                return "client closed";
            }
            let idle = pending.is_empty() && self.parked.is_empty();
            let (deadline, why) = self.deadline(partial_since, idle, last_frame_at);
            let reading = blocked.is_none() && !eof && !sliced;
            let unmute_at = self.muted_until.unwrap_or(deadline);
            let parked = !self.parked.is_empty();
            tokio::select! {
                // More whole frames are waiting in the buffer: come back at once.
                _ = tokio::task::yield_now(), if sliced => {}
                Some(out) = pending.next(), if !pending.is_empty() => {
                    self.mute(out.throttle);
                    if self.tx.send(out).await.is_err() {
                        return "writer closed";
                    }
                }
                // The quota's mute is over: parked requests go next.
                _ = tokio::time::sleep_until(unmute_at), if parked => {}
                changed = self.changes.changed() => {
                    if changed.is_ok() && !self.still_authenticated() {
                        return "credentials revoked";
                    }
                }
                read = self.reader.read_buf(&mut self.buffer), if reading => match read {
                    Ok(0) => eof = true,
                    Ok(_) => {}
                    Err(_) => return "read error",
                },
                _ = wait_budget(&self.requests, &self.bytes, blocked.unwrap_or(0)), if blocked.is_some() => {}
                _ = tokio::time::sleep_until(deadline) => return why,
                _ = self.broker.shutdown.cancelled(), if !eof => eof = true,
            }
        }
    }

    /// When the connection is closed if nothing happens, and why: a frame
    /// that takes too long to arrive, no handshake in time, or idleness.
    fn deadline(
        &self,
        partial_since: Option<Instant>,
        nothing_pending: bool,
        last_frame_at: Instant,
    ) -> (Instant, &'static str) {
        let config = &self.broker.config;
        let idle = Duration::from_millis(config.idle_timeout_ms);
        let frame_timeout = Duration::from_millis(config.frame_read_timeout_ms);
        let (deadline, why) = match partial_since {
            Some(since) => (since + frame_timeout, "frame read timeout"),
            None if nothing_pending => (last_frame_at + idle, "idle timeout"),
            None => (Instant::now() + idle, "idle timeout"),
        };
        let (deadline, why) = match self.token_expires_at() {
            Some(expires) if expires < deadline => (expires, "token expired"),
            _ => (deadline, why),
        };
        if self.handshaken {
            return (deadline, why);
        }
        let handshake_by = self.accepted_at + Duration::from_millis(config.handshake_timeout_ms);
        match handshake_by < deadline {
            true => (handshake_by, "handshake timeout"),
            false => (deadline, why),
        }
    }

    /// Takes one frame off the buffer if it is complete and there is budget,
    /// and dispatches it.
    fn next_frame(&mut self, pending: &mut Pending) -> Step {
        let max_frame_bytes = self.broker.config.max_frame_bytes;
        let length = match frame::declared_length(&self.buffer, max_frame_bytes) {
            Ok(Some(length)) => length,
            Ok(None) => return Step::NeedMore,
            Err(error) => return Step::Close(self.refuse(error)),
        };
        if self.buffer.len() < LENGTH_PREFIX_BYTES + length {
            // Bounded by max_frame_bytes, checked above.
            self.buffer
                .reserve(LENGTH_PREFIX_BYTES + length - self.buffer.len());
            return Step::NeedMore;
        }
        let cost = (LENGTH_PREFIX_BYTES + length).min(self.broker.config.max_in_flight_bytes);
        let (Ok(request), Ok(bytes)) = (
            self.requests.clone().try_acquire_owned(),
            self.bytes.clone().try_acquire_many_owned(cost as u32),
        ) else {
            return Step::Blocked(cost);
        };
        let budget = Budget {
            _request: request,
            _bytes: bytes,
        };
        let frame = match frame::split_frame(&mut self.buffer, max_frame_bytes) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Step::NeedMore,
            Err(error) => return Step::Close(self.refuse(error)),
        };
        self.decode_and_dispatch(frame, budget, pending)
    }

    /// Decodes one whole frame (the first must be a handshake; with
    /// `--auth required`, all but the handshake and SASL need an
    /// authenticated connection) and dispatches it, or parks it while a
    /// quota mutes the connection.
    fn decode_and_dispatch(
        &mut self,
        frame: frame::Frame,
        budget: Budget,
        pending: &mut Pending,
    ) -> Step {
        let header = frame.header;
        let frame_bytes = FRAME_HEADER_BYTES + frame.body.len();
        let request = match Request::decode(&header, frame.body) {
            Ok(request) => request,
            Err((code, message)) => {
                self.broker.metrics.count_error(code);
                let out = cmd::protocol_error(header, code, message);
                if !self.handshaken {
                    return Step::Close(out);
                }
                pending.push(Box::pin(std::future::ready(Outgoing::response(
                    out, budget,
                ))));
                return Step::Dispatched;
            }
        };
        if let Some(refusal) = self.admission(header, &request) {
            return Step::Close(refusal);
        }
        let key = request.api_key();
        let muted = self.muted_until.is_some_and(|until| until > Instant::now());
        if !authz::never_throttled(key) && (muted || !self.parked.is_empty()) {
            self.parked.push_back(Parked {
                header,
                request,
                budget,
                frame_bytes,
            });
            return Step::Dispatched;
        }
        let step = self.dispatch_request(header, request, budget, frame_bytes, pending);
        // The handshake and a SASL exchange move the connection on.
        let authenticating =
            self.broker.security.enforcing() && !self.context.session.authenticated();
        self.gauge.set(if authenticating { 1 } else { 2 });
        step
    }

    /// A refusal that closes the connection: no handshake first, versions
    /// that do not overlap, or a request before authentication when it is
    /// required.
    fn admission(&mut self, header: FrameHeader, request: &Request) -> Option<OutFrame> {
        if !self.handshaken {
            if request.api_key() != ApiKey::Handshake {
                let error = BrokerError::HandshakeRequired;
                return Some(cmd::connection_error(header, &error));
            }
            if let Request::Handshake(hello) = request {
                if !cmd::versions_overlap(hello) {
                    // Nothing else can be understood: answer, then close.
                    return Some(cmd::handshake_reply(&self.broker, header, hello));
                }
            }
            self.handshaken = true;
        }
        let before_auth = matches!(
            request.api_key(),
            ApiKey::Handshake | ApiKey::SaslAuthenticate
        );
        if self.broker.security.enforcing() && !before_auth && !self.context.session.authenticated()
        {
            tracing::info!(peer = %self.peer, api = request.api_key().name(), "request before authentication: closing");
            let error = BrokerError::AuthenticationRequired;
            return Some(cmd::connection_error(header, &error));
        }
        None
    }

    /// Charges the request to its principal's quotas and dispatches it; its
    /// reply carries the throttle time, and the connection is muted for it.
    fn dispatch_request(
        &mut self,
        header: FrameHeader,
        request: Request,
        budget: Budget,
        frame_bytes: usize,
        pending: &mut Pending,
    ) -> Step {
        let key = request.api_key();
        let throttle = self.charge(key, frame_bytes);
        self.mute(throttle);
        let throttle_ms = millis(throttle);
        let fetch_principal = (key == ApiKey::Fetch && self.broker.security.quotas_active())
            .then(|| self.context.session.principal.text().to_string());
        match cmd::dispatch(&self.broker, header, request, &mut self.context) {
            Reply::Now(out) => {
                let fetched = fetch_principal
                    .map(|principal| charge_fetch(&self.broker, &principal, out.len()))
                    .unwrap_or_default();
                self.mute(fetched);
                let throttle_ms = throttle_ms.max(millis(fetched));
                let out = frame::with_throttle_time(&out, throttle_ms);
                pending.push(Box::pin(std::future::ready(Outgoing::response(
                    out, budget,
                ))));
            }
            Reply::Later(future) => {
                let broker = self.broker.clone();
                pending.push(Box::pin(async move {
                    let out = future.await;
                    let fetched = fetch_principal
                        .map(|principal| charge_fetch(&broker, &principal, out.len()))
                        .unwrap_or_default();
                    let throttle_ms = throttle_ms.max(millis(fetched));
                    let out = frame::with_throttle_time(&out, throttle_ms);
                    let mut outgoing = Outgoing::response(out, budget);
                    outgoing.throttle = fetched;
                    outgoing
                }));
            }
            Reply::Close(out) => return Step::Close(out),
            Reply::Nothing => {}
        }
        Step::Dispatched
    }

    /// Dispatches parked requests once the mute is over, in order, until one
    /// mutes the connection again; a frame to close with, if one says so.
    fn release_parked(&mut self, pending: &mut Pending) -> Option<OutFrame> {
        while self.muted_until.is_none_or(|until| until <= Instant::now()) {
            let parked = self.parked.pop_front()?;
            let Parked {
                header,
                request,
                budget,
                frame_bytes,
            } = parked;
            if let Step::Close(out) =
                self.dispatch_request(header, request, budget, frame_bytes, pending)
            {
                return Some(out);
            }
        }
        None
    }

    /// The time this request's cost mutes the connection (zero without
    /// quotas): one request, and a produce request's bytes.
    fn charge(&self, key: ApiKey, frame_bytes: usize) -> Duration {
        let security = &self.broker.security;
        if !security.quotas_active() || authz::never_throttled(key) {
            return Duration::ZERO;
        }
        let principal = self.context.session.principal.text();
        let now = std::time::Instant::now();
        let quotas = &security.quotas;
        let mut throttle = quotas.charge(principal, QuotaKind::Requests, 1, now);
        if key == ApiKey::Produce {
            let bytes = frame_bytes as u64;
            throttle = throttle.max(quotas.charge(principal, QuotaKind::ProduceBytes, bytes, now));
        }
        throttle
    }

    /// Holds back throttled requests for `throttle` from now.
    fn mute(&mut self, throttle: Duration) {
        if throttle.is_zero() {
            return;
        }
        let until = Instant::now() + throttle;
        self.muted_until = Some(self.muted_until.map_or(until, |current| current.max(until)));
    }

    /// Whether the user or token this connection authenticated with still
    /// exists and is live (checked on every security change).
    fn still_authenticated(&self) -> bool {
        let session = &self.context.session;
        let valid = self.broker.security.still_valid(
            &session.principal,
            &session.method,
            crate::security::now_ms(),
        );
        if !valid {
            tracing::info!(peer = %self.peer, principal = %session.principal, "credentials deleted or revoked: closing");
        }
        valid
    }

    /// When the token this connection authenticated with expires.
    fn token_expires_at(&self) -> Option<Instant> {
        let expires_at_ms = self.context.session.expires_at_ms?;
        let left_ms = expires_at_ms.saturating_sub(crate::security::now_ms());
        Some(Instant::now() + Duration::from_millis(left_ms))
    }

    /// The error frame for a frame that cannot be read; the correlation id
    /// is recovered when the header bytes are there.
    fn refuse(&self, error: ProtocolError) -> OutFrame {
        Metrics::add(&self.broker.metrics.protocol_errors, 1);
        tracing::info!(peer = %self.peer, %error, "refusing frame and closing connection");
        let header = FrameHeader::parse(
            self.buffer
                .get(LENGTH_PREFIX_BYTES..LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES)
                .unwrap_or(&[]),
        )
        .unwrap_or(FrameHeader::request(0, 0, 0));
        cmd::connection_error(header, &BrokerError::Frame(error))
    }

    async fn send(&self, frame: OutFrame, budget: Option<Budget>, close_after: bool) {
        let _ = self
            .tx
            .send(Outgoing {
                frame,
                _budget: budget,
                close_after,
                pushed: None,
                throttle: Duration::ZERO,
            })
            .await;
    }
}

impl Outgoing {
    /// The response to a request, holding its budget until written.
    fn response(frame: OutFrame, budget: Budget) -> Outgoing {
        Outgoing {
            frame,
            _budget: Some(budget),
            close_after: false,
            pushed: None,
            throttle: Duration::ZERO,
        }
    }
}

/// `duration` in whole ms, for `throttle_time_ms`.
fn millis(duration: Duration) -> u32 {
    duration.as_millis().min(u128::from(u32::MAX)) as u32
}

/// Charges a fetch answer's bytes to `principal`: the time to mute.
fn charge_fetch(broker: &Broker, principal: &str, bytes: usize) -> Duration {
    let now = std::time::Instant::now();
    broker
        .security
        .quotas
        .charge(principal, QuotaKind::FetchBytes, bytes as u64, now)
}

async fn wait_budget(requests: &Semaphore, bytes: &Semaphore, need: usize) {
    if let Ok(permit) = requests.acquire().await {
        drop(permit);
    }
    if let Ok(permit) = bytes.acquire_many(need as u32).await {
        drop(permit);
    }
}

/// Writes responses and pushed frames, many per vectored write, until the
/// connection ends; a client that does not take a batch within the frame
/// timeout is disconnected. Pushed frames report that they were written.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Outgoing>,
    mut pushes: mpsc::UnboundedReceiver<cmd::Pushed>,
    peer: SocketAddr,
    broker: Arc<Broker>,
) {
    let timeout = Duration::from_millis(broker.config.frame_read_timeout_ms);
    let mut batch: Vec<Outgoing> = Vec::with_capacity(WRITE_BATCH_FRAMES);
    let mut pushing = true;
    loop {
        let first = tokio::select! {
            out = rx.recv() => match out {
                Some(out) => out,
                None => break,
            },
            pushed = pushes.recv(), if pushing => match pushed {
                Some(pushed) => outgoing_push(&broker, pushed),
                None => {
                    pushing = false;
                    continue;
                }
            },
        };
        batch.push(first);
        while batch.len() < WRITE_BATCH_FRAMES {
            match rx.try_recv() {
                Ok(out) => batch.push(out),
                Err(_) => match pushes.try_recv() {
                    Ok(pushed) => batch.push(outgoing_push(&broker, pushed)),
                    Err(_) => break,
                },
            }
        }
        let close = batch.iter().any(|o| o.close_after);
        match tokio::time::timeout(timeout, write_frames(&mut writer, &batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "write failed");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "client is not reading its responses: closing the connection");
                return;
            }
        }
        for out in batch.drain(..) {
            if let Some(pushed) = out.pushed {
                pushed.written();
            }
        }
        if close {
            let _ = writer.shutdown().await;
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// A pushed frame, counted by its API, on its way out.
fn outgoing_push(broker: &Broker, pushed: cmd::Pushed) -> Outgoing {
    let cmd::Pushed { frame, hold } = pushed;
    let header = frame
        .head
        .get(LENGTH_PREFIX_BYTES..LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES);
    let key = header
        .and_then(|bytes| FrameHeader::parse(bytes).ok())
        .and_then(|header| ApiKey::from_u16(header.api_key));
    if let Some(key) = key {
        broker.metrics.count_push(key);
    }
    Outgoing {
        frame,
        _budget: None,
        close_after: false,
        pushed: Some(hold),
        throttle: Duration::ZERO,
    }
}

/// Writes every frame (heads and tails) with as few vectored writes as the
/// socket allows.
async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    batch: &[Outgoing],
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .flat_map(|out| [IoSlice::new(&out.frame.head), IoSlice::new(&out.frame.tail)])
        .filter(|slice| !slice.is_empty())
        .collect();
    // At most two slices per frame: far under the OS limit of 1024 (IOV_MAX).
    debug_assert!(slices.len() <= 2 * WRITE_BATCH_FRAMES);
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let written = writer.write_vectored(rest).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, written);
    }
    // A TLS stream may hold written bytes back until flushed (a no-op on TCP).
    writer.flush().await
}
