//! The broker as a service: what it says when it starts, how it reports a
//! fatal error, the units its configuration takes, and the files in
//! `deploy/` (the example configuration, the systemd unit, the container).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ferry_client::{Client, Producer, ProducerConfig, ProducerRecord};

/// How long a broker may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// A broker started with exactly `args`, its stderr (the log) read line by
/// line until the "ready" line, which is returned.
struct Started {
    child: Child,
    ready_line: String,
    log: mpsc::Receiver<String>,
}

impl Started {
    fn new(args: &[&str]) -> Started {
        let mut child = Command::new(ferry_e2e::binary("ferry-broker"))
            .args(args)
            .env("FERRY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferry-broker");
        let stderr = child.stderr.take().expect("stderr");
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match lines.recv_timeout(READY_TIMEOUT) {
                Ok(line) if line.contains("ferry broker ready") => {
                    return Started {
                        child,
                        ready_line: line,
                        log: lines,
                    }
                }
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("broker did not become ready: {seen:?}");
                }
            }
        }
    }

    fn field(&self, name: &str) -> String {
        let parsed: serde_json::Value =
            serde_json::from_str(&self.ready_line).expect("a JSON log line");
        match &parsed["fields"][name] {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while self.log.try_recv().is_ok() {}
    }
}

#[tokio::test]
async fn the_start_up_line_says_version_addresses_data_and_durability() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let started = Started::new(&[
        "--listen",
        "localhost:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--fsync",
        "250ms",
        "--log-format",
        "json",
    ]);
    assert_eq!(started.field("version"), env!("CARGO_PKG_VERSION"));
    let listen: std::net::SocketAddr = started.field("listen").parse().expect("an address");
    assert!(listen.ip().is_loopback(), "localhost resolved: {listen}");
    let metrics: std::net::SocketAddr = started.field("metrics_listen").parse().unwrap();
    assert_ne!(metrics.port(), 0, "the bound metrics port is reported");
    assert_eq!(started.field("data_dir"), data.display().to_string());
    assert_eq!(started.field("fsync"), "250");
    // The name given to --listen was resolved: clients reach it.
    let client = Client::connect(&listen.to_string()).await.unwrap();
    assert!(client.list_topics().await.unwrap().is_empty());
    // And ferryctl takes a DNS name for the broker.
    let by_name = format!("localhost:{}", listen.port());
    let (code, out, err) = ferry_e2e::ferryctl(&by_name, &["status"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn the_human_log_has_no_colour_off_a_terminal_and_a_fatal_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let started = Started::new(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(
        !started.ready_line.contains('\u{1b}'),
        "ANSI escapes in a piped log: {:?}",
        started.ready_line
    );
    drop(started);

    // A data dir that is a file: refused once, in plain words, exit 1.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let output = Command::new(ferry_e2e::binary("ferry-broker"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "printed once: {stderr}");
    assert!(errors[0].contains("not-a-dir"), "{stderr}");
}

#[tokio::test]
async fn sizes_and_durations_take_units_in_the_file_and_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        "segment_bytes = \"1MiB\"\nretention_ms = \"7d\"\nidle_timeout_ms = \"10m\"\n\
         max_frame_bytes = \"16MiB\"\nmax_batch_bytes = \"4MiB\"\nlisten = \"localhost\"\n",
    )
    .unwrap();
    let started = Started::new(&[
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--handshake-timeout-ms",
        "5s",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    assert_eq!(started.field("segment_bytes"), (1u64 << 20).to_string());
    // 1 MiB segments really are in force: 3 MiB of records take several.
    let client = Client::connect(&started.field("listen")).await.unwrap();
    client.create_topic("units", 1).await.unwrap();
    let config = ProducerConfig::default();
    let producer = Producer::with_config(&client, "units", config)
        .await
        .unwrap();
    let value = vec![b'u'; 64 * 1024];
    for _ in 0..48 {
        producer
            .send(ProducerRecord::new(value.clone()))
            .await
            .unwrap();
    }
    let described = client.describe_topic("units").await.unwrap();
    assert!(described.partitions[0].segments >= 3, "{described:?}");

    for (flag, value) in [("--segment-bytes", "1 GiB B"), ("--retention-ms", "1w")] {
        let output = Command::new(ferry_e2e::binary("ferry-broker"))
            .args(["--listen", "127.0.0.1:0", flag, value])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(value), "{stderr}");
    }
}

#[test]
fn the_example_configuration_starts_a_broker() {
    let example = repo_root().join("deploy/ferry.toml");
    let dir = tempfile::tempdir().unwrap();
    // Flags beat the file: a free port and a temporary data dir.
    let started = Started::new(&[
        "--config",
        example.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(started.ready_line.contains("ferry broker ready"));
}

#[test]
fn the_example_configuration_documents_every_key() {
    let example = std::fs::read_to_string(repo_root().join("deploy/ferry.toml")).unwrap();
    let help = Command::new(ferry_e2e::binary("ferry-broker"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let keys: Vec<String> = help
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("--"))
        .map(|flag| flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .filter(|flag| !["config", "help", "version"].contains(flag) && !flag.is_empty())
        .map(|flag| flag.replace('-', "_"))
        .collect();
    assert!(keys.len() > 30, "{keys:?}");
    for key in keys {
        let documented = example.lines().any(|line| {
            line.trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))
        });
        assert!(documented, "deploy/ferry.toml does not show {key}");
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(found) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(found.status.success());
    // `verify` checks that ExecStart exists: point it at the built binary.
    let unit = std::fs::read_to_string(repo_root().join("deploy/ferry-broker.service")).unwrap();
    let binary = ferry_e2e::binary("ferry-broker");
    let unit = unit.replace("/usr/local/bin/ferry-broker", binary.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry-broker.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    let own: Vec<&str> = said
        .lines()
        .filter(|line| line.contains("ferry-broker.service"))
        .collect();
    assert!(own.is_empty(), "warnings about the unit: {own:?}");
}

#[test]
fn the_container_image_builds() {
    let daemon = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !daemon.is_ok_and(|status| status.success()) {
        eprintln!("skipped: no container runtime (docker info fails)");
        return;
    }
    let mut build = Command::new("docker")
        .args(["build", "-f", "deploy/Dockerfile", "-t", "ferry:test", "."])
        .current_dir(repo_root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    let _ = build.stderr.take().map(|mut e| e.read_to_string(&mut said));
    assert!(build.wait().unwrap().success(), "{said}");
}
