//! Streams end to end through the real broker binary: topic admin, produce
//! and consume at volume, long polling, restart and kill -9 durability.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_client::{
    Acks, Client, ClientError, FsyncPolicy, Producer, ProducerConfig, ProducerRecord, SeekTo,
    TopicConfig,
};
use ferry_e2e::{end_offsets, read_all, Broker};
use ferry_protocol::messages::{self as wire, FetchRequest};
use ferry_protocol::ErrorCode;

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("orders", 3).await.unwrap();
    client
        .create_topic_with(
            "audit",
            &TopicConfig {
                partitions: 1,
                retention_ms: Some(86_400_000),
                fsync: Some(FsyncPolicy::Never),
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
    let names: Vec<String> = client
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["audit", "orders"]);
    let described = client.describe_topic("orders").await.unwrap();
    assert_eq!(described.partitions.len(), 3);
    assert!(described
        .partitions
        .iter()
        .all(|p| p.start_offset == 0 && p.end_offset == 0 && p.segments == 1));
    let audit = client
        .describe_topic("audit")
        .await
        .unwrap()
        .config
        .unwrap();
    assert_eq!(
        (audit.retention_ms, audit.fsync),
        (Some(86_400_000), Some(FsyncPolicy::Never))
    );

    let code = |r: Result<(), ClientError>| r.unwrap_err().code();
    assert_eq!(
        code(client.create_topic("orders", 1).await),
        Some(ErrorCode::TopicAlreadyExists)
    );
    assert_eq!(
        code(client.create_topic("bad/name", 1).await),
        Some(ErrorCode::InvalidTopicName)
    );
    assert_eq!(
        code(client.create_topic(&"x".repeat(300), 1).await),
        Some(ErrorCode::InvalidTopicName)
    );
    assert_eq!(
        code(client.create_topic("huge", 1_000_000).await),
        Some(ErrorCode::InvalidConfig)
    );
    // The typed config cannot say it; the broker refuses it on the wire.
    let bad_fsync = wire::CreateTopicRequest {
        name: "t".into(),
        config: Some(wire::TopicConfig {
            partitions: 1,
            fsync: Some("sometimes".into()),
            ..wire::TopicConfig::default()
        }),
    };
    assert_eq!(
        code(client.wire().call(&bad_fsync).await.map(drop)),
        Some(ErrorCode::InvalidConfig)
    );

    client.delete_topic("orders").await.unwrap();
    assert_eq!(
        code(client.delete_topic("orders").await),
        Some(ErrorCode::UnknownTopic)
    );
    assert_eq!(
        client.describe_topic("orders").await.unwrap_err().code(),
        Some(ErrorCode::UnknownTopic)
    );
    assert!(!broker.data_dir.join("topics/orders").exists());
}

#[tokio::test]
async fn four_producers_100k_records_read_back_in_order_without_gaps_or_duplicates() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("load", 4).await.unwrap();
    let producers = 4;
    let per_producer = 25_000;
    let mut tasks = Vec::new();
    for p in 0..producers {
        let client = Client::connect(&broker.addr).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let producer = Producer::new(&client, "load").await.unwrap();
            let sends: Vec<_> = (0..per_producer)
                .map(|seq| {
                    let record = ProducerRecord::new(format!("{p}:{seq}"))
                        .with_key(format!("key-{}", seq % 16));
                    producer.send(record)
                })
                .collect();
            let mut acked = Vec::with_capacity(per_producer);
            for sent in futures::future::join_all(sends).await {
                let meta = sent.unwrap();
                acked.push((meta.partition, meta.offset.unwrap()));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert_eq!(acked.len(), producers * per_producer);
    let records = read_all(&client, "load", producers * per_producer).await;
    assert_eq!(
        records.len(),
        producers * per_producer,
        "every record read back"
    );
    // Per partition: offsets dense from 0, and each producer's sequence increases.
    let mut next_offset: HashMap<u32, u64> = HashMap::new();
    let mut last_seq: HashMap<(u32, String), u64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for record in &records {
        let expected = next_offset.entry(record.partition).or_insert(0);
        assert_eq!(
            record.offset, *expected,
            "gap or duplicate in partition {}",
            record.partition
        );
        *expected += 1;
        let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
        assert!(seen.insert(value.clone()), "duplicate value {value}");
        let (producer, seq) = value.split_once(':').unwrap();
        let seq: u64 = seq.parse().unwrap();
        if let Some(previous) = last_seq.insert((record.partition, producer.to_string()), seq) {
            assert!(
                seq > previous,
                "producer {producer} out of order in partition {}",
                record.partition
            );
        }
    }
    assert_eq!(seen.len(), producers * per_producer);
    let mut acked_sorted = acked.clone();
    acked_sorted.sort();
    acked_sorted.dedup();
    assert_eq!(
        acked_sorted.len(),
        acked.len(),
        "no two records acked at one offset"
    );
}

#[tokio::test]
async fn a_parked_long_poll_gets_a_new_record_within_milliseconds() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("events", 1).await.unwrap();
    // An empty long poll waits about max_wait and returns nothing.
    let started = Instant::now();
    let empty = client
        .wire()
        .fetch(&FetchRequest {
            topic: "events".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            max_wait_ms: 300,
            min_bytes: 1,
            ..FetchRequest::default()
        })
        .await
        .unwrap();
    assert!(empty.records.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "returned early: {:?}",
        started.elapsed()
    );

    let fetcher = client.clone();
    let parked = tokio::spawn(async move {
        let response = fetcher
            .wire()
            .fetch(&FetchRequest {
                topic: "events".into(),
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
                max_wait_ms: 10_000,
                min_bytes: 1,
                ..FetchRequest::default()
            })
            .await
            .unwrap();
        (Instant::now(), response)
    });
    // Give the fetch time to park at the broker.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let producer = Producer::with_config(
        &client,
        "events",
        ProducerConfig {
            acks: Acks::Written,
            linger_ms: 0,
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let sent_at = Instant::now();
    producer.send(ProducerRecord::new("hello")).await.unwrap();
    let (woke_at, response) = parked.await.unwrap();
    assert!(!response.records.is_empty());
    let latency = woke_at.saturating_duration_since(sent_at);
    assert!(
        latency < Duration::from_millis(50),
        "woke {latency:?} after the produce"
    );
}

#[tokio::test]
async fn restart_keeps_topics_and_data() {
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("keep", 2).await.unwrap();
    let producer = Producer::new(&client, "keep").await.unwrap();
    let sends: Vec<_> = (0..1000)
        .map(|i| producer.send(ProducerRecord::new(format!("v{i}")).with_key(format!("{i}"))))
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    let before = read_all(&client, "keep", 1000).await;
    assert!(broker.terminate().success(), "graceful shutdown exits 0");
    assert!(broker.log_contains("ferry broker stopped cleanly"));
    broker.restart();
    let client = broker.client().await;
    let after = read_all(&client, "keep", 1000).await;
    assert_eq!(before, after);
    let producer = Producer::new(&client, "keep").await.unwrap();
    let meta = producer
        .send(ProducerRecord::new("more").with_partition(0))
        .await
        .unwrap();
    let p0 = before.iter().filter(|r| r.partition == 0).count() as u64;
    assert_eq!(
        meta.offset,
        Some(p0),
        "appends continue after the last offset"
    );
}

#[tokio::test]
async fn kill_9_after_durable_acks_loses_no_acknowledged_record() {
    let _exclusive = ferry_e2e::exclusive().await;
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("durable", 3).await.unwrap();
    let producer = Producer::new(&client, "durable").await.unwrap();
    // Acknowledged (durable) records, then more in flight when the broker dies.
    let sends: Vec<_> = (0..5000)
        .map(|i| producer.send(ProducerRecord::new(format!("acked-{i}")).with_key(format!("{i}"))))
        .collect();
    let mut acked: Vec<(u32, u64, String)> = Vec::new();
    for (i, sent) in futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
    {
        let meta = sent.unwrap();
        acked.push((meta.partition, meta.offset.unwrap(), format!("acked-{i}")));
    }
    let in_flight: Vec<_> = (0..5000)
        .map(|i| producer.send(ProducerRecord::new(format!("late-{i}"))))
        .collect();
    let racing = tokio::spawn(futures::future::join_all(in_flight));
    tokio::time::sleep(Duration::from_millis(5)).await;
    broker.kill9();
    broker.restart();
    assert!(
        broker.log_contains("unclean shutdown"),
        "recovery ran after kill -9"
    );
    // The idempotent producer sends what was unanswered again, in order,
    // to the restarted broker: every record is acknowledged, once. (A
    // resend from deeper than the broker's last five batches is answered
    // as stored without its offsets.)
    let mut late = Vec::new();
    for (i, result) in racing.await.unwrap().into_iter().enumerate() {
        let meta = result.unwrap_or_else(|e| panic!("late-{i} failed: {e}"));
        match meta.offset {
            Some(offset) => acked.push((meta.partition, offset, format!("late-{i}"))),
            None => late.push(format!("late-{i}")),
        }
    }
    let client = broker.client().await;
    let total: u64 = end_offsets(&client, "durable").await.iter().sum();
    let present: HashMap<(u32, u64), String> = read_all(&client, "durable", total as usize)
        .await
        .into_iter()
        .map(|r| {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            ((r.partition, r.offset), value)
        })
        .collect();
    assert_eq!(present.len(), acked.len() + late.len(), "no record twice");
    let values: std::collections::HashSet<&String> = present.values().collect();
    for value in &late {
        assert!(values.contains(value), "acked record {value} lost");
    }
    for (partition, offset, value) in acked {
        assert_eq!(
            present.get(&(partition, offset)),
            Some(&value),
            "acked record {partition}/{offset} lost or changed"
        );
    }
    // And the broker still takes writes.
    let producer = Producer::new(&client, "durable").await.unwrap();
    producer.send(ProducerRecord::new("after")).await.unwrap();
}

#[tokio::test]
async fn time_and_offset_lookups_and_bad_offsets() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("times", 1).await.unwrap();
    let producer = Producer::new(&client, "times").await.unwrap();
    for i in 0..10i64 {
        producer
            .send(ProducerRecord::new(Bytes::from(format!("{i}"))).with_timestamp(1_000 + i * 100))
            .await
            .unwrap();
    }
    assert_eq!(
        client
            .resolve_offset("times", 0, SeekTo::Earliest)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        client
            .resolve_offset("times", 0, SeekTo::Latest)
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        client
            .resolve_offset("times", 0, SeekTo::Timestamp(1_450))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        client
            .resolve_offset("times", 0, SeekTo::Timestamp(99_999))
            .await
            .unwrap(),
        10
    );
    let out_of_range = client
        .wire()
        .fetch(&FetchRequest {
            topic: "times".into(),
            partition: 0,
            offset: 11,
            max_bytes: 1024,
            max_wait_ms: 0,
            min_bytes: 0,
            ..FetchRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(out_of_range.code(), Some(ErrorCode::OffsetOutOfRange));
    let unknown_partition = client
        .wire()
        .fetch(&FetchRequest {
            topic: "times".into(),
            partition: 7,
            ..FetchRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_partition.code(), Some(ErrorCode::UnknownPartition));
}

/// Batching is adaptive: with nothing in flight on its partition, a record
/// goes at once, whatever `linger_ms` says (it bounds waiting only while
/// earlier requests are out).
#[tokio::test]
async fn a_lone_record_does_not_wait_for_the_linger() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("eager", 1).await.unwrap();
    let config = ferry_client::ProducerConfig {
        linger_ms: 10_000,
        ..ferry_client::ProducerConfig::default()
    };
    let producer = Producer::with_config(&client, "eager", config)
        .await
        .unwrap();
    for i in 0..5 {
        let started = Instant::now();
        producer
            .send(ProducerRecord::new(format!("r{i}")))
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "record {i} waited {:?}",
            started.elapsed()
        );
    }
}
