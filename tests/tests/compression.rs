//! Compressed batches through the real broker: for every codec, a producer
//! compresses, the broker validates and stores the batch as sent (smaller
//! on disk), and every reader decompresses it: consumers, queue consumers
//! and `ferryctl consume`. A decompression bomb is refused without taking
//! the broker's memory, and the broker keeps serving.

use std::time::Duration;

use bytes::Bytes;
use ferry_client::{
    Compression, Consumer, ProducerConfig, ProducerRecord, QueueConfig, QueueConsumer, SeekTo,
};
use ferry_e2e::raw::{rss_mib, RawClient};
use ferry_e2e::Broker;
use ferry_protocol::batch::{BatchBuilder, NewRecord};
use ferry_protocol::messages::{CreateTopicRequest, ProduceRequest};
use ferry_protocol::ErrorCode;

const RECORDS: usize = 2000;

/// A JSON log line: compressible, like the real thing.
fn line(n: usize) -> String {
    format!(
        r#"{{"ts":"2026-12-03T12:{:02}:{:02}Z","level":"info","service":"checkout","msg":"order placed","order":{n},"items":{}}}"#,
        n / 60 % 60,
        n % 60,
        n % 7
    )
}

async fn produce_lines(client: &ferry_client::Client, topic: &str, compression: Compression) {
    let config = ProducerConfig {
        compression,
        ..ProducerConfig::default()
    };
    let producer = ferry_client::Producer::with_config(client, topic, config)
        .await
        .unwrap();
    let sends: Vec<_> = (0..RECORDS)
        .map(|n| {
            let record = ProducerRecord::new(line(n))
                .with_key(format!("k{n}"))
                .with_header("n", n.to_string());
            producer.send(record)
        })
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
}

async fn consume_values(client: &ferry_client::Client, topic: &str) -> Vec<String> {
    let mut consumer = Consumer::new(client, topic).await.unwrap();
    consumer.assign(&[0], SeekTo::Earliest).await.unwrap();
    let mut values = Vec::new();
    while values.len() < RECORDS {
        for record in consumer.poll().await.unwrap() {
            assert_eq!(
                record.key.as_deref(),
                Some(format!("k{}", values.len()).as_bytes())
            );
            let n = record.headers.iter().find(|h| h.key == "n").unwrap();
            assert_eq!(
                n.value.as_deref(),
                Some(values.len().to_string().as_bytes())
            );
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}

#[tokio::test]
async fn every_codec_round_trips_through_consumers_queues_and_ferryctl() {
    let broker = Broker::start();
    let client = broker.client().await;
    let expected: Vec<String> = (0..RECORDS).map(line).collect();
    let mut sizes = Vec::new();
    for codec in Compression::ALL {
        let topic = format!("logs-{codec}");
        client.create_topic(&topic, 1).await.unwrap();
        // Acks are awaited one by one (each durable) while up to 500
        // deliveries wait their turn: on a loaded machine that can take
        // longer than the default ack timeout, and a redelivery would
        // arrive out of order.
        let config = QueueConfig {
            ack_timeout_ms: 600_000,
            ..QueueConfig::default()
        };
        client.create_queue(&topic, "q", &config).await.unwrap();
        produce_lines(&client, &topic, codec).await;
        assert_eq!(consume_values(&client, &topic).await, expected, "{codec}");
        let mut queue = QueueConsumer::subscribe(&client, &topic, "q", 500)
            .await
            .unwrap();
        for (n, value) in expected.iter().enumerate() {
            let delivery = queue
                .recv_timeout(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("{codec}: queue delivery {n} missing"))
                .unwrap();
            assert_eq!(delivery.value.as_deref(), Some(value.as_bytes()), "{codec}");
            delivery.ack().await.unwrap();
        }
        let (code, out, err) = broker.ferryctl(
            &["consume", &topic, "--count", "3", "--timeout-ms", "5000"],
            "",
        );
        assert_eq!(code, 0, "{codec}: {err}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            expected[..3].to_vec(),
            "{codec}"
        );
        let description = client.describe_topic(&topic).await.unwrap();
        sizes.push((codec, description.partitions[0].size_bytes));
    }
    let plain = sizes[0].1;
    for (codec, size) in &sizes[1..] {
        assert!(
            *size * 2 < plain,
            "{codec}: {size} bytes on disk vs {plain} uncompressed"
        );
    }
}

#[tokio::test]
async fn ferryctl_produces_compressed_and_refuses_an_unknown_codec() {
    let broker = Broker::start();
    let lines: String = (0..100).map(|n| line(n) + "\n").collect();
    for (topic, codec) in [("c", "zstd"), ("plain", "none")] {
        let (code, _, err) = broker.ferryctl(&["topic", "create", topic, "--partitions", "1"], "");
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = broker.ferryctl(&["produce", topic, "--compression", codec], &lines);
        assert_eq!(code, 0, "{err}");
    }
    let client = broker.client().await;
    let size = |topic: &'static str| {
        let client = client.clone();
        async move { client.describe_topic(topic).await.unwrap().partitions[0].size_bytes }
    };
    let (compressed, plain) = (size("c").await, size("plain").await);
    assert!(
        compressed * 2 < plain,
        "zstd: {compressed} bytes on disk vs {plain}"
    );
    let (code, out, err) = broker.ferryctl(
        &["consume", "c", "--count", "100", "--timeout-ms", "5000"],
        "",
    );
    assert_eq!((code, out.as_str()), (0, lines.as_str()), "{err}");
    let (code, _, err) = broker.ferryctl(&["produce", "c", "--compression", "brotli"], "x\n");
    assert_eq!(code, 2, "a usage error: {err}");
    assert!(
        err.contains("gzip") && err.contains("zstd"),
        "names the codecs: {err}"
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_and_the_broker_keeps_serving() {
    let broker = Broker::start_with(&["--max-batch-bytes", "1048576"]);
    let mut raw = RawClient::handshaken(&broker.addr).await;
    let created = raw
        .call(&CreateTopicRequest {
            name: "bombs".into(),
            config: None,
        })
        .await;
    assert_eq!(created.error_code, 0);
    let before = rss_mib(broker.pid());
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        // Zeros 16 (snappy: at most about 21:1) or 64 times the limit, in
        // a batch under it.
        let records = if codec == Compression::Snappy { 4 } else { 16 };
        let mut builder = BatchBuilder::new();
        builder.set_compression(codec);
        for _ in 0..records {
            builder.push(&NewRecord {
                timestamp_ms: 1,
                value: Some(Bytes::from(vec![0u8; 4 << 20])),
                ..NewRecord::default()
            });
        }
        let bomb = builder.finish();
        assert!(
            bomb.len() < 1 << 20,
            "{codec}: the bomb itself fits ({} bytes)",
            bomb.len()
        );
        let answer = raw
            .call(&ProduceRequest {
                topic: "bombs".into(),
                partition: 0,
                acks: 0,
                records: bomb,
            })
            .await;
        assert_eq!(
            answer.error_code,
            ErrorCode::BatchTooLarge.as_u32(),
            "{codec}: {}",
            answer.error_message
        );
    }
    let grown = rss_mib(broker.pid()).saturating_sub(before);
    assert!(grown < 64, "broker memory grew {grown} MiB");
    let client = broker.client().await;
    let producer = ferry_client::Producer::new(&client, "bombs").await.unwrap();
    producer
        .send(ProducerRecord::new("still here"))
        .await
        .unwrap();
    assert_eq!(ferry_e2e::end_offsets(&client, "bombs").await, vec![1]);
}
