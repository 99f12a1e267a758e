//! Every API of the protocol's table is reachable end to end: one request of
//! each, made through the client library's typed methods against the real
//! broker, is dispatched (answered without `UnknownApiKey`) and counted in
//! `/metrics` (scraped before and after each API: its own count grows). Adding an API to the table without a client method, a
//! broker handler or a line here fails this test (the `match` in
//! `exercise` is exhaustive, and every key must be exercised).

use std::time::Duration;

use ferry_client::wire::messages::{HeartbeatRequest, JoinGroupRequest, ListTopicsRequest};
use ferry_client::{
    AclOperation, AclPermission, AclRule, Client, ClientOptions, Consumer, Credentials,
    GroupConfig, GroupConsumer, PatternType, Producer, ProducerRecord, QueueConfig, QueueConsumer,
    QuotaSpec, ResourceType, SeekTo,
};
use ferry_e2e::Broker;
use ferry_protocol::api::API_COUNT;
use ferry_protocol::ApiKey;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: &str = "every-api";

/// The order in which the APIs are exercised (each needs what came before).
const ORDER: [ApiKey; API_COUNT] = [
    ApiKey::Handshake,
    ApiKey::CreateTopic,
    ApiKey::ListTopics,
    ApiKey::DescribeTopic,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::BrokerStatus,
    ApiKey::InitProducerId,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::LeaveGroup,
    ApiKey::DescribeGroup,
    ApiKey::ListGroups,
    ApiKey::ResetOffsets,
    ApiKey::DeleteGroup,
    ApiKey::CreateQueue,
    ApiKey::ListQueues,
    ApiKey::DescribeQueue,
    ApiKey::PeekQueue,
    ApiKey::QueueSubscribe,
    ApiKey::Deliver,
    ApiKey::Ack,
    ApiKey::Nack,
    ApiKey::InProgress,
    ApiKey::PurgeQueue,
    ApiKey::DeleteQueue,
    ApiKey::DeleteTopic,
    ApiKey::CreateUser,
    ApiKey::ListUsers,
    ApiKey::ChangePassword,
    ApiKey::SaslAuthenticate,
    ApiKey::WhoAmI,
    ApiKey::CreateToken,
    ApiKey::ListTokens,
    ApiKey::RevokeToken,
    ApiKey::CreateAcl,
    ApiKey::ListAcls,
    ApiKey::DeleteAcl,
    ApiKey::SetQuota,
    ApiKey::ListQuotas,
    ApiKey::DeleteQuota,
    ApiKey::DeleteUser,
];

/// Consumers kept from one API's step to the next.
#[derive(Default)]
struct Kept {
    member: Option<GroupConsumer>,
    queue: Option<QueueConsumer>,
    token_id: Option<String>,
}

/// The ACL entry the ACL steps add, list and delete.
fn acl() -> AclRule {
    AclRule {
        principal: "User:every".into(),
        resource_type: ResourceType::Topic,
        pattern: PatternType::Prefixed,
        resource_name: "every-".into(),
        operation: AclOperation::Read,
        permission: AclPermission::Allow,
        host: None,
    }
}

/// The quota the quota steps set, list and delete.
fn quota() -> QuotaSpec {
    QuotaSpec {
        principal: "User:every".into(),
        produce_bytes_per_sec: Some(1 << 20),
        fetch_bytes_per_sec: None,
        requests_per_sec: Some(1000),
    }
}

/// Makes one request of `key`.
async fn exercise(client: &Client, key: ApiKey, kept: &mut Kept) {
    let queue = &mut kept.queue;
    match key {
        ApiKey::Handshake => drop(Client::connect(client.addr()).await.unwrap()),
        ApiKey::CreateTopic => client.create_topic(TOPIC, 2).await.unwrap(),
        ApiKey::ListTopics => assert!(!client.list_topics().await.unwrap().is_empty()),
        ApiKey::DescribeTopic => drop(client.describe_topic(TOPIC).await.unwrap()),
        ApiKey::Produce => produce(client, 4).await,
        ApiKey::Fetch => {
            let mut consumer = Consumer::new(client, TOPIC).await.unwrap();
            consumer.assign(&[0], SeekTo::Offset(0)).await.unwrap();
            consumer.next().await.unwrap().unwrap();
        }
        ApiKey::ListOffsets => {
            let end = client
                .resolve_offset(TOPIC, 0, SeekTo::Latest)
                .await
                .unwrap();
            assert!(end > 0);
        }
        ApiKey::BrokerStatus => assert_eq!(client.broker_status().await.unwrap().topics, 1),
        ApiKey::InitProducerId => {
            let identity = client.init_producer_id(TOPIC, None).await.unwrap();
            assert!(identity.producer_id > 0 && identity.epoch == 0);
        }
        ApiKey::JoinGroup => kept.member = Some(join_and_consume(client).await),
        ApiKey::Heartbeat => wire_member_heartbeat(client).await,
        ApiKey::OffsetCommit => kept
            .member
            .as_mut()
            .expect("joined")
            .commit()
            .await
            .unwrap(),
        ApiKey::OffsetFetch => {
            let committed = client.fetch_offsets("every-group", &[]).await.unwrap();
            assert!(!committed.is_empty());
        }
        ApiKey::LeaveGroup => kept.member.take().expect("joined").close().await.unwrap(),
        ApiKey::DescribeGroup => drop(client.describe_group("every-group").await.unwrap()),
        ApiKey::ListGroups => assert!(!client.list_groups().await.unwrap().is_empty()),
        ApiKey::ResetOffsets => {
            let reset = client.reset_offsets("every-group", TOPIC, SeekTo::Earliest);
            assert_eq!(reset.await.unwrap().len(), 2);
        }
        ApiKey::DeleteGroup => client.delete_group("every-group").await.unwrap(),
        ApiKey::CreateQueue => {
            let config = QueueConfig::default();
            client.create_queue(TOPIC, "q", &config).await.unwrap()
        }
        ApiKey::ListQueues => assert_eq!(client.list_queues().await.unwrap().len(), 1),
        ApiKey::DescribeQueue => drop(client.describe_queue(TOPIC, "q").await.unwrap()),
        ApiKey::PeekQueue => drop(client.peek_queue(TOPIC, "q", 10).await.unwrap()),
        ApiKey::PurgeQueue => drop(client.purge_queue(TOPIC, "q").await.unwrap()),
        ApiKey::QueueSubscribe => {
            *queue = Some(
                QueueConsumer::subscribe(client, TOPIC, "q", 10)
                    .await
                    .unwrap(),
            )
        }
        ApiKey::Deliver => {
            // Deliveries were pushed on subscribing; a new record is pushed
            // now, and counted before it arrives.
            produce(client, 4).await;
            let fresh = |d: &ferry_client::Delivery| (d.partition, d.offset) == (0, 4);
            let mut seen = 0;
            while !fresh(&next_delivery(queue).await) {
                seen += 1;
                assert!(seen <= 4, "the new record was not delivered");
            }
        }
        ApiKey::Ack => next_delivery(queue).await.ack().await.unwrap(),
        ApiKey::Nack => next_delivery(queue).await.nack(true).await.unwrap(),
        ApiKey::InProgress => next_delivery(queue).await.in_progress().await.unwrap(),
        ApiKey::DeleteQueue => {
            queue.take();
            client.delete_queue(TOPIC, "q").await.unwrap()
        }
        ApiKey::DeleteTopic => client.delete_topic(TOPIC).await.unwrap(),
        ApiKey::SaslAuthenticate
        | ApiKey::WhoAmI
        | ApiKey::CreateUser
        | ApiKey::DeleteUser
        | ApiKey::ChangePassword
        | ApiKey::ListUsers
        | ApiKey::CreateToken
        | ApiKey::RevokeToken
        | ApiKey::ListTokens
        | ApiKey::CreateAcl
        | ApiKey::DeleteAcl
        | ApiKey::ListAcls
        | ApiKey::SetQuota
        | ApiKey::DeleteQuota
        | ApiKey::ListQuotas => exercise_security(client, key, kept).await,
    }
}

/// The security APIs, on a broker with `--auth off` (where anyone may
/// administer users, and a user may still authenticate).
async fn exercise_security(client: &Client, key: ApiKey, kept: &mut Kept) {
    match key {
        ApiKey::CreateUser => client.create_user("every", "first-pw").await.unwrap(),
        ApiKey::ListUsers => assert_eq!(client.list_users().await.unwrap().len(), 1),
        ApiKey::ChangePassword => client.change_password("every", "every-pw").await.unwrap(),
        ApiKey::SaslAuthenticate => {
            let options = ClientOptions {
                credentials: Some(Credentials::Scram {
                    user: "every".into(),
                    password: "every-pw".into(),
                }),
                ..ClientOptions::default()
            };
            let every = Client::connect_with(client.addr(), options).await.unwrap();
            assert_eq!(every.who_am_i().await.unwrap().principal, "User:every");
        }
        ApiKey::WhoAmI => assert_eq!(client.who_am_i().await.unwrap().principal, "User:ANONYMOUS"),
        ApiKey::CreateToken => {
            let token = client.create_token("every", None).await.unwrap();
            kept.token_id = Some(token.id);
        }
        ApiKey::ListTokens => assert_eq!(client.list_tokens(None).await.unwrap().len(), 1),
        ApiKey::RevokeToken => {
            let id = kept.token_id.take().expect("created");
            client.revoke_token(&id).await.unwrap()
        }
        ApiKey::CreateAcl => client.create_acl(&acl()).await.unwrap(),
        ApiKey::ListAcls => assert_eq!(client.list_acls().await.unwrap(), vec![acl()]),
        ApiKey::DeleteAcl => client.delete_acl(&acl()).await.unwrap(),
        ApiKey::SetQuota => client.set_quota(&quota()).await.unwrap(),
        ApiKey::ListQuotas => assert_eq!(client.list_quotas().await.unwrap(), vec![quota()]),
        ApiKey::DeleteQuota => client.delete_quota("User:every").await.unwrap(),
        ApiKey::DeleteUser => client.delete_user("every").await.unwrap(),
        other => unreachable!("{} is exercised in `exercise`", other.name()),
    }
}

async fn produce(client: &Client, count: usize) {
    let producer = Producer::new(client, TOPIC).await.unwrap();
    for i in 0..count {
        let record = ProducerRecord::new(format!("m{i}")).with_partition(0);
        producer.send(record).await.unwrap();
    }
}

/// Joins (heartbeats run in the background) and consumes one record.
async fn join_and_consume(client: &Client) -> GroupConsumer {
    let mut config = GroupConfig::new("every-group", &[TOPIC]);
    config.auto_commit_interval_ms = None;
    config.session_timeout_ms = 1_000;
    let mut member = GroupConsumer::join(client, config).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), member.next())
        .await
        .expect("a record within 10 s")
        .unwrap()
        .unwrap();
    member
}

/// A member made by hand: join, heartbeat, leave.
async fn wire_member_heartbeat(client: &Client) {
    let join = JoinGroupRequest {
        group: "wire-group".into(),
        topics: vec![TOPIC.into()],
        ..JoinGroupRequest::default()
    };
    let joined = client.wire().call(&join).await.unwrap();
    let heartbeat = HeartbeatRequest {
        group: "wire-group".into(),
        member_id: joined.member_id.clone(),
        member_epoch: joined.member_epoch,
        owned: joined.assignment.clone(),
    };
    let answer = client.wire().call(&heartbeat).await.unwrap();
    assert_eq!(answer.member_id, joined.member_id);
    client
        .leave_group("wire-group", &joined.member_id)
        .await
        .unwrap();
}

async fn next_delivery(queue: &mut Option<QueueConsumer>) -> ferry_client::Delivery {
    let consumer = queue.as_mut().expect("subscribed");
    consumer
        .recv_timeout(Duration::from_secs(10))
        .await
        .expect("a delivery within 10 s")
        .unwrap()
}

async fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

/// The count of `key`: requests, or pushes for a pushed frame.
fn count(metrics: &str, key: ApiKey) -> u64 {
    let family = match key.row().push {
        true => "ferry_pushes_total",
        false => "ferry_requests_total",
    };
    let prefix = format!("{family}{{api=\"{}\"}} ", key.name());
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} line in {metrics}"))
}

#[tokio::test]
async fn every_api_in_the_table_is_served_and_counted() {
    let mut sorted = ORDER.to_vec();
    sorted.sort();
    let mut all = ApiKey::ALL.to_vec();
    all.sort();
    assert_eq!(sorted, all, "ORDER must list every API exactly once");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let broker = Broker::start_with(&["--metrics-listen", &metrics_addr]);
    let client = broker.client().await;
    let mut kept = Kept::default();
    for key in ORDER {
        let before = count(&scrape(&metrics_addr).await, key);
        exercise(&client, key, &mut kept).await;
        let metrics = scrape(&metrics_addr).await;
        let after = count(&metrics, key);
        assert!(after > before, "{} not counted:\n{metrics}", key.name());
    }
    // A wire-level call gets the response type from the request type.
    let topics = client.wire().call(&ListTopicsRequest {}).await.unwrap();
    assert!(topics.topics.is_empty());
}

#[tokio::test]
async fn counters_do_not_go_down_when_a_topic_is_deleted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let broker = Broker::start_with(&["--metrics-listen", &metrics_addr]);
    let client = broker.client().await;
    client.create_topic(TOPIC, 1).await.unwrap();
    produce(&client, 3).await;
    let fsyncs = |metrics: &str| -> u64 {
        let line = metrics
            .lines()
            .find_map(|l| l.strip_prefix("ferry_fsyncs_total "));
        line.and_then(|v| v.trim().parse().ok())
            .expect("ferry_fsyncs_total")
    };
    let before = fsyncs(&scrape(&metrics_addr).await);
    assert!(
        before >= 3,
        "three durable produces fsync at least three times"
    );
    client.delete_topic(TOPIC).await.unwrap();
    let after = fsyncs(&scrape(&metrics_addr).await);
    assert!(after >= before, "fsyncs went from {before} to {after}");
}
