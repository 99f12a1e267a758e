//! Clients that survive a broker restart (issue 12, item 17): each consumer
//! kind, `ferryctl consume` (plain and `--group`) and `ferryctl produce`
//! keep going while the real broker is stopped (SIGTERM or kill -9) for
//! about a second and started again on the same address and data
//! directory; a client with a reconnect deadline gives up at it, and
//! `ferryctl produce` says how many records were acknowledged when it does.
//! Every wait is bounded by `PATIENCE`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferry_client::{
    Client, ClientError, ClientOptions, ConnectionState, Consumer, ConsumerConfig, GroupConfig,
    GroupConsumer, Producer, ProducerRecord, QueueConfig, QueueConsumer, ReconnectPolicy, SeekTo,
};
use ferry_e2e::Broker;

/// How long the broker stays down.
const DOWNTIME: Duration = Duration::from_secs(1);
/// The longest any one wait of these tests may take.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

/// Stops the broker, leaves it down for `DOWNTIME` and starts it again on
/// the same address and data (on a blocking thread: clients keep running).
async fn bounce(mut broker: Broker, stop: Stop) -> Broker {
    tokio::task::spawn_blocking(move || {
        match stop {
            Stop::Term => assert!(broker.terminate().success(), "clean shutdown"),
            Stop::Kill => broker.kill9(),
        }
        std::thread::sleep(DOWNTIME);
        broker.restart();
        broker
    })
    .await
    .expect("bounce the broker")
}

/// Checks `done` every 20 ms; panics if it does not hold within `PATIENCE`.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `topic` holds at least `count` records.
async fn wait_for_records(client: &Client, topic: &str, count: u64) {
    let deadline = Instant::now() + PATIENCE;
    while ferry_e2e::end_offsets(client, topic)
        .await
        .iter()
        .sum::<u64>()
        < count
    {
        assert!(
            Instant::now() < deadline,
            "{topic} never held {count} records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Produces `values` (acks = durable) and waits for every ack.
async fn produce(client: &Client, topic: &str, values: impl Iterator<Item = String>) {
    let producer = Producer::new(client, topic).await.expect("producer");
    let sends: Vec<_> = values
        .map(|v| producer.send(ProducerRecord::new(v)))
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.expect("produce");
    }
}

/// Every (partition, offset) of `topic` now.
async fn every_offset(client: &Client, topic: &str) -> BTreeSet<(u32, u64)> {
    let ends = ferry_e2e::end_offsets(client, topic).await;
    (0..ends.len() as u32)
        .flat_map(|p| (0..ends[p as usize]).map(move |o| (p, o)))
        .collect()
}

fn lines(prefix: &str, range: std::ops::Range<u32>) -> impl Iterator<Item = String> + '_ {
    range.map(move |i| format!("{prefix} {i}"))
}

#[tokio::test]
async fn a_consumer_resumes_after_a_broker_restart() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("plain", 3).await.unwrap();
    produce(&client, "plain", lines("before", 0..300)).await;
    let reader = broker.client().await;
    let got = Arc::new(Mutex::new(Vec::new()));
    let consuming = tokio::spawn(read_plain(reader.clone(), got.clone(), 600));
    wait_until("the consumer read the first 300", || {
        got.lock().unwrap().len() >= 300
    })
    .await;
    let _broker = bounce(broker, Stop::Kill).await;
    produce(&client, "plain", lines("after", 0..300)).await;
    consuming.await.unwrap();
    let ends = ferry_e2e::end_offsets(&client, "plain").await;
    // Per partition: 0, 1, 2, ... to the end, each once, in order.
    let mut next = vec![0u64; ends.len()];
    for (partition, offset) in got.lock().unwrap().iter() {
        let expected = &mut next[*partition as usize];
        assert_eq!(offset, expected, "partition {partition}: a gap or a repeat");
        *expected += 1;
    }
    assert_eq!(next, ends, "every record was read");
    assert!(reader.connection_state().borrow().reconnects() >= 1);
}

/// Polls a plain consumer of every partition of `plain` until `total`
/// records arrived; a poll may not fail across the restart.
async fn read_plain(client: Client, got: Arc<Mutex<Vec<(u32, u64)>>>, total: usize) {
    let config = ConsumerConfig {
        max_wait_ms: 200,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::with_config(&client, "plain", config)
        .await
        .unwrap();
    consumer.assign_all(SeekTo::Earliest).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    while got.lock().unwrap().len() < total && Instant::now() < deadline {
        let records = consumer.poll().await.expect("polls ride through");
        let mut got = got.lock().unwrap();
        got.extend(records.iter().map(|r| (r.partition, r.offset)));
    }
}

#[tokio::test]
async fn a_group_consumer_rejoins_after_a_broker_restart() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("grouped", 2).await.unwrap();
    produce(&client, "grouped", lines("before", 0..200)).await;
    let mut config = GroupConfig::new("riders", &["grouped"]);
    config.auto_commit_interval_ms = Some(200);
    config.consumer.max_wait_ms = 200;
    let consumer = GroupConsumer::join(&broker.client().await, config)
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let polling = tokio::spawn(read_group(consumer, seen.clone(), 400));
    wait_until("the member read the first 200", || {
        seen.lock().unwrap().len() >= 200
    })
    .await;
    let _broker = bounce(broker, Stop::Term).await;
    produce(&client, "grouped", lines("after", 0..200)).await;
    let consumer = polling.await.unwrap();
    // Nothing skipped (a record may come twice: at-least-once).
    let expected = every_offset(&client, "grouped").await;
    assert_eq!(*seen.lock().unwrap(), expected);
    wait_for_rejoin(&client, "riders", &consumer).await;
    // Commits work again: leaving commits everything it read.
    consumer.close().await.unwrap();
    let committed = client.fetch_offsets("riders", &[]).await.unwrap();
    let committed: Vec<Option<u64>> = committed.iter().map(|c| c.offset).collect();
    let ends = ferry_e2e::end_offsets(&client, "grouped").await;
    assert_eq!(committed, ends.into_iter().map(Some).collect::<Vec<_>>());
}

/// Waits until the group's one member is `consumer`: the restarted
/// broker knows the member once it has re-joined (maybe under a new id).
async fn wait_for_rejoin(client: &Client, group: &str, consumer: &GroupConsumer) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let members: Vec<String> = match client.describe_group(group).await {
            Ok(described) => described.members.into_iter().map(|m| m.member_id).collect(),
            Err(_) => Vec::new(),
        };
        if members.len() == 1 && consumer.member_id().as_ref() == members.first() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group} never showed its member: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a group member until it has seen `total` distinct records; a
/// poll may not fail across the restart.
async fn read_group(
    mut consumer: GroupConsumer,
    seen: Arc<Mutex<BTreeSet<(u32, u64)>>>,
    total: usize,
) -> GroupConsumer {
    let deadline = Instant::now() + PATIENCE;
    while seen.lock().unwrap().len() < total && Instant::now() < deadline {
        let records = consumer.poll().await.expect("polls ride through");
        let mut seen = seen.lock().unwrap();
        seen.extend(records.iter().map(|r| (r.partition, r.offset)));
    }
    consumer
}

#[tokio::test]
async fn a_queue_consumer_resubscribes_after_a_broker_restart() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("jobs", 2).await.unwrap();
    let config = QueueConfig {
        ack_timeout_ms: 60_000,
        ..QueueConfig::default()
    };
    client.create_queue("jobs", "work", &config).await.unwrap();
    produce(&client, "jobs", lines("before", 0..100)).await;
    let mut consumer = QueueConsumer::subscribe(&client, "jobs", "work", 20)
        .await
        .unwrap();
    // Ack 90 (confirmed: durable), hold 10 unacked across the restart.
    let (mut acked, mut held) = (BTreeSet::new(), Vec::new());
    while acked.len() + held.len() < 100 {
        let delivery = next_delivery(&mut consumer).await;
        if held.len() < 10 {
            held.push(delivery);
        } else {
            delivery.ack().await.unwrap();
            acked.insert((delivery.partition, delivery.offset));
        }
    }
    let _broker = bounce(broker, Stop::Kill).await;
    for delivery in &held {
        let error = delivery.ack().await.expect_err("stale");
        assert!(
            matches!(error, ClientError::StaleDelivery { .. }),
            "{error}"
        );
    }
    produce(&client, "jobs", lines("after", 0..100)).await;
    // Subscribed again: the 10 held come back, the 100 new ones arrive.
    let deadline = Instant::now() + PATIENCE;
    while acked.len() < 200 && Instant::now() < deadline {
        let delivery = next_delivery(&mut consumer).await;
        delivery.ack().await.unwrap();
        acked.insert((delivery.partition, delivery.offset));
    }
    assert_eq!(acked, every_offset(&client, "jobs").await);
    assert!(consumer.connection_state().borrow().reconnects() >= 1);
    let described = client.describe_queue("jobs", "work").await.unwrap();
    let counts = (described.acked, described.ready, described.in_flight);
    assert_eq!(counts, (200, 0, 0));
}

async fn next_delivery(consumer: &mut QueueConsumer) -> ferry_client::Delivery {
    consumer
        .recv_timeout(PATIENCE)
        .await
        .expect("a delivery in time")
        .expect("deliveries ride through")
}

#[tokio::test]
async fn ferryctl_consume_rides_through_a_broker_restart() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("lines", 1).await.unwrap();
    let plain = Ferryctl::spawn(&broker.addr, &["consume", "lines", "--count", "200"]);
    let group_args = ["consume", "lines", "--group", "cli", "--count", "200"];
    let grouped = Ferryctl::spawn(&broker.addr, &group_args);
    produce(&client, "lines", lines("line", 0..100)).await;
    wait_until("both printed the first 100", || {
        plain.lines() >= 100 && grouped.lines() >= 100
    })
    .await;
    let _broker = bounce(broker, Stop::Kill).await;
    produce(&client, "lines", lines("line", 100..200)).await;
    let expected: Vec<String> = lines("line", 0..200).collect();
    let (code, out, err) = plain.finish().await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, expected, "every line once, in order");
    let (code, mut out, err) = grouped.finish().await;
    assert_eq!(code, Some(0), "{err}");
    out.sort_by_key(|line| line[5..].parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(out, expected, "every line once");
    let committed = client.fetch_offsets("cli", &[]).await.unwrap();
    assert_eq!(
        committed[0].offset,
        Some(200),
        "it committed what it printed"
    );
}

#[tokio::test]
async fn ferryctl_produce_rides_through_a_broker_restart() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("typed", 2).await.unwrap();
    let mut producing = Ferryctl::spawn(&broker.addr, &["produce", "typed"]);
    producing.write(lines("line", 0..100));
    wait_for_records(&client, "typed", 100).await;
    // Keep typing (about 2 s, a line every 10 ms) while the broker bounces.
    let bouncing = tokio::spawn(bounce(broker, Stop::Term));
    for line in lines("line", 100..300) {
        producing.write(std::iter::once(line));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let broker = bouncing.await.unwrap();
    producing.write(lines("line", 300..400));
    let (code, _, err) = producing.finish().await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("produced 400 message(s)"), "{err}");
    assert!(err.contains("reconnected to"), "{err}");
    let stored: BTreeSet<String> = ferry_e2e::read_all(&broker.client().await, "typed", 400)
        .await
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(stored, lines("line", 0..400).collect(), "every line stored");
}

#[tokio::test]
async fn ferryctl_produce_says_how_many_records_were_acknowledged_when_it_gives_up() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("cut", 1).await.unwrap();
    let args = ["--reconnect-timeout-ms", "500", "produce", "cut"];
    let mut producing = Ferryctl::spawn(&broker.addr, &args);
    producing.write(lines("line", 0..50));
    wait_for_records(&client, "cut", 50).await;
    let _stopped = tokio::task::spawn_blocking(move || {
        let mut broker = broker;
        assert!(broker.terminate().success());
        broker
    })
    .await
    .unwrap();
    producing.write(lines("line", 50..60));
    let (code, _, err) = producing.finish().await;
    assert_eq!(code, Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ferryctl: error: cannot reach the broker"),
        "{err}"
    );
    assert!(last.ends_with("(50 of 60 records acknowledged)"), "{err}");
}

#[tokio::test]
async fn a_client_gives_up_at_its_reconnect_deadline() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let deadline = Duration::from_millis(800);
    let options = ClientOptions {
        reconnect: ReconnectPolicy {
            deadline: Some(deadline),
            ..ReconnectPolicy::default()
        },
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&broker.addr, options).await.unwrap();
    client.create_topic("gone", 1).await.unwrap();
    let states = record_states(&client);
    let config = ConsumerConfig {
        max_wait_ms: 200,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::with_config(&client, "gone", config)
        .await
        .unwrap();
    consumer.assign_all(SeekTo::Earliest).await.unwrap();
    let mut broker = tokio::task::spawn_blocking(move || {
        let mut broker = broker;
        broker.kill9();
        broker
    })
    .await
    .unwrap();
    let killed = Instant::now();
    let error = poll_until_error(&mut consumer).await;
    let waited = killed.elapsed();
    assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains("gave up after"), "{error}");
    let around = deadline - Duration::from_millis(100)..deadline + Duration::from_secs(3);
    assert!(around.contains(&waited), "gave up after {waited:?}");
    let seen = states.lock().unwrap().clone();
    assert!(seen
        .iter()
        .any(|s| matches!(s, ConnectionState::Reconnecting { .. })));
    let now = client.connection_state().borrow().clone();
    assert!(matches!(now, ConnectionState::GaveUp { .. }), "{now:?}");
    // Past the deadline a call makes one attempt and fails at once...
    let started = Instant::now();
    assert!(client.list_topics().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(1));
    // ...and succeeds again once the broker is back.
    broker = tokio::task::spawn_blocking(move || {
        broker.restart();
        broker
    })
    .await
    .unwrap();
    assert_eq!(client.list_topics().await.unwrap().len(), 1);
    assert!(client.connection_state().borrow().reconnects() >= 1);
    drop(broker);
}

/// Polls until a poll fails (bounded in count and time).
async fn poll_until_error(consumer: &mut Consumer) -> ClientError {
    let started = Instant::now();
    for _ in 0..1000 {
        if let Err(error) = consumer.poll().await {
            return error;
        }
        assert!(started.elapsed() < PATIENCE, "polls never failed");
    }
    panic!("polls never failed");
}

/// Every state the client's connection goes through, as it changes.
fn record_states(client: &Client) -> Arc<Mutex<Vec<ConnectionState>>> {
    let states = Arc::new(Mutex::new(Vec::new()));
    let (sink, mut state) = (states.clone(), client.connection_state());
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let now = state.borrow_and_update().clone();
            sink.lock().unwrap().push(now);
        }
    });
    states
}

#[tokio::test]
async fn a_first_connection_fails_at_its_deadline() {
    let options = ClientOptions {
        first_connect_deadline: Some(Duration::from_millis(300)),
        ..ClientOptions::default()
    };
    let started = Instant::now();
    let error = Client::connect_with("127.0.0.1:1", options)
        .await
        .err()
        .expect("nothing listens on port 1");
    let waited = started.elapsed();
    assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
    let around = Duration::from_millis(250)..Duration::from_secs(3);
    assert!(around.contains(&waited), "gave up after {waited:?}");
}

/// `ferryctl` running in the background; its output is collected as it
/// comes. Killed if dropped before it finished.
struct Ferryctl {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    err: Arc<Mutex<String>>,
}

impl Ferryctl {
    fn spawn(addr: &str, args: &[&str]) -> Ferryctl {
        let mut child = ferry_e2e::spawn_ferryctl(addr, args);
        let (out, err) = (Arc::new(Mutex::new(Vec::new())), Arc::default());
        let (stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        let lines = out.clone();
        let errors: Arc<Mutex<String>> = Arc::clone(&err);
        let readers = vec![
            std::thread::spawn(move || {
                let lines_in = BufReader::new(stdout.expect("stdout")).lines();
                for line in lines_in.map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }),
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.as_mut().map(|e| e.read_to_string(&mut text));
                errors.lock().unwrap().push_str(&text);
            }),
        ];
        let stdin = child.stdin.take();
        Ferryctl {
            child,
            stdin,
            out,
            readers,
            err,
        }
    }

    /// Lines printed on stdout so far.
    fn lines(&self) -> usize {
        self.out.lock().unwrap().len()
    }

    fn write(&mut self, lines: impl Iterator<Item = String>) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let text: String = lines.map(|line| line + "\n").collect();
        stdin.write_all(text.as_bytes()).expect("write to ferryctl");
        stdin.flush().expect("flush");
    }

    /// Closes stdin and waits (up to `PATIENCE`) for the exit: (exit code,
    /// stdout lines, stderr).
    async fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        self.stdin.take();
        let deadline = Instant::now() + PATIENCE;
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let readers = std::mem::take(&mut self.readers);
        tokio::task::spawn_blocking(move || readers.into_iter().for_each(|r| drop(r.join())))
            .await
            .expect("output readers");
        let out = self.out.lock().unwrap().clone();
        let err = self.err.lock().unwrap().clone();
        (code, out, err)
    }
}

impl Drop for Ferryctl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
