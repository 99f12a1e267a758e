//! What a careless operator does, tried against the real binary: a second
//! broker on a live data directory, delete/create churn of one topic name,
//! absurd config values. Nothing acknowledged is lost or resurrected.

use std::time::Duration;

use ferry_client::{ErrorCode, Producer, ProducerRecord, TopicConfig};
use ferry_e2e::{broker_exit, Broker};
use ferry_storage::config::{RETENTION_MS_LIMIT, SEGMENT_BYTES_MIN};

#[tokio::test]
async fn a_second_broker_on_the_same_data_dir_refuses_to_start() {
    let first = Broker::start();
    let client = first.client().await;
    client.create_topic("kept", 1).await.unwrap();
    let data_dir = first.data_dir.to_string_lossy().to_string();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", &data_dir];
    let (code, stderr) = broker_exit(&args, Duration::from_secs(20));
    assert_eq!(code, Some(1), "refused, not running: {stderr}");
    assert!(stderr.contains(&data_dir), "names the directory: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "names the holder: {stderr}"
    );
    // The first broker is untouched.
    assert_eq!(client.list_topics().await.unwrap().len(), 1);
}

#[tokio::test]
async fn no_retention_value_deletes_data_early() {
    let broker = Broker::start_with(&[
        "--retention-check-ms",
        "100",
        "--segment-bytes",
        &SEGMENT_BYTES_MIN.to_string(),
    ]);
    let client = broker.client().await;
    let huge = TopicConfig {
        partitions: 1,
        retention_ms: Some(u64::MAX),
        ..TopicConfig::default()
    };
    let refused = client.create_topic_with("huge", &huge).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::InvalidConfig), "{refused}");
    assert!(refused.to_string().contains("retention_ms"), "{refused}");
    let century = TopicConfig {
        retention_ms: Some(RETENTION_MS_LIMIT),
        ..huge
    };
    client.create_topic_with("kept", &century).await.unwrap();
    let producer = Producer::new(&client, "kept").await.unwrap();
    // 50 records of 32 KiB: two segments of the smallest size.
    for i in 0..50 {
        let record = ProducerRecord::new(format!("{i:0>32768}"));
        producer.send(record).await.unwrap();
    }
    // Many sealed segments and several retention passes later, all is there.
    let segments = |c: &ferry_client::Client| {
        let c = c.clone();
        async move { c.describe_topic("kept").await.unwrap().partitions[0].clone() }
    };
    assert!(segments(&client).await.segments > 1);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < deadline {
        assert_eq!(segments(&client).await.start_offset, 0, "nothing deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The broker-wide default is checked the same way, at start.
    let (code, stderr) = broker_exit(
        &["--retention-ms", &u64::MAX.to_string()],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("retention_ms"), "{stderr}");
}

/// Churned records are 16 KiB: a batch of 8 is 128 KiB.
const CHURN_VALUE_BYTES: usize = 16 * 1024;

fn batch(value: &str) -> bytes::Bytes {
    let mut builder = ferry_protocol::batch::BatchBuilder::new();
    for _ in 0..8 {
        builder.push(&ferry_protocol::batch::NewRecord {
            timestamp_ms: 1,
            value: Some(bytes::Bytes::from(value.to_string())),
            ..Default::default()
        });
    }
    builder.finish()
}

/// Producers that append to "churn" until told to pause; `in_flight`
/// counts produce requests under way.
struct Churners {
    paused: tokio::sync::watch::Sender<bool>,
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Churners {
    fn start(client: &ferry_client::Client, producers: usize) -> Churners {
        use std::sync::atomic::Ordering;
        let (paused, watch) = tokio::sync::watch::channel(false);
        let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks = (0..producers)
            .map(|_| {
                let (client, mut watch, in_flight) =
                    (client.clone(), watch.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let old = "o".repeat(CHURN_VALUE_BYTES);
                    // Bounded: at most 20,000 requests per producer.
                    for _ in 0..20_000 {
                        if watch.wait_for(|paused| !paused).await.is_err() {
                            return;
                        }
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let wire = client.wire();
                        let _ = wire
                            .produce("churn", 0, batch(&old), ferry_client::Acks::Written)
                            .await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Churners {
            paused,
            in_flight,
            tasks,
        }
    }

    /// Pauses the producers and waits until none has a request under way.
    async fn pause(&self) {
        self.paused.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "producers did not drain"
            );
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test]
async fn a_topic_deleted_under_load_and_created_again_starts_empty() {
    let broker = Broker::start_with(&["--segment-bytes", &SEGMENT_BYTES_MIN.to_string()]);
    let client = broker.client().await;
    client.create_topic("churn", 1).await.unwrap();
    let churners = Churners::start(&client, 4);
    for cycle in 0..20 {
        // Producers are appending (and rolling 1 MiB segments: 100 records
        // are 1.6 MiB) while the topic is deleted.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.describe_topic("churn").await.unwrap().partitions[0].end_offset < 100 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no progress in cycle {cycle}"
            );
            tokio::task::yield_now().await;
        }
        client.delete_topic("churn").await.unwrap();
        churners.pause().await;
        client.create_topic("churn", 1).await.unwrap();
        let fresh = client.describe_topic("churn").await.unwrap().partitions[0].clone();
        assert_eq!(
            (fresh.start_offset, fresh.end_offset, fresh.segments),
            (0, 0, 1),
            "cycle {cycle}: the new topic adopted old data"
        );
        churners.paused.send_replace(false);
    }
    churners.pause().await;
    for task in &churners.tasks {
        task.abort();
    }
    assert!(
        !broker.log_contains("could not be removed"),
        "every deletion removed its directory"
    );
}

#[test]
fn a_broker_on_a_non_loopback_address_without_tls_and_authentication_refuses_to_start() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    // Refused while reading its configuration: nothing is bound.
    let args = ["--listen", "0.0.0.0:0", "--data-dir", &data_dir];
    let (code, stderr) = broker_exit(&args, Duration::from_secs(20));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--allow-insecure"), "{stderr}");
    assert!(
        !data.path().join("LOCK").exists(),
        "refused before opening anything"
    );
}

/// A data directory written by a build of another record format is refused
/// at start, with what to do, and left as it was; a fresh one is marked.
#[test]
fn a_data_dir_of_another_format_is_refused_not_misread() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("old");
    // What a format-1 build left: topics and metadata, no FORMAT file.
    std::fs::create_dir_all(data.join("topics/orders/0")).unwrap();
    std::fs::create_dir_all(data.join("meta")).unwrap();
    let dir = data.to_str().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", dir];
    let (code, stderr) = broker_exit(&args, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("format 1"), "{stderr}");
    assert!(
        stderr.contains("new --data-dir"),
        "says what to do: {stderr}"
    );
    assert!(
        !data.join("FORMAT").exists(),
        "the old directory is not touched"
    );

    std::fs::write(data.join("FORMAT"), "ferry-data-format 9\n").unwrap();
    let (code, stderr) = broker_exit(&args, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("format 9") && stderr.contains("newer"),
        "{stderr}"
    );

    let fresh = Broker::start();
    let mark = std::fs::read_to_string(fresh.data_dir.join("FORMAT")).unwrap();
    assert_eq!(mark, "ferry-data-format 2\n");
}
