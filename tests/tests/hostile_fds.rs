//! File descriptors, against the real binary: sealed segments hold none, so
//! rolling hundreds of segments leaves the broker's descriptor count where
//! it was; a broker restarts (clean or after SIGKILL) on a data dir with
//! more segments than its open-files limit; topic creation that would not
//! fit the open-files budget is refused with the numbers; segment sizes and
//! ages below their minimums are refused, and a data dir that holds such
//! settings from before still opens.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_client::{Acks, Client, ErrorCode, TopicConfig};
use ferry_e2e::{broker_exit, Broker};
use ferry_protocol::batch::{BatchBuilder, NewRecord};
use ferry_protocol::messages::FetchRequest;
use ferry_storage::config::{SEGMENT_BYTES_MIN, SEGMENT_MS_MIN};

/// Segments rolled by the tests that roll many: 3 descriptors each before
/// sealed segments stopped holding any, far past the limits used here.
const SEGMENTS: u64 = 300;
/// One record per batch, just over half a minimum-size segment: every
/// batch fills a segment of its own.
const VALUE_BYTES: usize = SEGMENT_BYTES_MIN as usize / 2 + 4096;
/// Descriptors the broker may gain while rolling (a just-sealed segment
/// waiting for its fsync, a connection, a directory being fsynced).
const ROLLING_FDS_SLACK: usize = 12;
/// How long rolling `SEGMENTS` segments may take.
const ROLL_TIMEOUT: Duration = Duration::from_secs(180);

/// Descriptors the process `pid` holds now.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// The soft open-files limit of process `pid`.
fn soft_open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn one_record_batch(value: Bytes) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.push(&NewRecord {
        timestamp_ms: ferry_client::now_ms() as i64,
        value: Some(value),
        ..NewRecord::default()
    });
    builder.finish()
}

/// A one-partition topic with the smallest segments a topic may have.
async fn create_rolling_topic(client: &Client, name: &str) {
    let config = TopicConfig {
        partitions: 1,
        segment_bytes: Some(SEGMENT_BYTES_MIN),
        ..TopicConfig::default()
    };
    client.create_topic_with(name, &config).await.unwrap();
}

/// Appends one-record batches, each its own segment, until the partition
/// has `segments` segments; returns the records appended.
async fn roll_segments(client: &Client, topic: &str, segments: u64) -> u64 {
    let batch = one_record_batch(Bytes::from(vec![b'x'; VALUE_BYTES]));
    let deadline = Instant::now() + ROLL_TIMEOUT;
    for appended in 0..segments + 2 {
        let described = client.describe_topic(topic).await.unwrap();
        if described.partitions[0].segments >= segments {
            return appended;
        }
        assert!(Instant::now() < deadline, "rolled only {appended} segments");
        client
            .wire()
            .produce(topic, 0, batch.clone(), Acks::Durable)
            .await
            .unwrap();
    }
    panic!("{segments} segments were not reached: a batch per segment was expected")
}

/// The value of the record at `offset` of partition 0.
async fn value_at(client: &Client, topic: &str, offset: u64) -> Bytes {
    let request = FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset,
        max_bytes: 1,
        ..FetchRequest::default()
    };
    let fetched = client.wire().fetch(&request).await.unwrap();
    ferry_protocol::batch::BatchIter::new(fetched.records, 1 << 26)
        .flatten()
        .flat_map(|(header, body)| ferry_protocol::batch::RecordIter::new(body, header).flatten())
        .find(|record| record.offset == offset)
        .and_then(|record| record.value)
        .unwrap_or_else(|| panic!("no record at offset {offset}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_many_segments_does_not_hold_their_fds() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    create_rolling_topic(&client, "rolls").await;
    let before = open_fds(broker.pid());
    let records = roll_segments(&client, "rolls", SEGMENTS).await;
    let rolled = open_fds(broker.pid());
    // Sealed segments are read through maps, not descriptors.
    for offset in [0, records / 2, records - 1] {
        assert_eq!(value_at(&client, "rolls", offset).await.len(), VALUE_BYTES);
    }
    let read = open_fds(broker.pid());
    eprintln!("broker fds: {before} before, {rolled} after {SEGMENTS} segments, {read} after reading them");
    for (when, fds) in [("after rolling", rolled), ("after reading", read)] {
        assert!(
            fds <= before + ROLLING_FDS_SLACK,
            "{when}: {fds} descriptors, {before} before {SEGMENTS} segments"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_would_exceed_the_fd_budget_is_refused() {
    let broker = Broker::start_with(&["--max-open-files", "1024", "--max-connections", "64"]);
    assert_eq!(soft_open_files_limit(broker.pid()), Some(1024));
    let client = broker.client().await;
    let refused = client.create_topic("wide", 4096).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::InvalidConfig), "{refused}");
    let message = refused.to_string();
    for part in [
        "creating 4096 partitions",
        "~12288 open files",
        "limit 1024",
        "ulimit -n",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    client.create_topic("fits", 100).await.unwrap();
    let refused = client.create_topic("more", 150).await.unwrap_err();
    assert!(refused.to_string().contains("100 open"), "{refused}");
    client.create_topic("rest", 100).await.unwrap();
    // What was admitted works, and the broker still has descriptors for
    // new connections.
    let fds = open_fds(broker.pid());
    assert!((600..1024 - 64).contains(&fds), "{fds} descriptors");
    for _ in 0..10 {
        let other = broker.client().await;
        other.list_topics().await.unwrap();
    }
    client
        .wire()
        .produce(
            "fits",
            99,
            one_record_batch(Bytes::from("v")),
            Acks::Durable,
        )
        .await
        .unwrap();
    // Deleting a topic gives its share back.
    client.delete_topic("fits").await.unwrap();
    client.create_topic("again", 100).await.unwrap();
    assert!(broker.log_contains("open files budgeted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarts_on_a_data_dir_with_many_segments() {
    let _exclusive = ferry_e2e::exclusive().await;
    // Fewer descriptors than 3 per segment: holding sealed segments' files
    // open would fail while rolling, and again at every start.
    let limit = 512;
    let mut broker = Broker::start_with(&[
        "--max-open-files",
        &limit.to_string(),
        "--max-connections",
        "16",
    ]);
    let client = broker.client().await;
    create_rolling_topic(&client, "kept").await;
    let mut records = roll_segments(&client, "kept", SEGMENTS).await;
    drop(client);
    for (how, clean) in [("after SIGKILL", false), ("after SIGTERM", true)] {
        if clean {
            assert!(broker.terminate().success());
        } else {
            broker.kill9();
        }
        broker.restart();
        let client = broker.client().await;
        let partition = client.describe_topic("kept").await.unwrap().partitions[0].clone();
        assert_eq!(partition.end_offset, records, "{how}");
        assert!(partition.segments >= SEGMENTS, "{how}");
        assert_eq!(
            value_at(&client, "kept", 0).await.len(),
            VALUE_BYTES,
            "{how}"
        );
        let appended = client
            .wire()
            .produce(
                "kept",
                0,
                one_record_batch(Bytes::from("more")),
                Acks::Durable,
            )
            .await
            .unwrap();
        assert_eq!(appended, Some((records, records)), "{how}");
        records += 1;
        let fds = open_fds(broker.pid());
        assert!(fds < limit / 4, "{how}: {fds} descriptors");
    }
}

#[tokio::test]
async fn segment_sizes_and_ages_below_their_minimums_are_refused() {
    let broker = Broker::start();
    let client = broker.client().await;
    let cases = [
        ("segment_bytes", Some(4096), None, SEGMENT_BYTES_MIN),
        ("segment_ms", None, Some(1), SEGMENT_MS_MIN),
    ];
    for (key, segment_bytes, segment_ms, minimum) in cases {
        let config = TopicConfig {
            partitions: 1,
            segment_bytes,
            segment_ms,
            ..TopicConfig::default()
        };
        let refused = client.create_topic_with(key, &config).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::InvalidConfig), "{refused}");
        let message = refused.to_string();
        assert!(
            message.contains(key) && message.contains(&minimum.to_string()),
            "{message}"
        );
    }
    let smallest = TopicConfig {
        partitions: 1,
        segment_bytes: Some(SEGMENT_BYTES_MIN),
        segment_ms: Some(SEGMENT_MS_MIN),
        ..TopicConfig::default()
    };
    client
        .create_topic_with("smallest", &smallest)
        .await
        .unwrap();
    // The broker-wide defaults are checked the same way, at start.
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().to_string_lossy().to_string();
    for (flag, value, key) in [
        ("--segment-bytes", "4096", "segment_bytes"),
        ("--segment-ms", "1", "segment_ms"),
    ] {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            flag,
            value,
        ];
        let (code, stderr) = broker_exit(&args, Duration::from_secs(20));
        assert_eq!(code, Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(key), "{stderr}");
    }
}

/// CRC-32 (IEEE), as the broker's metadata files carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Rewrites the stored settings of every topic in the data dir's metadata
/// file (8-byte magic, CRC-32 of the JSON, the JSON).
fn rewrite_topic_settings(data_dir: &std::path::Path, key: &str, value: u64) {
    let path = data_dir.join("meta/topics.meta");
    let bytes = std::fs::read(&path).unwrap();
    let mut topics: serde_json::Value = serde_json::from_slice(&bytes[12..]).unwrap();
    for topic in topics.as_array_mut().unwrap() {
        topic[key] = value.into();
    }
    let json = serde_json::to_vec(&topics).unwrap();
    let mut rewritten = bytes[..8].to_vec();
    rewritten.extend_from_slice(&crc32(&json).to_be_bytes());
    rewritten.extend_from_slice(&json);
    std::fs::write(&path, rewritten).unwrap();
}

#[tokio::test]
async fn a_data_dir_holding_settings_below_the_minimums_still_opens() {
    let mut broker = Broker::start();
    let client = broker.client().await;
    create_rolling_topic(&client, "older").await;
    client
        .wire()
        .produce(
            "older",
            0,
            one_record_batch(Bytes::from("kept")),
            Acks::Durable,
        )
        .await
        .unwrap();
    assert!(broker.terminate().success());
    // As a broker from before the minimums would have written it.
    rewrite_topic_settings(&broker.data_dir, "segment_bytes", 4096);
    rewrite_topic_settings(&broker.data_dir, "segment_ms", 1);
    broker.restart();
    assert!(broker.log_contains("below today's minimums"));
    let client = broker.client().await;
    let described = client.describe_topic("older").await.unwrap();
    let config = described.config.unwrap_or_default();
    assert_eq!(
        (config.segment_bytes, config.segment_ms),
        (Some(SEGMENT_BYTES_MIN), Some(SEGMENT_MS_MIN)),
        "raised for new segments"
    );
    assert_eq!(&value_at(&client, "older", 0).await[..], b"kept");
    let appended = client
        .wire()
        .produce(
            "older",
            0,
            one_record_batch(Bytes::from("more")),
            Acks::Durable,
        )
        .await
        .unwrap();
    assert_eq!(appended, Some((1, 1)));
}
