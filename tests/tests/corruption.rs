//! Torn and corrupt files on disk, found by the real broker at start:
//! a torn tail is cut to the last intact batch, a flipped bit in sealed data
//! fences that partition only (never truncated, never served), damaged
//! indexes, metadata and internal state are rebuilt or set aside, and the
//! broker keeps serving everything else.

use std::path::{Path, PathBuf};

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_client::{Client, Consumer, Producer, ProducerRecord, QueueConsumer, SeekTo};
use ferry_e2e::Broker;
use ferry_protocol::messages::FetchRequest;
use ferry_protocol::ErrorCode;
use ferry_storage::config::SEGMENT_BYTES_MIN;

fn segments(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

/// Filled records are 32 KiB: 100 of them span several segments of the
/// smallest size (1 MiB).
const FILL_VALUE_BYTES: usize = 32 * 1024;

async fn fill(broker: &Broker, topic: &str, partitions: u32, per_partition: u32) {
    let client = broker.client().await;
    client.create_topic(topic, partitions).await.unwrap();
    let producer = Producer::new(&client, topic).await.unwrap();
    for p in 0..partitions {
        for i in 0..per_partition {
            producer
                .send(
                    ProducerRecord::new(format!("{p}-{i}-{}", "x".repeat(FILL_VALUE_BYTES)))
                        .with_partition(p),
                )
                .await
                .unwrap();
        }
    }
}

async fn read_all(
    client: &ferry_client::Client,
    topic: &str,
    partition: u32,
) -> Result<Vec<String>, ferry_client::ClientError> {
    let end = client.describe_topic(topic).await?.partitions[partition as usize].end_offset;
    let mut consumer = Consumer::new(client, topic).await?;
    consumer.assign(&[partition], SeekTo::Earliest).await?;
    let mut values = Vec::new();
    while (values.len() as u64) < end {
        for record in consumer.poll().await? {
            values.push(String::from_utf8_lossy(&record.value.unwrap()).into_owned());
        }
    }
    Ok(values)
}

#[tokio::test]
async fn a_flipped_bit_in_sealed_data_fences_only_that_partition() {
    let mut broker = Broker::start_with(&["--segment-bytes", &SEGMENT_BYTES_MIN.to_string()]);
    fill(&broker, "rot", 2, 100).await;
    assert!(broker.terminate().success());
    let dir = broker.data_dir.join("topics/rot/0");
    let sealed = &segments(&dir, ".log")[0];
    let mut bytes = std::fs::read(sealed).unwrap();
    bytes[1000] ^= 0x04;
    std::fs::write(sealed, bytes).unwrap();
    broker.restart();
    let client = broker.client().await;
    // Nothing truncated: the end offset is what it was.
    let described = client.describe_topic("rot").await.unwrap();
    assert_eq!(described.partitions[0].end_offset, 100);
    // The other partition is served in full.
    assert_eq!(read_all(&client, "rot", 1).await.unwrap().len(), 100);
    // Reading through the rot fails clearly, and fences the partition.
    let error = read_all(&client, "rot", 0).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::CorruptData), "{error}");
    let problem = client.describe_topic("rot").await.unwrap().partitions[0]
        .problem
        .clone()
        .unwrap_or_default();
    assert!(problem.contains("fenced"), "{problem}");
    let late = client
        .wire()
        .fetch(&FetchRequest {
            topic: "rot".into(),
            partition: 0,
            offset: 90,
            max_bytes: 1 << 20,
            ..FetchRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some(ErrorCode::CorruptData));
    assert!(broker.log_contains("corrupt data: partition fenced"));
}

#[tokio::test]
async fn a_torn_active_tail_is_cut_to_the_last_intact_batch() {
    let mut broker = Broker::start();
    fill(&broker, "torn", 1, 50).await;
    broker.kill9();
    let dir = broker.data_dir.join("topics/torn/0");
    let active = segments(&dir, ".log").pop().unwrap();
    let len = std::fs::metadata(&active).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    file.set_len(len - 100).unwrap();
    drop(file);
    broker.restart();
    let client = broker.client().await;
    let values = read_all(&client, "torn", 0).await.unwrap();
    assert_eq!(values.len(), 49, "only the torn last batch is gone");
    assert!(values
        .iter()
        .enumerate()
        .all(|(i, v)| v.starts_with(&format!("0-{i}-"))));
    assert!(broker.log_contains("truncating torn or corrupt tail"));
    let producer = Producer::new(&client, "torn").await.unwrap();
    assert_eq!(
        producer
            .send(ProducerRecord::new("again"))
            .await
            .unwrap()
            .offset,
        Some(49)
    );
}

#[tokio::test]
async fn damaged_indexes_metadata_and_internal_state_are_recovered() {
    let mut broker = Broker::start_with(&["--segment-bytes", &SEGMENT_BYTES_MIN.to_string()]);
    fill(&broker, "many", 2, 100).await;
    let client = broker.client().await;
    client
        .reset_offsets("g", "many", SeekTo::Offset(7))
        .await
        .unwrap();
    assert!(broker.terminate().success());
    let data = broker.data_dir.clone();
    // Garble the first sealed index of partition 0, delete one of partition 1.
    let p0 = segments(&data.join("topics/many/0"), ".index");
    let mut index = std::fs::read(&p0[0]).unwrap();
    index.iter_mut().take(16).for_each(|b| *b ^= 0xff);
    std::fs::write(&p0[0], index).unwrap();
    std::fs::remove_file(&segments(&data.join("topics/many/1"), ".index")[0]).unwrap();
    // Flip a byte of the topic metadata.
    let meta = data.join("meta/topics.meta");
    let mut bytes = std::fs::read(&meta).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    std::fs::write(&meta, bytes).unwrap();
    // Tear the tail of the group-offset log (as a crash mid-write would).
    tear_tail(
        &data.join("internal/group-offsets"),
        &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 9],
    );
    broker.restart();
    assert!(broker.log_contains("topic metadata is corrupt"));
    let client = broker.client().await;
    for p in 0..2 {
        let values = read_all(&client, "many", p).await.unwrap();
        assert_eq!(values.len(), 100);
        assert!(values
            .iter()
            .enumerate()
            .all(|(i, v)| v.starts_with(&format!("{p}-{i}-"))));
    }
    let committed = client.fetch_offsets("g", &[]).await.unwrap();
    assert!(
        committed.iter().all(|c| c.offset == Some(7)),
        "{committed:?}"
    );
}

/// Takes `count` deliveries from queue `q` of `jobs` and acks each before
/// the next (one ack-log batch each, so the log grows).
async fn ack_some(client: &Client, count: usize, acked: &mut BTreeSet<u64>) {
    let mut consumer = QueueConsumer::subscribe(client, "jobs", "q", 500)
        .await
        .unwrap();
    for _ in 0..count {
        let delivery = consumer
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert!(
            acked.insert(delivery.offset),
            "acked message delivered again"
        );
        delivery.ack().await.unwrap();
    }
}

/// Commits the group's offset many times (the state log grows past the
/// snapshot threshold), ending at `last`.
async fn commit_many(client: &Client, last: u64) {
    for offset in (last - 60)..=last {
        client
            .reset_offsets("g", "jobs", SeekTo::Offset(offset))
            .await
            .unwrap();
    }
}

/// Appends `garbage` to the newest log segment in `dir`, as a write torn
/// by a crash would leave it.
fn tear_tail(dir: &Path, garbage: &[u8]) {
    let log = segments(dir, ".log").pop().expect("a log segment");
    let mut file = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    std::io::Write::write_all(&mut file, garbage).unwrap();
}

fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn corrupt_state_snapshots_and_a_torn_ack_log_lose_no_ack_or_commit() {
    // Tiny snapshot threshold: every clean shutdown below writes snapshots.
    let mut broker = Broker::start_with(&["--state-snapshot-bytes", "4096"]);
    fill(&broker, "jobs", 1, 600).await;
    let client = broker.client().await;
    let queue = ferry_client::QueueConfig {
        ack_timeout_ms: 60_000,
        ..ferry_client::QueueConfig::default()
    };
    client.create_queue("jobs", "q", &queue).await.unwrap();
    let mut acked = BTreeSet::new();
    // Two generations of snapshots: the newest and the one it replaced.
    ack_some(&client, 200, &mut acked).await;
    commit_many(&client, 100).await;
    assert!(broker.terminate().success());
    broker.restart();
    let client = broker.client().await;
    ack_some(&client, 200, &mut acked).await;
    commit_many(&client, 150).await;
    assert!(broker.terminate().success());
    let data = broker.data_dir.clone();
    for state in ["queue-acks", "group-offsets"] {
        let dir = data.join("internal").join(state);
        assert!(
            dir.join(format!("{state}.snapshot.prev")).exists(),
            "{state}: no previous snapshot: the test tests nothing: {:?}",
            std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name(), e.metadata().unwrap().len())
                })
                .collect::<Vec<_>>()
        );
        flip_middle_byte(&dir.join(format!("{state}.snapshot")));
    }
    // And a torn write at the end of the ack log.
    tear_tail(
        &data.join("internal/queue-acks"),
        &[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 1],
    );
    broker.restart();
    assert!(broker.log_contains("state snapshot is corrupt"));
    let client = broker.client().await;
    let described = client.describe_queue("jobs", "q").await.unwrap();
    assert_eq!((described.acked, described.ready), (400, 200));
    let committed = client.fetch_offsets("g", &[]).await.unwrap();
    assert!(
        committed.iter().all(|c| c.offset == Some(150)),
        "{committed:?}"
    );
    // Exactly the 200 unacked messages come, none of the acked ones.
    let mut rest = BTreeSet::new();
    ack_some(&client, 200, &mut rest).await;
    assert!(rest.is_disjoint(&acked), "an acked message came back");
    assert_eq!(client.describe_queue("jobs", "q").await.unwrap().ready, 0);
}
