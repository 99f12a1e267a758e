//! Ferry's record batches are Kafka's RecordBatch v2, checked both ways
//! against an independent implementation (kafka-python's record batch
//! builder and reader, driven by `tests/interop/kafka_v2.py`):
//!
//! - batches kafka-python builds (keys, null keys and values, headers, a
//!   null header value, binary data, many records), uncompressed and with
//!   each of Kafka's codecs (gzip, xerial-framed snappy, raw snappy, lz4,
//!   zstd), are accepted by the broker as they are, stored and served byte
//!   for byte as sent, and read back by Ferry's consumer record for record;
//! - batches Ferry's producer side builds, uncompressed and with each codec,
//!   stored and served by the broker, decode in kafka-python with a valid
//!   CRC, the codec they were built with and the offsets the broker gave.
//!
//! kafka-python and its codec packages are taken from the Python
//! environment when they are there, else installed from PyPI into
//! `target/interop-python` (pinned versions) on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bytes::Bytes;
use ferry_e2e::raw::RawClient;
use ferry_e2e::{read_all, Broker};
use ferry_protocol::batch::{
    BatchBuilder, Compression, NewRecord, RecordHeader, BATCH_ASSIGNED_BYTES,
    BATCH_LENGTH_PREFIX_BYTES,
};
use ferry_protocol::messages::{CreateTopicRequest, FetchRequest, ProduceRequest};
use serde_json::Value;

/// kafka-python and the packages its codecs import: lz4 (lz4 frames),
/// zstandard, python-snappy (on cramjam).
const PYTHON_PACKAGES: [&str; 5] = [
    "kafka-python==2.0.2",
    "lz4==4.4.5",
    "zstandard==0.25.0",
    "python-snappy==0.7.3",
    "cramjam==2.14.0",
];
const PYTHON_IMPORTS: &str = "import kafka.record.default_records, lz4.frame, zstandard, snappy";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/kafka_v2.py")
}

/// A `python3` command that can import kafka-python and its codecs.
fn python() -> Command {
    // Found (or installed) once per test process: the tests run in parallel.
    static PYTHONPATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    let mut python = Command::new("python3");
    if let Some(path) = PYTHONPATH.get_or_init(python_path) {
        python.env("PYTHONPATH", path);
    }
    python
}

/// Where kafka-python and its codecs are: `None` for the environment's own
/// Python path, else `target/interop-python`, installed there if need be.
fn python_path() -> Option<PathBuf> {
    let imports = |pythonpath: Option<&Path>| {
        let mut check = Command::new("python3");
        check.args(["-c", PYTHON_IMPORTS]);
        if let Some(path) = pythonpath {
            check.env("PYTHONPATH", path);
        }
        check.output().map(|o| o.status.success()).unwrap_or(false)
    };
    if imports(None) {
        return None;
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop-python");
    if !imports(Some(&target)) {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--upgrade", "--target"])
            .arg(&target)
            .args(PYTHON_PACKAGES)
            .status()
            .expect("python3 -m pip");
        assert!(installed.success(), "installing {PYTHON_PACKAGES:?} failed");
    }
    Some(target)
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

/// Every record of the partition, as the broker serves it (whole batches).
async fn fetch_all(raw: &mut RawClient, topic: &str) -> Bytes {
    let fetch = FetchRequest {
        topic: topic.into(),
        max_bytes: 1 << 20,
        ..FetchRequest::default()
    };
    let served = raw.call(&fetch).await;
    assert_eq!(served.error_code, 0, "{}", served.error_message);
    served.records
}

/// The codec a case was built with (`snappy-raw` is snappy).
fn case_codec(case: &Value) -> Compression {
    let name = case["codec"].as_str().expect("codec");
    name.trim_end_matches("-raw").parse().expect("a codec name")
}

/// The broker's copy of a batch is the batch as sent, but for the base
/// offset and leader epoch it assigns.
fn assert_stored_as_sent(sent: &[u8], served: &[u8], case: usize) {
    assert_eq!(served.len(), sent.len(), "case {case}");
    assert_eq!(
        served[BATCH_ASSIGNED_BYTES..],
        sent[BATCH_ASSIGNED_BYTES..],
        "case {case}"
    );
    assert_eq!(
        served[8..BATCH_LENGTH_PREFIX_BYTES],
        sent[8..BATCH_LENGTH_PREFIX_BYTES],
        "case {case}"
    );
}

fn assert_records_match(read: &[ferry_client::ConsumerRecord], expected: &[Value], case: usize) {
    assert_eq!(read.len(), expected.len(), "case {case}");
    for (offset, (record, want)) in read.iter().zip(expected).enumerate() {
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

#[tokio::test]
async fn batches_built_by_kafka_python_are_stored_and_read_by_ferry() {
    let cases = tempfile::tempdir().unwrap();
    run_script(&["build", cases.path().to_str().unwrap()]);
    let broker = Broker::start();
    let mut raw = RawClient::handshaken(&broker.addr).await;
    let client = broker.client().await;
    let mut codecs_seen = Vec::new();
    for case in 0.. {
        let batch = cases.path().join(format!("case-{case}.bin"));
        if !batch.exists() {
            assert!(case >= 9, "the script builds its cases");
            break;
        }
        let json = std::fs::read_to_string(cases.path().join(format!("case-{case}.json"))).unwrap();
        let described: Value = serde_json::from_str(&json).unwrap();
        // kafka-python really compressed it (it falls back to none when
        // compressing does not pay).
        let codec = case_codec(&described);
        assert_eq!(described["attributes"], codec.attribute(), "case {case}");
        codecs_seen.push(described["codec"].as_str().unwrap().to_string());
        let topic = format!("from-kafka-{case}");
        create_topic(&mut raw, &topic).await;
        let records = Bytes::from(std::fs::read(&batch).unwrap());
        let produce = ProduceRequest {
            topic: topic.clone(),
            partition: 0,
            acks: 0,
            records: records.clone(),
        };
        let answer = raw.call(&produce).await;
        assert_eq!(
            answer.error_code, 0,
            "case {case} ({codec}): {}",
            answer.error_message
        );
        assert_stored_as_sent(&records, &fetch_all(&mut raw, &topic).await, case);
        let expected = described["records"].as_array().unwrap();
        let read = read_all(&client, &topic, expected.len()).await;
        assert_records_match(&read, expected, case);
    }
    for codec in ["none", "gzip", "snappy", "snappy-raw", "lz4", "zstd"] {
        assert!(codecs_seen.iter().any(|c| c == codec), "no {codec} case");
    }
}

type TestRecord = (
    Option<&'static str>,
    Option<&'static str>,
    Vec<(&'static str, Option<&'static str>)>,
);

/// Ferry's builder with `codec` over `records`.
fn ferry_batch(codec: Compression, records: &[TestRecord]) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.set_compression(codec);
    for (key, value, headers) in records {
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
    builder.finish()
}

#[tokio::test]
async fn batches_built_by_ferry_decode_in_kafka_python() {
    let broker = Broker::start();
    let mut raw = RawClient::handshaken(&broker.addr).await;
    let records: [TestRecord; 3] = [
        (Some("k1"), Some("v1"), vec![("trace", Some("t-1"))]),
        (None, Some("no key"), vec![]),
        (Some("tombstone"), None, vec![("null", None)]),
    ];
    for codec in Compression::ALL {
        let topic = format!("to-kafka-{codec}");
        create_topic(&mut raw, &topic).await;
        // Two batches, so the second's offsets come from the broker.
        for half in [&records[..1], &records[1..]] {
            let produce = ProduceRequest {
                topic: topic.clone(),
                partition: 0,
                acks: 0,
                records: ferry_batch(codec, half),
            };
            let answer = raw.call(&produce).await;
            assert_eq!(answer.error_code, 0, "{codec}: {}", answer.error_message);
        }
        let served = fetch_all(&mut raw, &topic).await;
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &served).unwrap();
        let decoded: Vec<Value> =
            serde_json::from_str(&run_script(&["read", file.path().to_str().unwrap()])).unwrap();
        assert_decoded(&decoded, codec, &records);
    }
}

/// What kafka-python read from two batches of `records` built with `codec`.
fn assert_decoded(decoded: &[Value], codec: Compression, records: &[TestRecord]) {
    assert_eq!(decoded.len(), 2, "{codec}: two batches: {decoded:?}");
    assert_eq!(decoded[0]["base_offset"], 0);
    assert_eq!(decoded[1]["base_offset"], 1);
    assert_eq!(decoded[1]["offsets"], serde_json::json!([1, 2]));
    for batch in decoded {
        assert_eq!(batch["magic"], 2);
        assert_eq!(batch["compression"], codec.attribute(), "{codec}");
    }
    let all: Vec<&Value> = decoded
        .iter()
        .flat_map(|b| b["records"].as_array().unwrap())
        .collect();
    assert_eq!(all.len(), records.len(), "{codec}");
    for (got, (key, value, headers)) in all.iter().zip(records) {
        let bytes = |s: &Option<&str>| hex(&s.map(|s| Bytes::from(s.to_string())));
        assert_eq!(got["key"], bytes(key), "{codec}");
        assert_eq!(got["value"], bytes(value), "{codec}");
        let want: Vec<Value> = headers
            .iter()
            .map(|(k, v)| serde_json::json!([k, bytes(v)]))
            .collect();
        assert_eq!(got["headers"], Value::Array(want), "{codec}");
        assert_eq!(got["timestamp_ms"], 1_700_000_000_000i64);
    }
}
