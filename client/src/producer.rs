//! [`Producer`]: accumulates records per partition into batches and sends
//! them pipelined. A batch goes out when it reaches `batch_bytes`, when it
//! has waited `linger_ms`, or at once with `linger_ms = 0` (then whatever
//! queued up meanwhile rides along). Keyed records go to
//! `partition_for_key`; keyless ones stick to one partition per batch and
//! move round robin to the next when it is sent.
//!
//! While the broker is away, batches wait for the client to reconnect (see
//! [`crate::ReconnectPolicy`]); a batch whose answer was lost with the
//! connection fails, or with `resend_after_disconnect` is sent again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::batch::{BatchBuilder, BATCH_HEADER_BYTES};
use ferry_protocol::messages::Acks;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::{now_ms, partition_for_key, ProducerRecord, RecordMetadata};

/// Producer settings.
///
/// ```
/// use ferry_client::{Acks, ProducerConfig};
/// // Lowest latency: no lingering, answer once written.
/// let config = ProducerConfig { acks: Acks::Written, linger_ms: 0, ..ProducerConfig::default() };
/// assert_eq!(config.batch_bytes, 256 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// When a send counts as done.
    pub acks: Acks,
    /// How long a batch may wait for more records.
    pub linger_ms: u64,
    /// Send a batch once it reaches this size.
    pub batch_bytes: usize,
    /// Records queued in the producer before `send` waits (backpressure).
    pub queue_records: usize,
    /// Produce requests in flight at once.
    pub max_in_flight: usize,
    /// Send a batch again, on a new connection, if the connection it went
    /// out on was lost before the broker answered (e.g. the broker
    /// restarted). Off by default: the send fails with
    /// [`ClientError::Disconnected`], since the broker may have stored the
    /// batch already. On, a send is at-least-once: a batch the broker
    /// stored but could not answer (a crash) is stored twice, and a resent
    /// batch may land after a later batch of the same partition.
    pub resend_after_disconnect: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::Durable,
            linger_ms: 1,
            batch_bytes: 256 * 1024,
            queue_records: 100_000,
            max_in_flight: 64,
            resend_after_disconnect: false,
        }
    }
}

/// Called once with the outcome of a send (see [`Producer::send_with_callback`]).
pub type Callback = Box<dyn FnOnce(Result<RecordMetadata>) + Send + 'static>;

/// How the outcome of one record is delivered.
enum Reply {
    Future(oneshot::Sender<Result<RecordMetadata>>),
    Callback(Callback),
}

impl Reply {
    fn send(self, result: Result<RecordMetadata>) {
        match self {
            Reply::Future(tx) => {
                let _ = tx.send(result);
            }
            Reply::Callback(callback) => callback(result),
        }
    }
}

enum Command {
    Send(ProducerRecord, Reply),
    Flush(oneshot::Sender<()>),
}

/// An async, batching producer for one topic.
///
/// ```no_run
/// # async fn demo() -> Result<(), ferry_client::ClientError> {
/// use ferry_client::{Client, Producer, ProducerRecord};
/// let client = Client::connect("127.0.0.1:7171").await?;
/// let producer = Producer::new(&client, "orders").await?;
/// // Many sends in flight at once; each resolves to the record's offset.
/// let sends: Vec<_> = (0..100).map(|i| producer.send(ProducerRecord::new(format!("order {i}")))).collect();
/// for sent in futures::future::join_all(sends).await {
///     println!("stored at offset {:?}", sent?.offset);
/// }
/// # Ok(()) }
/// ```
pub struct Producer {
    tx: mpsc::Sender<Command>,
    partitions: u32,
}

impl Producer {
    /// A producer to `topic` with default settings.
    pub async fn new(client: &Client, topic: &str) -> Result<Producer> {
        Producer::with_config(client, topic, ProducerConfig::default()).await
    }

    /// Like `new`, with settings.
    pub async fn with_config(
        client: &Client,
        topic: &str,
        config: ProducerConfig,
    ) -> Result<Producer> {
        let partitions = client.partition_count(topic).await?;
        if partitions == 0 {
            return Err(ClientError::NoSuchPartition {
                topic: topic.to_string(),
                partition: 0,
                partitions,
            });
        }
        let max_batch = client
            .connection()
            .await?
            .info
            .max_batch_bytes
            .max(BATCH_HEADER_BYTES + 64);
        let (tx, rx) = mpsc::channel(config.queue_records.max(1));
        let accumulator = Accumulator {
            client: client.clone(),
            topic: topic.to_string(),
            partitions,
            batch_bytes: config.batch_bytes.clamp(1024, max_batch),
            max_batch_bytes: max_batch,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            config,
            open: HashMap::new(),
            sticky: 0,
        };
        tokio::spawn(accumulator.run(rx));
        Ok(Producer { tx, partitions })
    }

    /// Number of partitions of the topic.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Queues `record` now (if there is room) and returns a future that
    /// resolves when the broker has acknowledged it at the configured level.
    pub fn send(
        &self,
        record: ProducerRecord,
    ) -> impl Future<Output = Result<RecordMetadata>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let waiting = match self
            .tx
            .try_send(Command::Send(record, Reply::Future(reply)))
        {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(command)) => Some(command),
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        };
        let tx = self.tx.clone();
        async move {
            if let Some(command) = waiting {
                tx.send(command).await.map_err(|_| closed())?;
            }
            answer.await.map_err(|_| closed())?
        }
    }

    /// Like [`Producer::send`], for a record that queue consumers must not
    /// get before `deliver_at_ms` (milliseconds since the epoch). The record
    /// is stored at once (durable like any other); only queue delivery waits.
    pub fn send_at(
        &self,
        record: ProducerRecord,
        deliver_at_ms: i64,
    ) -> impl Future<Output = Result<RecordMetadata>> + Send + 'static {
        self.send(record.with_header(
            ferry_protocol::batch::DELIVER_AT_HEADER,
            deliver_at_ms.to_string(),
        ))
    }

    /// Queues `record` and calls `callback` with its outcome once the broker
    /// has answered (on the producer's task: keep it short). No future per
    /// record: the way to keep hundreds of thousands of sends in flight.
    /// Waits only while the producer's queue is full.
    pub async fn send_with_callback(
        &self,
        record: ProducerRecord,
        callback: Callback,
    ) -> Result<()> {
        self.tx
            .send(Command::Send(record, Reply::Callback(callback)))
            .await
            .map_err(|_| closed())
    }

    /// Sends every queued record now and waits until all are acknowledged.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(tx))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())
    }
}

struct OpenBatch {
    builder: BatchBuilder,
    replies: Vec<Reply>,
    deadline: Instant,
}

struct Accumulator {
    client: Client,
    topic: String,
    partitions: u32,
    batch_bytes: usize,
    max_batch_bytes: usize,
    in_flight: Arc<Semaphore>,
    config: ProducerConfig,
    open: HashMap<u32, OpenBatch>,
    sticky: u32,
}

type Sending = futures::future::BoxFuture<'static, ()>;

impl Accumulator {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut sending: FuturesUnordered<Sending> = FuturesUnordered::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut open_channel = true;
        loop {
            let deadline = self.open.values().map(|b| b.deadline).min();
            tokio::select! {
                command = rx.recv(), if open_channel => match command {
                    Some(command) => {
                        self.handle(command, &mut sending, &mut flushes).await;
                        // Take whatever else is queued before deciding to send.
                        while let Ok(command) = rx.try_recv() {
                            self.handle(command, &mut sending, &mut flushes).await;
                        }
                        if self.config.linger_ms == 0 {
                            self.send_all(&mut sending).await;
                        }
                    }
                    None => {
                        open_channel = false;
                        self.send_all(&mut sending).await;
                    }
                },
                _ = sleep_until_opt(deadline), if deadline.is_some() => self.send_due(&mut sending).await,
                Some(()) = sending.next(), if !sending.is_empty() => {}
            }
            if !flushes.is_empty() && self.open.is_empty() && sending.is_empty() {
                flushes.drain(..).for_each(|done| {
                    let _ = done.send(());
                });
            }
            if !open_channel && self.open.is_empty() && sending.is_empty() {
                return;
            }
        }
    }

    async fn handle(
        &mut self,
        command: Command,
        sending: &mut FuturesUnordered<Sending>,
        flushes: &mut Vec<oneshot::Sender<()>>,
    ) {
        match command {
            Command::Send(record, reply) => self.add(record, reply, sending).await,
            Command::Flush(done) => {
                self.send_all(sending).await;
                flushes.push(done);
            }
        }
    }

    async fn add(
        &mut self,
        record: ProducerRecord,
        reply: Reply,
        sending: &mut FuturesUnordered<Sending>,
    ) {
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < self.partitions => p,
            (Some(p), _) => {
                reply.send(Err(ClientError::NoSuchPartition {
                    topic: self.topic.clone(),
                    partition: p,
                    partitions: self.partitions,
                }));
                return;
            }
            (None, Some(key)) => partition_for_key(key, self.partitions),
            (None, None) => self.sticky,
        };
        let record = record.into_new_record(now_ms());
        let size = BatchBuilder::record_size_bytes(&record);
        if BATCH_HEADER_BYTES + size > self.max_batch_bytes {
            reply.send(Err(ClientError::RecordTooLarge {
                size,
                max: self.max_batch_bytes,
            }));
            return;
        }
        if self
            .open
            .get(&partition)
            .is_some_and(|b| b.builder.size_bytes() + size > self.max_batch_bytes)
        {
            self.send_partition(partition, sending).await;
        }
        let linger = Duration::from_millis(self.config.linger_ms);
        let batch = self.open.entry(partition).or_insert_with(|| OpenBatch {
            builder: BatchBuilder::new(),
            replies: Vec::new(),
            deadline: Instant::now() + linger,
        });
        batch.builder.push(&record);
        batch.replies.push(reply);
        if batch.builder.size_bytes() >= self.batch_bytes {
            self.send_partition(partition, sending).await;
        }
    }

    async fn send_due(&mut self, sending: &mut FuturesUnordered<Sending>) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .open
            .iter()
            .filter(|(_, b)| b.deadline <= now)
            .map(|(p, _)| *p)
            .collect();
        for partition in due {
            self.send_partition(partition, sending).await;
        }
    }

    async fn send_all(&mut self, sending: &mut FuturesUnordered<Sending>) {
        let all: Vec<u32> = self.open.keys().copied().collect();
        for partition in all {
            self.send_partition(partition, sending).await;
        }
    }

    async fn send_partition(&mut self, partition: u32, sending: &mut FuturesUnordered<Sending>) {
        let Some(batch) = self.open.remove(&partition) else {
            return;
        };
        if partition == self.sticky {
            self.sticky = (self.sticky + 1) % self.partitions;
        }
        // Bound requests in flight; keep completing earlier ones meanwhile.
        let permit = loop {
            if let Ok(permit) = self.in_flight.clone().try_acquire_owned() {
                break permit;
            }
            if sending.next().await.is_none() {
                if let Ok(permit) = self.in_flight.clone().acquire_owned().await {
                    break permit;
                }
            }
        };
        let client = self.client.clone();
        let topic = self.topic.clone();
        let acks = self.config.acks;
        let bytes = batch.builder.finish();
        let replies = batch.replies;
        // Queue the request on the connection now, in partition order.
        let resend = self.config.resend_after_disconnect;
        let request = async move {
            let wire = client.wire();
            match resend {
                true => wire.produce_resending(&topic, partition, bytes, acks).await,
                false => wire.produce(&topic, partition, bytes, acks).await,
            }
        };
        let mut request = Box::pin(request);
        let first_poll = futures::poll!(request.as_mut());
        sending.push(Box::pin(async move {
            let result = match first_poll {
                std::task::Poll::Ready(result) => result,
                std::task::Poll::Pending => request.await,
            };
            drop(permit);
            answer(result, partition, replies);
        }));
    }
}

/// The producer's task is gone (the runtime is shutting down).
fn closed() -> ClientError {
    ClientError::Closed { what: "producer" }
}

fn answer(result: Result<Option<(u64, u64)>>, partition: u32, replies: Vec<Reply>) {
    match result {
        Ok(offsets) => {
            for (i, reply) in replies.into_iter().enumerate() {
                let offset = offsets.map(|(base, _)| base + i as u64);
                reply.send(Ok(RecordMetadata { partition, offset }));
            }
        }
        Err(error) => {
            for reply in replies {
                reply.send(Err(error.clone()));
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
