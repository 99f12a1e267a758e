//! [`QueueConsumer`]: a competing consumer of a queue. The broker pushes
//! deliveries on a dedicated connection, never more than `prefetch`
//! unacknowledged at once; each [`Delivery`] is settled with `ack`, `nack`,
//! `nack_with_delay` or kept alive with `in_progress`. Settles are queued at
//! once and sent in batches (one request per kind for everything queued
//! meanwhile); awaiting the returned future waits for the broker's answer,
//! which for an ack means it is durable.
//!
//! Delivery is at-least-once: a message whose ack was not confirmed, whose
//! ack deadline passed, or whose consumer went away is delivered again.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::RecordHeader;
use ferry_protocol::frame::Frame;
use ferry_protocol::messages::{
    AckRequest, DeliverBatch, InProgressRequest, NackRequest, QueueSubscribeRequest, StatusResponse,
};
use ferry_protocol::ApiKey;
use futures::future::BoxFuture;
use futures::Stream;
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::client::Client;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::options::{random_u64, ClientOptions};
use crate::reconnect::{retry_until, ConnectionState, StateReporter};

/// Settles of one kind sent in one request at most.
const SETTLE_BATCH_LIMIT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ack,
    Requeue(u32),
    Reject,
    InProgress,
}

struct Settle {
    kind: Kind,
    delivery_id: u64,
    done: oneshot::Sender<Result<()>>,
}

/// One message pushed by the broker.
pub struct Delivery {
    /// Topic of the record.
    pub topic: String,
    /// Queue it was delivered from.
    pub queue: String,
    /// Partition of the record.
    pub partition: u32,
    /// Offset of the record in its partition.
    pub offset: u64,
    /// Names this delivery when settling it.
    pub delivery_id: u64,
    /// 1 on the first delivery, more on redeliveries.
    pub delivery_count: u32,
    /// Record timestamp (ms since the epoch).
    pub timestamp_ms: i64,
    /// Record key (`None` = null).
    pub key: Option<Bytes>,
    /// Record value (`None` = null).
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<RecordHeader>,
    settle: mpsc::UnboundedSender<Settle>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("delivery_id", &self.delivery_id)
            .field("delivery_count", &self.delivery_count)
            .finish()
    }
}

impl Delivery {
    fn settle(&self, kind: Kind) -> impl Future<Output = Result<()>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self.settle.send(Settle {
            kind,
            delivery_id: self.delivery_id,
            done,
        });
        async move {
            let closed = || ClientError::Closed {
                what: "queue consumer",
            };
            queued.map_err(|_| closed())?;
            answer.await.map_err(|_| closed())?
        }
    }

    /// Acknowledges: the message is done. Queued now; await for the
    /// broker's (durable) confirmation, or drop the future.
    pub fn ack(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.settle(Kind::Ack)
    }

    /// Gives the message back: `requeue` makes it available again at once,
    /// otherwise it goes to the dead-letter topic.
    pub fn nack(&self, requeue: bool) -> impl Future<Output = Result<()>> + Send + 'static {
        self.settle(if requeue {
            Kind::Requeue(0)
        } else {
            Kind::Reject
        })
    }

    /// Gives the message back, available again after `delay_ms`.
    pub fn nack_with_delay(
        &self,
        delay_ms: u32,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.settle(Kind::Requeue(delay_ms))
    }

    /// Still working on it: restarts the ack deadline.
    pub fn in_progress(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.settle(Kind::InProgress)
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_ref())
    }
}

/// A consumer of a queue; read deliveries as a `futures::Stream`.
///
/// It rides through a broker restart: when its connection is lost it
/// connects and subscribes again (following the client's
/// [`crate::ReconnectPolicy`], driven by polling it), and the deliveries
/// it had not settled come back by redelivery. Settling a delivery that
/// came on the lost connection fails with
/// [`ClientError::StaleDelivery`]. If the policy gives up, the stream
/// yields that error and then ends.
///
/// ```no_run
/// # async fn demo() -> Result<(), ferry_client::ClientError> {
/// use futures::StreamExt;
/// use ferry_client::{Client, QueueConsumer};
/// let client = Client::connect("127.0.0.1:7171").await?;
/// let mut jobs = QueueConsumer::subscribe(&client, "orders", "shipping", 10).await?;
/// while let Some(delivery) = jobs.next().await {
///     let delivery = delivery?;
///     println!("job {} (attempt {})", delivery.offset, delivery.delivery_count);
///     delivery.ack(); // batched on the wire; await it to wait for durability
/// }
/// # Ok(()) }
/// ```
pub struct QueueConsumer {
    target: Arc<Target>,
    link: Link,
    buffer: VecDeque<Delivery>,
    /// Connecting and subscribing again after the link was lost.
    reconnecting: Option<BoxFuture<'static, Result<Link>>>,
    /// Gave up reconnecting: the stream has ended.
    ended: bool,
    reconnects: u64,
}

/// What a (re)subscription needs: where, what, and with how much credit.
struct Target {
    addr: String,
    options: ClientOptions,
    topic: String,
    queue: String,
    /// The latest prefetch asked for; a new subscription uses it.
    prefetch: AtomicU32,
    state: Arc<StateReporter>,
}

/// One connection and the subscription on it.
struct Link {
    connection: Arc<Connection>,
    pushes: mpsc::UnboundedReceiver<Frame>,
    /// Settles of this link's deliveries; its loop answers
    /// `StaleDelivery` once the connection is gone.
    settle: mpsc::UnboundedSender<Settle>,
    subscription_id: u64,
    /// The prefetch it subscribed with.
    prefetch: u32,
    opened_at: Instant,
}

impl QueueConsumer {
    /// Opens a dedicated connection and subscribes with `prefetch` credit.
    pub async fn subscribe(
        client: &Client,
        topic: &str,
        queue: &str,
        prefetch: u32,
    ) -> Result<QueueConsumer> {
        // Not observable before it is connected.
        let connected = ConnectionState::Connected { reconnects: 0 };
        let target = Arc::new(Target {
            addr: client.addr().to_string(),
            options: client.options().clone(),
            topic: topic.to_string(),
            queue: queue.to_string(),
            prefetch: AtomicU32::new(prefetch),
            state: Arc::new(StateReporter::new(client.addr(), connected)),
        });
        let options = &target.options;
        let deadline = options.first_connect_deadline.map(|d| Instant::now() + d);
        let link = retry_until(&target.addr, &options.reconnect, deadline, None, || {
            open_link(&target)
        })
        .await?;
        target.state.watch_closing(link.connection.closed_token());
        Ok(QueueConsumer {
            target,
            link,
            buffer: VecDeque::new(),
            reconnecting: None,
            ended: false,
            reconnects: 0,
        })
    }

    /// Changes how many unacknowledged deliveries the broker may push; 0
    /// pauses (what is in flight stays yours until settled). While the
    /// consumer is reconnecting, the new subscription gets it.
    pub async fn set_prefetch(&self, prefetch: u32) -> Result<()> {
        self.target.prefetch.store(prefetch, Ordering::Release);
        let connection = &self.link.connection;
        if self.reconnecting.is_some() || connection.is_closed() {
            return Ok(());
        }
        match update_prefetch(&self.target, connection, self.link.subscription_id).await {
            Err(error) if error.is_connection_error() && connection.is_closed() => Ok(()),
            other => other,
        }
    }

    /// The broker's id of this subscription (a new one after a reconnect).
    pub fn subscription_id(&self) -> u64 {
        self.link.subscription_id
    }

    /// Watches the state of this consumer's own connection (see
    /// [`Client::connection_state`]).
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.target.state.subscribe()
    }

    /// The next delivery; `None` once the consumer gave up reconnecting
    /// (after yielding the error).
    pub async fn recv(&mut self) -> Option<Result<Delivery>> {
        futures::StreamExt::next(self).await
    }

    /// The next delivery within `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Result<Delivery>> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .ok()
            .flatten()
    }

    /// The link was lost: connect and subscribe again, in the background
    /// of `poll_next`, until the reconnect policy's deadline.
    fn start_reconnecting(&mut self) {
        let target = self.target.clone();
        let died_young = self.link.opened_at.elapsed() < target.options.reconnect.max_backoff;
        let lost_at = Instant::now();
        self.reconnecting = Some(Box::pin(async move {
            let policy = &target.options.reconnect;
            if died_young {
                tokio::time::sleep(policy.jittered(1, random_u64())).await;
            }
            let deadline = policy.deadline.map(|d| lost_at + d);
            let reporter = Some(&*target.state);
            retry_until(&target.addr, policy, deadline, reporter, || {
                open_link(&target)
            })
            .await
        }));
    }

    /// A new link replaces the lost one; a prefetch asked for while it was
    /// being made is applied now.
    fn install(&mut self, link: Link) {
        self.link = link;
        self.reconnects += 1;
        let state = &self.target.state;
        state.set(ConnectionState::Connected {
            reconnects: self.reconnects,
        });
        state.watch_closing(self.link.connection.closed_token());
        if self.target.prefetch.load(Ordering::Acquire) != self.link.prefetch {
            let (target, connection) = (self.target.clone(), self.link.connection.clone());
            let id = self.link.subscription_id;
            tokio::spawn(async move {
                let _ = update_prefetch(&target, &connection, id).await;
            });
        }
    }

    fn unpack(&mut self, frame: Frame) -> Result<()> {
        let batch =
            DeliverBatch::decode(frame.body).map_err(|source| ClientError::UndecodableFrame {
                api: ApiKey::Deliver,
                source,
            })?;
        for d in batch.deliveries {
            self.buffer.push_back(Delivery {
                topic: batch.topic.clone(),
                queue: batch.queue.clone(),
                partition: d.partition,
                offset: d.offset,
                delivery_id: d.delivery_id,
                delivery_count: d.delivery_count,
                timestamp_ms: d.timestamp_ms,
                key: d.key,
                value: d.value,
                headers: record_headers(d.headers),
                settle: self.link.settle.clone(),
            });
        }
        Ok(())
    }
}

/// Connects and subscribes with the latest prefetch; starts the link's
/// settle loop.
async fn open_link(target: &Target) -> Result<Link> {
    let (push_tx, pushes) = mpsc::unbounded_channel();
    let options = &target.options;
    let connection = Arc::new(Connection::connect(&target.addr, options, Some(push_tx)).await?);
    let prefetch = target.prefetch.load(Ordering::Acquire);
    let request = QueueSubscribeRequest {
        topic: target.topic.clone(),
        queue: target.queue.clone(),
        prefetch,
        subscription_id: 0,
    };
    let answer = connection.call(&request).await?;
    let (settle, settles) = mpsc::unbounded_channel();
    tokio::spawn(settle_loop(
        connection.clone(),
        target.topic.clone(),
        target.queue.clone(),
        settles,
    ));
    Ok(Link {
        connection,
        pushes,
        settle,
        subscription_id: answer.subscription_id,
        prefetch,
        opened_at: Instant::now(),
    })
}

/// Sends the latest prefetch for subscription `id` on `connection`.
async fn update_prefetch(target: &Target, connection: &Connection, id: u64) -> Result<()> {
    let request = QueueSubscribeRequest {
        topic: target.topic.clone(),
        queue: target.queue.clone(),
        prefetch: target.prefetch.load(Ordering::Acquire),
        subscription_id: id,
    };
    connection.call(&request).await.map(drop)
}

impl Stream for QueueConsumer {
    type Item = Result<Delivery>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(delivery) = this.buffer.pop_front() {
                return Poll::Ready(Some(Ok(delivery)));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(reconnecting) = this.reconnecting.as_mut() {
                let result = std::task::ready!(reconnecting.as_mut().poll(cx));
                this.reconnecting = None;
                match result {
                    Ok(link) => this.install(link),
                    Err(error) => {
                        this.ended = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                continue;
            }
            match this.link.pushes.poll_recv(cx) {
                Poll::Ready(Some(frame)) => {
                    if let Err(error) = this.unpack(frame) {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                // The connection is gone (its reader dropped the sender).
                Poll::Ready(None) => this.start_reconnecting(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Sends queued settles in batches: everything queued since the last send,
/// one request per kind. Once `connection` is gone, answers every settle
/// with `StaleDelivery`.
async fn settle_loop(
    connection: Arc<Connection>,
    topic: String,
    queue: String,
    mut settles: mpsc::UnboundedReceiver<Settle>,
) {
    while let Some(first) = settles.recv().await {
        let mut pending = vec![first];
        while pending.len() < SETTLE_BATCH_LIMIT * 4 {
            match settles.try_recv() {
                Ok(settle) => pending.push(settle),
                Err(_) => break,
            }
        }
        if connection.is_closed() {
            // Never sent on another connection: after a broker restart the
            // same id names another delivery.
            for settle in pending {
                let stale = ClientError::StaleDelivery {
                    delivery_id: settle.delivery_id,
                };
                let _ = settle.done.send(Err(stale));
            }
            continue;
        }
        pending.sort_by_key(|s| s.kind);
        let mut groups: Vec<Vec<Settle>> = Vec::new();
        for settle in pending {
            match groups.last_mut() {
                Some(group) if group[0].kind == settle.kind && group.len() < SETTLE_BATCH_LIMIT => {
                    group.push(settle)
                }
                _ => groups.push(vec![settle]),
            }
        }
        for group in groups {
            let ids = group.iter().map(|s| s.delivery_id).collect();
            // Sent in order; answered concurrently.
            let mut answer = settle_request(&connection, group[0].kind, &topic, &queue, ids);
            let first = futures::poll!(answer.as_mut());
            tokio::spawn(async move {
                let result = match first {
                    Poll::Ready(result) => result,
                    Poll::Pending => answer.await,
                };
                for settle in group {
                    let _ = settle.done.send(result.clone().map(drop));
                }
            });
        }
    }
}

/// The settle request for `kind`, sent when first polled.
fn settle_request(
    connection: &Arc<Connection>,
    kind: Kind,
    topic: &str,
    queue: &str,
    delivery_ids: Vec<u64>,
) -> futures::future::BoxFuture<'static, Result<StatusResponse>> {
    let connection = connection.clone();
    let (topic, queue) = (topic.to_string(), queue.to_string());
    Box::pin(async move {
        match kind {
            Kind::Ack => {
                let request = AckRequest {
                    topic,
                    queue,
                    delivery_ids,
                };
                connection.call(&request).await
            }
            Kind::InProgress => {
                let request = InProgressRequest {
                    topic,
                    queue,
                    delivery_ids,
                };
                connection.call(&request).await
            }
            Kind::Requeue(_) | Kind::Reject => {
                let (requeue, delay_ms) = match kind {
                    Kind::Requeue(delay_ms) => (true, delay_ms),
                    _ => (false, 0),
                };
                let request = NackRequest {
                    topic,
                    queue,
                    delivery_ids,
                    requeue,
                    delay_ms,
                };
                connection.call(&request).await
            }
        }
    })
}

/// The headers of a delivery, as a record's.
pub(crate) fn record_headers(
    headers: Vec<ferry_protocol::messages::DeliveryHeader>,
) -> Vec<RecordHeader> {
    headers
        .into_iter()
        .map(|h| RecordHeader {
            key: h.key,
            value: h.value,
        })
        .collect()
}
