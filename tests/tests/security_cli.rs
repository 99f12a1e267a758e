//! Authentication, users, tokens, ACLs and quotas through `ferryctl`
//! against the real broker started with `--auth required` and a
//! bootstrapped `admin`: what an operator types (`whoami`, `user`, `token`,
//! `acl`, `quota`), the credentials flags and variables, the errors and exit
//! codes a refused login gives, and a client library connection that
//! authenticates again after a broker restart.
//!
//! Each test has a broker of its own, so that the broker's limit on failed
//! logins per address never sees more than a couple of failures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_client::{ClientError, ClientOptions, Credentials, ReconnectPolicy};
use ferry_e2e::{ferryctl_with, Broker};

const ADMIN_PASSWORD: &str = "correct horse battery staple";
const ALICE_PASSWORD: &str = "alice's first password";
/// Changes (a revoked token) reach the broker's checks within this.
const APPLY_WITHIN: Duration = Duration::from_secs(5);

/// A broker with `--auth required`, and the password files of its users.
struct Secured {
    broker: Broker,
    secrets: tempfile::TempDir,
    admin_password: PathBuf,
}

impl Secured {
    fn start() -> Secured {
        let secrets = tempfile::tempdir().expect("temp dir");
        let admin_password = password_file(secrets.path(), "admin.pw", ADMIN_PASSWORD);
        let broker = Broker::start_with(&[
            "--auth",
            "required",
            "--bootstrap-admin-password-file",
            path(&admin_password),
        ]);
        Secured {
            broker,
            secrets,
            admin_password,
        }
    }

    /// Writes a password file next to the admin's.
    fn password_file(&self, name: &str, password: &str) -> PathBuf {
        password_file(self.secrets.path(), name, password)
    }

    /// `ferryctl --user admin --password-file admin.pw args...`.
    fn as_admin(&self, args: &[&str]) -> (i32, String, String) {
        let login = [
            "--user",
            "admin",
            "--password-file",
            path(&self.admin_password),
        ];
        self.broker.ferryctl_env(&[&login[..], args].concat(), &[])
    }

    /// `ferryctl --user NAME --password-file FILE args...`.
    fn as_user(&self, user: &str, password: &Path, args: &[&str]) -> (i32, String, String) {
        let login = ["--user", user, "--password-file", path(password)];
        self.broker.ferryctl_env(&[&login[..], args].concat(), &[])
    }

    /// `ferryctl args...` with `FERRY_TOKEN` set.
    fn with_token(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        self.broker.ferryctl_env(args, &[("FERRY_TOKEN", token)])
    }

    /// `ferryctl --json args...` as admin, parsed; asserts success.
    fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        let (code, out, err) = self.as_admin(&[&["--json"], args].concat());
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
    }
}

fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, format!("{password}\n")).expect("write password file");
    file
}

fn path(file: &Path) -> &str {
    file.to_str().expect("utf-8 path")
}

/// The `principal` line of `ferryctl whoami`.
fn principal_line(out: &str) -> Option<&str> {
    out.lines()
        .find_map(|line| line.strip_prefix("principal"))
        .map(str::trim)
}

#[test]
fn whoami_shows_the_bootstrapped_admin() {
    let secured = Secured::start();
    let (code, out, err) = secured.as_admin(&["whoami"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("User:admin"), "{out}");
    assert_eq!(principal_line(&out), Some("User:admin"), "{out}");
    let me = secured.admin_json(&["whoami"]);
    assert_eq!(me["principal"], "User:admin");
    assert_eq!(me["authenticated_by"], "SCRAM-SHA-256");
    assert_eq!(me["super_user"], true);

    // The password may also come from FERRY_PASSWORD.
    let (code, out, err) = secured.broker.ferryctl_env(
        &["--user", "admin", "whoami"],
        &[("FERRY_PASSWORD", ADMIN_PASSWORD)],
    );
    assert_eq!(
        (code, principal_line(&out)),
        (0, Some("User:admin")),
        "{err}"
    );
}

#[test]
fn users_are_created_listed_and_their_passwords_changed() {
    let secured = Secured::start();
    let alice_pw = secured.password_file("alice.pw", ALICE_PASSWORD);
    let (code, out, err) = secured.as_admin(&[
        "user",
        "create",
        "alice",
        "--password-file",
        path(&alice_pw),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created user alice"), "{out}");

    let (code, out, err) = secured.as_user("alice", &alice_pw, &["whoami"]);
    assert_eq!(
        (code, principal_line(&out)),
        (0, Some("User:alice")),
        "{err}"
    );

    let (code, out, err) = secured.as_admin(&["user", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|header| header.starts_with("USER")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("admin ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("alice ")), "{out}");
    let listed = secured.admin_json(&["user", "list"]);
    let mut names: Vec<&str> = listed["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["admin", "alice"]);

    let new_pw = secured.password_file("alice-new.pw", "alice's second password");
    let (code, _, err) =
        secured.as_admin(&["user", "passwd", "alice", "--password-file", path(&new_pw)]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = secured.as_user("alice", &new_pw, &["whoami"]);
    assert_eq!(
        (code, principal_line(&out)),
        (0, Some("User:alice")),
        "{err}"
    );
    let (code, _, err) = secured.as_user("alice", &alice_pw, &["whoami"]);
    assert_eq!(code, 1, "the old password still works: {err}");
}

#[test]
fn acl_entries_are_added_listed_and_removed() {
    let secured = Secured::start();
    let alice_pw = secured.password_file("alice.pw", ALICE_PASSWORD);
    let (code, _, err) = secured.as_admin(&[
        "user",
        "create",
        "alice",
        "--password-file",
        path(&alice_pw),
    ]);
    assert_eq!(code, 0, "{err}");
    let entry = [
        "--allow",
        "User:alice",
        "--operation",
        "write",
        "--topic",
        "orders.",
        "--prefixed",
    ];
    let (code, out, err) = secured.as_admin(&[&["acl", "add"][..], &entry].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("allow User:alice write on topic orders. (prefixed)"),
        "{out}"
    );

    let (code, out, err) = secured.as_admin(&["acl", "list"]);
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.starts_with("User:alice"));
    let cells: Vec<&str> = row
        .map(|r| r.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        cells,
        [
            "User:alice",
            "allow",
            "write",
            "topic",
            "orders.",
            "prefixed",
            "*"
        ],
        "{out}"
    );
    let listed = secured.admin_json(&["acl", "list"]);
    let expected = serde_json::json!({
        "principal": "User:alice",
        "permission": "allow",
        "operation": "write",
        "resource_type": "topic",
        "resource_name": "orders.",
        "pattern": "prefixed",
        "host": null,
    });
    let acls = listed["acls"].as_array().expect("acls");
    assert!(acls.contains(&expected), "{listed}");

    let (code, out, err) = secured.as_admin(&[&["acl", "remove"][..], &entry].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed ACL"), "{out}");
    let listed = secured.admin_json(&["acl", "list"]);
    assert!(
        !listed["acls"].as_array().expect("acls").contains(&expected),
        "{listed}"
    );
}

#[test]
fn a_token_authenticates_until_it_is_revoked() {
    let secured = Secured::start();
    let alice_pw = secured.password_file("alice.pw", ALICE_PASSWORD);
    let (code, _, err) = secured.as_admin(&[
        "user",
        "create",
        "alice",
        "--password-file",
        path(&alice_pw),
    ]);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) =
        secured.as_admin(&["token", "create", "--user", "alice", "--expires-in", "30d"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "only the token on stdout: {out:?}");
    let token = out.trim().to_string();
    assert!(!token.is_empty());
    assert!(err.contains("will not be shown again"), "{err}");
    assert!(!err.contains(&token), "the token is printed once: {err}");

    let (code, out, err) = secured.with_token(&token, &["whoami"]);
    assert_eq!(
        (code, principal_line(&out)),
        (0, Some("User:alice")),
        "{err}"
    );
    let (code, out, err) = secured
        .broker
        .ferryctl_env(&["--token", &token, "--json", "whoami"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"authenticated_by\":\"FERRY-TOKEN\""),
        "{out}"
    );

    let listed = secured.admin_json(&["token", "list", "--user", "alice"]);
    let tokens = listed["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 1, "{listed}");
    assert_eq!(tokens[0]["user"], "alice");
    assert!(tokens[0]["expires_at_ms"].as_u64().is_some(), "{listed}");
    let id = tokens[0]["id"].as_str().expect("token id").to_string();
    let (code, out, err) = secured.as_admin(&["token", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && !out.contains(&token), "{out}");

    let (code, out, err) = secured.as_admin(&["token", "revoke", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("revoked token {id}")), "{out}");
    let deadline = Instant::now() + APPLY_WITHIN;
    let (code, err) = loop {
        let (code, _, err) = secured.with_token(&token, &["whoami"]);
        if code != 0 || Instant::now() >= deadline {
            break (code, err);
        }
    };
    assert_eq!(code, 1, "a revoked token still authenticates: {err}");
    assert!(err.contains("authentication failed"), "{err}");
}

#[test]
fn a_wrong_password_and_an_unknown_user_fail_alike() {
    let secured = Secured::start();
    let wrong = secured.password_file("wrong.pw", "not the admin password");
    let (wrong_code, _, wrong_err) = secured.as_user("admin", &wrong, &["whoami"]);
    let (unknown_code, _, unknown_err) = secured.as_user("nobody", &wrong, &["whoami"]);
    assert_eq!(
        (wrong_code, unknown_code),
        (1, 1),
        "{wrong_err} / {unknown_err}"
    );
    assert_eq!(wrong_err, unknown_err, "the answers tell the two apart");
    assert!(wrong_err.contains("authentication failed"), "{wrong_err}");
    assert!(!wrong_err.contains("nobody"), "{wrong_err}");
}

#[test]
fn without_credentials_requests_are_refused() {
    let secured = Secured::start();
    let (code, _, err) = secured.broker.ferryctl_env(&["topic", "list"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("authentication required"), "{err}");
    assert!(
        err.contains("hint: ") && err.contains("--user NAME"),
        "{err}"
    );
}

#[test]
fn a_user_without_a_password_is_a_usage_error() {
    // Refused before connecting: no broker needed.
    let (code, _, err) = ferryctl_with(
        "127.0.0.1:1",
        &["--user", "admin", "whoami"],
        &[],
        "",
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--password-file"), "{err}");
    let (code, _, err) = ferryctl_with(
        "127.0.0.1:1",
        &["--user", "admin", "--token", "t", "whoami"],
        &[],
        "",
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "--user with --token: {err}");
}

#[test]
fn quotas_are_set_listed_and_deleted() {
    let secured = Secured::start();
    let (code, out, err) = secured.as_admin(&[
        "quota",
        "set",
        "User:alice",
        "--produce-bytes-per-sec",
        "1048576",
        "--requests-per-sec",
        "100",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("User:alice"), "{out}");

    let listed = secured.admin_json(&["quota", "list"]);
    let expected = serde_json::json!({
        "principal": "User:alice",
        "produce_bytes_per_sec": 1048576,
        "fetch_bytes_per_sec": null,
        "requests_per_sec": 100,
    });
    assert_eq!(listed["quotas"], serde_json::json!([expected]), "{listed}");
    let (code, out, err) = secured.as_admin(&["quota", "list"]);
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.starts_with("User:alice"));
    let cells: Vec<&str> = row
        .map(|r| r.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        cells,
        ["User:alice", "1048576", "unlimited", "100"],
        "{out}"
    );

    let (code, _, err) = secured.as_admin(&["quota", "delete", "User:alice"]);
    assert_eq!(code, 0, "{err}");
    let listed = secured.admin_json(&["quota", "list"]);
    assert_eq!(listed["quotas"], serde_json::json!([]), "{listed}");
}

#[tokio::test]
async fn a_client_authenticates_again_after_a_broker_restart() {
    let mut secured = Secured::start();
    let options = |password: &str| ClientOptions {
        credentials: Some(Credentials::Scram {
            user: "admin".into(),
            password: password.into(),
        }),
        reconnect: ReconnectPolicy {
            deadline: Some(Duration::from_secs(30)),
            ..ReconnectPolicy::default()
        },
        ..ClientOptions::default()
    };
    let client = secured
        .broker
        .client_with(options(ADMIN_PASSWORD))
        .await
        .expect("connect as admin");
    let me = client.who_am_i().await.expect("whoami");
    assert_eq!(me.principal, "User:admin");

    secured.broker.terminate();
    secured.broker.restart();
    let me = client.who_am_i().await.expect("whoami after the restart");
    assert_eq!(
        me.principal, "User:admin",
        "the new connection is authenticated"
    );

    let started = Instant::now();
    let refused = secured.broker.client_with(options("wrong")).await.err();
    assert!(
        matches!(refused, Some(ClientError::AuthenticationFailed { .. })),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a refusal is not retried"
    );
}
