//! The load scenarios, driving the broker through the real client crate.
//! Every loop is bounded by a message count and, where it waits on the
//! broker, by a deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_client::{
    Acks, Client, Compression, Consumer, ConsumerConfig, Isolation, Producer, ProducerConfig,
    ProducerRecord, SeekTo,
};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::{Latency, Report};
use crate::target::Target;

/// No scenario runs longer than this, whatever it was asked.
pub const SCENARIO_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct ProduceSpec {
    pub topic: String,
    pub partitions: u32,
    pub producers: usize,
    pub messages: u64,
    pub size: usize,
    pub batch_bytes: usize,
    pub linger_ms: u64,
    pub acks: Acks,
    /// Total messages per second over all producers; 0 = as fast as possible.
    pub rate: u64,
    /// Unacknowledged sends per producer.
    pub max_in_flight: usize,
    /// Idempotent producers (the client's default) or not.
    pub idempotent: bool,
    pub compression: Compression,
    pub payload: Payload,
}

/// What the records hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload {
    /// One shared value of zeros (after a 16-byte tag): costs the load
    /// generator nothing.
    #[default]
    Zeros,
    /// JSON log lines, 1,024 distinct ones in turn: compressible like the
    /// real thing.
    JsonLogs,
}

impl std::str::FromStr for Payload {
    type Err = String;

    fn from_str(text: &str) -> Result<Payload, String> {
        match text {
            "zeros" => Ok(Payload::Zeros),
            "json-logs" => Ok(Payload::JsonLogs),
            other => Err(format!("payload must be zeros or json-logs, not {other:?}")),
        }
    }
}

/// Values the payload cycles through.
fn payload_pool(payload: Payload, size: usize) -> Vec<Bytes> {
    match payload {
        Payload::Zeros => vec![self::payload(size, 0, 0)],
        Payload::JsonLogs => (0..1024).map(|n| json_log_line(n, size)).collect(),
    }
}

/// A JSON log line of about `size` bytes (padded in its message field).
pub fn json_log_line(n: usize, size: usize) -> Bytes {
    const LEVELS: [&str; 4] = ["info", "info", "warn", "debug"];
    const SERVICES: [&str; 3] = ["checkout", "payments", "search"];
    let head = format!(
        r#"{{"ts":"2026-12-03T12:{:02}:{:02}.{:03}Z","level":"{}","service":"{}","trace":"{:016x}","user":{},"msg":""#,
        n / 60 % 60,
        n % 60,
        n % 1000,
        LEVELS[n % LEVELS.len()],
        SERVICES[n % SERVICES.len()],
        (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        n * 7919 % 100_000
    );
    let mut line = head.into_bytes();
    let words = [
        "order", "placed", "for", "cart", "with", "items", "shipped", "to", "customer",
    ];
    let mut w = n;
    while line.len() + 3 < size {
        line.extend_from_slice(words[w % words.len()].as_bytes());
        line.push(b' ');
        w = w.wrapping_mul(31).wrapping_add(7);
    }
    line.extend_from_slice(b"\"}");
    Bytes::from(line)
}

pub fn progress(total: u64, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} ({per_sec})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
    }
    bar
}

/// Creates the topic if it does not exist.
pub async fn ensure_topic(client: &Client, topic: &str, partitions: u32) -> Result<(), String> {
    match client.create_topic(topic, partitions).await {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(ferry_protocol::ErrorCode::TopicAlreadyExists) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn payload(size: usize, sequence: u64, sent_at_ns: u64) -> Bytes {
    let mut value = vec![0u8; size.max(16)];
    value[..8].copy_from_slice(&sent_at_ns.to_be_bytes());
    value[8..16].copy_from_slice(&sequence.to_be_bytes());
    value.truncate(size.max(16));
    Bytes::from(value)
}

pub async fn produce(target: &Target, spec: &ProduceSpec, quiet: bool) -> Result<Report, String> {
    let admin = target.connect().await?;
    ensure_topic(&admin, &spec.topic, spec.partitions).await?;
    let bar = progress(spec.messages, quiet);
    bar.set_message("produce");
    let producers = spec.producers.max(1) as u64;
    let started = Instant::now();
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for p in 0..producers {
        let share = spec.messages / producers + u64::from(p < spec.messages % producers);
        let client = target.connect().await?;
        let config = ProducerConfig {
            acks: spec.acks,
            linger_ms: spec.linger_ms,
            batch_bytes: spec.batch_bytes,
            idempotent: spec.idempotent,
            compression: spec.compression,
            ..ProducerConfig::default()
        };
        let producer = Producer::with_config(&client, &spec.topic, config)
            .await
            .map_err(|e| e.to_string())?;
        let (spec, bar, acked) = (spec.clone(), bar.clone(), acked.clone());
        let rate = if spec.rate == 0 {
            0
        } else {
            (spec.rate / producers).max(1)
        };
        tasks.push(tokio::spawn(async move {
            produce_one(producer, &spec, share, rate, started, bar, acked).await
        }));
    }
    let latency = Latency::join(tasks).await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let messages = acked.load(Ordering::Relaxed);
    let bytes = messages * payload_size(spec.payload, spec.size);
    Ok(Report::new(
        "produce",
        messages,
        bytes,
        elapsed,
        &latency,
        "produce ack",
    ))
}

async fn produce_one(
    producer: Producer,
    spec: &ProduceSpec,
    count: u64,
    rate: u64,
    started: Instant,
    bar: ProgressBar,
    acked: Arc<AtomicU64>,
) -> Result<Latency, String> {
    let max_in_flight = spec.max_in_flight.clamp(1, u32::MAX as usize >> 4);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let latency = Arc::new(std::sync::Mutex::new(Latency::default()));
    let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let deadline = started + SCENARIO_DEADLINE;
    // Payloads made once and shared (a refcount, no per-record
    // allocation): the generator should not be what limits the broker.
    let pool = payload_pool(spec.payload, spec.size);
    for sequence in 0..count {
        if rate > 0 {
            let due = started + Duration::from_secs_f64(sequence as f64 / rate as f64);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        if let Some(error) = failure.lock().map_err(|e| e.to_string())?.clone() {
            return Err(error);
        }
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let sent_at = Instant::now();
        let value = pool[sequence as usize % pool.len()].clone();
        let (latency, failure, acked, bar) =
            (latency.clone(), failure.clone(), acked.clone(), bar.clone());
        let callback: ferry_client::Callback = Box::new(move |result| {
            let elapsed = sent_at.elapsed();
            drop(permit);
            match result {
                Ok(_) => {
                    if let Ok(mut latency) = latency.lock() {
                        latency.record(elapsed);
                    }
                    acked.fetch_add(1, Ordering::Relaxed);
                    bar.inc(1);
                }
                Err(error) => {
                    if let Ok(mut slot) = failure.lock() {
                        slot.get_or_insert(error.to_string());
                    }
                }
            }
        });
        producer
            .send_with_callback(ProducerRecord::new(value), callback)
            .await
            .map_err(|e| e.to_string())?;
    }
    // Every permit back means every send was answered.
    let _all = in_flight
        .acquire_many(max_in_flight as u32)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(error) = failure.lock().map_err(|e| e.to_string())?.clone() {
        return Err(error);
    }
    let latency = std::mem::take(&mut *latency.lock().map_err(|e| e.to_string())?);
    Ok(latency)
}

/// The average payload bytes of a record.
pub fn payload_size(payload: Payload, size: usize) -> u64 {
    let pool = payload_pool(payload, size);
    pool.iter().map(|v| v.len() as u64).sum::<u64>() / pool.len() as u64
}

#[derive(Debug, Clone)]
pub struct ConsumeSpec {
    pub topic: String,
    pub consumers: usize,
    pub messages: u64,
    pub isolation: Isolation,
}

/// `consumers` readers share the partitions (round robin) from the start
/// and read until `messages` have arrived in total.
pub async fn consume(target: &Target, spec: &ConsumeSpec, quiet: bool) -> Result<Report, String> {
    let admin = target.connect().await?;
    let partitions = admin
        .partition_count(&spec.topic)
        .await
        .map_err(|e| e.to_string())?;
    let consumers = spec.consumers.clamp(1, partitions.max(1) as usize);
    let bar = progress(spec.messages, quiet);
    bar.set_message("consume");
    let received = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..consumers {
        let mine: Vec<u32> = (0..partitions)
            .filter(|p| *p as usize % consumers == c)
            .collect();
        let client = target.connect().await?;
        let config = ConsumerConfig {
            max_wait_ms: 100,
            max_bytes: 4 * 1024 * 1024,
            isolation: spec.isolation,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::with_config(&client, &spec.topic, config)
            .await
            .map_err(|e| e.to_string())?;
        consumer
            .assign(&mine, SeekTo::Earliest)
            .await
            .map_err(|e| e.to_string())?;
        let (received, bytes, bar, target) =
            (received.clone(), bytes.clone(), bar.clone(), spec.messages);
        tasks.push(tokio::spawn(async move {
            let mut latency = Latency::default();
            let deadline = Instant::now() + SCENARIO_DEADLINE;
            while received.load(Ordering::Relaxed) < target && Instant::now() < deadline {
                let asked = Instant::now();
                let records = consumer.poll().await.map_err(|e| e.to_string())?;
                if records.is_empty() {
                    continue;
                }
                latency.record(asked.elapsed());
                let n = records.len() as u64;
                let size: u64 = records
                    .iter()
                    .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
                    .sum();
                received.fetch_add(n, Ordering::Relaxed);
                bytes.fetch_add(size, Ordering::Relaxed);
                bar.inc(n);
            }
            Ok::<Latency, String>(latency)
        }));
    }
    let latency = Latency::join(tasks).await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let messages = received.load(Ordering::Relaxed).min(spec.messages);
    Ok(Report::new(
        "consume",
        messages,
        bytes.load(Ordering::Relaxed),
        elapsed,
        &latency,
        "poll with records",
    ))
}

#[derive(Debug, Clone)]
pub struct E2eSpec {
    pub topic: String,
    pub partitions: u32,
    pub rate: u64,
    pub duration_s: u64,
    pub size: usize,
    pub acks: Acks,
    /// How far the tailing consumer reads.
    pub isolation: Isolation,
    /// The producer's `linger_ms` (0 in the workloads; 1 is the client's
    /// default).
    pub linger_ms: u64,
}

/// A producer at a fixed rate and a consumer tailing the topic; latency is
/// from the send time written into each payload to its arrival.
pub async fn e2e(target: &Target, spec: &E2eSpec, quiet: bool) -> Result<Report, String> {
    let admin = target.connect().await?;
    ensure_topic(&admin, &spec.topic, spec.partitions).await?;
    let total = spec.rate.max(1) * spec.duration_s.max(1);
    let partitions = admin
        .partition_count(&spec.topic)
        .await
        .map_err(|e| e.to_string())?;
    let consumer_client = target.connect().await?;
    let config = ConsumerConfig {
        max_wait_ms: 100,
        isolation: spec.isolation,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::with_config(&consumer_client, &spec.topic, config)
        .await
        .map_err(|e| e.to_string())?;
    consumer
        .assign(&(0..partitions).collect::<Vec<_>>(), SeekTo::Latest)
        .await
        .map_err(|e| e.to_string())?;
    let bar = progress(total, quiet);
    bar.set_message("e2e");
    let started = Instant::now();
    let reader = {
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut latency = Latency::default();
            let mut seen = 0u64;
            let mut bytes = 0u64;
            let deadline = Instant::now() + SCENARIO_DEADLINE;
            while seen < total && Instant::now() < deadline {
                for record in consumer.poll().await.map_err(|e| e.to_string())? {
                    let arrived_ns = started.elapsed().as_nanos() as u64;
                    if let Some(value) = &record.value {
                        if value.len() >= 8 {
                            let sent_ns =
                                u64::from_be_bytes(value[..8].try_into().unwrap_or([0; 8]));
                            latency
                                .record(Duration::from_nanos(arrived_ns.saturating_sub(sent_ns)));
                        }
                        bytes += value.len() as u64;
                    }
                    seen += 1;
                    bar.inc(1);
                }
            }
            Ok::<(Latency, u64, u64), String>((latency, seen, bytes))
        })
    };
    let client = target.connect().await?;
    let config = ProducerConfig {
        acks: spec.acks,
        linger_ms: spec.linger_ms,
        ..ProducerConfig::default()
    };
    let producer = Producer::with_config(&client, &spec.topic, config)
        .await
        .map_err(|e| e.to_string())?;
    let mut pending = FuturesUnordered::new();
    for sequence in 0..total {
        let due = started + Duration::from_secs_f64(sequence as f64 / spec.rate.max(1) as f64);
        if due > Instant::now() {
            // Drain acks while waiting for the next send time.
            let sleep = tokio::time::sleep_until(due.into());
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    Some(result) = pending.next(), if !pending.is_empty() => {
                        let result: ferry_client::Result<_> = result;
                        result.map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        let value = payload(spec.size, sequence, started.elapsed().as_nanos() as u64);
        pending.push(producer.send(ProducerRecord::new(value)));
    }
    while let Some(result) = pending.next().await {
        result.map_err(|e| e.to_string())?;
    }
    let (latency, seen, bytes) = reader.await.map_err(|e| e.to_string())??;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    Ok(Report::new(
        "e2e",
        seen,
        bytes,
        elapsed,
        &latency,
        "end to end",
    ))
}

/// `spec.consumers` members of consumer group `group` read `spec.messages`
/// of `spec.topic` in total.
pub async fn consume_group(
    target: &Target,
    spec: &ConsumeSpec,
    group: &str,
    quiet: bool,
) -> Result<Report, String> {
    let (topic, consumers, messages) = (spec.topic.as_str(), spec.consumers, spec.messages);
    let bar = progress(messages, quiet);
    bar.set_message("group");
    let received = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..consumers.max(1) {
        let client = target.connect().await?;
        let mut config = ferry_client::GroupConfig::new(group, &[topic]);
        config.consumer.max_wait_ms = 100;
        config.consumer.max_bytes = 4 * 1024 * 1024;
        config.consumer.isolation = spec.isolation;
        config.auto_commit_interval_ms = Some(1000);
        let mut member = ferry_client::GroupConsumer::join(&client, config)
            .await
            .map_err(|e| e.to_string())?;
        let (received, bytes, bar) = (received.clone(), bytes.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = Latency::default();
            let deadline = Instant::now() + SCENARIO_DEADLINE;
            while received.load(Ordering::Relaxed) < messages && Instant::now() < deadline {
                let asked = Instant::now();
                let records = member.poll().await.map_err(|e| e.to_string())?;
                if records.is_empty() {
                    continue;
                }
                latency.record(asked.elapsed());
                let size: u64 = records
                    .iter()
                    .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
                    .sum();
                received.fetch_add(records.len() as u64, Ordering::Relaxed);
                bytes.fetch_add(size, Ordering::Relaxed);
                bar.inc(records.len() as u64);
            }
            member.close().await.map_err(|e| e.to_string())?;
            Ok::<Latency, String>(latency)
        }));
    }
    let latency = Latency::join(tasks).await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let messages = received.load(Ordering::Relaxed).min(messages);
    Ok(Report::new(
        "consume-group",
        messages,
        bytes.load(Ordering::Relaxed),
        elapsed,
        &latency,
        "poll with records",
    ))
}

/// `consumers` competing consumers of queue `queue` (created from the
/// earliest offset if missing) receive and ack `messages` in total. Latency
/// is the ack round trip (ack sent to ack durable).
pub async fn consume_queue(
    target: &Target,
    topic: &str,
    queue: &str,
    consumers: usize,
    prefetch: u32,
    messages: u64,
    quiet: bool,
) -> Result<Report, String> {
    let admin = target.connect().await?;
    let config = ferry_client::QueueConfig::default();
    match admin.create_queue(topic, queue, &config).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(ferry_protocol::ErrorCode::QueueAlreadyExists) => {}
        Err(e) => return Err(e.to_string()),
    }
    let bar = progress(messages, quiet);
    bar.set_message("queue");
    let acked = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..consumers.max(1) {
        let client = target.connect().await?;
        let mut consumer = ferry_client::QueueConsumer::subscribe(&client, topic, queue, prefetch)
            .await
            .map_err(|e| e.to_string())?;
        let (acked, bytes, bar) = (acked.clone(), bytes.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = Latency::default();
            let mut confirmations = FuturesUnordered::new();
            let deadline = Instant::now() + SCENARIO_DEADLINE;
            while acked.load(Ordering::Relaxed) < messages && Instant::now() < deadline {
                tokio::select! {
                    delivery = consumer.recv_timeout(Duration::from_millis(100)) => {
                        let Some(delivery) = delivery else { continue };
                        let delivery = delivery.map_err(|e| e.to_string())?;
                        bytes.fetch_add(delivery.value.as_ref().map_or(0, |v| v.len() as u64), Ordering::Relaxed);
                        let sent = Instant::now();
                        let ack = delivery.ack();
                        confirmations.push(async move { (sent, ack.await) });
                    }
                    Some((sent, result)) = confirmations.next(), if !confirmations.is_empty() => {
                        result.map_err(|e| e.to_string())?;
                        latency.record(sent.elapsed());
                        acked.fetch_add(1, Ordering::Relaxed);
                        bar.inc(1);
                    }
                }
            }
            Ok::<Latency, String>(latency)
        }));
    }
    let latency = Latency::join(tasks).await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let messages = acked.load(Ordering::Relaxed).min(messages);
    Ok(Report::new(
        "consume-queue",
        messages,
        bytes.load(Ordering::Relaxed),
        elapsed,
        &latency,
        "ack round trip",
    ))
}
