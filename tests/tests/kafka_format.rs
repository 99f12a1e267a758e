//! Ferry's record batches are Kafka's RecordBatch v2, checked both ways
//! against an independent implementation (kafka-python's record batch
//! builder and reader, driven by `tests/interop/kafka_v2.py`):
//!
//! - batches kafka-python builds (keys, null keys and values, headers, a
//!   null header value, binary data, many records) are accepted by the
//!   broker as they are and read back by Ferry's consumer record for record;
//! - batches Ferry's producer side builds, stored and served by the broker,
//!   decode in kafka-python with a valid CRC, the offsets the broker gave.
//!
//! kafka-python is taken from the Python environment when it is there, else
//! installed from PyPI into `target/interop-python` (pinned version) on
//! first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use ferry_e2e::raw::RawClient;
use ferry_e2e::{read_all, Broker};
use ferry_protocol::batch::{BatchBuilder, NewRecord, RecordHeader};
use ferry_protocol::messages::{CreateTopicRequest, FetchRequest, ProduceRequest};
use serde_json::Value;

const KAFKA_PYTHON: &str = "kafka-python==2.0.2";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/kafka_v2.py")
}

/// A `python3` command that can import kafka-python.
fn python() -> Command {
    let imports = |pythonpath: Option<&Path>| {
        let mut check = Command::new("python3");
        check.args(["-c", "import kafka.record.default_records"]);
        if let Some(path) = pythonpath {
            check.env("PYTHONPATH", path);
        }
        check.output().map(|o| o.status.success()).unwrap_or(false)
    };
    if imports(None) {
        return Command::new("python3");
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop-python");
    if !imports(Some(&target)) {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&target)
            .arg(KAFKA_PYTHON)
            .status()
            .expect("python3 -m pip");
        assert!(installed.success(), "installing {KAFKA_PYTHON} failed");
    }
    let mut python = Command::new("python3");
    python.env("PYTHONPATH", &target);
    python
}

fn run_script(args: &[&str]) -> String {
    let output = python().arg(script()).args(args).output().expect("python3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kafka_v2.py {args:?}: {stderr}");
    String::from_utf8(output.stdout).expect("utf-8 JSON")
}

fn unhex(value: &Value) -> Option<Bytes> {
    let text = value.as_str()?;
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect::<Vec<u8>>();
    Some(Bytes::from(bytes))
}

fn hex(bytes: &Option<Bytes>) -> Value {
    match bytes {
        None => Value::Null,
        Some(bytes) => Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

async fn create_topic(client: &mut RawClient, name: &str) {
    let request = CreateTopicRequest {
        name: name.into(),
        config: None,
    };
    assert_eq!(client.call(&request).await.error_code, 0);
}

#[tokio::test]
async fn batches_built_by_kafka_python_are_stored_and_read_by_ferry() {
    let cases = tempfile::tempdir().unwrap();
    run_script(&["build", cases.path().to_str().unwrap()]);
    let broker = Broker::start();
    let mut raw = RawClient::handshaken(&broker.addr).await;
    let client = broker.client().await;
    for case in 0.. {
        let batch = cases.path().join(format!("case-{case}.bin"));
        if !batch.exists() {
            assert!(case >= 4, "the script builds its cases");
            break;
        }
        let topic = format!("from-kafka-{case}");
        create_topic(&mut raw, &topic).await;
        let records = Bytes::from(std::fs::read(&batch).unwrap());
        let produce = ProduceRequest {
            topic: topic.clone(),
            partition: 0,
            acks: 0,
            records,
        };
        let answer = raw.call(&produce).await;
        assert_eq!(
            answer.error_code, 0,
            "case {case}: {}",
            answer.error_message
        );
        let json = std::fs::read_to_string(cases.path().join(format!("case-{case}.json"))).unwrap();
        let expected: Vec<Value> = serde_json::from_str(&json).unwrap();
        let read = read_all(&client, &topic, expected.len()).await;
        assert_eq!(read.len(), expected.len(), "case {case}");
        for (offset, (record, want)) in read.iter().zip(&expected).enumerate() {
            assert_eq!(record.offset, offset as u64);
            assert_eq!(record.timestamp_ms, want["timestamp_ms"].as_i64().unwrap());
            assert_eq!(record.key, unhex(&want["key"]), "case {case} key");
            assert_eq!(record.value, unhex(&want["value"]), "case {case} value");
            let headers: Vec<Value> = record
                .headers
                .iter()
                .map(|h| serde_json::json!([h.key, hex(&h.value)]))
                .collect();
            assert_eq!(
                Value::Array(headers),
                want["headers"],
                "case {case} headers"
            );
        }
    }
}

#[tokio::test]
async fn batches_built_by_ferry_decode_in_kafka_python() {
    let broker = Broker::start();
    let mut raw = RawClient::handshaken(&broker.addr).await;
    create_topic(&mut raw, "to-kafka").await;
    let records = [
        (Some("k1"), Some("v1"), vec![("trace", Some("t-1"))]),
        (None, Some("no key"), vec![]),
        (Some("tombstone"), None, vec![("null", None)]),
    ];
    // Two batches, so the second's offsets come from the broker.
    for half in [&records[..1], &records[1..]] {
        let mut builder = BatchBuilder::new();
        for (key, value, headers) in half {
            builder.push(&NewRecord {
                timestamp_ms: 1_700_000_000_000,
                key: key.map(|k| Bytes::from(k.to_string())),
                value: value.map(|v| Bytes::from(v.to_string())),
                headers: headers
                    .iter()
                    .map(|(k, v)| RecordHeader {
                        key: k.to_string(),
                        value: v.map(|v| Bytes::from(v.to_string())),
                    })
                    .collect(),
            });
        }
        let produce = ProduceRequest {
            topic: "to-kafka".into(),
            partition: 0,
            acks: 0,
            records: builder.finish(),
        };
        assert_eq!(raw.call(&produce).await.error_code, 0);
    }
    let fetch = FetchRequest {
        topic: "to-kafka".into(),
        max_bytes: 1 << 20,
        ..FetchRequest::default()
    };
    let served = raw.call(&fetch).await;
    assert_eq!(served.error_code, 0);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &served.records).unwrap();
    let decoded: Vec<Value> =
        serde_json::from_str(&run_script(&["read", file.path().to_str().unwrap()])).unwrap();
    assert_eq!(decoded.len(), 2, "two batches: {decoded:?}");
    assert_eq!(decoded[0]["base_offset"], 0);
    assert_eq!(decoded[1]["base_offset"], 1);
    assert_eq!(decoded[1]["offsets"], serde_json::json!([1, 2]));
    let all: Vec<&Value> = decoded
        .iter()
        .flat_map(|b| b["records"].as_array().unwrap())
        .collect();
    for (got, (key, value, headers)) in all.iter().zip(&records) {
        assert_eq!(decoded[0]["magic"], 2);
        let bytes = |s: &Option<&str>| hex(&s.map(|s| Bytes::from(s.to_string())));
        assert_eq!(got["key"], bytes(key));
        assert_eq!(got["value"], bytes(value));
        let want: Vec<Value> = headers
            .iter()
            .map(|(k, v)| serde_json::json!([k, bytes(v)]))
            .collect();
        assert_eq!(got["headers"], Value::Array(want));
        assert_eq!(got["timestamp_ms"], 1_700_000_000_000i64);
    }
}
