//! Consumer groups end to end: balanced assignment, incremental rebalancing
//! when members come, leave or die, at-least-once delivery under churn,
//! resuming from committed offsets, fencing, and durability of commits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_client::{
    Client, GroupConfig, GroupConsumer, GroupDescription, GroupState, Producer, ProducerRecord,
};
use ferry_e2e::Broker;
use ferry_protocol::messages::{OffsetCommitEntry, OffsetCommitRequest};
use ferry_protocol::ErrorCode;

type Seen = Arc<Mutex<Vec<(u32, u64)>>>;

fn config(group: &str, topic: &str, session_ms: u32) -> GroupConfig {
    let mut config = GroupConfig::new(group, &[topic]);
    config.session_timeout_ms = session_ms;
    config.auto_commit_interval_ms = Some(200);
    config.consumer.max_wait_ms = 100;
    config
}

/// A member polling in the background, recording what it receives.
struct Member {
    task: tokio::task::JoinHandle<GroupConsumer>,
    stop: Arc<tokio::sync::Notify>,
}

async fn spawn_member(client: &Client, config: GroupConfig, seen: Seen) -> Member {
    let mut consumer = GroupConsumer::join(client, config).await.unwrap();
    assert!(consumer.member_id().is_some());
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopper = stop.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                records = consumer.poll() => {
                    let records = records.unwrap();
                    seen.lock().unwrap().extend(records.iter().map(|r| (r.partition, r.offset)));
                }
                _ = stopper.notified() => return consumer,
            }
        }
    });
    Member { task, stop }
}

impl Member {
    /// Stops polling and leaves cleanly (commits first).
    async fn close(self) {
        self.stop.notify_one();
        let consumer = self.task.await.unwrap();
        consumer.close().await.unwrap();
    }
}

/// Polls DescribeGroup until `ready` holds (bounded by `within`).
async fn wait_for(
    client: &Client,
    group: &str,
    within: Duration,
    ready: impl Fn(&GroupDescription) -> bool,
) -> GroupDescription {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(described) = client.describe_group(group).await {
            if ready(&described) {
                return described;
            }
            if Instant::now() > deadline {
                panic!("group never reached the expected state: {described:#?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assignment(described: &GroupDescription) -> BTreeMap<String, BTreeSet<u32>> {
    described
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.clone(),
                m.assignment
                    .iter()
                    .map(|(_, partition)| *partition)
                    .collect(),
            )
        })
        .collect()
}

fn settled(described: &GroupDescription, members: usize, partitions: usize) -> bool {
    let a = assignment(described);
    described.members.len() == members
        && described.state == GroupState::Stable
        && a.values().map(BTreeSet::len).sum::<usize>() == partitions
}

#[tokio::test]
async fn members_share_partitions_and_rebalance_incrementally() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("six", 6).await.unwrap();
    let seen: Seen = Arc::default();
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(spawn_member(&client, config("g", "six", 1000), seen.clone()).await);
    }
    let three = wait_for(&client, "g", Duration::from_secs(10), |d| settled(d, 3, 6)).await;
    let before = assignment(&three);
    assert!(before.values().all(|p| p.len() == 2), "{before:?}");

    // A fourth member (a separate ferryctl process, so it can be killed).
    let mut fourth = std::process::Command::new(ferry_e2e::binary("ferryctl"))
        .args([
            "--broker",
            &broker.addr,
            "consume",
            "six",
            "--group",
            "g",
            "--session-timeout-ms",
            "1000",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let four = wait_for(&client, "g", Duration::from_secs(10), |d| settled(d, 4, 6)).await;
    let after = assignment(&four);
    for (id, partitions) in &before {
        assert!(
            partitions.is_subset(&after[id]) || after[id].is_subset(partitions),
            "{id} was reshuffled: {before:?} -> {after:?}"
        );
        assert!(
            after[id].is_subset(partitions),
            "{id} gained partitions: {before:?} -> {after:?}"
        );
    }
    let newcomer = after
        .keys()
        .find(|id| !before.contains_key(*id))
        .unwrap()
        .clone();
    assert!(!after[&newcomer].is_empty());

    // Kill -9 the fourth: no leave. Its partitions come back within the session timeout.
    fourth.kill().unwrap();
    let killed_at = Instant::now();
    let _ = fourth.wait();
    let healed = wait_for(&client, "g", Duration::from_secs(10), |d| settled(d, 3, 6)).await;
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_millis(1000 + 1500),
        "reassigned after {took:?}"
    );
    assert!(!assignment(&healed).contains_key(&newcomer));
    for member in members {
        member.close().await;
    }
}

#[tokio::test]
async fn records_produced_while_members_come_and_go_are_all_delivered_and_commits_resume() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("churn", 4).await.unwrap();
    let total = 100_000u64;
    let producing = {
        let client = Client::connect(&broker.addr).await.unwrap();
        tokio::spawn(async move {
            let producer = Producer::new(&client, "churn").await.unwrap();
            for chunk in 0..20u64 {
                let sends: Vec<_> = (0..total / 20)
                    .map(|i| {
                        producer.send(
                            ProducerRecord::new(format!("{}", chunk * (total / 20) + i))
                                .with_key(format!("{i}")),
                        )
                    })
                    .collect();
                for sent in futures::future::join_all(sends).await {
                    sent.unwrap();
                }
            }
        })
    };
    let seen: Seen = Arc::default();
    let first = spawn_member(&client, config("churn-g", "churn", 1000), seen.clone()).await;
    let second = spawn_member(&client, config("churn-g", "churn", 1000), seen.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = spawn_member(&client, config("churn-g", "churn", 1000), seen.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.close().await;
    // The second dies without leaving or committing its last batch.
    second.task.abort();
    let fourth = spawn_member(&client, config("churn-g", "churn", 1000), seen.clone()).await;
    producing.await.unwrap();
    let ends = ferry_e2e::end_offsets(&client, "churn").await;
    assert_eq!(ends.iter().sum::<u64>(), total);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<(u32, u64)> = seen.lock().unwrap().iter().copied().collect();
        if got.len() as u64 == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {total} records delivered",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    third.close().await;
    fourth.close().await;
    // Everything committed: lag 0 everywhere.
    let described = client.describe_group("churn-g").await.unwrap();
    assert_eq!(described.state, GroupState::Empty);
    for p in &described.partitions {
        assert_eq!(
            (p.committed, p.lag),
            (Some(p.end_offset), 0),
            "partition {}",
            p.partition
        );
    }
    // A new member resumes exactly after the committed offsets.
    let producer = Producer::new(&client, "churn").await.unwrap();
    for i in 0..10 {
        producer
            .send(ProducerRecord::new(format!("late-{i}")).with_key(format!("{i}")))
            .await
            .unwrap();
    }
    let late: Seen = Arc::default();
    let newcomer = spawn_member(&client, config("churn-g", "churn", 1000), late.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while late.lock().unwrap().len() < 10 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late: Vec<(u32, u64)> = late.lock().unwrap().clone();
    assert_eq!(late.len(), 10, "only the new records: {late:?}");
    assert!(late.iter().all(|(p, o)| *o >= ends[*p as usize]));
    newcomer.close().await;
}

#[tokio::test]
async fn two_groups_each_receive_every_record() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("fan", 3).await.unwrap();
    let producer = Producer::new(&client, "fan").await.unwrap();
    let sends: Vec<_> = (0..1000)
        .map(|i| producer.send(ProducerRecord::new(format!("{i}"))))
        .collect();
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    for group in ["analytics", "billing"] {
        let seen: Seen = Arc::default();
        let member = spawn_member(&client, config(group, "fan", 5000), seen.clone()).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().len() < 1000 {
            assert!(
                Instant::now() < deadline,
                "{group} got {}",
                seen.lock().unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let distinct: BTreeSet<_> = seen.lock().unwrap().iter().copied().collect();
        assert_eq!(distinct.len(), 1000);
        member.close().await;
    }
    let groups: Vec<String> = client
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.group)
        .collect();
    assert_eq!(groups, vec!["analytics", "billing"]);
}

#[tokio::test]
async fn a_fenced_member_cannot_commit_and_offsets_survive_kill_9() {
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("fence", 1).await.unwrap();
    let producer = Producer::new(&client, "fence").await.unwrap();
    for i in 0..10 {
        producer
            .send(ProducerRecord::new(format!("{i}")))
            .await
            .unwrap();
    }
    // A member that never heartbeats: removed after its 200 ms session.
    let joined = client
        .wire()
        .call(&ferry_protocol::messages::JoinGroupRequest {
            group: "f".into(),
            client_id: "zombie".into(),
            topics: vec!["fence".into()],
            session_timeout_ms: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(joined.assignment.len(), 1);
    let commit = |member: &str, offset: u64| OffsetCommitRequest {
        group: "f".into(),
        member_id: member.to_string(),
        member_epoch: joined.member_epoch,
        offsets: vec![OffsetCommitEntry {
            topic: "fence".into(),
            partition: 0,
            offset,
            metadata: "m".into(),
        }],
    };
    client
        .wire()
        .call(&commit(&joined.member_id, 3))
        .await
        .unwrap();
    wait_for(&client, "f", Duration::from_secs(5), |d| {
        d.members.is_empty()
    })
    .await;
    let stale = client
        .wire()
        .call(&commit(&joined.member_id, 9))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Some(ErrorCode::FencedMember), "{stale}");
    let committed = client.fetch_offsets("f", &[]).await.unwrap();
    assert_eq!(
        committed[0].offset,
        Some(3),
        "the fenced commit changed nothing"
    );

    // An acknowledged commit survives kill -9.
    client
        .reset_offsets("f", "fence", ferry_client::SeekTo::Offset(7))
        .await
        .unwrap();
    broker.kill9();
    broker.restart();
    let client = broker.client().await;
    let committed = client.fetch_offsets("f", &[]).await.unwrap();
    assert_eq!(committed[0].offset, Some(7));
    let described = client.describe_group("f").await.unwrap();
    assert_eq!(
        (
            described.partitions[0].committed,
            described.partitions[0].lag
        ),
        (Some(7), 3)
    );
}

#[test]
fn ferryctl_group_commands() {
    let broker = Broker::start();
    let run = |args: &[&str]| broker.ferryctl(args, "");
    assert_eq!(run(&["topic", "create", "t", "--partitions", "2"]).0, 0);
    let lines: String = (0..100).map(|i| format!("m{i}\n")).collect();
    assert_eq!(broker.ferryctl(&["produce", "t"], &lines).0, 0);
    let (code, out, err) = run(&["consume", "t", "--group", "cli", "--count", "60"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 60);
    // The group resumes where it stopped: the other 40, none again.
    let (code, out2, _) = run(&["consume", "t", "--group", "cli", "--timeout-ms", "500"]);
    assert_eq!(code, 0);
    assert_eq!(out2.lines().count(), 40, "{out2}");
    let all: BTreeSet<&str> = out.lines().chain(out2.lines()).collect();
    assert_eq!(all.len(), 100);

    let (code, out, _) = run(&["group", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("cli"));
    let (code, out, _) = run(&["group", "describe", "cli", "--json"]);
    assert_eq!(code, 0);
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(described["group"], "cli");
    let partitions = described["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2);
    for p in partitions {
        assert_eq!(p["lag"], 0);
        assert_eq!(p["committed"], p["end_offset"]);
        assert_eq!(p["topic"], "t");
    }
    let (code, out, _) = run(&[
        "group",
        "reset-offsets",
        "cli",
        "--topic",
        "t",
        "--to",
        "earliest",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("NEW OFFSET"));
    let (_, out, _) = run(&["group", "describe", "cli", "--json"]);
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lag: u64 = described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lag"].as_u64().unwrap())
        .sum();
    assert_eq!(lag, 100);

    // Refused while a member is live.
    let mut live = std::process::Command::new(ferry_e2e::binary("ferryctl"))
        .args(["--broker", &broker.addr, "consume", "t", "--group", "cli"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = run(&["group", "describe", "cli", "--json"]);
        let described: serde_json::Value = serde_json::from_str(&out).unwrap();
        if !described["members"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _, err) = run(&[
        "group",
        "reset-offsets",
        "cli",
        "--topic",
        "t",
        "--to",
        "latest",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("live member"), "{err}");
    let (code, _, err) = run(&["group", "delete", "cli"]);
    assert_eq!(code, 1);
    assert!(err.contains("live member"));
    let _ = live.kill();
    let _ = live.wait();
}

#[tokio::test]
async fn empty_groups_expire_and_deleting_a_topic_drops_its_offsets() {
    let broker = Broker::start_with(&["--group-retention-ms", "300"]);
    let client = broker.client().await;
    client.create_topic("a", 1).await.unwrap();
    client.create_topic("b", 1).await.unwrap();
    let producer = Producer::new(&client, "b").await.unwrap();
    producer.send(ProducerRecord::new("x")).await.unwrap();
    client
        .reset_offsets("short-lived", "a", ferry_client::SeekTo::Earliest)
        .await
        .unwrap();
    client
        .reset_offsets("keeps-b", "b", ferry_client::SeekTo::Latest)
        .await
        .unwrap();
    client
        .reset_offsets("keeps-b", "a", ferry_client::SeekTo::Earliest)
        .await
        .unwrap();
    // Deleting topic a removes its offsets from every group.
    client.delete_topic("a").await.unwrap();
    let left: Vec<String> = client
        .fetch_offsets("keeps-b", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.topic)
        .collect();
    assert_eq!(left, vec!["b"]);
    // Groups without members go after the retention.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.list_groups().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "empty groups never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        client.describe_group("keeps-b").await.unwrap_err().code(),
        Some(ErrorCode::UnknownGroup)
    );
}
