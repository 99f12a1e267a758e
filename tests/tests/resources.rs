//! Resource bounds under hostile or idle load: a client that never reads
//! its responses, 10,000 connections at once, and 1,000 idle connections on
//! 1,000 partitions. Memory is read from /proc (RssAnon: heap, not the
//! page cache that mapped segments also count in RSS).

use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferry_e2e::Broker;
use ferry_protocol::frame::{encode_frame, split_frame, FrameHeader, FLAG_ERROR};
use ferry_protocol::messages::{ErrorResponse, FetchRequest, HandshakeRequest};
use ferry_protocol::ApiKey;
use ferry_protocol::ErrorCode;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn handshake() -> Vec<u8> {
    let hello = HandshakeRequest {
        client_id: "raw".into(),
        min_version: 1,
        max_version: 1,
    };
    encode_frame(
        FrameHeader::request(ApiKey::Handshake as u16, 1, 1),
        &hello,
        None,
    )
    .head
    .to_vec()
}

/// Connects and handshakes; Ok(stream) if admitted, Err(code) if refused.
async fn admit(addr: &str) -> Result<TcpStream, Option<ErrorCode>> {
    let mut stream = TcpStream::connect(addr).await.map_err(|_| None)?;
    stream.write_all(&handshake()).await.map_err(|_| None)?;
    let mut buffer = BytesMut::new();
    loop {
        if let Ok(Some(frame)) = split_frame(&mut buffer, 1 << 20) {
            if frame.header.has(FLAG_ERROR) {
                let code = ErrorResponse::decode(frame.body)
                    .map(|e| ErrorCode::from_u32(e.error_code))
                    .ok();
                return Err(code);
            }
            return Ok(stream);
        }
        match tokio::time::timeout(Duration::from_secs(20), stream.read_buf(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Err(None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_and_memory_stays_bounded() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start_with(&[
        "--frame-read-timeout-ms",
        "1000",
        "--max-in-flight-bytes",
        "16777216",
    ]);
    let client = broker.client().await;
    client.create_topic("big", 1).await.unwrap();
    let producer = ferry_client::Producer::new(&client, "big").await.unwrap();
    let value = bytes::Bytes::from(vec![7u8; 64 * 1024]);
    let sends: Vec<_> = (0..160)
        .map(|_| producer.send(ferry_client::ProducerRecord::new(value.clone())))
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    let before = rss_anon_kib(broker.pid());
    let mut stream = admit(&broker.addr).await.expect("admitted");
    // Ask for ~10 MiB again and again; never read an answer.
    let started = Instant::now();
    let mut sent_requests = 0;
    for id in 2..2000u32 {
        let fetch = FetchRequest {
            topic: "big".into(),
            partition: 0,
            offset: 0,
            max_bytes: 10 * 1024 * 1024,
            ..FetchRequest::default()
        };
        let frame = encode_frame(
            FrameHeader::request(ApiKey::Fetch as u16, 1, id),
            &fetch,
            None,
        );
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&frame.head)).await {
            Ok(Ok(())) => sent_requests += 1,
            _ => break, // the broker stopped reading (backpressure) or closed
        }
    }
    // Stay silent past the broker's 1 s write timeout: it must give up on
    // us (awaited in its log, at most 20 s: a loaded machine is slow).
    let giving_up = Instant::now() + Duration::from_secs(20);
    while !broker.log_contains("client is not reading") && Instant::now() < giving_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peak = rss_anon_kib(broker.pid());
    // What is left to read is what sat in socket buffers, then EOF.
    let mut sink = vec![0u8; 1 << 20];
    let mut drained = 0usize;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => drained += n,
            Err(_) => break false,
        }
    };
    eprintln!(
        "never-reading client: {sent_requests} fetches of 10 MiB asked, {drained} bytes were in flight, \
         heap {before} KiB -> {peak} KiB, closed within {:?}",
        started.elapsed()
    );
    for line in broker
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("not reading") || l.contains("closing"))
    {
        eprintln!("broker: {line}");
    }
    assert!(closed, "the connection was never closed");
    assert!(
        drained < 64 * 1024 * 1024,
        "{drained} bytes were sent to a client that reads nothing"
    );
    assert!(
        peak < before + 64 * 1024,
        "heap grew from {before} KiB to {peak} KiB"
    );
    // Others are still served.
    assert_eq!(
        client.describe_topic("big").await.unwrap().partitions[0].end_offset,
        160
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_at_once_are_capped_and_the_admitted_are_served() {
    let _exclusive = ferry_e2e::exclusive().await;
    let fds = ferry_e2e::raise_fd_limit();
    if fds < 12_000 {
        eprintln!(
            "SKIPPED: 10,000 connections need ~12,000 open files; this environment allows {fds}"
        );
        return;
    }
    let broker = Broker::start_with(&["--max-connections", "1000"]);
    let addr = broker.addr.clone();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(1000));
    let attempts: Vec<_> = (0..10_000)
        .map(|_| {
            let (addr, gate) = (addr.clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire().await;
                admit(&addr).await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    let (mut refused, mut other) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(stream) => admitted.push(stream),
            Err(Some(ErrorCode::TooManyConnections)) => refused += 1,
            Err(_) => other += 1,
        }
    }
    eprintln!("10,000 connections: {} admitted, {refused} refused with TooManyConnections, {other} failed otherwise", admitted.len());
    assert!(admitted.len() <= 1000);
    assert!(refused >= 9000 - other);
    assert!(other < 100, "{other} connections failed without an answer");
    // The admitted ones are served.
    for stream in admitted.iter_mut().take(50) {
        let list = encode_frame(
            FrameHeader::request(ApiKey::ListTopics as u16, 1, 9),
            &ferry_protocol::messages::ListTopicsRequest {},
            None,
        );
        stream.write_all(&list.head).await.unwrap();
        let mut buffer = BytesMut::new();
        let frame = loop {
            if let Ok(Some(frame)) = split_frame(&mut buffer, 1 << 20) {
                break frame;
            }
            assert!(stream.read_buf(&mut buffer).await.unwrap() > 0);
        };
        assert!(!frame.header.has(FLAG_ERROR));
    }
    drop(admitted);
    // Once they are gone, new clients get in again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if ferry_client::Client::connect(&broker.addr).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "slots were never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_on_a_thousand_partitions() {
    let _exclusive = ferry_e2e::exclusive().await;
    let fds = ferry_e2e::raise_fd_limit();
    if fds < 6_000 {
        eprintln!("SKIPPED: 1,000 partitions and 1,000 connections need ~6,000 open files; this environment allows {fds}");
        return;
    }
    let broker = Broker::start_with(&["--fsync", "never"]);
    let client = broker.client().await;
    let empty = rss_anon_kib(broker.pid());
    for t in 0..10 {
        client
            .create_topic(&format!("wide-{t}"), 100)
            .await
            .unwrap();
    }
    let with_partitions = rss_anon_kib(broker.pid());
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(admit(&broker.addr).await.expect("admitted"));
    }
    let with_connections = rss_anon_kib(broker.pid());
    let per_partition = (with_partitions.saturating_sub(empty)) as f64 / 1000.0;
    let per_connection = (with_connections.saturating_sub(with_partitions)) as f64 / 1000.0;
    eprintln!(
        "broker heap: empty {empty} KiB, +1000 partitions {with_partitions} KiB ({per_partition:.1} KiB each), \
         +1000 idle connections {with_connections} KiB ({per_connection:.1} KiB each)"
    );
    assert!(per_partition < 256.0, "{per_partition} KiB per partition");
    assert!(
        per_connection < 128.0,
        "{per_connection} KiB per idle connection"
    );
    assert_eq!(client.list_topics().await.unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_with_producers_at_full_rate_keeps_memory_under_the_cap() {
    let _exclusive = ferry_e2e::exclusive().await;
    let cap: u64 = 16 * 1024 * 1024;
    let broker = Broker::start_with(&[
        "--max-in-flight-bytes",
        &cap.to_string(),
        "--frame-read-timeout-ms",
        "60000",
    ]);
    let client = broker.client().await;
    client.create_topic("flood", 4).await.unwrap();
    let baseline = rss_anon_kib(broker.pid());
    // A consumer that asks for everything and stops reading.
    let mut stalled = admit(&broker.addr).await.expect("admitted");
    for id in 2..200u32 {
        let fetch = FetchRequest {
            topic: "flood".into(),
            partition: id % 4,
            offset: 0,
            max_bytes: 10 * 1024 * 1024,
            max_wait_ms: 5_000,
            min_bytes: 1,
            ..FetchRequest::default()
        };
        let frame = encode_frame(
            FrameHeader::request(ApiKey::Fetch as u16, 1, id),
            &fetch,
            None,
        );
        stalled.write_all(&frame.head).await.unwrap();
    }
    // Four producers at full rate for 3 s, sampled for memory meanwhile.
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampler = {
        let (peak, pid) = (peak.clone(), broker.pid());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_anon_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut producers = Vec::new();
    for _ in 0..4 {
        let client = ferry_client::Client::connect(&broker.addr).await.unwrap();
        producers.push(tokio::spawn(async move {
            let producer = ferry_client::Producer::new(&client, "flood").await.unwrap();
            let value = bytes::Bytes::from(vec![3u8; 1024]);
            let until = Instant::now() + Duration::from_secs(3);
            let mut acked = 0u64;
            while Instant::now() < until {
                let sends: Vec<_> = (0..2000)
                    .map(|_| producer.send(ferry_client::ProducerRecord::new(value.clone())))
                    .collect();
                for sent in futures::future::join_all(sends).await {
                    sent.expect("producers are slowed, never failed");
                    acked += 1;
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for producer in producers {
        acked += producer.await.unwrap();
    }
    sampler.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    let connections = 6; // stalled consumer, 4 producers, admin client
    let bound_kib = baseline + (connections * cap / 1024) * 11 / 10;
    eprintln!(
        "stalled consumer + 4 producers: {acked} records acked in 3 s; broker heap {baseline} KiB -> peak {peak} KiB \
         (cap {} KiB per connection, bound {bound_kib} KiB)",
        cap / 1024
    );
    assert!(acked > 0);
    assert!(
        peak <= bound_kib,
        "heap peaked at {peak} KiB, above {bound_kib} KiB"
    );
}
