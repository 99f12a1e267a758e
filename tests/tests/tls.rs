//! TLS through the real binaries: a broker started with `--tls-cert`,
//! `--tls-key` (and `--tls-client-ca` for mutual TLS), clients and
//! `ferryctl` speaking TLS to it. Certificates are made here with `rcgen`:
//! a CA, a broker certificate for `localhost` and 127.0.0.1, client
//! certificates, and a second CA nobody trusts. SIGHUP reloads the
//! broker's certificates (a broken file keeps the old ones).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_client::{
    Client, ClientError, ClientIdentity, ClientOptions, Pem, Producer, ProducerRecord, TlsOptions,
};
use ferry_e2e::{broker_exit, read_all, Broker};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a refused client keeps trying before it reports.
const REFUSED_DEADLINE: Duration = Duration::from_secs(1);
/// The broker's handshake timeout in these tests (ms).
const HANDSHAKE_TIMEOUT_MS: u64 = 1_000;

/// A certificate authority: its PEM certificate and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    Ca {
        pem: certificate.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate for `names`, signed by `ca`, for `usage`: (cert, key) PEM.
fn leaf(ca: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &ca.issuer).unwrap();
    (certificate.pem(), key.serialize_pem())
}

/// The files of one test's PKI, in a temporary directory.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
    other_client_cert: PathBuf,
    other_client_key: PathBuf,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (ca("ferry test CA"), ca("someone else's CA"));
    let server = leaf(
        &ours,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = leaf(&ours, &["client"], ExtendedKeyUsagePurpose::ClientAuth);
    let other = leaf(&theirs, &["client"], ExtendedKeyUsagePurpose::ClientAuth);
    let d = dir.path();
    Pki {
        ca: write(d, "ca.pem", &ours.pem),
        server_cert: write(d, "server.pem", &server.0),
        server_key: write(d, "server.key", &server.1),
        client_cert: write(d, "client.pem", &client.0),
        client_key: write(d, "client.key", &client.1),
        other_ca: write(d, "other-ca.pem", &theirs.pem),
        other_client_cert: write(d, "other-client.pem", &other.0),
        other_client_key: write(d, "other-client.key", &other.1),
        _dir: dir,
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn tls_broker(pki: &Pki, mutual: bool) -> Broker {
    let timeout = HANDSHAKE_TIMEOUT_MS.to_string();
    let mut args = vec![
        "--tls-cert",
        s(&pki.server_cert),
        "--tls-key",
        s(&pki.server_key),
        "--handshake-timeout-ms",
        &timeout,
    ];
    if mutual {
        args.extend(["--tls-client-ca", s(&pki.ca)]);
    }
    Broker::start_with(&args)
}

fn options(tls: TlsOptions) -> ClientOptions {
    ClientOptions {
        tls: Some(tls),
        first_connect_deadline: Some(REFUSED_DEADLINE),
        ..ClientOptions::default()
    }
}

fn trusting(ca: &Path) -> TlsOptions {
    TlsOptions::new(Pem::File(ca.to_path_buf()))
}

fn with_identity(ca: &Path, cert: &Path, key: &Path) -> TlsOptions {
    TlsOptions {
        identity: Some(ClientIdentity {
            cert: Pem::File(cert.to_path_buf()),
            key: Pem::File(key.to_path_buf()),
        }),
        ..trusting(ca)
    }
}

/// Creates a topic, produces `count` records and reads them back.
async fn round_trip(client: &Client, topic: &str, count: usize) {
    client.create_topic(topic, 1).await.unwrap();
    let producer = Producer::new(client, topic).await.unwrap();
    for i in 0..count {
        let sent = producer.send(ProducerRecord::new(format!("secret {i}")));
        sent.await.unwrap();
    }
    let records = read_all(client, topic, count).await;
    assert_eq!(records.len(), count);
    let last = records[count - 1].value.clone().unwrap_or_default();
    assert_eq!(&last[..], format!("secret {}", count - 1).as_bytes());
}

#[tokio::test]
async fn a_tls_client_round_trips_produce_and_consume() {
    let pki = pki();
    let broker = tls_broker(&pki, false);
    let client = Client::connect_with(&broker.addr, options(trusting(&pki.ca)))
        .await
        .unwrap();
    round_trip(&client, "sealed", 20).await;
    // The certificate's DNS name works too.
    let port = broker.addr.rsplit_once(':').unwrap().1;
    let by_name = format!("localhost:{port}");
    let client = Client::connect_with(&by_name, options(trusting(&pki.ca)))
        .await
        .unwrap();
    assert_eq!(client.list_topics().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_closed() {
    let pki = pki();
    let broker = tls_broker(&pki, false);
    let within = Duration::from_millis(HANDSHAKE_TIMEOUT_MS * 3);
    // One that speaks the Ferry protocol in clear is closed at once.
    let plain = ClientOptions {
        first_connect_deadline: Some(REFUSED_DEADLINE),
        ..ClientOptions::default()
    };
    let refused = tokio::time::timeout(within, Client::connect_with(&broker.addr, plain));
    assert!(refused.await.unwrap().is_err());
    // One that says nothing is closed after the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(&broker.addr).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(within, silent.read(&mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    // Garbage is closed too.
    let mut garbage = tokio::net::TcpStream::connect(&broker.addr).await.unwrap();
    let _ = garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    let read = tokio::time::timeout(within, garbage.read_to_end(&mut Vec::new())).await;
    assert!(read.is_ok(), "still open after {within:?}");
}

#[tokio::test]
async fn a_client_with_the_wrong_ca_is_refused() {
    let pki = pki();
    let broker = tls_broker(&pki, false);
    let refused = Client::connect_with(&broker.addr, options(trusting(&pki.other_ca)))
        .await
        .err();
    assert!(
        matches!(refused, Some(ClientError::TlsRefused { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_wrong_server_name_is_refused() {
    let pki = pki();
    let broker = tls_broker(&pki, false);
    let tls = TlsOptions {
        server_name: Some("ferry.example".into()),
        ..trusting(&pki.ca)
    };
    let refused = Client::connect_with(&broker.addr, options(tls)).await.err();
    assert!(
        matches!(refused, Some(ClientError::TlsRefused { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_configured_ca() {
    let pki = pki();
    let broker = tls_broker(&pki, true);
    let none = Client::connect_with(&broker.addr, options(trusting(&pki.ca))).await;
    let none = none.err();
    assert!(none.is_some(), "no client certificate: {none:?}");
    let other = with_identity(&pki.ca, &pki.other_client_cert, &pki.other_client_key);
    let other = Client::connect_with(&broker.addr, options(other)).await;
    let other = other.err();
    assert!(other.is_some(), "a certificate of another CA: {other:?}");
    let ours = with_identity(&pki.ca, &pki.client_cert, &pki.client_key);
    let client = Client::connect_with(&broker.addr, options(ours))
        .await
        .unwrap();
    round_trip(&client, "mutual", 5).await;
    // The certificate's DNS name is the connection's user.
    let me = client.who_am_i().await.unwrap();
    assert_eq!(me.principal, "User:client");
    assert_eq!(me.authenticated_by, ferry_client::AuthMethod::Certificate);
}

#[tokio::test]
async fn an_expired_broker_certificate_is_refused() {
    let pki = pki();
    let ours = ca("expired test CA");
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().unwrap();
    let expired = params.signed_by(&key, &ours.issuer).unwrap();
    let dir = pki._dir.path();
    let cert = write(dir, "expired.pem", &expired.pem());
    let key = write(dir, "expired.key", &key.serialize_pem());
    let expired_ca = write(dir, "expired-ca.pem", &ours.pem);
    let broker = Broker::start_with(&["--tls-cert", s(&cert), "--tls-key", s(&key)]);
    let refused = Client::connect_with(&broker.addr, options(trusting(&expired_ca)))
        .await
        .err();
    assert!(
        matches!(refused, Some(ClientError::TlsRefused { .. })),
        "an expired certificate: {refused:?}"
    );
}

/// Clients that open a connection, send the first bytes of a TLS record
/// and stall.
const STALLED_HANDSHAKES: usize = 500;
/// What 500 stalled handshakes may add to the broker's memory.
const STALL_RSS_GROWTH_MIB_LIMIT: u64 = 64;

#[tokio::test]
async fn stalled_tls_handshakes_hold_memory_bounded_while_others_are_served() {
    let pki = pki();
    let broker = tls_broker(&pki, false);
    let before = ferry_e2e::raw::rss_mib(broker.pid());
    let mut stalled = Vec::with_capacity(STALLED_HANDSHAKES);
    for _ in 0..STALLED_HANDSHAKES {
        let mut stream = tokio::net::TcpStream::connect(&broker.addr).await.unwrap();
        // A handshake record's header, and nothing after it.
        let _ = stream.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await;
        stalled.push(stream);
    }
    // Served while the stalled ones hold (or are refused) their slots: a
    // client that retries gets in once their handshake timeout passes.
    let client = connect_within_deadline(&broker.addr, trusting(&pki.ca)).await;
    round_trip(&client, "served", 3).await;
    let grown = ferry_e2e::raw::rss_mib(broker.pid()).saturating_sub(before);
    assert!(
        grown <= STALL_RSS_GROWTH_MIB_LIMIT,
        "{STALLED_HANDSHAKES} stalled handshakes grew the broker by {grown} MiB"
    );
    // Every stalled connection is closed by the handshake timeout.
    for stream in &mut stalled {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a stalled handshake was kept"
        );
    }
}

#[test]
fn ferryctl_speaks_tls() {
    let pki = pki();
    let broker = tls_broker(&pki, true);
    let tls = [
        "--tls-ca",
        s(&pki.ca),
        "--tls-cert",
        s(&pki.client_cert),
        "--tls-key",
        s(&pki.client_key),
    ];
    let run = |args: &[&str], stdin: &str| {
        let args: Vec<&str> = tls.iter().chain(args).copied().collect();
        broker.ferryctl(&args, stdin)
    };
    let (code, out, err) = run(&["topic", "create", "orders"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created topic orders"), "{out}");
    let (code, _, err) = run(&["produce", "orders"], "one\ntwo\n");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["consume", "orders", "--count", "2"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two"]);
    // A client certificate needs its key.
    let (code, _, err) = broker.ferryctl(
        &[
            "--tls-ca",
            s(&pki.ca),
            "--tls-cert",
            s(&pki.client_cert),
            "topic",
            "list",
        ],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("--tls-key"), "{err}");
}

#[test]
fn tls_settings_that_cannot_work_stop_the_broker_at_start() {
    let pki = pki();
    let data = tempfile::tempdir().unwrap();
    let data_dir = s(data.path());
    let limit = Duration::from_secs(20);
    let cert_only = [
        "--data-dir",
        data_dir,
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        s(&pki.server_cert),
    ];
    let (code, err) = broker_exit(&cert_only, limit);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls_key is missing"), "{err}");
    let missing = pki.server_cert.with_file_name("missing.pem");
    let unreadable = [
        "--data-dir",
        data_dir,
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        s(&missing),
        "--tls-key",
        s(&pki.server_key),
    ];
    let (code, err) = broker_exit(&unreadable, limit);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("missing.pem"), "{err}");
}

/// Longest wait for a broker to act on a SIGHUP.
const RELOAD_DEADLINE: Duration = Duration::from_secs(5);
/// Pause between two checks of whether it has.
const RELOAD_POLL: Duration = Duration::from_millis(25);

/// Sends SIGHUP to the broker: reload the TLS certificates.
fn hang_up(broker: &Broker) {
    let pid = i32::try_from(broker.pid()).unwrap();
    // SAFETY: sending a signal to our own child process.
    let sent = unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(sent, 0, "kill -HUP {pid}");
}

/// Tries `connect` until it succeeds or [`RELOAD_DEADLINE`] passes.
async fn connect_within_deadline(addr: &str, tls: TlsOptions) -> Client {
    let deadline = tokio::time::Instant::now() + RELOAD_DEADLINE;
    loop {
        let attempt = Client::connect_with(addr, options(tls.clone())).await;
        match attempt {
            Ok(client) => return client,
            Err(error) if tokio::time::Instant::now() >= deadline => {
                panic!("no connection within {RELOAD_DEADLINE:?}: {error}")
            }
            Err(_) => tokio::time::sleep(RELOAD_POLL).await,
        }
    }
}

/// Waits (up to [`RELOAD_DEADLINE`]) for a broker log line with `needle`.
async fn wait_for_log(broker: &Broker, needle: &str) {
    let deadline = tokio::time::Instant::now() + RELOAD_DEADLINE;
    while !broker.log_contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line {needle:?} within {RELOAD_DEADLINE:?}"
        );
        tokio::time::sleep(RELOAD_POLL).await;
    }
}

/// Produces `values` to partition 0 of `topic` through `client`.
async fn produce(client: &Client, topic: &str, values: &[&str]) {
    let producer = Producer::new(client, topic).await.unwrap();
    for value in values {
        producer
            .send(ProducerRecord::new(value.to_string()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificates_and_keeps_connections() {
    let pki = pki();
    let broker = tls_broker(&pki, false);
    let first = Client::connect_with(&broker.addr, options(trusting(&pki.ca)))
        .await
        .unwrap();
    first.create_topic("kept", 1).await.unwrap();
    produce(&first, "kept", &["before"]).await;
    // The broker's files now hold a certificate from another CA.
    let second_ca = ca("second ferry test CA");
    let (cert, key) = leaf(
        &second_ca,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(&pki.server_cert, cert).unwrap();
    std::fs::write(&pki.server_key, key).unwrap();
    let second_ca_file = pki.ca.with_file_name("second-ca.pem");
    std::fs::write(&second_ca_file, &second_ca.pem).unwrap();
    hang_up(&broker);
    let second = connect_within_deadline(&broker.addr, trusting(&second_ca_file)).await;
    assert!(broker.log_contains("TLS certificates reloaded"));
    // The connection made before the reload still works: it could not
    // reconnect, as the broker's new certificate is not one it trusts.
    produce(&first, "kept", &["after"]).await;
    let records = read_all(&first, "kept", 2).await;
    let values: Vec<Vec<u8>> = records
        .iter()
        .filter_map(|r| r.value.as_ref().map(|v| v.to_vec()))
        .collect();
    assert_eq!(values, [b"before".to_vec(), b"after".to_vec()]);
    assert_eq!(second.list_topics().await.unwrap().len(), 1);
    let refused = Client::connect_with(&broker.addr, options(trusting(&pki.ca)))
        .await
        .err();
    assert!(
        matches!(refused, Some(ClientError::TlsRefused { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_broken_certificate_file_on_sighup_keeps_the_old_certificate() {
    let pki = pki();
    let broker = tls_broker(&pki, true);
    let identity = with_identity(&pki.ca, &pki.client_cert, &pki.client_key);
    let first = Client::connect_with(&broker.addr, options(identity.clone()))
        .await
        .unwrap();
    std::fs::write(&pki.server_cert, "not a certificate\n").unwrap();
    hang_up(&broker);
    wait_for_log(&broker, "TLS certificates not reloaded").await;
    let log = broker.log.lock().unwrap().clone();
    let line = log.iter().find(|l| l.contains("not reloaded")).unwrap();
    assert!(line.contains("server.pem"), "names the file: {line}");
    // New connections still get the old certificate; old ones go on.
    let client = Client::connect_with(&broker.addr, options(identity))
        .await
        .unwrap();
    round_trip(&client, "still-served", 3).await;
    assert_eq!(first.list_topics().await.unwrap().len(), 1);
}
