//! Queues end to end: competing consumers sharing the load, redelivery on
//! disconnect and ack timeout, InProgress, dead letters, durable acks across
//! restart and kill -9, and scheduled delivery precision.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_client::{Client, Producer, ProducerConfig, ProducerRecord, QueueConfig, QueueConsumer};
use ferry_e2e::Broker;

async fn produce(client: &Client, topic: &str, count: u64) {
    let producer = Producer::new(client, topic).await.unwrap();
    let sends: Vec<_> = (0..count)
        .map(|i| producer.send(ProducerRecord::new(format!("{i}")).with_key(format!("{}", i % 97))))
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
}

async fn create_queue(
    client: &Client,
    topic: &str,
    queue: &str,
    ack_timeout_ms: u32,
    max_deliveries: u32,
) {
    client
        .create_queue(
            topic,
            queue,
            &QueueConfig {
                ack_timeout_ms,
                max_deliveries,
                ..QueueConfig::default()
            },
        )
        .await
        .unwrap();
}

fn value(delivery: &ferry_client::Delivery) -> String {
    String::from_utf8(delivery.value.clone().unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn four_consumers_share_100k_messages_each_acked_exactly_once() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("work", 4).await.unwrap();
    create_queue(&client, "work", "q", 30_000, 5).await;
    let total = 100_000u64;
    produce(&client, "work", total).await;
    let acked: Arc<Mutex<BTreeMap<(u32, u64), usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..4usize {
        let client = client.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut consumer = QueueConsumer::subscribe(&client, "work", "q", 10)
                .await
                .unwrap();
            let mut mine = 0u64;
            let mut confirmations = futures::stream::FuturesUnordered::new();
            loop {
                if acked.lock().unwrap().len() as u64 >= total {
                    break;
                }
                let Some(delivery) = consumer.recv_timeout(Duration::from_millis(500)).await else {
                    continue;
                };
                let delivery = delivery.unwrap();
                *acked
                    .lock()
                    .unwrap()
                    .entry((delivery.partition, delivery.offset))
                    .or_default() += 1;
                confirmations.push(delivery.ack());
                mine += 1;
                while confirmations.len() > 64 {
                    futures::StreamExt::next(&mut confirmations)
                        .await
                        .unwrap()
                        .unwrap();
                }
            }
            while let Some(result) = futures::StreamExt::next(&mut confirmations).await {
                result.unwrap();
            }
            (c, mine)
        }));
    }
    let mut shares = Vec::new();
    for task in tasks {
        shares.push(task.await.unwrap());
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, total, "every message delivered");
    assert!(
        acked.values().all(|n| *n == 1),
        "a message was delivered twice without a failure"
    );
    for (c, mine) in shares {
        assert!(
            mine >= total / 10,
            "consumer {c} got only {mine} of {total}"
        );
    }
    let described = client.describe_queue("work", "q").await.unwrap();
    assert_eq!(
        (described.acked, described.ready, described.in_flight),
        (total, 0, 0)
    );
}

#[tokio::test]
async fn a_consumer_that_disconnects_has_its_messages_redelivered_with_count_2() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("d", 1).await.unwrap();
    create_queue(&client, "d", "q", 30_000, 5).await;
    produce(&client, "d", 20).await;
    let mut first = QueueConsumer::subscribe(&client, "d", "q", 5)
        .await
        .unwrap();
    let mut held = BTreeSet::new();
    for _ in 0..5 {
        let delivery = first
            .recv_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivery.delivery_count, 1);
        held.insert(delivery.offset);
    }
    let mut second = QueueConsumer::subscribe(&client, "d", "q", 100)
        .await
        .unwrap();
    // The second takes the other 15 while the first holds 5.
    let mut others = BTreeSet::new();
    while others.len() < 15 {
        let delivery = second
            .recv_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        others.insert(delivery.offset);
        drop(delivery.ack());
    }
    assert!(others.is_disjoint(&held));
    drop(first);
    let mut again = BTreeSet::new();
    while again.len() < 5 {
        let delivery = second
            .recv_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            delivery.delivery_count, 2,
            "redelivered with its count increased"
        );
        again.insert(delivery.offset);
        delivery.ack().await.unwrap();
    }
    assert_eq!(again, held);
}

#[tokio::test]
async fn rejected_and_never_acked_messages_land_in_the_dead_letter_topic() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("p", 1).await.unwrap();
    create_queue(&client, "p", "q", 1_000, 3).await;
    produce(&client, "p", 2).await;
    let mut consumer = QueueConsumer::subscribe(&client, "p", "q", 10)
        .await
        .unwrap();
    let mut deliveries_of_1 = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Offset 0 is always rejected; offset 1 is never acked (it times out 3 times).
    while client.describe_queue("p", "q").await.unwrap().dead_lettered < 2 {
        assert!(Instant::now() < deadline, "not dead-lettered in time");
        let Some(delivery) = consumer.recv_timeout(Duration::from_millis(300)).await else {
            continue;
        };
        let delivery = delivery.unwrap();
        match delivery.offset {
            0 => delivery.nack(false).await.unwrap(),
            _ => deliveries_of_1 += 1,
        }
    }
    assert_eq!(
        deliveries_of_1, 3,
        "delivered max_deliveries times, then dead-lettered"
    );
    let mut dlq = ferry_client::Consumer::new(&client, "p.q.dlq")
        .await
        .unwrap();
    dlq.assign_all(ferry_client::SeekTo::Earliest)
        .await
        .unwrap();
    let mut dead = BTreeMap::new();
    while dead.len() < 2 {
        for record in dlq.poll().await.unwrap() {
            let header = |k: &str| String::from_utf8(record.header(k).unwrap().to_vec()).unwrap();
            assert_eq!(header("x-ferry-dlq-topic"), "p");
            assert_eq!(header("x-ferry-dlq-queue"), "q");
            assert_eq!(header("x-ferry-dlq-partition"), "0");
            dead.insert(
                header("x-ferry-dlq-offset"),
                (
                    header("x-ferry-dlq-reason"),
                    header("x-ferry-dlq-delivery-count"),
                ),
            );
        }
    }
    assert_eq!(dead["0"], ("rejected".to_string(), "1".to_string()));
    assert_eq!(dead["1"], ("max_deliveries".to_string(), "3".to_string()));
}

#[tokio::test]
async fn ack_timeout_redelivers_and_in_progress_holds_the_message() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("t", 1).await.unwrap();
    create_queue(&client, "t", "q", 1_000, 10).await;
    produce(&client, "t", 2).await;
    let mut consumer = QueueConsumer::subscribe(&client, "t", "q", 10)
        .await
        .unwrap();
    let a = consumer
        .recv_timeout(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let b = consumer
        .recv_timeout(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let held = Instant::now();
    // Keep `b` alive past three ack timeouts; let `a` lapse.
    let mut redelivered = Vec::new();
    while held.elapsed() < Duration::from_millis(3_500) {
        b.in_progress().await.unwrap();
        if let Some(Ok(delivery)) = consumer.recv_timeout(Duration::from_millis(100)).await {
            redelivered.push((delivery.offset, delivery.delivery_count, held.elapsed()));
        }
    }
    assert!(
        redelivered.iter().all(|(offset, _, _)| *offset == a.offset),
        "only the lapsed one comes back: {redelivered:?}"
    );
    let (_, count, after) = redelivered[0];
    assert_eq!(count, 2);
    assert!(
        after >= Duration::from_millis(900),
        "redelivered before the ack timeout: {after:?}"
    );
    b.ack().await.unwrap();
}

#[tokio::test]
async fn acks_survive_restart_and_kill_9() {
    let _exclusive = ferry_e2e::exclusive().await;
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("r", 2).await.unwrap();
    create_queue(&client, "r", "q", 30_000, 5).await;
    produce(&client, "r", 60_000).await;
    let mut consumer = QueueConsumer::subscribe(&client, "r", "q", 1000)
        .await
        .unwrap();
    let mut acked = BTreeSet::new();
    let mut confirmations = Vec::new();
    while acked.len() < 50_000 {
        let delivery = consumer
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        acked.insert((delivery.partition, delivery.offset));
        confirmations.push(delivery.ack());
    }
    for confirmation in futures::future::join_all(confirmations).await {
        confirmation.unwrap();
    }
    broker.kill9();
    broker.restart();
    let client = broker.client().await;
    let described = client.describe_queue("r", "q").await.unwrap();
    assert_eq!((described.acked, described.ready), (50_000, 10_000));
    let mut consumer = QueueConsumer::subscribe(&client, "r", "q", 1000)
        .await
        .unwrap();
    let mut again = BTreeSet::new();
    while let Some(delivery) = consumer.recv_timeout(Duration::from_millis(1000)).await {
        let delivery = delivery.unwrap();
        assert!(
            !acked.contains(&(delivery.partition, delivery.offset)),
            "an acked message came back"
        );
        again.insert((delivery.partition, delivery.offset));
        drop(delivery.ack());
    }
    assert_eq!(again.len(), 10_000, "exactly the unacked ones");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_messages_arrive_on_time_also_across_a_restart() {
    let _exclusive = ferry_e2e::exclusive().await;
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("s", 2).await.unwrap();
    create_queue(&client, "s", "q", 30_000, 5).await;
    let producer = Producer::with_config(
        &client,
        "s",
        ProducerConfig {
            linger_ms: 5,
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let now = ferry_client::now_ms();
    let total = 10_000i64;
    let sends: Vec<_> = (0..total)
        .map(|i| {
            // Over 5 s, starting after the restart below is done.
            let at = now + 3_000 + i * 5_000 / total;
            producer.send_at(ProducerRecord::new(at.to_string()), at)
        })
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    // Restart with everything still scheduled: the schedule is in the log.
    assert!(broker.terminate().success());
    broker.restart();
    let client = broker.client().await;
    let mut consumer = QueueConsumer::subscribe(&client, "s", "q", 10_000)
        .await
        .unwrap();
    let mut early = 0;
    let mut lateness = Vec::new();
    while lateness.len() < total as usize {
        let Some(delivery) = consumer.recv_timeout(Duration::from_secs(10)).await else {
            let described = client.describe_queue("s", "q").await.unwrap();
            panic!(
                "only {} of {total} scheduled messages arrived: {described:?}",
                lateness.len()
            );
        };
        let delivery = delivery.unwrap();
        let arrived = ferry_client::now_ms();
        let due: i64 = value(&delivery).parse().unwrap();
        if arrived < due {
            early += 1;
        }
        lateness.push(arrived - due);
        drop(delivery.ack());
    }
    assert_eq!(early, 0, "delivered before their time");
    lateness.sort();
    let worst = *lateness.last().unwrap();
    let pct = |p: f64| lateness[((lateness.len() - 1) as f64 * p) as usize];
    assert!(
        worst <= 100,
        "latest arrival {worst} ms after its time (p50 {} ms, p90 {} ms, p99 {} ms)",
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
}

#[test]
fn ferryctl_queue_commands() {
    let broker = Broker::start();
    let run = |args: &[&str], stdin: &str| broker.ferryctl(args, stdin);
    assert_eq!(run(&["topic", "create", "jobs"], "").0, 0);
    let (code, out, err) = run(
        &[
            "queue",
            "create",
            "jobs",
            "work",
            "--max-deliveries",
            "2",
            "--ack-timeout-ms",
            "5000",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created queue work"));
    assert_eq!(
        run(
            &["produce", "jobs"],
            &(1..=10).map(|i| format!("job {i}\n")).collect::<String>()
        )
        .0,
        0
    );
    let (code, out, _) = run(&["consume", "jobs", "--queue", "work", "--count", "4"], "");
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["job 1", "job 2", "job 3", "job 4"]
    );
    let (code, out, _) = run(
        &[
            "consume", "jobs", "--queue", "work", "--count", "2", "--nack",
        ],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let described = loop {
        let (code, out, _) = run(&["queue", "describe", "jobs", "work", "--json"], "");
        assert_eq!(code, 0);
        let described: serde_json::Value = serde_json::from_str(&out).unwrap();
        if described["dead_lettered"] == 2 || Instant::now() > deadline {
            break described;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(described["topic"], "jobs");
    assert_eq!(described["queue"], "work");
    assert_eq!(
        (
            described["acked"].as_u64(),
            described["dead_lettered"].as_u64()
        ),
        (Some(4), Some(2))
    );
    assert_eq!(
        (described["ready"].as_u64(), described["in_flight"].as_u64()),
        (Some(4), Some(0))
    );
    assert!(described["consumers"].as_array().unwrap().is_empty());
    let (code, out, _) = run(&["queue", "list"], "");
    assert_eq!(code, 0);
    assert!(out.contains("work"));
    let (code, out, _) = run(&["produce", "jobs", "--deliver-at", "+300"], "later\n");
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = run(&["queue", "delete", "jobs", "work"], "");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["queue", "describe", "jobs", "work"], "");
    assert_eq!(code, 1);
    assert!(err.contains("unknown queue"), "{err}");
}

#[tokio::test]
async fn a_queue_and_a_group_on_one_topic_each_get_everything() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("both", 2).await.unwrap();
    create_queue(&client, "both", "q", 30_000, 5).await;
    produce(&client, "both", 500).await;
    let mut queue = QueueConsumer::subscribe(&client, "both", "q", 100)
        .await
        .unwrap();
    let mut from_queue = BTreeSet::new();
    while from_queue.len() < 500 {
        let delivery = queue
            .recv_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        from_queue.insert((delivery.partition, delivery.offset));
        drop(delivery.ack());
    }
    let mut config = ferry_client::GroupConfig::new("g", &["both"]);
    config.consumer.max_wait_ms = 100;
    let mut group = ferry_client::GroupConsumer::join(&client, config)
        .await
        .unwrap();
    let mut from_group = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while from_group.len() < 500 && Instant::now() < deadline {
        for record in group.poll().await.unwrap() {
            from_group.insert((record.partition, record.offset));
        }
    }
    assert_eq!(
        from_group, from_queue,
        "the group sees every record the queue acked"
    );
    group.close().await.unwrap();
    assert_eq!(client.describe_queue("both", "q").await.unwrap().acked, 500);
}

/// `describe` counts scheduled messages apart from ready ones, also those
/// further in the log than the read-ahead has gone (5,000 ready messages,
/// more than the read-ahead holds, then three scheduled for an hour on).
#[tokio::test]
async fn describe_counts_scheduled_apart_from_ready_past_the_read_ahead() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("sched", 1).await.unwrap();
    client
        .create_queue("sched", "q", &QueueConfig::default())
        .await
        .unwrap();
    let producer = Producer::new(&client, "sched").await.unwrap();
    let sends: Vec<_> = (0..5000)
        .map(|i| producer.send(ProducerRecord::new(format!("r{i}"))))
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    let in_an_hour = ferry_client::now_ms() + 3_600_000;
    for i in 0..3 {
        let record = ProducerRecord::new(format!("later{i}"));
        producer.send_at(record, in_an_hour).await.unwrap();
    }
    let described = client.describe_queue("sched", "q").await.unwrap();
    assert_eq!(
        (described.ready, described.scheduled),
        (5000, 3),
        "{described:?}"
    );
}

/// A purge drops every ready message, scheduled ones too, leaves those in
/// flight (an unacked one comes back), and holds across `kill -9`; what is
/// produced afterwards is delivered as usual.
#[tokio::test]
async fn purge_drops_ready_messages_keeps_in_flight_ones_and_survives_kill_9() {
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("purged", 2).await.unwrap();
    client
        .create_queue("purged", "q", &QueueConfig::default())
        .await
        .unwrap();
    let producer = Producer::new(&client, "purged").await.unwrap();
    for i in 0..10 {
        producer
            .send(ProducerRecord::new(format!("m{i}")))
            .await
            .unwrap();
    }
    let later = ferry_client::now_ms() + 3_600_000;
    producer
        .send_at(ProducerRecord::new("scheduled"), later)
        .await
        .unwrap();
    // Two acked, three held in flight (prefetch 3, never acked).
    let mut taker = QueueConsumer::subscribe(&client, "purged", "q", 2)
        .await
        .unwrap();
    for _ in 0..2 {
        let delivery = taker
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        delivery.ack().await.unwrap();
    }
    drop(taker);
    let holder_client = broker.client().await;
    let mut holder = QueueConsumer::subscribe(&holder_client, "purged", "q", 3)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            holder
                .recv_timeout(Duration::from_secs(10))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let described = client.describe_queue("purged", "q").await.unwrap();
    assert_eq!(
        (described.in_flight, described.scheduled),
        (3, 1),
        "{described:?}"
    );

    let (code, out, err) = broker.ferryctl(&["queue", "purge", "purged", "q"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("purged 6 message(s)"),
        "5 ready and 1 scheduled: {out}"
    );
    let described = client.describe_queue("purged", "q").await.unwrap();
    assert_eq!(
        (described.ready, described.in_flight, described.scheduled),
        (0, 3, 0),
        "{described:?}"
    );
    assert!(client
        .peek_queue("purged", "q", 100)
        .await
        .unwrap()
        .is_empty());

    // After kill -9 the purge holds; the three never acked come back.
    broker.kill9();
    broker.restart();
    let client = broker.client().await;
    let described = client.describe_queue("purged", "q").await.unwrap();
    assert_eq!(
        (described.ready, described.scheduled),
        (3, 0),
        "{described:?}"
    );
    let mut values: Vec<String> = client
        .peek_queue("purged", "q", 100)
        .await
        .unwrap()
        .iter()
        .map(|m| {
            String::from_utf8_lossy(m.record.value.as_deref().unwrap_or_default()).into_owned()
        })
        .collect();
    values.sort();
    let mut expected: Vec<String> = held
        .iter()
        .map(|d| String::from_utf8_lossy(d.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    expected.sort();
    assert_eq!(values, expected, "the ones in flight at the purge");
    // New messages flow as usual.
    let producer = Producer::new(&client, "purged").await.unwrap();
    producer.send(ProducerRecord::new("after")).await.unwrap();
    let described = client.describe_queue("purged", "q").await.unwrap();
    assert_eq!(described.ready, 4, "{described:?}");
}
