//! Running the broker: limits, timeouts, configuration sources, reconnects
//! and the metrics endpoint.

use std::time::{Duration, Instant};

use ferry_client::{Client, Producer, ProducerRecord};
use ferry_e2e::Broker;
use ferry_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn connections_past_max_connections_are_refused_with_an_error() {
    let broker = Broker::start_with(&["--max-connections", "2"]);
    let first = Client::connect(&broker.addr).await.unwrap();
    let second = Client::connect(&broker.addr).await.unwrap();
    let third = Client::connect(&broker.addr).await;
    match third {
        Err(error) => assert_eq!(error.code(), Some(ErrorCode::TooManyConnections), "{error}"),
        Ok(_) => panic!("a third connection was accepted"),
    }
    // The first two keep working.
    first.create_topic("a", 1).await.unwrap();
    assert_eq!(second.list_topics().await.unwrap().len(), 1);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker =
        Broker::start_with(&["--idle-timeout-ms", "300", "--frame-read-timeout-ms", "300"]);
    // Idle: connected, sends nothing.
    let mut idle = TcpStream::connect(&broker.addr).await.unwrap();
    // Slowloris: starts a frame and never finishes it.
    let mut slow = TcpStream::connect(&broker.addr).await.unwrap();
    slow.write_all(&[0, 0, 0, 50, 0]).await.unwrap();
    let started = Instant::now();
    for stream in [&mut idle, &mut slow] {
        let mut byte = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "connection was not closed"
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn settings_come_from_flags_env_and_a_toml_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    std::fs::write(&file, "default_partitions = 3\nmax_connections = 50\n").unwrap();
    let broker = Broker::start_with(&["--config", file.to_str().unwrap()]);
    let client = broker.client().await;
    client.create_topic("defaulted", 0).await.unwrap();
    assert_eq!(
        client.partition_count("defaulted").await.unwrap(),
        3,
        "file value used"
    );
    drop(broker);

    // A flag beats the file.
    let broker = Broker::start_with(&[
        "--config",
        file.to_str().unwrap(),
        "--default-partitions",
        "5",
    ]);
    let client = broker.client().await;
    client.create_topic("flagged", 0).await.unwrap();
    assert_eq!(client.partition_count("flagged").await.unwrap(), 5);

    // A bad file is a clear start-up error.
    std::fs::write(&file, "no_such_setting = 1\n").unwrap();
    let output = std::process::Command::new(ferry_e2e::binary("ferry-broker"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no_such_setting"));
}

#[tokio::test]
async fn the_client_reconnects_after_a_broker_restart() {
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("r", 1).await.unwrap();
    assert!(broker.terminate().success());
    broker.restart();
    // Same Client value: the next request reconnects.
    assert_eq!(client.list_topics().await.unwrap()[0].name, "r");
    let producer = Producer::new(&client, "r").await.unwrap();
    producer.send(ProducerRecord::new("x")).await.unwrap();
}

#[tokio::test]
async fn metrics_are_scrapeable() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let metrics_addr = format!("127.0.0.1:{port}");
    let broker = Broker::start_with(&["--metrics-listen", &metrics_addr]);
    let client = broker.client().await;
    client.create_topic("m", 1).await.unwrap();
    let producer = Producer::new(&client, "m").await.unwrap();
    producer.send(ProducerRecord::new("x")).await.unwrap();
    let mut stream = TcpStream::connect(&metrics_addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.0 200 OK"));
    assert!(body.contains("ferry_produce_records_total 1"), "{body}");
    assert!(body.contains("ferry_requests_total{api=\"produce\"} 1"));
    assert!(body.contains("ferry_fsyncs_total"));
    for (path, status) in [
        ("/health", "200 OK"),
        ("/ready", "200 OK"),
        ("/nope", "404 Not Found"),
        ("/metricsx", "404 Not Found"),
    ] {
        let answer = http_get(&metrics_addr, path).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.0 {status}")),
            "{path}: {answer}"
        );
    }
}

async fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}
