//! [`Producer`]: accumulates records per partition into batches and sends
//! them pipelined. Batching is adaptive: a partition with no produce
//! request in flight gets its batch sent at once (so a low rate sees no
//! linger); while one is out, records accumulate until the batch reaches
//! `batch_bytes`, has waited `linger_ms` (an upper bound), or the partition
//! is idle again. With `linger_ms = 0` whatever queued up is sent at once. Keyed records go to
//! `partition_for_key`; keyless ones stick to one partition per batch and
//! move round robin to the next when it is sent.
//!
//! Idempotent by default (with `acks` written or durable): the producer gets
//! a producer id from the broker, numbers each partition's batches, and
//! sends a batch whose answer was lost with the connection again, in order,
//! on the next connection (`lane.rs`); the broker answers a batch it already
//! stored with its original offsets. A network blip or a broker restart
//! neither loses nor duplicates a record. If a batch fails for good, the
//! producer takes the next epoch of its id before sending more, so the
//! partitions' sequences start over without a gap.
//!
//! Not idempotent, a batch whose answer was lost with the connection fails,
//! or with `resend_after_disconnect` is sent again (at-least-once).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::batch::{BatchBuilder, Compression, BATCH_HEADER_BYTES};
use ferry_protocol::messages::{Acks, ProduceRequest};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::admin::ProducerIdentity;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::lane::{self, Lane, LANE_BATCHES_LIMIT};
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
    /// How long a batch may wait for more records while its partition has
    /// a request in flight (a partition with none sends at once).
    pub linger_ms: u64,
    /// Send a batch once it reaches this size (of records before
    /// compression).
    pub batch_bytes: usize,
    /// How batches are compressed (Kafka's codecs; none by default). The
    /// broker stores a compressed batch as sent, and every reader
    /// decompresses it. A compressed batch may hold no more record bytes
    /// than the broker's `max_batch_bytes`.
    pub compression: Compression,
    /// Records queued in the producer before `send` waits (backpressure).
    pub queue_records: usize,
    /// Produce requests in flight at once (an idempotent producer keeps at
    /// most five per partition).
    pub max_in_flight: usize,
    /// Exactly-once appends per partition, across lost connections and
    /// broker restarts (on by default; needs `acks` written or durable).
    /// Batches carry a producer id, epoch and sequence numbers; a batch
    /// whose answer was lost is sent again, in order, and the broker
    /// answers one it already stored with its original offsets.
    pub idempotent: bool,
    /// For a producer that is not idempotent: send a batch again, on a new
    /// connection, if the connection it went out on was lost before the
    /// broker answered. Off, the send fails with
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
            compression: Compression::None,
            queue_records: 100_000,
            max_in_flight: 64,
            idempotent: true,
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
        let idempotence = match config.idempotent && config.acks != Acks::None {
            true => Some(Idempotence {
                identity: client.init_producer_id(topic, None).await?,
                sequences: HashMap::new(),
                lanes: HashMap::new(),
                failed: Arc::new(AtomicBool::new(false)),
            }),
            false => None,
        };
        let (tx, rx) = mpsc::channel(config.queue_records.max(1));
        let accumulator = Accumulator {
            client: client.clone(),
            topic: topic.to_string(),
            partitions,
            batch_bytes: config.batch_bytes.clamp(1024, max_batch),
            max_batch_bytes: max_batch,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            busy: HashMap::new(),
            config,
            open: HashMap::new(),
            sticky: 0,
            idempotence,
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

/// An idempotent producer's identity and per-partition state.
struct Idempotence {
    identity: ProducerIdentity,
    /// The next batch's base sequence, per partition.
    sequences: HashMap<u32, i32>,
    lanes: HashMap<u32, Arc<Lane>>,
    /// Set when a batch failed for good: its sequences left a gap, so the
    /// next batch goes out under a new epoch.
    failed: Arc<AtomicBool>,
}

/// A finished batch of an idempotent producer, with its place in its lane.
struct Sequenced {
    lane: Arc<Lane>,
    ticket: u64,
    failed: Arc<AtomicBool>,
}

struct Accumulator {
    client: Client,
    topic: String,
    partitions: u32,
    batch_bytes: usize,
    max_batch_bytes: usize,
    in_flight: Arc<Semaphore>,
    /// Produce requests in flight per partition.
    busy: HashMap<u32, Arc<AtomicUsize>>,
    config: ProducerConfig,
    open: HashMap<u32, OpenBatch>,
    sticky: u32,
    idempotence: Option<Idempotence>,
}

type Sending = futures::future::BoxFuture<'static, ()>;

/// Below this many requests in flight on a partition, its batch is sent at
/// once instead of lingering.
const EAGER_IN_FLIGHT: usize = 8;

impl Accumulator {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut sending: FuturesUnordered<Sending> = FuturesUnordered::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut open_channel = true;
        loop {
            // A batch whose lane is full waits for an answer, not a timer.
            let deadline = self
                .open
                .iter()
                .filter(|(partition, _)| self.lane_has_room(**partition))
                .map(|(_, b)| b.deadline)
                .min();
            tokio::select! {
                command = rx.recv(), if open_channel => match command {
                    Some(command) => {
                        self.handle(command, &mut sending, &mut flushes).await;
                        // Take whatever else is queued before deciding to send.
                        while let Ok(command) = rx.try_recv() {
                            self.handle(command, &mut sending, &mut flushes).await;
                        }
                        if self.config.linger_ms == 0 {
                            self.send_ready(&mut sending, true).await;
                        }
                    }
                    None => {
                        open_channel = false;
                        self.send_all(&mut sending).await;
                    }
                },
                _ = sleep_until_opt(deadline), if deadline.is_some() => self.send_ready(&mut sending, false).await,
                Some(()) = sending.next(), if !sending.is_empty() => {
                    // A lane may have room again for a batch that grew meanwhile.
                    let linger_0 = self.config.linger_ms == 0;
                    self.send_ready(&mut sending, linger_0).await;
                }
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
        let compression = self.config.compression;
        let batch = self.open.entry(partition).or_insert_with(|| OpenBatch {
            builder: new_builder(compression),
            replies: Vec::new(),
            deadline: Instant::now() + linger,
        });
        batch.builder.push(&record);
        batch.replies.push(reply);
        // A full batch goes now, waiting for room in flight if need be
        // (measured: letting it grow while its lane is full instead makes
        // fewer, larger batches and costs durable throughput). So does any
        // batch of a partition with nothing in flight: lingering is only
        // worth it while an earlier request is out (adaptive batching).
        let full = batch.builder.size_bytes() >= self.batch_bytes;
        if full || self.idle(partition) {
            self.send_partition(partition, sending).await;
        }
    }

    /// Whether `partition` has fewer than [`EAGER_IN_FLIGHT`] produce
    /// requests in flight: then a batch need not wait for more records.
    fn idle(&self, partition: u32) -> bool {
        self.busy
            .get(&partition)
            .is_none_or(|count| count.load(Ordering::Acquire) < EAGER_IN_FLIGHT)
    }

    /// Whether `partition` may have another batch in flight (always, for a
    /// producer that is not idempotent).
    fn lane_has_room(&self, partition: u32) -> bool {
        self.lane_count(partition)
            .is_none_or(|count| count.load(Ordering::Acquire) < LANE_BATCHES_LIMIT)
    }

    /// An idempotent producer's count of `partition`'s requests in flight
    /// (its lane's unanswered batches): what bounds the lane.
    fn lane_count(&self, partition: u32) -> Option<&Arc<AtomicUsize>> {
        self.idempotence.as_ref()?;
        self.busy.get(&partition)
    }

    /// Sends the batches whose lane has room and that are due: full, past
    /// their linger, of a partition with nothing in flight, or (`all_due`)
    /// any.
    async fn send_ready(&mut self, sending: &mut FuturesUnordered<Sending>, all_due: bool) {
        let now = Instant::now();
        let ready: Vec<u32> = self
            .open
            .iter()
            .filter(|(_, b)| {
                all_due || b.deadline <= now || b.builder.size_bytes() >= self.batch_bytes
            })
            .map(|(p, _)| *p)
            .chain(
                self.open
                    .keys()
                    .copied()
                    .filter(|p| self.idle(*p) && !all_due),
            )
            .filter(|p| self.lane_has_room(*p))
            .collect();
        for partition in ready {
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
        let Some(mut batch) = self.open.remove(&partition) else {
            return;
        };
        if partition == self.sticky {
            self.sticky = (self.sticky + 1) % self.partitions;
        }
        let lane = self.lane_count(partition).cloned();
        let permit = in_flight_permit(&self.in_flight, lane, sending).await;
        let sequenced = match self.sequence(partition, &mut batch.builder).await {
            Ok(sequenced) => sequenced,
            Err(error) => return answer(Err(error), partition, batch.replies),
        };
        let bytes = batch.builder.finish();
        let request = self.request(partition, bytes, sequenced);
        let replies = batch.replies;
        let busy = self.busy.entry(partition).or_default().clone();
        busy.fetch_add(1, Ordering::AcqRel);
        // Queue the request on the connection now, in partition order.
        let mut request = Box::pin(request);
        let first_poll = futures::poll!(request.as_mut());
        sending.push(Box::pin(async move {
            let result = match first_poll {
                std::task::Poll::Ready(result) => result,
                std::task::Poll::Pending => request.await,
            };
            drop(permit);
            busy.fetch_sub(1, Ordering::AcqRel);
            answer(result, partition, replies);
        }));
    }

    /// Numbers an idempotent producer's batch (taking a new epoch first if
    /// a batch failed for good) and gives it its place in the lane.
    async fn sequence(
        &mut self,
        partition: u32,
        builder: &mut BatchBuilder,
    ) -> Result<Option<Sequenced>> {
        let Some(idempotence) = self.idempotence.as_mut() else {
            return Ok(None);
        };
        if idempotence.failed.load(Ordering::Acquire) {
            let current = Some(idempotence.identity);
            idempotence.identity = self.client.init_producer_id(&self.topic, current).await?;
            idempotence.sequences.clear();
            idempotence.failed.store(false, Ordering::Release);
            tracing::info!(
                producer_id = idempotence.identity.producer_id,
                epoch = idempotence.identity.epoch,
                "a batch failed: continuing under a new epoch"
            );
        }
        let ProducerIdentity { producer_id, epoch } = idempotence.identity;
        let sequence = idempotence.sequences.entry(partition).or_insert(0);
        builder.set_producer(producer_id, epoch, *sequence);
        *sequence = next_sequence(*sequence, builder.record_count());
        let lane = idempotence.lanes.entry(partition).or_default().clone();
        let ticket = lane.take_ticket();
        Ok(Some(Sequenced {
            lane,
            ticket,
            failed: idempotence.failed.clone(),
        }))
    }

    /// The request that sends `bytes` and resolves to its offsets.
    fn request(
        &self,
        partition: u32,
        bytes: Bytes,
        sequenced: Option<Sequenced>,
    ) -> impl Future<Output = Result<Option<(u64, u64)>>> + Send + 'static {
        let client = self.client.clone();
        let topic = self.topic.clone();
        let acks = self.config.acks;
        let resend = self.config.resend_after_disconnect;
        async move {
            let Some(Sequenced {
                lane,
                ticket,
                failed,
            }) = sequenced
            else {
                let wire = client.wire();
                return match resend {
                    true => wire.produce_resending(&topic, partition, bytes, acks).await,
                    false => wire.produce(&topic, partition, bytes, acks).await,
                };
            };
            let request = ProduceRequest {
                topic,
                partition,
                acks: acks as u32,
                records: Bytes::new(),
            };
            let result = lane::produce_in_order(&client, &lane, ticket, request, bytes).await;
            if result.is_err() {
                failed.store(true, Ordering::Release);
            }
            result
        }
    }
}

fn new_builder(compression: Compression) -> BatchBuilder {
    let mut builder = BatchBuilder::new();
    builder.set_compression(compression);
    builder
}

/// A permit of the producer's `max_in_flight`, and room in the partition's
/// lane; earlier requests keep completing meanwhile.
async fn in_flight_permit(
    in_flight: &Arc<Semaphore>,
    lane: Option<Arc<AtomicUsize>>,
    sending: &mut FuturesUnordered<Sending>,
) -> tokio::sync::OwnedSemaphorePermit {
    loop {
        let lane_full = lane
            .as_ref()
            .is_some_and(|count| count.load(Ordering::Acquire) >= LANE_BATCHES_LIMIT);
        if !lane_full {
            if let Ok(permit) = in_flight.clone().try_acquire_owned() {
                return permit;
            }
        }
        // Nothing in flight: the lane is empty too.
        if sending.next().await.is_none() {
            if let Ok(permit) = in_flight.clone().acquire_owned().await {
                return permit;
            }
        }
    }
}

/// The sequence after a batch of `records` starting at `sequence`: Kafka's
/// sequences wrap from `i32::MAX` to 0.
fn next_sequence(sequence: i32, records: u32) -> i32 {
    ((i64::from(sequence) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32
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
