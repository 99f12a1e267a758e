//! Consumer-group requests that used to cost the broker memory, starve
//! members or fill its group limit (issue 12, items 10 and 11), tried
//! against the real binary on 127.0.0.1: huge member and client ids, ids
//! the broker never issued, members that claim every partition or commit
//! partitions they do not own, floods of anonymous commits to new group
//! names, and group answers larger than a frame. Every loop is bounded in
//! count and time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_client::{Client, ClientError, GroupConfig, GroupConsumer, Producer, ProducerRecord};
use ferry_e2e::Broker;
use ferry_protocol::messages::{
    DescribeGroupRequest, GroupAssignmentResponse, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, OffsetCommitEntry, OffsetCommitRequest,
    OffsetFetchRequest, TopicPartition,
};
use ferry_protocol::ErrorCode;
use prost::Message;

/// The broker's bound on groups known only by committed offsets.
const OFFSET_ONLY_GROUPS_LIMIT: usize = 10_000;
/// Frame limit of the broker that checks answer sizes.
const SMALL_FRAME_BYTES: usize = 8192;
/// Header bytes of a frame (length prefix and header).
const FRAME_OVERHEAD_BYTES: usize = 14;

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn join_request(group: &str, topic: &str, member_id: &str, session_ms: u32) -> JoinGroupRequest {
    JoinGroupRequest {
        group: group.into(),
        member_id: member_id.into(),
        client_id: "hostile".into(),
        topics: vec![topic.into()],
        session_timeout_ms: session_ms,
        ..JoinGroupRequest::default()
    }
}

fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
    list.iter()
        .map(|(topic, partition)| TopicPartition {
            topic: topic.to_string(),
            partition: *partition,
        })
        .collect()
}

async fn heartbeat(
    client: &Client,
    group: &str,
    member: &str,
    owned: Vec<TopicPartition>,
) -> GroupAssignmentResponse {
    let request = HeartbeatRequest {
        group: group.into(),
        member_id: member.into(),
        member_epoch: 0,
        owned,
    };
    client.wire().call(&request).await.unwrap()
}

fn commit_request(group: &str, member: &str, topic: &str, partition: u32) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group: group.into(),
        member_id: member.into(),
        member_epoch: 0,
        offsets: vec![OffsetCommitEntry {
            topic: topic.into(),
            partition,
            offset: 0,
            metadata: String::new(),
        }],
    }
}

fn code<T>(result: Result<T, ClientError>) -> Option<ErrorCode> {
    result.err().and_then(|e| e.code())
}

#[tokio::test]
async fn a_join_with_a_huge_member_id_or_client_id_is_refused_and_memory_stays_flat() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("t", 4).await.unwrap();
    client
        .wire()
        .call(&join_request("g", "t", "", 60_000))
        .await
        .unwrap();
    let before = rss_kib(broker.pid());
    let huge = "m".repeat(4 << 20);
    for i in 0..60 {
        let mut request = join_request("g", "t", "", 60_000);
        match i % 2 {
            0 => request.member_id = huge.clone(),
            _ => request.client_id = huge.clone(),
        }
        let refused = client.wire().call(&request).await;
        assert_eq!(code(refused), Some(ErrorCode::InvalidRequest), "join {i}");
    }
    let beat = HeartbeatRequest {
        group: "g".into(),
        member_id: huge.clone(),
        ..HeartbeatRequest::default()
    };
    assert_eq!(
        code(client.wire().call(&beat).await),
        Some(ErrorCode::InvalidRequest)
    );
    let leave = LeaveGroupRequest {
        group: "g".into(),
        member_id: huge.clone(),
    };
    assert_eq!(
        code(client.wire().call(&leave).await),
        Some(ErrorCode::InvalidRequest)
    );
    let mut commit = commit_request("g", &huge, "t", 0);
    assert_eq!(
        code(client.wire().call(&commit).await),
        Some(ErrorCode::InvalidRequest)
    );
    commit.member_id = String::new();
    commit.offsets[0].metadata = "x".repeat(1 << 20);
    let long_metadata = client.wire().call(&commit).await;
    assert_eq!(
        code(long_metadata),
        Some(ErrorCode::InvalidRequest),
        "metadata is bounded"
    );
    let after = rss_kib(broker.pid());
    // The issue saw 1 GB for 60 such joins; requests are transient here.
    assert!(
        after < before + 128 * 1024,
        "broker RSS grew from {before} KiB to {after} KiB"
    );
    let described = client.describe_group("g").await.unwrap();
    assert_eq!(described.members.len(), 1);
    assert!(described.members[0].client_id.len() <= 256);
    let longest = broker.log.lock().unwrap().iter().map(String::len).max();
    assert!(
        longest.unwrap_or(0) < 4096,
        "a log line of {longest:?} bytes"
    );
}

#[tokio::test]
async fn a_join_with_a_member_id_the_broker_did_not_issue_gets_a_broker_made_one() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("t", 2).await.unwrap();
    let chosen = client
        .wire()
        .call(&join_request("g", "t", "i-am-the-admin", 60_000))
        .await
        .unwrap();
    assert_ne!(chosen.member_id, "i-am-the-admin");
    // The broker's own id works for a rejoin, and stays the same.
    let again = client
        .wire()
        .call(&join_request("g", "t", &chosen.member_id, 60_000))
        .await
        .unwrap();
    assert_eq!(again.member_id, chosen.member_id);
    let described = client.describe_group("g").await.unwrap();
    let ids: Vec<&str> = described
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, [chosen.member_id.as_str()]);
}

/// Claims every partition of `t` and `other` (and one that does not
/// exist) every 100 ms until `stop`.
async fn lie(client: Client, member: String, stop: Arc<AtomicBool>) {
    let claim = tps(&[
        ("t", 0),
        ("t", 1),
        ("t", 2),
        ("t", 3),
        ("other", 0),
        ("t", 99),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        heartbeat(&client, "starve", &member, claim.clone()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_member_claiming_every_partition_does_not_starve_a_newcomer() {
    let _exclusive = ferry_e2e::exclusive().await;
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("t", 4).await.unwrap();
    client.create_topic("other", 1).await.unwrap();
    let producer = Producer::new(&client, "t").await.unwrap();
    for i in 0..40 {
        let record = ProducerRecord::new(format!("{i}")).with_key(format!("k{i}"));
        producer.send(record).await.unwrap();
    }
    // The liar joins first (it is given all four) and never lets go.
    let liar = client
        .wire()
        .call(&join_request("starve", "t", "", 1_000))
        .await
        .unwrap();
    assert_eq!(liar.assignment.len(), 4);
    let stop = Arc::new(AtomicBool::new(false));
    let lying = tokio::spawn(lie(
        broker.client().await,
        liar.member_id.clone(),
        stop.clone(),
    ));
    let mut config = GroupConfig::new("starve", &["t"]);
    config.consumer.max_wait_ms = 100;
    let mut newcomer = GroupConsumer::join(&client, config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = BTreeSet::new();
    while newcomer.assignment().len() < 2 || seen.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the newcomer got {:?} in 20 s",
            newcomer.assignment()
        );
        let records = newcomer.poll().await.unwrap();
        seen.extend(records.iter().map(|r| r.partition));
    }
    let mine: BTreeSet<u32> = newcomer.assignment().iter().map(|(_, p)| *p).collect();
    assert!(seen.is_subset(&mine), "read {seen:?}, owns {mine:?}");
    let liar_now = heartbeat(&client, "starve", &liar.member_id, tps(&[("t", 0)])).await;
    let theirs: BTreeSet<u32> = liar_now.assignment.iter().map(|tp| tp.partition).collect();
    assert_eq!(theirs.len(), 2);
    assert!(theirs.is_disjoint(&mine));
    stop.store(true, Ordering::Relaxed);
    lying.await.unwrap();
    newcomer.close().await.unwrap();
}

#[tokio::test]
async fn a_commit_to_a_partition_the_member_does_not_own_is_refused() {
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("t", 2).await.unwrap();
    client.create_topic("other", 1).await.unwrap();
    let a = client
        .wire()
        .call(&join_request("own", "t", "", 60_000))
        .await
        .unwrap();
    heartbeat(&client, "own", &a.member_id, a.assignment.clone()).await;
    let b = client
        .wire()
        .call(&join_request("own", "t", "", 60_000))
        .await
        .unwrap();
    // a gives one partition up (told, then reports it let go); b gets it.
    let a_told = heartbeat(&client, "own", &a.member_id, a.assignment.clone()).await;
    assert_eq!(a_told.assignment.len(), 1);
    heartbeat(&client, "own", &a.member_id, a_told.assignment.clone()).await;
    let b_now = heartbeat(&client, "own", &b.member_id, Vec::new()).await;
    assert_eq!(b_now.assignment.len(), 1);
    let (mine, theirs) = (
        a_told.assignment[0].partition,
        b_now.assignment[0].partition,
    );
    // a now claims everything, of both topics.
    let everything = tps(&[("t", 0), ("t", 1), ("other", 0)]);
    heartbeat(&client, "own", &a.member_id, everything).await;
    let stolen = client
        .wire()
        .call(&commit_request("own", &a.member_id, "t", theirs))
        .await;
    assert_eq!(code(stolen), Some(ErrorCode::FencedMember));
    let never = client
        .wire()
        .call(&commit_request("own", &a.member_id, "other", 0))
        .await;
    assert_eq!(code(never), Some(ErrorCode::FencedMember));
    let anonymous = client
        .wire()
        .call(&commit_request("own", "", "t", mine))
        .await;
    assert_eq!(
        code(anonymous),
        Some(ErrorCode::FencedMember),
        "live members: no admin commit"
    );
    for (member, partition) in [(&a.member_id, mine), (&b.member_id, theirs)] {
        let request = commit_request("own", member, "t", partition);
        client.wire().call(&request).await.unwrap();
    }
}

/// Commits offset 0 of `t/0` for groups `names`, 256 at a time; returns
/// how many were accepted and how many refused with `InvalidGroup`.
async fn commit_to_groups(client: &Client, names: &[String]) -> (usize, usize) {
    let (mut accepted, mut refused) = (0, 0);
    for chunk in names.chunks(256) {
        let calls = chunk.iter().map(|group| {
            let request = commit_request(group, "", "t", 0);
            async move { client.wire().call(&request).await }
        });
        for result in futures::future::join_all(calls).await {
            match result {
                Ok(_) => accepted += 1,
                Err(e) if e.code() == Some(ErrorCode::InvalidGroup) => refused += 1,
                Err(e) => panic!("unexpected refusal: {e}"),
            }
        }
    }
    (accepted, refused)
}

#[tokio::test]
async fn offset_only_commits_cannot_fill_the_group_limit() {
    let _exclusive = ferry_e2e::exclusive().await;
    let mut broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("t", 1).await.unwrap();
    let names: Vec<String> = (0..OFFSET_ONLY_GROUPS_LIMIT + 50)
        .map(|i| format!("flood-{i}"))
        .collect();
    let started = Instant::now();
    let (accepted, refused) = commit_to_groups(&client, &names).await;
    assert_eq!((accepted, refused), (OFFSET_ONLY_GROUPS_LIMIT, 50));
    assert!(started.elapsed() < Duration::from_secs(30));
    let joined = client
        .wire()
        .call(&join_request("real", "t", "", 60_000))
        .await
        .unwrap();
    assert_eq!(joined.assignment.len(), 1, "a real group still finds room");
    // After a restart the flood still counts; the real join still works.
    broker.kill9();
    broker.restart();
    let client = broker.client().await;
    let after = commit_to_groups(&client, &["flood-new".to_string()]).await;
    assert_eq!(after, (0, 1));
    let existing = commit_to_groups(&client, &["flood-17".to_string()]).await;
    assert_eq!(existing, (1, 0));
    client
        .wire()
        .call(&join_request("real-2", "t", "", 60_000))
        .await
        .unwrap();
}

/// A broker whose frames are at most `SMALL_FRAME_BYTES`.
fn small_frame_broker() -> Broker {
    ferry_e2e::raise_fd_limit();
    let frame = SMALL_FRAME_BYTES.to_string();
    let batch = (SMALL_FRAME_BYTES / 2).to_string();
    Broker::start_with(&["--max-frame-bytes", &frame, "--max-batch-bytes", &batch])
}

fn fits_a_frame(message: &impl Message) -> bool {
    message.encoded_len() + FRAME_OVERHEAD_BYTES <= SMALL_FRAME_BYTES
}

#[tokio::test]
async fn describe_group_and_list_groups_answers_stay_within_the_frame_limit() {
    let broker = small_frame_broker();
    let client = broker.client().await;
    client.create_topic("wide", 200).await.unwrap();
    for i in 0..30 {
        let mut request = join_request("big", "wide", "", 60_000);
        request.client_id = format!("{i:03}{}", "c".repeat(250));
        client.wire().call(&request).await.unwrap();
    }
    let described = client
        .wire()
        .call(&DescribeGroupRequest {
            group: "big".into(),
        })
        .await
        .unwrap();
    assert!(
        fits_a_frame(&described),
        "{} bytes",
        described.encoded_len()
    );
    assert!(!described.members.is_empty() && !described.partitions.is_empty());
    let names: Vec<String> = (0..60)
        .map(|i| format!("{i:03}{}", "g".repeat(197)))
        .collect();
    assert_eq!(commit_to_groups_on(&client, "wide", &names).await, 60);
    let listed = client.wire().call(&ListGroupsRequest {}).await.unwrap();
    assert!(fits_a_frame(&listed), "{} bytes", listed.encoded_len());
    assert!(!listed.groups.is_empty());
}

/// Commits offset 0 of `topic/0` for each group; returns how many were
/// accepted.
async fn commit_to_groups_on(client: &Client, topic: &str, names: &[String]) -> usize {
    let mut accepted = 0;
    for group in names {
        let request = commit_request(group, "", topic, 0);
        accepted += usize::from(client.wire().call(&request).await.is_ok());
    }
    accepted
}

#[tokio::test]
async fn an_offset_fetch_that_would_not_fit_a_frame_is_refused() {
    let broker = small_frame_broker();
    let client = broker.client().await;
    client.create_topic("t", 4).await.unwrap();
    for partition in 0..4 {
        let mut request = commit_request("meta", "", "t", partition);
        request.offsets[0].metadata = "m".repeat(4000);
        client.wire().call(&request).await.unwrap();
    }
    let every = OffsetFetchRequest {
        group: "meta".into(),
        partitions: Vec::new(),
    };
    let refused = client.wire().call(&every).await;
    assert_eq!(code(refused), Some(ErrorCode::FrameTooLarge));
    let one = OffsetFetchRequest {
        group: "meta".into(),
        partitions: tps(&[("t", 2)]),
    };
    let answer = client.wire().call(&one).await.unwrap();
    assert!(fits_a_frame(&answer));
    assert_eq!(answer.offsets[0].metadata.len(), 4000);
}
