//! Crash loop: producers with acks=durable, a consumer-group member
//! committing, and a queue consumer acking, while the broker is killed with
//! SIGKILL at random moments and restarted. After every cycle the verifier
//! checks that
//! - every acknowledged record is at its acknowledged offset with its bytes
//!   (lost write / inconsistent offset),
//! - no value sits at two offsets (duplicate: acks=durable, no retries),
//! - committed group offsets never went backwards,
//! - reads are monotonic: within one group session, and in the verifier's
//!   read from the start, a partition's offsets only go up,
//! - no queue message whose ack was acknowledged is delivered again,
//! - the broker starts, recovers and serves,
//!
//! and at the end that no acknowledged record went unseen: the group and
//! the queue each delivered every one of them at least once.
//!
//! CI runs 20 cycles; `FERRY_CRASH_CYCLES=500` is the long mode (run it with
//! `--release`: every cycle re-reads everything written so far).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_client::{
    Client, GroupConfig, GroupConsumer, OffsetReset, Producer, ProducerRecord, QueueConsumer,
};
use ferry_e2e::Broker;
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
    /// Every record a group member or queue consumer was given.
    group_seen: HashSet<(u32, u64)>,
    queue_seen: HashSet<(u32, u64)>,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

/// A client for one cycle's tasks: it does not reconnect once the broker
/// is killed (the default would ride through the restart), so the tasks
/// end with the cycle.
async fn until_killed(addr: &str) -> Client {
    let mut options = ferry_client::ClientOptions::default();
    options.reconnect.deadline = Some(Duration::ZERO);
    Client::connect_with(addr, options).await.unwrap()
}

async fn produce(client: Client, cycle: usize, ledger: Shared) {
    let Ok(producer) = Producer::new(&client, TOPIC).await else {
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

fn group_config() -> GroupConfig {
    let mut config = GroupConfig::new("crash-group", &[TOPIC]);
    config.auto_commit_interval_ms = None;
    config.session_timeout_ms = 1000;
    config.offset_reset = OffsetReset::Earliest;
    config.consumer.max_wait_ms = 50;
    config
}

/// Records what one poll of a group session delivered; offsets must rise.
fn record_group_poll(
    ledger: &Shared,
    last: &mut HashMap<u32, u64>,
    records: &[ferry_client::ConsumerRecord],
) {
    let mut ledger = ledger.lock().unwrap();
    for record in records {
        if let Some(previous) = last.insert(record.partition, record.offset) {
            if record.offset <= previous {
                ledger.violations.push(format!(
                    "non-monotonic group read on partition {}: {} after {previous}",
                    record.partition, record.offset
                ));
            }
        }
        ledger.group_seen.insert((record.partition, record.offset));
    }
}

async fn consume_group(client: Client, ledger: Shared) {
    let Ok(mut member) = GroupConsumer::join(&client, group_config()).await else {
        return;
    };
    let mut last = HashMap::new();
    loop {
        let Ok(records) = member.poll().await else {
            return;
        };
        record_group_poll(&ledger, &mut last, &records);
        if member.commit().await.is_err() {
            return;
        }
        let Ok(offsets) = client.fetch_offsets("crash-group", &[]).await else {
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
        ledger.lock().unwrap().queue_seen.insert(key);
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
    let total: u64 = ferry_e2e::end_offsets(client, TOPIC).await.iter().sum();
    let mut stored: HashMap<(u32, u64), String> = HashMap::new();
    let mut problems = Vec::new();
    let mut next: HashMap<u32, u64> = HashMap::new();
    for record in ferry_e2e::read_all(client, TOPIC, total as usize).await {
        // From the start, a partition reads as 0, 1, 2, ...: no gap, no step back.
        let expected = next.entry(record.partition).or_insert(0);
        if record.offset != *expected {
            problems.push(format!(
                "partition {} read offset {} where {} was next",
                record.partition, record.offset, expected
            ));
        }
        *expected = record.offset + 1;
        stored.insert(
            (record.partition, record.offset),
            String::from_utf8(record.value.unwrap().to_vec()).unwrap(),
        );
    }
    if (stored.len() as u64) < total {
        problems.push(format!("read {} of {total} records", stored.len()));
    }
    let committed = client
        .fetch_offsets("crash-group", &[])
        .await
        .unwrap_or_default();
    let mut ledger = ledger.lock().unwrap();
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

fn unseen(ledger: &Shared, seen: fn(&Ledger) -> &HashSet<(u32, u64)>) -> HashSet<(u32, u64)> {
    let ledger = ledger.lock().unwrap();
    let seen = seen(&ledger);
    ledger
        .acked
        .keys()
        .filter(|key| !seen.contains(key))
        .copied()
        .collect()
}

/// Jepsen's "unseen": with the broker up, a group member and a queue
/// consumer run until each has been given every acknowledged record.
async fn check_nothing_unseen(client: &Client, ledger: &Shared) {
    // 60 s, plus time to read a long mode's records in a debug build.
    let records = ledger.lock().unwrap().acked.len() as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60 + records / 5_000);
    let mut group_unseen = unseen(ledger, |l| &l.group_seen);
    let mut member = GroupConsumer::join(client, group_config()).await.unwrap();
    let mut last = HashMap::new();
    while !group_unseen.is_empty() && tokio::time::Instant::now() < deadline {
        let records = member.poll().await.unwrap();
        record_group_poll(ledger, &mut last, &records);
        for record in &records {
            group_unseen.remove(&(record.partition, record.offset));
        }
    }
    let mut queue_unseen = unseen(ledger, |l| &l.queue_seen);
    let mut consumer = QueueConsumer::subscribe(client, TOPIC, "crash-queue", 500)
        .await
        .unwrap();
    let mut acks = Vec::new();
    while !queue_unseen.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(Ok(delivery)) = consumer.recv_timeout(left).await else {
            break;
        };
        queue_unseen.remove(&(delivery.partition, delivery.offset));
        // Queued now, confirmed in batches: the prefetch window keeps moving.
        acks.push(delivery.ack());
    }
    for confirmed in futures::future::join_all(acks).await {
        confirmed.unwrap();
    }
    assert!(
        group_unseen.is_empty() && queue_unseen.is_empty(),
        "acknowledged but never delivered: group {} (e.g. {:?}), queue {} (e.g. {:?})",
        group_unseen.len(),
        group_unseen.iter().next(),
        queue_unseen.len(),
        queue_unseen.iter().next()
    );
    let violations = ledger.lock().unwrap().violations.clone();
    assert!(violations.is_empty(), "at the end: {violations:#?}");
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
        .create_queue(
            TOPIC,
            "crash-queue",
            &ferry_client::QueueConfig {
                ack_timeout_ms: 2000,
                max_deliveries: 1000,
                ..ferry_client::QueueConfig::default()
            },
        )
        .await
        .unwrap();
    let ledger: Shared = Arc::default();
    let mut rng = rand::thread_rng();
    let mut verified = 0;
    for cycle in 0..cycles {
        let tasks = vec![
            tokio::spawn(produce(
                until_killed(&broker.addr).await,
                cycle,
                ledger.clone(),
            )),
            tokio::spawn(consume_group(
                until_killed(&broker.addr).await,
                ledger.clone(),
            )),
            tokio::spawn(consume_queue(
                until_killed(&broker.addr).await,
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
    check_nothing_unseen(&broker.client().await, &ledger).await;
    let ledger = ledger.lock().unwrap();
    eprintln!(
        "crash loop: {cycles} cycles, {verified} acknowledged records verified, {} queue acks, \
         every one seen by the group and the queue, 0 lost",
        ledger.queue_acked.len()
    );
    assert!(
        verified > 0,
        "nothing was acknowledged: the loop tested nothing"
    );
}
