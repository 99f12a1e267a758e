//! Idempotent producers, through the real broker binary:
//!
//! - `InitProducerId` gives ids that a restart never gives again;
//! - a retried batch is acknowledged with its original offsets and not
//!   written again; a gap is refused (`OutOfOrderSequence`), an older epoch
//!   fenced (`ProducerFenced`); all of it after `kill -9` too;
//! - a partition remembers at most 10,000 producers, and forgets idle ones
//!   after `--producer-expiry-ms`;
//! - the client's default `Producer`, while a proxy cuts its connections at
//!   random and the broker is `kill -9`ed and restarted, stores every
//!   acknowledged record exactly once, in order per producer and partition,
//!   and no record twice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_client::{Client, ClientOptions, Producer, ProducerRecord, ReconnectPolicy};
use ferry_e2e::raw::RawClient;
use ferry_e2e::{read_all, Broker};
use ferry_protocol::batch::{BatchBuilder, NewRecord};
use ferry_protocol::messages::{
    CreateTopicRequest, InitProducerIdRequest, ProduceRequest, ProduceResponse,
};
use ferry_protocol::ErrorCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

fn batch(producer_id: i64, epoch: i16, sequence: i32, values: &[&str]) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.set_producer(producer_id, epoch, sequence);
    for value in values {
        builder.push(&NewRecord {
            timestamp_ms: 1,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            ..NewRecord::default()
        });
    }
    builder.finish()
}

async fn produce(raw: &mut RawClient, records: Bytes) -> ProduceResponse {
    let request = ProduceRequest {
        topic: "idem".into(),
        partition: 0,
        acks: 0,
        records,
    };
    raw.call(&request).await
}

async fn init(raw: &mut RawClient, current: Option<(i64, i32)>) -> (i64, i16) {
    let (producer_id, producer_epoch) = current.unwrap_or((0, 0));
    let answer = raw
        .call(&InitProducerIdRequest {
            topic: "idem".into(),
            producer_id,
            producer_epoch,
        })
        .await;
    assert_eq!(answer.error_code, 0, "{}", answer.error_message);
    (answer.producer_id, answer.producer_epoch as i16)
}

async fn create_topic(raw: &mut RawClient) {
    let created = raw
        .call(&CreateTopicRequest {
            name: "idem".into(),
            config: None,
        })
        .await;
    assert_eq!(created.error_code, 0, "{}", created.error_message);
}

#[tokio::test]
async fn retries_get_their_offsets_gaps_and_old_epochs_are_refused_even_after_kill_9() {
    let mut broker = Broker::start();
    let mut raw = RawClient::handshaken(&broker.addr).await;
    create_topic(&mut raw).await;
    let (id, epoch) = init(&mut raw, None).await;
    assert!(id > 0 && epoch == 0);
    let first = produce(&mut raw, batch(id, 0, 0, &["a", "b"])).await;
    let second = produce(&mut raw, batch(id, 0, 2, &["c"])).await;
    assert_eq!((first.base_offset, second.base_offset), (0, 2));
    let retry = produce(&mut raw, batch(id, 0, 0, &["a", "b"])).await;
    assert_eq!(
        (retry.error_code, retry.base_offset, retry.last_offset),
        (0, 0, 1)
    );
    assert!(!retry.offsets_unknown);
    let gap = produce(&mut raw, batch(id, 0, 9, &["z"])).await;
    assert_eq!(
        gap.error_code,
        ErrorCode::OutOfOrderSequence.as_u32(),
        "{}",
        gap.error_message
    );

    broker.kill9();
    broker.restart();
    let mut raw = RawClient::handshaken(&broker.addr).await;
    let retry = produce(&mut raw, batch(id, 0, 2, &["c"])).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 2),
        "dedup after kill -9"
    );
    let (again, next_epoch) = init(&mut raw, Some((id, 0))).await;
    assert_eq!((again, next_epoch), (id, 1));
    let fresh = produce(&mut raw, batch(id, 1, 0, &["d"])).await;
    assert_eq!((fresh.error_code, fresh.base_offset), (0, 3));
    let stale = produce(&mut raw, batch(id, 0, 3, &["e"])).await;
    assert_eq!(
        stale.error_code,
        ErrorCode::ProducerFenced.as_u32(),
        "{}",
        stale.error_message
    );
    // Older than the last five: stored, so acknowledged, offsets unknown.
    for sequence in 1..=5 {
        let next = produce(&mut raw, batch(id, 1, sequence, &["f"])).await;
        assert_eq!(next.error_code, 0, "{}", next.error_message);
    }
    let old = produce(&mut raw, batch(id, 1, 0, &["d"])).await;
    assert_eq!((old.error_code, old.offsets_unknown), (0, true));
    let (other, _) = init(&mut raw, None).await;
    assert!(
        other > id,
        "a restart never gives an id again: {other} after {id}"
    );

    let client = broker.client().await;
    let values: Vec<String> = read_all(&client, "idem", 9)
        .await
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(
        values,
        ["a", "b", "c", "d", "f", "f", "f", "f", "f"],
        "every batch once"
    );
}

/// The producers partition 0 of `idem` remembers, as DescribeTopic says.
async fn producers_remembered(client: &Client) -> u64 {
    let description = client.describe_topic("idem").await.unwrap();
    description.partitions[0].producers
}

#[tokio::test]
async fn producers_are_bounded_per_partition_and_idle_ones_expire() {
    let broker = Broker::start_with(&[
        "--producer-expiry-ms",
        "1000",
        "--retention-check-ms",
        "100",
    ]);
    let mut raw = RawClient::handshaken(&broker.addr).await;
    create_topic(&mut raw).await;
    // 10,001 producers, one batch each, 1,000 batches a request.
    let ids: Vec<i64> = (1..=10_001).collect();
    for chunk in ids.chunks(1000) {
        let mut records = Vec::new();
        for id in chunk {
            records.extend_from_slice(&batch(*id, 0, 0, &["x"]));
        }
        let answer = produce(&mut raw, Bytes::from(records)).await;
        assert_eq!(answer.error_code, 0, "{}", answer.error_message);
    }
    let client = broker.client().await;
    assert_eq!(producers_remembered(&client).await, 10_000, "the bound");
    // Idle past the expiry, they are forgotten by the periodic pass.
    let deadline = Instant::now() + Duration::from_secs(20);
    while producers_remembered(&client).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        producers_remembered(&client).await,
        0,
        "idle producers expire"
    );
    // What expiry costs: a retry that late is a new batch to the partition.
    let late = produce(&mut raw, batch(10_001, 0, 0, &["x"])).await;
    assert_eq!((late.error_code, late.base_offset), (0, 10_001));
}

/// A TCP proxy to the broker whose connections can all be cut at once.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<Notify>,
}

impl Proxy {
    async fn start(broker: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(Notify::new());
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let cuts = cuts.clone();
                let broker = broker.clone();
                tokio::spawn(async move {
                    let cut = cuts.notified();
                    let Ok(mut server) = TcpStream::connect(&broker).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Proxy { addr, cut }
    }

    /// Closes every connection open through the proxy now.
    fn cut_all(&self) {
        self.cut.notify_waiters();
    }
}

const PRODUCERS: usize = 3;
const RECORDS_PER_PRODUCER: usize = 3000;

/// Sends `RECORDS_PER_PRODUCER` records as producer `index` (values
/// `index:n`, four keys over the partitions), paced so the run spans the
/// chaos; returns which were acknowledged, and how many times its client
/// reconnected.
async fn run_producer(addr: String, index: usize) -> (Vec<bool>, u64) {
    let options = ClientOptions {
        reconnect: ReconnectPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(300),
            deadline: Some(Duration::from_secs(60)),
        },
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&addr, options).await.expect("connect");
    let producer = Producer::new(&client, "chaos").await.expect("producer");
    let mut sends = Vec::with_capacity(RECORDS_PER_PRODUCER);
    for n in 0..RECORDS_PER_PRODUCER {
        let record = ProducerRecord::new(format!("{index}:{n}")).with_key(format!("k{}", n % 4));
        sends.push(producer.send(record));
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    let results = futures::future::join_all(sends).await;
    let reconnects = client.connection_state().borrow().reconnects();
    (results.iter().map(|r| r.is_ok()).collect(), reconnects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_and_kill_9_store_every_acknowledged_record_exactly_once() {
    let broker = Arc::new(Mutex::new(Broker::start()));
    let addr = broker.lock().unwrap().addr.clone();
    let admin = Client::connect(&addr).await.unwrap();
    admin.create_topic("chaos", 2).await.unwrap();
    drop(admin);
    let proxy = Proxy::start(addr.clone()).await;
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|index| tokio::spawn(run_producer(proxy.addr.to_string(), index)))
        .collect();
    let mut rng = StdRng::seed_from_u64(20261203);
    let started = Instant::now();
    let mut killed = false;
    while !producers.iter().all(|p| p.is_finished()) && started.elapsed() < Duration::from_secs(90)
    {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(40..250))).await;
        proxy.cut_all();
        if !killed && started.elapsed() > Duration::from_millis(800) {
            killed = true;
            let broker = broker.clone();
            tokio::task::spawn_blocking(move || {
                let mut broker = broker.lock().unwrap();
                broker.kill9();
                broker.restart();
            })
            .await
            .unwrap();
        }
    }
    assert!(killed, "the run ended before the broker was killed");
    let mut acked = Vec::new();
    for producer in producers {
        let (results, reconnects) = producer.await.unwrap();
        assert!(
            reconnects >= 2,
            "the chaos reached every producer: {reconnects} reconnects"
        );
        acked.push(results);
    }
    let client = Client::connect(&addr).await.unwrap();
    let total: u64 = ferry_e2e::end_offsets(&client, "chaos").await.iter().sum();
    let records = read_all(&client, "chaos", total as usize).await;
    assert_eq!(records.len() as u64, total);
    verify_exactly_once(&records, &acked);
}

/// Per producer and partition, the numbers rise strictly (in order, none
/// twice), and every acknowledged number is there.
fn verify_exactly_once(records: &[ferry_client::ConsumerRecord], acked: &[Vec<bool>]) {
    let mut by_lane: HashMap<(usize, u32), Vec<(u64, usize)>> = HashMap::new();
    for record in records {
        let value =
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
        let (producer, n) = value.split_once(':').expect("index:n");
        let lane = (producer.parse().unwrap(), record.partition);
        by_lane
            .entry(lane)
            .or_default()
            .push((record.offset, n.parse().unwrap()));
    }
    let mut seen = vec![vec![false; RECORDS_PER_PRODUCER]; PRODUCERS];
    for ((producer, partition), mut numbers) in by_lane {
        numbers.sort_unstable();
        for pair in numbers.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "producer {producer} partition {partition}: {} then {} (offsets {}, {})",
                pair[0].1,
                pair[1].1,
                pair[0].0,
                pair[1].0
            );
        }
        for (_, n) in numbers {
            seen[producer][n] = true;
        }
    }
    let mut failed = 0;
    for (producer, acks) in acked.iter().enumerate() {
        for (n, ok) in acks.iter().enumerate() {
            assert!(
                !ok || seen[producer][n],
                "acknowledged record {producer}:{n} is missing"
            );
            failed += usize::from(!ok);
        }
    }
    // A blip or a restart is ridden through: nothing fails, nothing is lost.
    assert_eq!(failed, 0, "sends failed");
}
