//! [`Consumer`]: reads explicitly assigned partitions of one topic with
//! long polling. Every assigned partition keeps one fetch parked at the
//! broker; `poll` returns the records of whichever answers first, so a
//! record produced to an idle partition arrives within a round trip.
//!
//! A fetch whose connection is lost (a broker restart) is sent again once
//! the client has reconnected, from the same position: the consumer
//! resumes every partition at its next offset, with no gap and no repeat.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use ferry_protocol::batch::{BatchIter, RecordIter, BATCH_BYTES_LIMIT};
use ferry_protocol::isolation::Isolation;
use ferry_protocol::messages::{FetchRequest, FetchResponse};
use futures::stream::FuturesUnordered;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::ConsumerRecord;
use crate::seek::SeekTo;

/// Consumer settings.
///
/// ```
/// use ferry_client::{ConsumerConfig, Isolation};
/// // Park each fetch up to 2 s until 64 KiB are there.
/// let config = ConsumerConfig { max_wait_ms: 2000, min_bytes: 64 * 1024, ..ConsumerConfig::default() };
/// assert_eq!(config.max_bytes, 1024 * 1024);
/// assert_eq!(config.isolation, Isolation::Durable);
/// // Lower latency, but a power loss can take back what was read.
/// let eager = ConsumerConfig { isolation: Isolation::Written, ..ConsumerConfig::default() };
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// How long a fetch may park at the broker.
    pub max_wait_ms: u32,
    /// Park until at least this many bytes are available.
    pub min_bytes: u32,
    /// Upper bound per fetch response.
    pub max_bytes: u32,
    /// How far fetches may see: [`Isolation::Durable`] (the default) reads
    /// only what a power loss cannot take back; [`Isolation::Written`] reads
    /// records as soon as they are written.
    pub isolation: Isolation,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1024 * 1024,
            isolation: Isolation::Durable,
        }
    }
}

type Fetching = futures::future::BoxFuture<'static, (u32, u64, u64, Result<FetchResponse>)>;

/// Reads chosen partitions of a topic from chosen positions.
///
/// ```no_run
/// # async fn demo() -> Result<(), ferry_client::ClientError> {
/// use ferry_client::{Client, Consumer, SeekTo};
/// let client = Client::connect("127.0.0.1:7171").await?;
/// let mut consumer = Consumer::new(&client, "orders").await?;
/// consumer.assign_all(SeekTo::Earliest).await?;
/// loop {
///     for record in consumer.poll().await? {
///         println!("{}@{}: {:?}", record.partition, record.offset, record.value);
///     }
/// }
/// # }
/// ```
pub struct Consumer {
    client: Client,
    topic: String,
    partitions: u32,
    config: ConsumerConfig,
    /// Next offset to read, per assigned partition.
    positions: BTreeMap<u32, u64>,
    /// Bumped on seek so answers to superseded fetches are dropped.
    generation: u64,
    in_flight: FuturesUnordered<Fetching>,
    parked: BTreeMap<u32, bool>,
    ready: VecDeque<ConsumerRecord>,
}

impl Consumer {
    /// A consumer of `topic` with default settings; assign partitions next.
    pub async fn new(client: &Client, topic: &str) -> Result<Consumer> {
        Consumer::with_config(client, topic, ConsumerConfig::default()).await
    }

    /// Like `new`, with settings.
    pub async fn with_config(
        client: &Client,
        topic: &str,
        config: ConsumerConfig,
    ) -> Result<Consumer> {
        let partitions = client.partition_count(topic).await?;
        Ok(Consumer {
            client: client.clone(),
            topic: topic.to_string(),
            partitions,
            config,
            positions: BTreeMap::new(),
            generation: 0,
            in_flight: FuturesUnordered::new(),
            parked: BTreeMap::new(),
            ready: VecDeque::new(),
        })
    }

    /// Number of partitions of the topic.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Assigns every partition of the topic, each starting at `from`.
    pub async fn assign_all(&mut self, from: SeekTo) -> Result<()> {
        let all: Vec<u32> = (0..self.partitions).collect();
        self.assign(&all, from).await
    }

    /// Starts reading `partitions` from `from` (others stay as they are).
    pub async fn assign(&mut self, partitions: &[u32], from: SeekTo) -> Result<()> {
        for partition in partitions {
            self.seek(*partition, from).await?;
        }
        Ok(())
    }

    /// Moves `partition` (assigning it if needed) to `to`.
    pub async fn seek(&mut self, partition: u32, to: SeekTo) -> Result<()> {
        if partition >= self.partitions {
            return Err(ClientError::NoSuchPartition {
                topic: self.topic.clone(),
                partition,
                partitions: self.partitions,
            });
        }
        let offset = self
            .client
            .resolve_offset(&self.topic, partition, to)
            .await?;
        self.positions.insert(partition, offset);
        self.generation += 1;
        self.parked.clear();
        self.ready.retain(|r| r.partition != partition);
        Ok(())
    }

    /// Stops reading `partition`.
    pub fn unassign(&mut self, partition: u32) {
        self.positions.remove(&partition);
        self.ready.retain(|r| r.partition != partition);
        self.generation += 1;
        self.parked.clear();
    }

    /// The next offset to be returned for `partition`.
    pub fn position(&self, partition: u32) -> Option<u64> {
        self.positions.get(&partition).copied()
    }

    /// The partitions being read.
    pub fn assignment(&self) -> Vec<u32> {
        self.positions.keys().copied().collect()
    }

    /// Waits for records (up to about `max_wait_ms`); may return none.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        if !self.ready.is_empty() {
            return Ok(self.ready.drain(..).collect());
        }
        if self.positions.is_empty() {
            return Err(ClientError::NothingAssigned);
        }
        self.park_fetches();
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(u64::from(self.config.max_wait_ms) + 5_000);
        loop {
            let next = tokio::time::timeout_at(deadline, self.in_flight.next()).await;
            let Ok(Some((partition, generation, offset, result))) = next else {
                return Ok(Vec::new());
            };
            if generation != self.generation {
                self.park_fetches();
                continue;
            }
            self.parked.insert(partition, false);
            let response = result?;
            let records = self.decode(partition, offset, &response)?;
            self.park_fetches();
            // Records, or a long poll that expired empty: either way, answer.
            return Ok(records);
        }
    }

    fn park_fetches(&mut self) {
        for (partition, offset) in &self.positions {
            if self.parked.get(partition).copied().unwrap_or(false) {
                continue;
            }
            self.parked.insert(*partition, true);
            let request = FetchRequest {
                topic: self.topic.clone(),
                partition: *partition,
                offset: *offset,
                max_bytes: self.config.max_bytes,
                max_wait_ms: self.config.max_wait_ms,
                min_bytes: self.config.min_bytes,
                isolation: self.config.isolation as u32,
            };
            let client = self.client.clone();
            let (partition, offset, generation) = (*partition, *offset, self.generation);
            self.in_flight.push(Box::pin(async move {
                let result = client.call(&request).await;
                (partition, generation, offset, result)
            }));
        }
    }

    fn decode(
        &mut self,
        partition: u32,
        offset: u64,
        response: &FetchResponse,
    ) -> Result<Vec<ConsumerRecord>> {
        let mut records = Vec::new();
        for item in BatchIter::new(response.records.clone(), BATCH_BYTES_LIMIT) {
            let (header, bytes) = item?;
            for record in RecordIter::new(bytes, header) {
                let record = record?;
                if record.offset >= offset {
                    records.push(ConsumerRecord::from_record(&self.topic, partition, record));
                }
            }
        }
        let next = records
            .last()
            .map_or(response.next_offset.max(offset), |r| r.offset + 1);
        self.positions.insert(partition, next);
        Ok(records)
    }
}

/// Records one at a time, in order per partition; long polls that expire
/// empty are not items. With no partition assigned, yields an error.
impl Stream for Consumer {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(record) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(record)));
            }
            if this.positions.is_empty() {
                return Poll::Ready(Some(Err(ClientError::NothingAssigned)));
            }
            this.park_fetches();
            let Poll::Ready(Some((partition, generation, offset, result))) =
                this.in_flight.poll_next_unpin(cx)
            else {
                return Poll::Pending;
            };
            if generation != this.generation {
                continue;
            }
            this.parked.insert(partition, false);
            match result.and_then(|response| this.decode(partition, offset, &response)) {
                Ok(records) => this.ready.extend(records),
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}
