//! `ferryctl produce` and `consume` as kcat users expect them: binary
//! messages (`--delimiter`, `--file`) that come back byte for byte, format
//! strings, headers, keys in value mode, base64 in JSON for bytes that are
//! not UTF-8, `--exit-at-end`, `--timeout-ms 0`, and `--from` relative to
//! the end or to now, and what Ctrl-C and SIGTERM do to a consumer.

use std::io::Write;
use std::process::Output;

use ferry_e2e::Broker;

/// Runs ferryctl with `stdin` as raw bytes.
fn ferryctl_bytes(broker: &Broker, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = ferry_e2e::spawn_ferryctl(&broker.addr, args);
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let output = child.wait_with_output().expect("ferryctl");
    let _ = writer.join();
    output
}

fn ok(output: &Output) -> &[u8] {
    assert!(
        output.status.success(),
        "ferryctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    &output.stdout
}

/// Deterministic bytes that are not UTF-8 and hold every byte value.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn a_megabyte_of_random_bytes_round_trips_through_stdin_and_a_file() {
    let broker = Broker::start();
    let data = random_bytes(1024 * 1024);
    ok(&broker_ctl(
        &broker,
        &["topic", "create", "bin", "--partitions", "1"],
    ));
    // All of stdin as one message, then the same bytes from a file.
    ok(&ferryctl_bytes(
        &broker,
        &["produce", "bin", "--delimiter", ""],
        &data,
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, &data).unwrap();
    ok(&ferryctl_bytes(
        &broker,
        &["produce", "bin", "--file", file.to_str().unwrap()],
        b"",
    ));
    let out = ferryctl_bytes(
        &broker,
        &["consume", "bin", "-f", "%s", "--exit-at-end"],
        b"",
    );
    let mut expected = data.clone();
    expected.extend_from_slice(&data);
    assert!(
        ok(&out) == expected.as_slice(),
        "the bytes came back changed"
    );
    // The lengths say the same: two messages of 1 MiB.
    let out = ferryctl_bytes(
        &broker,
        &["consume", "bin", "-f", "%o %S\\n", "--exit-at-end"],
        b"",
    );
    assert_eq!(ok(&out), b"0 1048576\n1 1048576\n");
}

fn broker_ctl(broker: &Broker, args: &[&str]) -> Output {
    ferryctl_bytes(broker, args, b"")
}

#[test]
fn delimiters_headers_keys_and_format_strings() {
    let broker = Broker::start();
    ok(&broker_ctl(
        &broker,
        &["topic", "create", "fmt", "--partitions", "1"],
    ));
    let input = b"k1=v1\0k2=\xff\xfe\0k3=v3";
    let produce = [
        "produce",
        "fmt",
        "-D",
        "\\0",
        "--key-separator",
        "=",
        "-H",
        "trace=abc",
        "-H",
        "n=1=x",
    ];
    ok(&ferryctl_bytes(&broker, &produce, input));
    let format = "%t|%p|%o|%k|%s|%K|%S|%h|%%\\n";
    let out = ferryctl_bytes(
        &broker,
        &["consume", "fmt", "-f", format, "--exit-at-end"],
        b"",
    );
    let mut expected = Vec::new();
    expected.extend_from_slice(b"fmt|0|0|k1|v1|2|2|trace=abc,n=1=x|%\n");
    expected.extend_from_slice(b"fmt|0|1|k2|\xff\xfe|2|2|trace=abc,n=1=x|%\n");
    expected.extend_from_slice(b"fmt|0|2|k3|v3|2|2|trace=abc,n=1=x|%\n");
    assert_eq!(
        String::from_utf8_lossy(ok(&out)),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(ok(&out), expected.as_slice());
    // Keys in value mode.
    let out = ferryctl_bytes(
        &broker,
        &["consume", "fmt", "--print-key", "--count", "1"],
        b"",
    );
    assert_eq!(ok(&out), b"k1\tv1\n");
    // JSON: non-UTF-8 bytes as base64, headers as an object.
    let out = ferryctl_bytes(
        &broker,
        &["consume", "fmt", "--format", "json", "--exit-at-end"],
        b"",
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(ok(&out))
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["value"], "v1");
    assert_eq!(lines[1]["value"]["base64"], "//4=");
    assert_eq!(lines[2]["headers"][0]["key"], "trace");
    assert_eq!(lines[2]["headers"][0]["value"], "abc");
    // A bad format is a usage error (exit 2), not a crash.
    let out = ferryctl_bytes(&broker, &["consume", "fmt", "-f", "%x"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field %x"));
}

#[test]
fn exit_at_end_relative_offsets_and_a_zero_timeout() {
    let broker = Broker::start();
    ok(&broker_ctl(
        &broker,
        &["topic", "create", "rel", "--partitions", "2"],
    ));
    let lines: String = (0..20).map(|i| format!("m{i}\n")).collect();
    for partition in ["0", "1"] {
        let produce = ["produce", "rel", "--partition", partition];
        ok(&ferryctl_bytes(&broker, &produce, lines.as_bytes()));
    }
    // --exit-at-end stops at the ends it found: all 40, then exit 0.
    let out = ferryctl_bytes(&broker, &["consume", "rel", "--exit-at-end"], b"");
    assert_eq!(String::from_utf8_lossy(ok(&out)).lines().count(), 40);
    // -3: three before each partition's end.
    let out = ferryctl_bytes(
        &broker,
        &[
            "consume",
            "rel",
            "--from",
            "-3",
            "-f",
            "%p:%s\\n",
            "--exit-at-end",
        ],
        b"",
    );
    let mut got: Vec<String> = String::from_utf8_lossy(ok(&out))
        .lines()
        .map(String::from)
        .collect();
    got.sort();
    assert_eq!(got, ["0:m17", "0:m18", "0:m19", "1:m17", "1:m18", "1:m19"]);
    // -100: more than a partition holds starts at its first record.
    let from_far = ["consume", "rel", "--from", "-100", "--exit-at-end"];
    let out = ferryctl_bytes(&broker, &from_far, b"");
    assert_eq!(String::from_utf8_lossy(ok(&out)).lines().count(), 40);
    // A position past the end: nothing to read, done at once.
    let past_end = ["consume", "rel", "--from", "500", "--exit-at-end"];
    assert!(ok(&ferryctl_bytes(&broker, &past_end, b"")).is_empty());
    // --timeout-ms 0 does not wait for more.
    let started = std::time::Instant::now();
    let out = ferryctl_bytes(&broker, &["consume", "rel", "--timeout-ms", "0"], b"");
    assert_eq!(String::from_utf8_lossy(ok(&out)).lines().count(), 40);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // latest with --timeout-ms 0: nothing there, exit 0 at once.
    let out = ferryctl_bytes(
        &broker,
        &["consume", "rel", "--from", "latest", "--timeout-ms", "0"],
        b"",
    );
    assert!(ok(&out).is_empty());
    // A group with --timeout-ms 0 prints what is there and commits it:
    // the next run finds nothing new.
    let group = ["consume", "rel", "--group", "g", "--timeout-ms", "0"];
    let out = ferryctl_bytes(&broker, &group, b"");
    assert_eq!(String::from_utf8_lossy(ok(&out)).lines().count(), 40);
    let out = ferryctl_bytes(&broker, &group, b"");
    assert!(
        ok(&out).is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn from_a_time_before_now_skips_older_records() {
    use ferry_client::{Producer, ProducerRecord};
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("aged", 1).await.unwrap();
    let producer = Producer::new(&client, "aged").await.unwrap();
    let two_hours_ago = ferry_client::now_ms() - 2 * 3_600_000;
    for (value, timestamp_ms) in [("old", two_hours_ago), ("new", ferry_client::now_ms())] {
        let record = ProducerRecord::new(value).with_timestamp(timestamp_ms);
        producer.send(record).await.unwrap();
    }
    let hour = ["consume", "aged", "--from", "-1h", "--exit-at-end"];
    assert_eq!(ok(&ferryctl_bytes(&broker, &hour, b"")), b"new\n");
    let three_hours = ["consume", "aged", "--from", "-3h", "--exit-at-end"];
    assert_eq!(
        ok(&ferryctl_bytes(&broker, &three_hours, b"")),
        b"old\nnew\n"
    );
}

/// Reads `lines` lines of `child`'s stdout, then sends it `signal` and
/// returns its exit code.
fn interrupt_after(mut child: std::process::Child, lines: usize, signal: i32) -> Option<i32> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = std::io::BufReader::new(stdout);
    for _ in 0..lines {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "ended early"
        );
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    child.wait().expect("wait").code()
}

#[test]
fn ctrl_c_or_sigterm_commits_leaves_and_exits_130() {
    let broker = Broker::start();
    ok(&broker_ctl(
        &broker,
        &["topic", "create", "sig", "--partitions", "2"],
    ));
    let lines: String = (0..30).map(|i| format!("s{i}\n")).collect();
    ok(&ferryctl_bytes(
        &broker,
        &["produce", "sig"],
        lines.as_bytes(),
    ));
    // A group member with nothing to stop it: interrupted after all 30.
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let group = format!("g{signal}");
        let member =
            ferry_e2e::spawn_ferryctl(&broker.addr, &["consume", "sig", "--group", &group]);
        assert_eq!(
            interrupt_after(member, 30, signal),
            Some(130),
            "signal {signal}"
        );
        // It committed before leaving: the group has nothing left to read.
        let again = [
            "consume",
            "sig",
            "--group",
            group.as_str(),
            "--timeout-ms",
            "0",
        ];
        assert!(ok(&ferryctl_bytes(&broker, &again, b"")).is_empty());
    }
    // A plain consumer exits 130 too.
    let plain = ferry_e2e::spawn_ferryctl(&broker.addr, &["consume", "sig"]);
    assert_eq!(interrupt_after(plain, 30, libc::SIGINT), Some(130));
}
