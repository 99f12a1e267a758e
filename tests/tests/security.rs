//! Authentication and authorization through the real binary, spoken in raw
//! frames so that each step of the exchange is visible: SCRAM-SHA-256 and
//! access tokens, `AuthenticationRequired`, one answer for an unknown user
//! and a wrong password, the per-address limit on failures, every API
//! refused to a principal without ACLs, the ACL rules (literal, prefix,
//! deny wins), existence hiding, changes that reach open connections
//! within a second, and a security state that survives `kill -9` without
//! ever holding a password or SaltedPassword.

use std::time::{Duration, Instant};

use ferry_e2e::raw::RawClient;
use ferry_e2e::{broker_exit, secure_broker, Broker};
use ferry_protocol::frame::{encode_frame, FrameHeader, FLAG_ERROR};
use ferry_protocol::messages::*;
use ferry_protocol::{ApiKey, ErrorCode};
use tokio::io::AsyncWriteExt;

const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// Changes reach open connections within this.
const APPLY_WITHIN: Duration = Duration::from_secs(1);

async fn admin(broker: &Broker) -> RawClient {
    RawClient::scram(&broker.addr, "admin", ADMIN_PASSWORD)
        .await
        .expect("the bootstrapped admin authenticates")
}

async fn create_topic(admin: &mut RawClient, name: &str) {
    let request = CreateTopicRequest {
        name: name.into(),
        config: None,
    };
    assert_eq!(
        admin.call(&request).await.error_code,
        0,
        "create topic {name}"
    );
}

/// An ACL entry on topics for `User:<user>`.
fn topic_acl(user: &str, name: &str, prefixed: bool, operation: u32, deny: bool) -> AclBinding {
    AclBinding {
        principal: format!("User:{user}"),
        resource_type: 1,
        pattern: u32::from(prefixed),
        resource_name: name.into(),
        operation,
        permission: u32::from(deny),
        host: String::new(),
    }
}

const DESCRIBE: u32 = 5;

async fn add_acl(admin: &mut RawClient, acl: AclBinding) {
    let answer = admin.call(&CreateAclRequest { acl: Some(acl) }).await;
    assert_eq!(answer.error_code, 0, "{}", answer.error_message);
}

async fn describe(client: &mut RawClient, topic: &str) -> DescribeTopicResponse {
    client
        .call(&DescribeTopicRequest { name: topic.into() })
        .await
}

async fn who_am_i(client: &mut RawClient) -> WhoAmIResponse {
    client.call(&WhoAmIRequest {}).await
}

/// Waits (bounded) until the broker closes `client`'s connection.
async fn closed_within(client: &mut RawClient, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_frame_within(left).await {
            Ok(None) => return true,
            Ok(Some(_)) => continue,
            Err(()) => return false,
        }
    }
}

#[tokio::test]
async fn scram_and_tokens_authenticate_and_who_am_i_says_who() {
    let (broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let mut admin = admin(&broker).await;
    let me = who_am_i(&mut admin).await;
    assert_eq!(
        (
            me.principal.as_str(),
            me.authenticated_by.as_str(),
            me.super_user
        ),
        ("User:admin", "SCRAM-SHA-256", true)
    );
    admin.create_user("alice", "alice-pw").await;
    let mut alice = RawClient::scram(&broker.addr, "alice", "alice-pw")
        .await
        .expect("alice");
    let me = who_am_i(&mut alice).await;
    assert_eq!(
        (me.principal.as_str(), me.super_user),
        ("User:alice", false)
    );

    let token = admin
        .call(&CreateTokenRequest {
            user: "alice".into(),
            expires_in_ms: 0,
        })
        .await;
    assert_eq!(token.error_code, 0, "{}", token.error_message);
    let mut service = RawClient::token(&broker.addr, &token.token)
        .await
        .expect("token");
    let me = who_am_i(&mut service).await;
    assert_eq!(
        (me.principal.as_str(), me.authenticated_by.as_str()),
        ("User:alice", "FERRY-TOKEN")
    );
    let listed = admin
        .call(&ListTokensRequest {
            user: "alice".into(),
        })
        .await;
    assert_eq!(listed.tokens.len(), 1);
    assert!(
        !format!("{listed:?}").contains(&token.token),
        "a token is shown once"
    );

    let revoked = admin
        .call(&RevokeTokenRequest {
            id: token.id.clone(),
        })
        .await;
    assert_eq!(revoked.error_code, 0);
    assert!(
        closed_within(&mut service, APPLY_WITHIN).await,
        "a revoked token's connection closes within 1 s"
    );
    let refused = RawClient::token(&broker.addr, &token.token).await.err();
    assert_eq!(refused, Some(ErrorCode::AuthenticationFailed.as_u32()));
}

#[tokio::test]
async fn an_expired_token_closes_its_connection() {
    let (broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let mut admin = admin(&broker).await;
    admin.create_user("svc", "svc-pw").await;
    let token = admin
        .call(&CreateTokenRequest {
            user: "svc".into(),
            expires_in_ms: 600,
        })
        .await;
    let mut service = RawClient::token(&broker.addr, &token.token)
        .await
        .expect("live token");
    assert!(closed_within(&mut service, Duration::from_millis(600) + APPLY_WITHIN).await);
    let refused = RawClient::token(&broker.addr, &token.token).await.err();
    assert_eq!(refused, Some(ErrorCode::AuthenticationFailed.as_u32()));
}

#[tokio::test]
async fn a_deleted_user_loses_its_connections() {
    let (broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let mut admin = admin(&broker).await;
    admin.create_user("bob", "bob-pw").await;
    let mut bob = RawClient::scram(&broker.addr, "bob", "bob-pw")
        .await
        .expect("bob");
    let deleted = admin.call(&DeleteUserRequest { name: "bob".into() }).await;
    assert_eq!(deleted.error_code, 0);
    assert!(closed_within(&mut bob, APPLY_WITHIN).await);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let (broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let wrong_password = RawClient::scram(&broker.addr, "admin", "not the password")
        .await
        .err();
    let unknown_user = RawClient::scram(&broker.addr, "nobody", "whatever")
        .await
        .err();
    assert_eq!(
        wrong_password,
        Some(ErrorCode::AuthenticationFailed.as_u32())
    );
    assert_eq!(unknown_user, wrong_password);
}

#[tokio::test]
async fn a_request_before_authentication_is_refused_and_the_connection_closed() {
    let (broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let mut anonymous = RawClient::handshaken(&broker.addr).await;
    anonymous.send(&ListTopicsRequest {}).await;
    let frame = anonymous.next_frame().await.expect("an error frame");
    assert!(frame.header.has(FLAG_ERROR));
    let error: ErrorResponse = prost::Message::decode(frame.body).expect("decodes");
    assert_eq!(error.error_code, ErrorCode::AuthenticationRequired.as_u32());
    assert!(closed_within(&mut anonymous, APPLY_WITHIN).await);
}

#[tokio::test]
async fn failed_authentications_are_limited_per_address() {
    let (broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let mut codes = Vec::new();
    for _ in 0..11 {
        codes.push(RawClient::scram(&broker.addr, "admin", "guess").await.err());
    }
    let failed = Some(ErrorCode::AuthenticationFailed.as_u32());
    assert!(codes[..10].iter().all(|code| *code == failed), "{codes:?}");
    assert_eq!(codes[10], Some(ErrorCode::Throttled.as_u32()));
    // The right password is refused too until the window passes.
    let right = RawClient::scram(&broker.addr, "admin", ADMIN_PASSWORD)
        .await
        .err();
    assert_eq!(right, Some(ErrorCode::Throttled.as_u32()));
}

/// Sends every request API with an empty body and returns each answer's
/// error code, by API.
async fn every_api_answer(client: &mut RawClient) -> Vec<(ApiKey, u32)> {
    let mut answers = Vec::new();
    for key in ApiKey::ALL {
        if key.row().push || matches!(key, ApiKey::Handshake | ApiKey::SaslAuthenticate) {
            continue;
        }
        let header = FrameHeader::request(key as u16, 1, 1000 + key as u32);
        let frame = encode_frame(header, &StatusResponse::default(), None);
        client.stream.write_all(&frame.head).await.expect("send");
        loop {
            let frame = client.next_frame().await.expect("an answer");
            if frame.header.correlation_id == 1000 + key as u32 {
                let status: StatusResponse = prost::Message::decode(frame.body).expect("status");
                answers.push((key, status.error_code));
                break;
            }
        }
    }
    answers
}

#[tokio::test]
async fn every_api_refuses_a_principal_without_acls() {
    let (broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let mut admin = admin(&broker).await;
    admin.create_user("mallory", "mallory-pw").await;
    create_topic(&mut admin, "orders").await;
    let mut mallory = RawClient::scram(&broker.addr, "mallory", "mallory-pw")
        .await
        .expect("login");
    let allowed = [
        ApiKey::WhoAmI,
        ApiKey::ListTopics,
        ApiKey::ListGroups,
        ApiKey::ListQueues,
    ];
    for (key, code) in every_api_answer(&mut mallory).await {
        let expected = match allowed.contains(&key) {
            true => ErrorCode::None,
            false => ErrorCode::NotAuthorized,
        };
        assert_eq!(ErrorCode::from_u32(code), expected, "{}", key.name());
    }
    let topics = mallory.call(&ListTopicsRequest {}).await;
    assert!(
        topics.topics.is_empty(),
        "lists hold only what the caller may describe"
    );
    // Existence hiding: the same answer for a topic that exists and one that does not.
    let existing = describe(&mut mallory, "orders").await;
    let missing = describe(&mut mallory, "no-such-topic").await;
    assert_eq!(existing.error_code, ErrorCode::NotAuthorized.as_u32());
    assert_eq!(missing.error_code, existing.error_code);
}

#[tokio::test]
async fn literal_prefix_and_deny_rules_and_changes_within_a_second() {
    let (broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let mut admin = admin(&broker).await;
    admin.create_user("alice", "alice-pw").await;
    for topic in ["orders", "orders2", "orders.eu", "ordersx"] {
        create_topic(&mut admin, topic).await;
    }
    add_acl(
        &mut admin,
        topic_acl("alice", "orders", false, DESCRIBE, false),
    )
    .await;
    add_acl(
        &mut admin,
        topic_acl("alice", "orders.", true, DESCRIBE, false),
    )
    .await;
    let mut alice = RawClient::scram(&broker.addr, "alice", "alice-pw")
        .await
        .expect("alice");
    let code = |r: DescribeTopicResponse| ErrorCode::from_u32(r.error_code);
    assert_eq!(code(describe(&mut alice, "orders").await), ErrorCode::None);
    assert_eq!(
        code(describe(&mut alice, "orders2").await),
        ErrorCode::NotAuthorized
    );
    assert_eq!(
        code(describe(&mut alice, "orders.eu").await),
        ErrorCode::None
    );
    assert_eq!(
        code(describe(&mut alice, "ordersx").await),
        ErrorCode::NotAuthorized
    );
    let mut names: Vec<_> = alice
        .call(&ListTopicsRequest {})
        .await
        .topics
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    assert_eq!(names, ["orders", "orders.eu"]);

    // A deny wins over an allow, on the open connection, at once.
    add_acl(
        &mut admin,
        topic_acl("alice", "orders.eu", false, DESCRIBE, true),
    )
    .await;
    assert_eq!(
        code(describe(&mut alice, "orders.eu").await),
        ErrorCode::NotAuthorized
    );
    // Removing the allow takes effect within a second.
    let removed = admin
        .call(&DeleteAclRequest {
            acl: Some(topic_acl("alice", "orders", false, DESCRIBE, false)),
        })
        .await;
    assert_eq!(removed.error_code, 0);
    let started = Instant::now();
    while code(describe(&mut alice, "orders").await) != ErrorCode::NotAuthorized {
        assert!(
            started.elapsed() < APPLY_WITHIN,
            "a removed ACL applies within 1 s"
        );
    }
}

#[tokio::test]
async fn users_and_acls_survive_kill_9_and_no_password_is_stored() {
    let (mut broker, _secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    let mut admin = admin(&broker).await;
    admin.create_user("alice", "alice-secret-pw").await;
    create_topic(&mut admin, "orders").await;
    add_acl(
        &mut admin,
        topic_acl("alice", "orders", false, DESCRIBE, false),
    )
    .await;
    drop(admin);
    broker.kill9();
    broker.restart();
    let mut alice = RawClient::scram(&broker.addr, "alice", "alice-secret-pw")
        .await
        .expect("alice after kill -9");
    assert_eq!(describe(&mut alice, "orders").await.error_code, 0);

    let state = std::fs::read(broker.data_dir.join("meta/security.meta")).expect("security.meta");
    let text = String::from_utf8_lossy(&state);
    let users: serde_json::Value = serde_json::from_slice(&state[12..]).expect("json body");
    let record = &users["users"]["alice"];
    let salt = hex_decode(record["salt_hex"].as_str().expect("salt"));
    let iterations = record["iterations"].as_u64().expect("iterations") as u32;
    let salted = salted_password(b"alice-secret-pw", &salt, iterations);
    for forbidden in ["alice-secret-pw", ADMIN_PASSWORD, &hex(&salted)] {
        assert!(
            !text.contains(forbidden),
            "the state file holds {forbidden:?}"
        );
    }
    assert!(
        !state.windows(salted.len()).any(|w| w == salted),
        "raw SaltedPassword stored"
    );
}

#[test]
fn the_broker_refuses_to_start_with_auth_and_nobody_to_authenticate() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().to_str().expect("utf-8").to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--auth",
        "required",
    ];
    let (code, stderr) = broker_exit(&args, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--bootstrap-admin-password-file"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_second_bootstrap_is_ignored_with_a_warning() {
    let (mut broker, secrets) = secure_broker(ADMIN_PASSWORD, &[]);
    broker.terminate();
    let other = secrets.path().join("other-password");
    std::fs::write(&other, "a different password\n").expect("write");
    let mut again = Broker::start_in(
        &broker.data_dir,
        &[
            "--auth",
            "required",
            "--bootstrap-admin-password-file",
            other.to_str().expect("utf-8"),
        ],
    );
    assert!(again.log_contains("--bootstrap-admin-password-file is ignored"));
    RawClient::scram(&again.addr, "admin", ADMIN_PASSWORD)
        .await
        .expect("the first password stays");
    let refused = RawClient::scram(&again.addr, "admin", "a different password")
        .await
        .err();
    assert_eq!(refused, Some(ErrorCode::AuthenticationFailed.as_u32()));
    again.terminate();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// RFC 5802's SaltedPassword: PBKDF2-HMAC-SHA-256.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    let rounds = std::num::NonZeroU32::new(iterations).expect("iterations > 0");
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password,
        &mut out,
    );
    out
}
