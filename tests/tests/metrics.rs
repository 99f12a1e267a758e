//! `/metrics` as a Prometheus server reads it: the whole exposition parses
//! with an independent parser of the text format, every family has HELP
//! and TYPE, names follow Prometheus conventions, and the series an
//! operator looks for are there and true: build info, latency histograms
//! and errors by code, connections by state, per-partition offsets,
//! per-group lag, per-queue counts.

use std::collections::BTreeMap;

use ferry_client::{Producer, ProducerRecord, QueueConfig};
use ferry_e2e::Broker;
use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    body.to_string()
}

/// The value of the one sample of `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

#[tokio::test]
async fn the_exposition_parses_and_says_what_operators_look_for() {
    let metrics_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let broker = Broker::start_with(&["--metrics-listen", &metrics_addr]);
    let client = broker.client().await;
    client.create_topic("m", 2).await.unwrap();
    let producer = Producer::new(&client, "m").await.unwrap();
    for i in 0..6 {
        let record = ProducerRecord::new(format!("r{i}")).with_partition(i % 2);
        producer.send(record).await.unwrap();
    }
    client
        .create_queue("m", "q", &QueueConfig::default())
        .await
        .unwrap();
    let (code, out, err) =
        broker.ferryctl(&["consume", "m", "--group", "g", "--timeout-ms", "0"], "");
    assert_eq!((code, out.lines().count()), (0, 6), "{err}");
    assert!(client.describe_topic("nope").await.is_err());

    // A connection that has not said hello yet.
    let _silent = tokio::net::TcpStream::connect(&broker.addr).await.unwrap();
    let text = scrape(&metrics_addr).await;
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");

    // Every family says what it is; names follow the conventions.
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split_whitespace().skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        assert!(types.insert(name, kind).is_none(), "{name} declared twice");
        assert!(parsed.docs.contains_key(name), "{name} has no HELP");
        let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        assert!(valid && name.starts_with("ferry_"), "{name}");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
    }
    for sample in &parsed.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.metric.strip_suffix(suffix))
            .filter(|base| types.get(base) == Some(&"histogram"))
            .unwrap_or(&sample.metric);
        assert!(types.contains_key(family), "{} has no TYPE", sample.metric);
    }

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&parsed, "ferry_build_info", &[("version", version)]),
        1.0
    );
    assert!(
        value(
            &parsed,
            "ferry_request_duration_seconds",
            &[("api", "produce")]
        ) >= 1.0
    );
    assert!(
        value(
            &parsed,
            "ferry_request_errors_by_code_total",
            &[("code", "unknown_topic")]
        ) >= 1.0
    );
    for partition in ["0", "1"] {
        let labels = [("topic", "m"), ("partition", partition)];
        assert_eq!(value(&parsed, "ferry_partition_end_offset", &labels), 3.0);
        assert_eq!(
            value(&parsed, "ferry_partition_durable_offset", &labels),
            3.0
        );
        assert!(value(&parsed, "ferry_partition_size_bytes", &labels) > 0.0);
        let group = [("group", "g"), ("topic", "m"), ("partition", partition)];
        assert_eq!(value(&parsed, "ferry_group_committed_offset", &group), 3.0);
        assert_eq!(value(&parsed, "ferry_group_lag", &group), 0.0);
    }
    let queue = [("topic", "m"), ("queue", "q")];
    assert_eq!(value(&parsed, "ferry_queue_ready", &queue), 6.0);
    assert_eq!(value(&parsed, "ferry_queue_in_flight", &queue), 0.0);
    assert_eq!(
        value(
            &parsed,
            "ferry_metrics_truncated",
            &[("family", "partition")]
        ),
        0.0
    );
    let connections = |state| value(&parsed, "ferry_connections", &[("state", state)]);
    assert!(connections("serving") >= 1.0);
    assert_eq!(connections("authenticating"), 0.0);
    // The silent connection is counted once the broker has accepted it.
    let mut handshaking = 0.0;
    for _ in 0..200 {
        let text = scrape(&metrics_addr).await;
        let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        handshaking = value(&parsed, "ferry_connections", &[("state", "handshaking")]);
        if handshaking == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(handshaking, 1.0);
}
