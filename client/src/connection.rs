//! One connection to the broker (TCP, or TLS over TCP), handshaken and,
//! with credentials, authenticated (`auth.rs`), with pipelining:
//! many requests in flight, matched to responses by correlation id. A
//! writer task batches queued frames into vectored writes; a reader task
//! decodes frames with the protocol codec and completes the waiting request
//! (or hands pushed frames to a subscriber). Both work over any stream's
//! halves.

use std::collections::HashMap;
use std::future::Future;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::api::{Api, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use ferry_protocol::codec::FrameCodec;
use ferry_protocol::frame::{
    encode_frame, Frame, FrameHeader, OutFrame, FLAG_ERROR, FLAG_NO_RESPONSE, FLAG_PUSH,
};
use ferry_protocol::messages::{ErrorResponse, HandshakeRequest, WireMessage};
use ferry_protocol::{ApiKey, ErrorCode};
use futures::StreamExt;
use parking_lot::Mutex;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::error::{ClientError, Result};
use crate::options::ClientOptions;

/// Frames queued for the writer before `request` waits.
const WRITE_QUEUE_FRAMES: usize = 1024;
const WRITE_BATCH_FRAMES: usize = 64;

type Waiters = Arc<Mutex<Option<HashMap<u32, oneshot::Sender<Frame>>>>>;

/// Numbers connections, so that a connection is never mistaken for an
/// earlier one (see `Connection::id`).
static CONNECTION_IDS: AtomicU64 = AtomicU64::new(1);

/// What the broker told us at handshake.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    /// The broker's version.
    pub broker_version: String,
    /// Largest frame the broker accepts.
    pub max_frame_bytes: usize,
    /// Largest record batch the broker accepts.
    pub max_batch_bytes: usize,
    /// Whether the broker serves only authenticated connections.
    pub auth_required: bool,
    /// SASL mechanisms the broker accepts (e.g. `SCRAM-SHA-256`,
    /// `FERRY-TOKEN`).
    pub sasl_mechanisms: Vec<String>,
}

/// Set once the connection is gone (either loop ended): a flag for the
/// hot path, a token to wait on.
#[derive(Default)]
struct Closed {
    flag: AtomicBool,
    token: CancellationToken,
}

impl Closed {
    fn close(&self) {
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }
}

pub struct Connection {
    /// Unique in this process: requests queued on one id went out in the
    /// order they were queued.
    pub id: u64,
    /// The broker address, for errors.
    addr: String,
    writer: mpsc::Sender<OutFrame>,
    waiters: Waiters,
    next_id: AtomicU32,
    closed: Arc<Closed>,
    pub info: BrokerInfo,
}

/// `addr` with `:7171` added when it names no port: `localhost`,
/// `broker.example`, `10.0.0.5` or `::1` (a bare IPv6 address has colons but
/// no brackets; it becomes `[::1]:7171`).
fn with_default_port(addr: &str) -> String {
    let port = ferry_protocol::DEFAULT_PORT;
    let bracketed = addr.starts_with('[');
    let has_port = match bracketed {
        true => addr.contains("]:"),
        false => addr.matches(':').count() == 1,
    };
    match (has_port, bracketed, addr.contains(':')) {
        (true, _, _) => addr.to_owned(),
        (false, false, true) => format!("[{addr}]:{port}"),
        (false, _, _) => format!("{addr}:{port}"),
    }
}

impl Connection {
    /// Connects, sets `TCP_NODELAY`, performs the TLS handshake when
    /// `options.tls` is set, then the protocol handshake, then the SASL
    /// exchange when `options.credentials` is set.
    pub async fn connect(
        addr: &str,
        options: &ClientOptions,
        push: Option<mpsc::UnboundedSender<Frame>>,
    ) -> Result<Connection> {
        let addr = &with_default_port(addr);
        let timeout = options.connect_timeout;
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let timed_out = || unreachable(format!("no answer within {} ms", timeout.as_millis()));
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| unreachable(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| unreachable(e.to_string()))?;
        match &options.tls {
            None => {
                let (read, write) = stream.into_split();
                Connection::start(addr, options, (read, write), push).await
            }
            Some(tls) => {
                let stream = tokio::time::timeout(timeout, tls.handshake(addr, stream))
                    .await
                    .map_err(|_| timed_out())??;
                let halves = tokio::io::split(stream);
                Connection::start(addr, options, halves, push).await
            }
        }
    }

    /// Starts the reader and writer tasks over `halves`, performs the
    /// protocol handshake and, with credentials, authenticates.
    async fn start<R, W>(
        addr: &str,
        options: &ClientOptions,
        (read, write): (R, W),
        push: Option<mpsc::UnboundedSender<Frame>>,
    ) -> Result<Connection>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let waiters: Waiters = Arc::new(Mutex::new(Some(HashMap::new())));
        let closed = Arc::new(Closed::default());
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_FRAMES);
        tokio::spawn(write_loop(write, rx, closed.clone()));
        tokio::spawn(read_loop(read, waiters.clone(), closed.clone(), push));
        let mut connection = Connection {
            id: CONNECTION_IDS.fetch_add(1, Ordering::Relaxed),
            addr: addr.to_string(),
            writer: tx,
            waiters,
            next_id: AtomicU32::new(1),
            closed,
            info: BrokerInfo {
                broker_version: String::new(),
                max_frame_bytes: ferry_protocol::frame::DEFAULT_MAX_FRAME_BYTES,
                max_batch_bytes: ferry_protocol::frame::DEFAULT_MAX_FRAME_BYTES / 2,
                auth_required: false,
                sasl_mechanisms: Vec::new(),
            },
        };
        connection
            .handshake(&options.client_id, options.connect_timeout)
            .await?;
        if let Some(credentials) = &options.credentials {
            let exchange = auth::authenticate(&connection, credentials);
            let principal = tokio::time::timeout(options.connect_timeout, exchange)
                .await
                .map_err(|_| connection.unreachable("authentication timed out".into()))??;
            tracing::debug!(addr, %principal, "authenticated");
        }
        Ok(connection)
    }

    /// The protocol handshake: versions, then what the broker tells us
    /// (limits, authentication) goes into `self.info`.
    async fn handshake(&mut self, client_id: &str, timeout: Duration) -> Result<()> {
        let hello = HandshakeRequest {
            client_id: client_id.to_string(),
            min_version: u32::from(PROTOCOL_VERSION_MIN),
            max_version: u32::from(PROTOCOL_VERSION_MAX),
        };
        let answer = tokio::time::timeout(timeout, self.call(&hello))
            .await
            .map_err(|_| self.unreachable("handshake timed out".into()))??;
        self.info = BrokerInfo {
            broker_version: answer.broker_version,
            max_frame_bytes: answer.max_frame_bytes as usize,
            max_batch_bytes: answer.max_batch_bytes as usize,
            auth_required: answer.auth_required,
            sasl_mechanisms: answer.sasl_mechanisms,
        };
        Ok(())
    }

    /// The error of a connection attempt that failed for `reason`.
    fn unreachable(&self, reason: String) -> ClientError {
        ClientError::Unreachable {
            addr: self.addr.clone(),
            reason,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.flag.load(Ordering::Acquire)
    }

    /// A token cancelled once the connection is gone.
    pub fn closed_token(&self) -> CancellationToken {
        self.closed.token.clone()
    }

    /// Sends a request and waits for its response (key and response type
    /// come from the API table).
    pub async fn call<R: Api>(&self, request: &R) -> Result<R::Response> {
        self.call_with_tail(request, None).await
    }

    /// Like [`Connection::call`], with raw bytes sent as the API's tail
    /// field (zero-copy record batches).
    pub async fn call_with_tail<R: Api>(
        &self,
        request: &R,
        tail: Option<bytes::Bytes>,
    ) -> Result<R::Response> {
        self.enqueue(request, tail).await?.await
    }

    /// Queues a request for writing (requests queued on this connection go
    /// out in queue order) and returns its answer to wait for.
    pub(crate) async fn enqueue<R: Api>(
        &self,
        request: &R,
        tail: Option<bytes::Bytes>,
    ) -> Result<impl Future<Output = Result<R::Response>> + Send + 'static> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match self.waiters.lock().as_mut() {
            Some(waiters) => waiters.insert(id, tx),
            None => return Err(self.disconnected()),
        };
        let frame = encode_request(FrameHeader::request(R::KEY as u16, 1, id), request, tail);
        if self.writer.send(frame).await.is_err() {
            self.forget(id);
            return Err(self.disconnected());
        }
        let disconnected = self.disconnected();
        Ok(async move {
            let frame = rx.await.map_err(|_| disconnected)?;
            decode_response::<R::Response>(R::KEY, frame)
        })
    }

    /// Sends a request that gets no response (produce with acks = none).
    pub async fn send_only<R: Api>(&self, request: &R, tail: Option<bytes::Bytes>) -> Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut header = FrameHeader::request(R::KEY as u16, 1, id);
        header.flags |= FLAG_NO_RESPONSE;
        self.writer
            .send(encode_request(header, request, tail))
            .await
            .map_err(|_| self.disconnected())
    }

    /// The error of a request whose connection is gone.
    pub fn disconnected(&self) -> ClientError {
        ClientError::Disconnected {
            addr: self.addr.clone(),
        }
    }

    fn forget(&self, id: u32) {
        if let Some(waiters) = self.waiters.lock().as_mut() {
            waiters.remove(&id);
        }
    }
}

/// A request frame; `tail` goes out as the API's raw tail field.
fn encode_request<R: Api>(
    header: FrameHeader,
    request: &R,
    tail: Option<bytes::Bytes>,
) -> OutFrame {
    debug_assert!(
        tail.is_none() || R::REQUEST_TAIL.is_some(),
        "{:?} has no tail",
        R::KEY
    );
    let tail = tail.zip(R::REQUEST_TAIL).map(|(bytes, tag)| (tag, bytes));
    encode_frame(header, request, tail)
}

/// The typed answer of `frame`, or the broker's refusal it carries.
fn decode_response<Resp: WireMessage>(api: ApiKey, frame: Frame) -> Result<Resp> {
    let undecodable = |source| ClientError::UndecodableFrame { api, source };
    if frame.header.has(FLAG_ERROR) {
        let error = ErrorResponse::decode(frame.body).map_err(undecodable)?;
        return Err(refusal(error));
    }
    let response = Resp::decode(frame.body.clone()).map_err(undecodable)?;
    match response.status() {
        Some((code, _)) if code != 0 => {
            // Every response shares the status fields of `ErrorResponse`
            // (`throttle_time_ms` included), so the body decodes as one.
            let error = ErrorResponse::decode(frame.body).map_err(undecodable)?;
            Err(refusal(error))
        }
        _ => Ok(response),
    }
}

/// The error an answer with a non-zero `error_code` stands for.
fn refusal(error: ErrorResponse) -> ClientError {
    ClientError::from_broker(
        ErrorCode::from_u32(error.error_code),
        error.error_message,
        error.throttle_time_ms,
    )
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut rx: mpsc::Receiver<OutFrame>,
    closed: Arc<Closed>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH_FRAMES);
    while let Some(frame) = rx.recv().await {
        batch.push(frame);
        while batch.len() < WRITE_BATCH_FRAMES {
            match rx.try_recv() {
                Ok(frame) => batch.push(frame),
                Err(_) => break,
            }
        }
        if write_frames(&mut write, &batch).await.is_err() {
            break;
        }
        batch.clear();
    }
    closed.close();
    let _ = write.shutdown().await;
}

async fn write_frames<W: AsyncWrite + Unpin>(
    write: &mut W,
    batch: &[OutFrame],
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .flat_map(|f| [IoSlice::new(&f.head), IoSlice::new(&f.tail)])
        .filter(|slice| !slice.is_empty())
        .collect();
    // At most two slices per frame: far under the OS limit of 1024 (IOV_MAX).
    debug_assert!(slices.len() <= 2 * WRITE_BATCH_FRAMES);
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let written = write.write_vectored(rest).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, written);
    }
    // A TLS stream may hold written bytes back until flushed (a no-op on TCP).
    write.flush().await
}

async fn read_loop<R: AsyncRead + Unpin>(
    read: R,
    waiters: Waiters,
    closed: Arc<Closed>,
    push: Option<mpsc::UnboundedSender<Frame>>,
) {
    // Responses may be as large as the broker's frame limit.
    let mut frames = FramedRead::new(
        read,
        FrameCodec::new(ferry_protocol::frame::MAX_FRAME_BYTES_LIMIT),
    );
    while let Some(Ok(frame)) = frames.next().await {
        if frame.header.has(FLAG_PUSH) {
            if let Some(push) = &push {
                let _ = push.send(frame);
            }
            continue;
        }
        let waiter = waiters
            .lock()
            .as_mut()
            .and_then(|w| w.remove(&frame.header.correlation_id));
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(frame);
            }
            None if frame.header.correlation_id == 0 && frame.header.has(FLAG_ERROR) => {
                // A connection-level refusal (too many connections, bad frame):
                // every waiting request gets the broker's error.
                let pending = waiters.lock().take().unwrap_or_default();
                for (_, waiter) in pending {
                    let _ = waiter.send(frame.clone());
                }
                break;
            }
            None => tracing::debug!(
                id = frame.header.correlation_id,
                "response for an unknown request"
            ),
        }
    }
    closed.close();
    // Dropping the senders wakes every waiter with "disconnected".
    waiters.lock().take();
}

#[cfg(test)]
mod tests {
    use super::with_default_port;

    #[test]
    fn an_address_without_a_port_gets_the_default_one() {
        for (given, used) in [
            ("localhost", "localhost:7171"),
            ("broker.example:9000", "broker.example:9000"),
            ("10.0.0.5", "10.0.0.5:7171"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("::1", "[::1]:7171"),
            ("[::1]", "[::1]:7171"),
            ("[::1]:9000", "[::1]:9000"),
        ] {
            assert_eq!(with_default_port(given), used, "{given}");
        }
    }
}
