//! Crash loop: producers with acks=durable, a consumer-group member
//! committing, and a queue consumer acking, while the broker is killed with
//! SIGKILL at random moments and restarted. After every cycle the verifier
//! checks that
//! - every acknowledged record is at its acknowledged offset with its bytes
//!   (lost write / inconsistent offset),
//! - no value sits at two offsets (duplicate: acks=durable, no retries),
//! - committed group offsets never went backwards,
//! - no queue message whose ack was acknowledged is delivered again,
//! - the broker starts, recovers and serves.
//!
//! CI runs 20 cycles; `FERRY_CRASH_CYCLES=500` is the long mode.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_client::{
    Client, GroupConfig, GroupConsumer, Producer, ProducerRecord, QueueConsumer, SeekTo,
};
use ferry_e2e::Broker;
use ferry_protocol::messages::CreateQueueRequest;
use rand::Rng;

const TOPIC: &str = "crash";
const PARTITIONS: u32 = 3;

#[derive(Default)]
struct Ledger {
    /// (partition, offset) -> value, for every acknowledged produce.
    acked: BTreeMap<(u32, u64), String>,
    /// Highest committed offset the broker acknowledged, per partition.
    committed: HashMap<u32, u64>,
    /// Queue messages whose ack the broker confirmed.
    queue_acked: HashSet<(u32, u64)>,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

async fn produce(client: Client, cycle: usize, ledger: Shared) {
    let Ok(producer) = Producer::new(client, TOPIC).await else {
        return;
    };
    for i in 0.. {
        let value = format!("c{cycle}-{i}");
        let sends: Vec<_> = (0..20).map(|j| (format!("{value}-{j}"), j)).collect();
        let futures: Vec<_> = sends
            .iter()
            .map(|(v, j)| producer.send(ProducerRecord::new(v.clone()).with_key(format!("{j}"))))
            .collect();
        for ((value, _), sent) in sends
            .into_iter()
            .zip(futures::future::join_all(futures).await)
        {
            match sent {
                Ok(meta) => {
                    let offset = meta.offset.expect("durable acks carry offsets");
                    ledger
                        .lock()
                        .unwrap()
                        .acked
                        .insert((meta.partition, offset), value);
                }
                Err(_) => return,
            }
        }
    }
}

async fn consume_group(client: Client, ledger: Shared) {
    let mut config = GroupConfig::new("crash-group", &[TOPIC]);
    config.auto_commit_interval_ms = None;
    config.session_timeout_ms = 1000;
    config.consumer.max_wait_ms = 50;
    let Ok(mut member) = GroupConsumer::join(client.clone(), config).await else {
        return;
    };
    loop {
        if member.poll().await.is_err() || member.commit().await.is_err() {
            return;
        }
        let Ok(offsets) = client.fetch_offsets("crash-group", vec![]).await else {
            return;
        };
        let mut ledger = ledger.lock().unwrap();
        for committed in offsets {
            if let Some(offset) = committed.offset {
                let best = ledger.committed.entry(committed.partition).or_insert(0);
                *best = (*best).max(offset);
            }
        }
    }
}

async fn consume_queue(client: Client, ledger: Shared) {
    let Ok(mut consumer) = QueueConsumer::subscribe(&client, TOPIC, "crash-queue", 50).await else {
        return;
    };
    while let Some(Ok(delivery)) = consumer.recv().await {
        let key = (delivery.partition, delivery.offset);
        if ledger.lock().unwrap().queue_acked.contains(&key) {
            ledger.lock().unwrap().violations.push(format!(
                "queue message {key:?} delivered again after its ack was confirmed"
            ));
        }
        if delivery.ack().await.is_err() {
            return;
        }
        ledger.lock().unwrap().queue_acked.insert(key);
    }
}

/// Reads every partition from the start and checks the ledger against it.
async fn verify(client: &Client, ledger: &Shared) -> usize {
    let ends: Vec<u64> = client
        .describe_topic(TOPIC)
        .await
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.end_offset)
        .collect();
    let mut consumer = ferry_client::Consumer::new(client.clone(), TOPIC)
        .await
        .unwrap();
    consumer.assign_all(SeekTo::Earliest).await.unwrap();
    let mut stored: HashMap<(u32, u64), String> = HashMap::new();
    let total: u64 = ends.iter().sum();
    while (stored.len() as u64) < total {
        for record in consumer.poll().await.unwrap() {
            stored.insert(
                (record.partition, record.offset),
                String::from_utf8(record.value.unwrap().to_vec()).unwrap(),
            );
        }
    }
    let committed = client
        .fetch_offsets("crash-group", vec![])
        .await
        .unwrap_or_default();
    let mut ledger = ledger.lock().unwrap();
    let mut problems = Vec::new();
    for (key, value) in &ledger.acked {
        match stored.get(key) {
            Some(found) if found == value => {}
            Some(found) => problems.push(format!(
                "inconsistent offset {key:?}: acked {value:?}, stored {found:?}"
            )),
            None => problems.push(format!("lost write {key:?} ({value:?})")),
        }
    }
    let mut seen = HashMap::new();
    for (key, value) in &stored {
        if let Some(other) = seen.insert(value.clone(), *key) {
            problems.push(format!("duplicate: {value:?} at {other:?} and {key:?}"));
        }
    }
    for (partition, acked) in &ledger.committed {
        let now = committed
            .iter()
            .find(|c| c.partition == *partition)
            .and_then(|c| c.offset)
            .unwrap_or(0);
        if now < *acked {
            problems.push(format!(
                "committed offset of partition {partition} went back from {acked} to {now}"
            ));
        }
    }
    ledger.violations.extend(problems);
    ledger.acked.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_crash_loop_loses_nothing_acknowledged() {
    let _exclusive = ferry_e2e::exclusive().await;
    let cycles: usize = std::env::var("FERRY_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic(TOPIC, PARTITIONS).await.unwrap();
    client
        .create_queue(&CreateQueueRequest {
            topic: TOPIC.into(),
            queue: "crash-queue".into(),
            ack_timeout_ms: 2000,
            max_deliveries: 1000,
            ..CreateQueueRequest::default()
        })
        .await
        .unwrap();
    let ledger: Shared = Arc::default();
    let mut rng = rand::thread_rng();
    let mut verified = 0;
    for cycle in 0..cycles {
        let tasks = vec![
            tokio::spawn(produce(
                Client::connect(&broker.addr).await.unwrap(),
                cycle,
                ledger.clone(),
            )),
            tokio::spawn(consume_group(
                Client::connect(&broker.addr).await.unwrap(),
                ledger.clone(),
            )),
            tokio::spawn(consume_queue(
                Client::connect(&broker.addr).await.unwrap(),
                ledger.clone(),
            )),
        ];
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
        broker.kill9();
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        broker.restart();
        let client = broker.client().await;
        verified = verify(&client, &ledger).await;
        let violations = ledger.lock().unwrap().violations.clone();
        assert!(violations.is_empty(), "cycle {cycle}: {violations:#?}");
    }
    let ledger = ledger.lock().unwrap();
    eprintln!(
        "crash loop: {cycles} cycles, {verified} acknowledged records verified, {} queue acks, 0 lost",
        ledger.queue_acked.len()
    );
    assert!(
        verified > 0,
        "nothing was acknowledged: the loop tested nothing"
    );
}
