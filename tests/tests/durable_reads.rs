//! Consumers read only durable data, through the real broker binary. A topic
//! with a long fsync interval keeps written data ahead of the durable end
//! for seconds, which makes the difference visible: a default fetch (and
//! `ferryctl consume`, and a queue) sees a written record only once the
//! periodic fsync has made it durable, and a parked long poll wakes then;
//! `isolation = written` sees it at once. On an `fsync=always` topic, no
//! default fetch under load returns a record past `durable_offset`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_client::{
    Acks, Client, Consumer, ConsumerConfig, FsyncPolicy, Isolation, Producer, ProducerConfig,
    ProducerRecord, QueueConfig, QueueConsumer, SeekTo, TopicConfig,
};
use ferry_e2e::Broker;
use ferry_protocol::batch::{BatchIter, RecordIter, BATCH_BYTES_LIMIT};
use ferry_protocol::messages::{FetchRequest, FetchResponse};

/// The slow topic's fsync interval: written data stays ahead of the
/// durable end this long, room for every check that runs inside it.
const INTERVAL_MS: u64 = 4_000;
/// How early before the next periodic fsync the checks inside one interval
/// must be done for their premise (written > durable) to hold.
const INTERVAL_MARGIN_MS: u64 = 500;
/// Records the load test produces, and how long it may take.
const LOAD_RECORDS: u64 = 5_000;
const LOAD_DEADLINE: Duration = Duration::from_secs(60);

async fn create_topic(client: &Client, name: &str, fsync: FsyncPolicy) {
    let config = TopicConfig {
        partitions: 1,
        fsync: Some(fsync),
        ..TopicConfig::default()
    };
    client.create_topic_with(name, &config).await.unwrap();
}

async fn producer(client: &Client, topic: &str, acks: Acks) -> Producer {
    let config = ProducerConfig {
        acks,
        linger_ms: 0,
        ..ProducerConfig::default()
    };
    Producer::with_config(client, topic, config).await.unwrap()
}

fn request(topic: &str, offset: u64, isolation: Isolation, max_wait_ms: u32) -> FetchRequest {
    FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset,
        max_bytes: 1 << 20,
        max_wait_ms,
        min_bytes: 1,
        isolation: isolation as u32,
    }
}

/// One fetch of partition 0 of `topic`, answered.
async fn fetch(
    client: &Client,
    topic: &str,
    offset: u64,
    isolation: Isolation,
    max_wait_ms: u32,
) -> FetchResponse {
    let request = request(topic, offset, isolation, max_wait_ms);
    client.wire().fetch(&request).await.unwrap()
}

/// (offset, value) of every record in a fetch response at or after `from`.
fn records(response: &FetchResponse, from: u64) -> Vec<(u64, String)> {
    BatchIter::new(response.records.clone(), BATCH_BYTES_LIMIT)
        .map(|batch| batch.expect("served batches are intact"))
        .flat_map(|(header, bytes)| RecordIter::new(bytes, header))
        .map(|record| record.expect("records decode"))
        .filter(|record| record.offset >= from)
        .map(|record| {
            let value = record.value.unwrap_or_default();
            (record.offset, String::from_utf8_lossy(&value).into_owned())
        })
        .collect()
}

/// (written end, durable end) of partition 0, as DescribeTopic reports them.
async fn ends(client: &Client, topic: &str) -> (u64, u64) {
    let described = client.describe_topic(topic).await.unwrap();
    let partition = &described.partitions[0];
    (partition.end_offset, partition.durable_offset)
}

/// Produces `value` with `acks=durable` on an interval topic: answered
/// right after a periodic fsync, so the next one is about an interval away.
/// Returns when the answer came.
async fn durable_produce(client: &Client, topic: &str, value: &str) -> Instant {
    let producer = producer(client, topic, Acks::Durable).await;
    let record = ProducerRecord::new(value.to_string());
    producer.send(record).await.unwrap();
    Instant::now()
}

/// Fails the test if the checks since `synced` took so long that the next
/// periodic fsync may have run: their premise would no longer hold.
fn still_inside_the_interval(synced: Instant, what: &str) {
    let elapsed = synced.elapsed();
    assert!(
        elapsed < Duration::from_millis(INTERVAL_MS - INTERVAL_MARGIN_MS),
        "{what} took {elapsed:?} after the last fsync: too slow to tell (interval {INTERVAL_MS} ms)"
    );
}

#[tokio::test]
async fn a_default_fetch_sees_written_data_only_after_the_fsync_and_its_long_poll_wakes_then() {
    let broker = Broker::start();
    let client = broker.client().await;
    create_topic(&client, "slow", FsyncPolicy::IntervalMs(INTERVAL_MS)).await;
    let synced = durable_produce(&client, "slow", "first").await;
    let poller = client.clone();
    let parked = tokio::spawn(async move {
        let max_wait_ms = 3 * INTERVAL_MS as u32;
        let response = fetch(&poller, "slow", 1, Isolation::Durable, max_wait_ms).await;
        let (_, durable) = ends(&poller, "slow").await;
        (Instant::now(), response, durable)
    });
    let written = producer(&client, "slow", Acks::Written).await;
    written.send(ProducerRecord::new("second")).await.unwrap();

    let eager = fetch(&client, "slow", 1, Isolation::Written, 0).await;
    assert_eq!(records(&eager, 1), vec![(1, "second".to_string())]);
    let default = fetch(&client, "slow", 1, Isolation::Durable, 0).await;
    assert!(default.records.is_empty(), "not durable yet: nothing");
    assert_eq!((default.next_offset, default.end_offset), (1, 2));
    let from_start = fetch(&client, "slow", 0, Isolation::Durable, 0).await;
    assert_eq!(records(&from_start, 0), vec![(0, "first".to_string())]);
    assert_eq!(from_start.next_offset, 1, "stops at the durable end");
    assert_eq!(
        ends(&client, "slow").await,
        (2, 1),
        "(written end, durable end)"
    );
    still_inside_the_interval(synced, "the fetches");

    let (woke_at, response, durable_then) = parked.await.unwrap();
    assert_eq!(records(&response, 1), vec![(1, "second".to_string())]);
    assert!(durable_then >= 2, "woke with the record durable");
    let waited = woke_at.duration_since(synced);
    assert!(
        waited >= Duration::from_millis(INTERVAL_MS / 2),
        "the long poll woke {waited:?} after the last fsync: before the next one"
    );
    assert!(
        waited < Duration::from_millis(2 * INTERVAL_MS),
        "woke at the fsync"
    );
}

#[tokio::test]
async fn consumers_and_ferryctl_choose_their_isolation() {
    let broker = Broker::start();
    let client = broker.client().await;
    create_topic(&client, "slow", FsyncPolicy::IntervalMs(INTERVAL_MS)).await;
    let synced = durable_produce(&client, "slow", "first").await;
    let written = producer(&client, "slow", Acks::Written).await;
    written.send(ProducerRecord::new("second")).await.unwrap();

    let config = ConsumerConfig {
        max_wait_ms: 100,
        isolation: Isolation::Written,
        ..ConsumerConfig::default()
    };
    let mut eager = Consumer::with_config(&client, "slow", config)
        .await
        .unwrap();
    eager.assign_all(SeekTo::Offset(1)).await.unwrap();
    let seen = eager.poll().await.unwrap();
    assert_eq!(seen.first().map(|r| r.offset), Some(1), "written: at once");
    let (code, out, err) = broker.ferryctl(
        &[
            "consume",
            "slow",
            "--from",
            "1",
            "--isolation",
            "written",
            "--count",
            "1",
        ],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "second\n"), "{err}");
    let durable_args = ["consume", "slow", "--from", "1", "--timeout-ms", "300"];
    let (code, out, err) = broker.ferryctl(&durable_args, "");
    assert_eq!((code, out.as_str()), (0, ""), "durable by default: {err}");
    let mut careful = Consumer::new(&client, "slow").await.unwrap();
    careful.assign_all(SeekTo::Offset(1)).await.unwrap();
    let mut got = careful.poll().await.unwrap();
    assert!(
        got.is_empty(),
        "a default poll returned {got:?} before the fsync"
    );
    still_inside_the_interval(synced, "the consumers");
    let deadline = Instant::now() + Duration::from_millis(3 * INTERVAL_MS);
    while got.is_empty() && Instant::now() < deadline {
        got = careful.poll().await.unwrap();
    }
    assert_eq!(got.first().map(|r| r.offset), Some(1), "after the fsync");
    assert!(ends(&client, "slow").await.1 >= 2);
}

#[tokio::test]
async fn a_queue_delivers_a_record_only_once_it_is_durable() {
    let broker = Broker::start();
    let client = broker.client().await;
    create_topic(&client, "slow", FsyncPolicy::IntervalMs(INTERVAL_MS)).await;
    client
        .create_queue("slow", "q", &QueueConfig::default())
        .await
        .unwrap();
    let mut queue = QueueConsumer::subscribe(&client, "slow", "q", 10)
        .await
        .unwrap();
    let synced = durable_produce(&client, "slow", "first").await;
    let first = queue.recv_timeout(Duration::from_secs(10)).await;
    assert_eq!(first.unwrap().unwrap().value, Some(Bytes::from("first")));
    let written = producer(&client, "slow", Acks::Written).await;
    written.send(ProducerRecord::new("second")).await.unwrap();
    let early = queue.recv_timeout(Duration::from_millis(300)).await;
    assert!(early.is_none(), "delivered before the fsync: {early:?}");
    still_inside_the_interval(synced, "the early receive");
    let second = queue
        .recv_timeout(Duration::from_millis(3 * INTERVAL_MS))
        .await
        .expect("delivered after the fsync")
        .unwrap();
    assert_eq!(
        (second.offset, second.value),
        (1, Some(Bytes::from("second")))
    );
    assert!(ends(&client, "slow").await.1 >= 2, "durable when delivered");
}

/// Produces `LOAD_RECORDS` with `acks=written`, back to back.
async fn produce_load(client: Client, topic: &'static str) {
    let producer = producer(&client, topic, Acks::Written).await;
    let sends: Vec<_> = (0..LOAD_RECORDS)
        .map(|i| producer.send(ProducerRecord::new(format!("v{i}"))))
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
}

#[tokio::test]
async fn under_load_a_default_fetch_never_returns_a_record_past_the_durable_end() {
    let broker = Broker::start();
    let client = broker.client().await;
    create_topic(&client, "busy", FsyncPolicy::Always).await;
    let load = tokio::spawn(produce_load(client.clone(), "busy"));
    let deadline = Instant::now() + LOAD_DEADLINE;
    let (mut offset, mut fetches) = (0, 0);
    while offset < LOAD_RECORDS && Instant::now() < deadline {
        let request = FetchRequest {
            max_bytes: 64 * 1024,
            ..request("busy", offset, Isolation::Durable, 1_000)
        };
        let response = client.wire().fetch(&request).await.unwrap();
        // The durable end only grows: read after the fetch, it bounds it.
        let (_, durable) = ends(&client, "busy").await;
        let got = records(&response, offset);
        if let Some((last, _)) = got.last() {
            assert!(*last < durable, "served {last}, durable end {durable}");
            assert_eq!(got[0].0, offset, "no gap");
        }
        offset = response.next_offset.max(offset);
        fetches += 1;
    }
    load.await.unwrap();
    assert_eq!(
        offset, LOAD_RECORDS,
        "every record read ({fetches} fetches)"
    );
}
