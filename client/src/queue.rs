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
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::RecordHeader;
use ferry_protocol::frame::Frame;
use ferry_protocol::messages::{
    AckRequest, DeliverBatch, InProgressRequest, NackRequest, QueueSubscribeRequest, StatusResponse,
};
use futures::Stream;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::client::Client;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

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
            queued.map_err(|_| ClientError::Disconnected("queue consumer closed".into()))?;
            answer.await.map_err(|_| {
                ClientError::Disconnected("queue consumer closed before the answer".into())
            })?
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
    pushes: mpsc::UnboundedReceiver<Frame>,
    settle: mpsc::UnboundedSender<Settle>,
    buffer: VecDeque<Delivery>,
    subscription_id: u64,
    connection: Arc<Connection>,
    topic: String,
    queue: String,
}

impl QueueConsumer {
    /// Opens a dedicated connection and subscribes with `prefetch` credit.
    pub async fn subscribe(
        client: &Client,
        topic: &str,
        queue: &str,
        prefetch: u32,
    ) -> Result<QueueConsumer> {
        let (push_tx, pushes) = mpsc::unbounded_channel();
        let options = client.options();
        let connection = Arc::new(
            Connection::connect(
                client.addr(),
                &options.client_id,
                options.connect_timeout,
                Some(push_tx),
            )
            .await?,
        );
        let request = QueueSubscribeRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
            prefetch,
            subscription_id: 0,
        };
        let answer = connection.call(&request).await?;
        let (settle, settles) = mpsc::unbounded_channel();
        tokio::spawn(settle_loop(
            connection.clone(),
            topic.to_string(),
            queue.to_string(),
            settles,
        ));
        Ok(QueueConsumer {
            pushes,
            settle,
            buffer: VecDeque::new(),
            subscription_id: answer.subscription_id,
            connection,
            topic: topic.to_string(),
            queue: queue.to_string(),
        })
    }

    /// Changes how many unacknowledged deliveries the broker may push; 0
    /// pauses (what is in flight stays yours until settled).
    pub async fn set_prefetch(&self, prefetch: u32) -> Result<()> {
        let request = QueueSubscribeRequest {
            topic: self.topic.clone(),
            queue: self.queue.clone(),
            prefetch,
            subscription_id: self.subscription_id,
        };
        self.connection.call(&request).await.map(drop)
    }

    /// The broker's id of this subscription.
    pub fn subscription_id(&self) -> u64 {
        self.subscription_id
    }

    /// The next delivery, or `None` once the connection is gone.
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

    fn unpack(&mut self, frame: Frame) -> Result<()> {
        let batch = DeliverBatch::decode(frame.body)
            .map_err(|e| ClientError::Disconnected(format!("undecodable delivery: {e}")))?;
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
                headers: d
                    .headers
                    .into_iter()
                    .map(|h| RecordHeader {
                        key: h.key,
                        value: h.value,
                    })
                    .collect(),
                settle: self.settle.clone(),
            });
        }
        Ok(())
    }
}

impl Stream for QueueConsumer {
    type Item = Result<Delivery>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(delivery) = this.buffer.pop_front() {
                return Poll::Ready(Some(Ok(delivery)));
            }
            match this.pushes.poll_recv(cx) {
                Poll::Ready(Some(frame)) => {
                    if let Err(error) = this.unpack(frame) {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Sends queued settles in batches: everything queued since the last send,
/// one request per kind.
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
