//! `ferryctl` against the real broker: the commands a newcomer types.

use ferry_e2e::{ferryctl, Broker};

#[test]
fn ferryctl_tour() {
    let broker = Broker::start();
    let (code, out, err) = broker.ferryctl(&["topic", "create", "orders", "--partitions", "2"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created topic orders"));

    let (code, out, _) = broker.ferryctl(&["topic", "list"], "");
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("TOPIC"));
    assert!(out.contains("orders"));

    let lines: String = (0..500)
        .map(|i| format!("key{}:value {i}\n", i % 7))
        .collect();
    let (code, _, err) = broker.ferryctl(&["produce", "orders", "--key-separator", ":"], &lines);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("produced 500 message(s)"), "{err}");
    let (code, _, _) = broker.ferryctl(
        &["produce", "orders", "--partition", "1", "--acks", "written"],
        "one\ntwo\n",
    );
    assert_eq!(code, 0);

    let (code, out, _) = broker.ferryctl(&["topic", "describe", "orders", "--json"], "");
    assert_eq!(code, 0);
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(described["name"], "orders");
    let partitions = described["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2);
    let total: u64 = partitions
        .iter()
        .map(|p| p["end_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 502);
    for key in [
        "partition",
        "start_offset",
        "end_offset",
        "size_bytes",
        "segments",
    ] {
        assert!(
            partitions[0].get(key).is_some(),
            "describe --json lacks {key}"
        );
    }

    let (code, out, _) = broker.ferryctl(&["consume", "orders", "--count", "502"], "");
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 502);
    assert!(out.lines().any(|l| l == "value 499") && out.lines().any(|l| l == "two"));

    let (code, out, _) = broker.ferryctl(
        &[
            "consume",
            "orders",
            "--partition",
            "1",
            "--from",
            "latest",
            "--timeout-ms",
            "300",
        ],
        "",
    );
    assert_eq!((code, out.as_str()), (0, ""), "nothing new after latest");

    let (code, out, _) = broker.ferryctl(
        &[
            "consume",
            "orders",
            "--partition",
            "1",
            "--from",
            "0",
            "--count",
            "1",
            "--format",
            "json",
        ],
        "",
    );
    assert_eq!(code, 0);
    let record: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(record["partition"], 1);
    assert_eq!(record["offset"], 0);

    let (code, _, err) = broker.ferryctl(&["consume", "missing", "--count", "1"], "");
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "ferryctl: error: unknown topic \"missing\"");

    let (code, _, err) = broker.ferryctl(&["topic", "delete", "orders"], "");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = broker.ferryctl(&["topic", "describe", "orders"], "");
    assert_eq!(code, 1);
    assert!(err.contains("unknown topic"));
}

#[test]
fn ferryctl_reports_an_unreachable_broker_and_bad_arguments() {
    let (code, _, err) = ferryctl("127.0.0.1:1", &["topic", "list"], "");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("ferryctl: error: cannot reach the broker at 127.0.0.1:1"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    let (code, _, _) = ferryctl("127.0.0.1:1", &["consume"], "");
    assert_eq!(code, 2, "clap usage error");
    let (code, _, err) = ferryctl("127.0.0.1:1", &["consume", "t", "--from", "yesterday"], "");
    assert_eq!(code, 2);
    assert!(err.contains("earliest"));
}

#[test]
fn status_reports_version_data_dir_and_counts() {
    let broker = Broker::start();
    let (code, _, err) = broker.ferryctl(&["topic", "create", "events", "--partitions", "3"], "");
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = broker.ferryctl(&["status", "--json"], "");
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["topics"], 1);
    assert_eq!(status["partitions"], 3);
    assert_eq!(status["groups"], 0);
    assert_eq!(status["queues"], 0);
    assert_eq!(status["unhealthy_partitions"], 0);
    assert!(status["uptime_ms"].is_u64(), "{out}");
    assert!(status["connections_open"].as_u64().unwrap() >= 1, "{out}");
    let data_dir = status["data_dir"].as_str().unwrap();
    assert_eq!(std::path::Path::new(data_dir), broker.data_dir);

    let (code, out, err) = broker.ferryctl(&["status"], "");
    assert_eq!(code, 0, "{err}");
    let version = format!("version  {}", env!("CARGO_PKG_VERSION"));
    assert!(out.lines().any(|l| l.starts_with("version")), "{out}");
    assert!(out.lines().any(|l| l == version), "{out}");
    assert!(out.lines().any(|l| l == "health  ok"), "{out}");
}
