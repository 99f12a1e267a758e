//! Clients that attack the broker's memory, tasks and connection slots, tried
//! against the real binary: a subscriber that never reads, huge deliveries,
//! one batch of 700,000 records read by four queues, a thousand
//! subscriptions dropped at once, silent and greedy connections, bad
//! version negotiation, multi-byte metadata. Each holds the broker's memory
//! within a stated bound while other clients keep being served (a
//! ListTopics round trip under 100 ms).

use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_client::{Client, ErrorCode, Producer, ProducerConfig, ProducerRecord, QueueConfig};
use ferry_e2e::raw::{api_of, open_fds, proc_status_kib, RawClient};
use ferry_e2e::{broker_exit, Broker};
use ferry_protocol::batch::{BatchBuilder, NewRecord};
use ferry_protocol::messages::{
    DeliverBatch, HandshakeRequest, HandshakeResponse, OffsetCommitEntry, OffsetCommitRequest,
    QueueSubscribeRequest,
};
use ferry_protocol::ApiKey;

/// ListTopics round trips while an attack runs: the median must be under
/// the first, every one under the second (a stalled runtime shows as
/// seconds; a loaded 2-core machine running debug builds adds blips).
const ROUND_TRIP_MEDIAN_MAX: Duration = Duration::from_millis(100);
const ROUND_TRIP_MAX: Duration = Duration::from_secs(1);

/// The broker's heap (anonymous resident memory) in MiB.
fn heap_mib(broker: &Broker) -> u64 {
    proc_status_kib(broker.pid(), "RssAnon") / 1024
}

/// Round trips of another client, measured while an attack runs.
#[derive(Default)]
struct Probes(Vec<Duration>);

impl std::fmt::Display for Probes {
    /// "ListTopics median M, max X over N probes".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sorted = self.0.clone();
        sorted.sort();
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
        let max = sorted.last().copied().unwrap_or_default();
        write!(
            f,
            "ListTopics median {median:?}, max {max:?} over {} probes",
            sorted.len()
        )
    }
}

impl Probes {
    /// One ListTopics round trip.
    async fn probe(&mut self, client: &Client) {
        let started = Instant::now();
        client.list_topics().await.expect("ListTopics answered");
        let took = started.elapsed();
        assert!(
            took < ROUND_TRIP_MAX,
            "ListTopics took {took:?} during the attack"
        );
        self.0.push(took);
    }

    /// The median round trip is under `ROUND_TRIP_MEDIAN_MAX`.
    fn check(&mut self) {
        assert!(!self.0.is_empty(), "no probe ran");
        self.0.sort();
        let median = self.0[self.0.len() / 2];
        assert!(
            median < ROUND_TRIP_MEDIAN_MAX,
            "median ListTopics {median:?}: {:?}",
            self.0
        );
    }
}

/// Asserts that another client is served promptly (one probe).
async fn still_served(client: &Client) {
    let mut probes = Probes::default();
    probes.probe(client).await;
    probes.check();
}

async fn queue_with(client: &Client, topic: &str, queue: &str, ack_timeout_ms: u32) {
    let config = QueueConfig {
        ack_timeout_ms,
        ..QueueConfig::default()
    };
    client.create_queue(topic, queue, &config).await.unwrap();
}

async fn produce_values(client: &Client, topic: &str, count: usize, value_bytes: usize) {
    let config = ProducerConfig {
        batch_bytes: 4 * 1024 * 1024,
        ..ProducerConfig::default()
    };
    let producer = Producer::with_config(client, topic, config).await.unwrap();
    let sends: Vec<_> = (0..count)
        .map(|i| producer.send(ProducerRecord::new(vec![i as u8; value_bytes])))
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
}

fn subscribe(topic: &str, queue: &str, prefetch: u32) -> QueueSubscribeRequest {
    QueueSubscribeRequest {
        topic: topic.into(),
        queue: queue.into(),
        prefetch,
        subscription_id: 0,
    }
}

#[tokio::test]
async fn a_subscriber_that_never_reads_holds_bounded_broker_memory() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("big", 1).await.unwrap();
    queue_with(&client, "big", "q", 1_000).await;
    let mut silent = RawClient::handshaken(&broker.addr).await;
    silent.call(&subscribe("big", "q", 10_000)).await;
    let before = heap_mib(&broker);
    // 150 MiB of messages for a consumer that never reads its socket, for
    // five ack timeouts.
    produce_values(&client, "big", 150, 1024 * 1024).await;
    let (mut peak, mut probes) = (0, Probes::default());
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        peak = peak.max(heap_mib(&broker));
        probes.probe(&client).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    probes.check();
    // Pushed bytes waiting for the socket are bounded by max_in_flight_bytes
    // (64 MiB), and nothing is re-encoded while it waits.
    eprintln!("silent subscriber: heap {before} -> peak {peak} MiB, {probes}");
    assert!(
        peak < before + 64 + 32,
        "heap grew from {before} MiB to {peak} MiB"
    );
    drop(silent);
}

#[tokio::test]
async fn deliver_frames_stay_under_the_announced_frame_limit() {
    let frame_limit = 2 * 1024 * 1024;
    let broker = Broker::start_with(&[
        "--max-frame-bytes",
        &frame_limit.to_string(),
        "--max-batch-bytes",
        "1048576",
        "--max-in-flight-bytes",
        "4194304",
    ]);
    let client = broker.client().await;
    client.create_topic("large", 1).await.unwrap();
    queue_with(&client, "large", "q", 30_000).await;
    let config = ProducerConfig {
        batch_bytes: 1024 * 1024,
        ..ProducerConfig::default()
    };
    let producer = Producer::with_config(&client, "large", config)
        .await
        .unwrap();
    for i in 0..12u8 {
        let value = vec![i; 900 * 1024];
        producer.send(ProducerRecord::new(value)).await.unwrap();
    }
    let mut consumer = RawClient::handshaken(&broker.addr).await;
    consumer.call(&subscribe("large", "q", 100)).await;
    let mut delivered = 0;
    while delivered < 12 {
        let frame = consumer
            .next_frame()
            .await
            .expect("deliveries, not a close");
        let length = frame.body.len() + 14;
        assert!(length <= frame_limit, "a {length}-byte Deliver frame");
        if api_of(&frame) == Some(ApiKey::Deliver) {
            let batch: DeliverBatch = prost::Message::decode(frame.body).unwrap();
            delivered += batch.deliveries.len();
        }
    }
    assert_eq!(delivered, 12);
}

#[tokio::test]
async fn an_ack_timeout_below_a_second_is_refused() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("t", 1).await.unwrap();
    let config = QueueConfig {
        ack_timeout_ms: 1,
        ..QueueConfig::default()
    };
    let refused = client.create_queue("t", "q", &config).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::InvalidConfig), "{refused}");
    assert!(refused.to_string().contains("ack_timeout_ms"), "{refused}");
}

/// One produce request carrying a single batch of `records` tiny records.
async fn produce_one_huge_batch(client: &Client, topic: &str, records: u32) {
    let mut builder = BatchBuilder::new();
    for _ in 0..records {
        builder.push(&NewRecord {
            timestamp_ms: 1,
            value: Some(Bytes::from_static(b"x")),
            ..NewRecord::default()
        });
    }
    let wire = client.wire();
    let acks = ferry_client::Acks::Durable;
    wire.produce(topic, 0, builder.finish(), acks)
        .await
        .unwrap();
}

#[tokio::test]
async fn one_huge_batch_read_by_four_queues_keeps_memory_bounded() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("wide", 1).await.unwrap();
    for queue in ["a", "b", "c", "d"] {
        queue_with(&client, "wide", queue, 30_000).await;
    }
    let before = heap_mib(&broker);
    produce_one_huge_batch(&client, "wide", 700_000).await;
    let (mut peak, mut probes) = (0, Probes::default());
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        peak = peak.max(heap_mib(&broker));
        probes.probe(&client).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    probes.check();
    // Read-ahead stops inside the batch: 4096 messages per queue.
    eprintln!("700,000-record batch, 4 queues: heap {before} -> peak {peak} MiB, {probes}");
    assert!(
        peak < before + 64,
        "heap grew from {before} MiB to {peak} MiB"
    );
    let backlog = client.describe_queue("wide", "a").await.unwrap().ready;
    assert_eq!(backlog, 700_000, "every message is still there to deliver");
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped_and_released_without_stalls() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("fan", 1).await.unwrap();
    queue_with(&client, "fan", "q", 30_000).await;
    produce_values(&client, "fan", 5_000, 10).await;
    let mut greedy = RawClient::handshaken(&broker.addr).await;
    let mut ids = Vec::new();
    for _ in 0..1024 {
        ids.push(greedy.send(&subscribe("fan", "q", 10)).await);
    }
    for id in ids {
        let answer = greedy.answer::<QueueSubscribeRequest>(id).await;
        assert_eq!(answer.error_code, 0, "{}", answer.error_message);
    }
    let refused = greedy.call(&subscribe("fan", "q", 10)).await;
    assert_eq!(
        ErrorCode::from_u32(refused.error_code),
        ErrorCode::InvalidConfig,
        "{}",
        refused.error_message
    );
    // Drop a connection holding 1024 subscriptions and their deliveries:
    // others are served promptly while they go back to the queue.
    drop(greedy);
    let (until, mut probes) = (Instant::now() + Duration::from_secs(1), Probes::default());
    while Instant::now() < until {
        probes.probe(&client).await;
    }
    eprintln!("1024 subscriptions dropped: {probes}");
    probes.check();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.describe_queue("fan", "q").await.unwrap().in_flight > 0 {
        assert!(Instant::now() < deadline, "deliveries were not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_commit_with_multibyte_metadata_is_answered_without_a_panic() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("t", 1).await.unwrap();
    // Cut at the metadata limit, this lands inside a two-byte character.
    let metadata = format!("a{}", "é".repeat(3000));
    let commit = OffsetCommitRequest {
        group: "g".into(),
        member_id: String::new(),
        member_epoch: 0,
        offsets: vec![OffsetCommitEntry {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            metadata,
        }],
    };
    // Refused at the metadata limit (or kept whole): never a panic.
    match client.wire().call(&commit).await {
        Ok(_) => {}
        Err(refused) => assert_eq!(refused.code(), Some(ErrorCode::InvalidRequest), "{refused}"),
    }
    assert!(!broker.log_contains("panicked"), "the handler panicked");
    still_served(&client).await;
}

#[tokio::test]
async fn a_failed_version_negotiation_is_answered_then_closed() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.addr).await;
    let hello = HandshakeRequest {
        client_id: "future".into(),
        min_version: 7,
        max_version: 9,
    };
    let answer: HandshakeResponse = client.call(&hello).await;
    assert_eq!(
        ErrorCode::from_u32(answer.error_code),
        ErrorCode::UnsupportedVersion
    );
    let topics = ferry_protocol::messages::ListTopicsRequest {};
    client.send(&topics).await;
    assert!(
        client.next_frame().await.is_none(),
        "served after a failed handshake"
    );
}

#[tokio::test]
async fn connections_that_never_handshake_lose_their_slot() {
    let broker = Broker::start_with(&["--handshake-timeout-ms", "300", "--max-connections", "5"]);
    let fds_before = open_fds(broker.pid());
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(RawClient::connect(&broker.addr).await);
    }
    for connection in &mut silent {
        let closed = connection.next_frame_within(Duration::from_secs(5)).await;
        assert_eq!(closed, Ok(None), "closed for not handshaking");
    }
    // The slots, and their file descriptors, are free again.
    let client = broker.client().await;
    still_served(&client).await;
    // The new client's connection and a little lazy set-up are allowed;
    // the five silent connections' descriptors are not.
    let fds_after = open_fds(broker.pid());
    assert!(
        fds_after < fds_before + 5,
        "fds {fds_before} -> {fds_after}"
    );
}

#[tokio::test]
async fn connections_per_ip_are_capped_when_configured() {
    let broker = Broker::start_with(&["--max-connections-per-ip", "2"]);
    let first = broker.client().await;
    let _second = RawClient::handshaken(&broker.addr).await;
    let mut third = RawClient::connect(&broker.addr).await;
    let refusal = third.next_frame().await.expect("an error frame");
    let error: ferry_protocol::messages::ErrorResponse =
        prost::Message::decode(refusal.body).unwrap();
    assert_eq!(
        ErrorCode::from_u32(error.error_code),
        ErrorCode::TooManyConnections
    );
    assert!(third.next_frame().await.is_none(), "then closed");
    still_served(&first).await;
}

#[test]
fn a_taken_metrics_port_stops_the_broker_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--metrics-listen",
        &addr,
    ];
    let (code, stderr) = broker_exit(&args, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("metrics") && stderr.contains(&addr),
        "{stderr}"
    );
}

/// Sets the soft open-files limit of process `pid` (the hard one is kept).
fn set_soft_fd_limit(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reading then writing a limit of our own child process.
    unsafe {
        let pid = pid as libc::pid_t;
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old),
            0
        );
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()),
            0
        );
    }
}

/// `GET /metrics` answered within `wait`: the body, or `None`.
async fn scrape_within(addr: &str, wait: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let scrape = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await.ok()?;
        Some(body).filter(|b| b.contains("ferry_connections_open"))
    };
    tokio::time::timeout(wait, scrape).await.ok().flatten()
}

#[tokio::test]
async fn the_metrics_endpoint_outlives_running_out_of_file_descriptors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let broker = Broker::start_with(&["--metrics-listen", &metrics]);
    assert!(scrape_within(&metrics, Duration::from_secs(5))
        .await
        .is_some());
    // No descriptor number left above stdin, stdout and stderr: the next
    // accept fails with EMFILE (open descriptors stay usable).
    set_soft_fd_limit(broker.pid(), 3);
    let starved = scrape_within(&metrics, Duration::from_millis(500)).await;
    assert!(starved.is_none(), "answered without a descriptor to spare");
    set_soft_fd_limit(broker.pid(), 4096);
    // It retries its accepts: scrapes are answered again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape_within(&metrics, Duration::from_secs(2))
        .await
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the metrics endpoint never came back"
        );
    }
    assert!(broker.log_contains("metrics accept failed"));
}
