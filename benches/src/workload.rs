//! Workload files (`benches/workloads/*.toml`), in the spirit of the
//! OpenMessaging Benchmark's YAML: one file names a topic shape, message
//! size, producers, consumers, ack level and rate, and `ferry-bench run FILE`
//! turns it into numbers.

use ferry_client::Isolation;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub topic: String,
    pub partitions: u32,
    pub message_size: usize,
    /// Produce phase: this many messages from `producers` producers.
    #[serde(default)]
    pub messages: u64,
    #[serde(default = "one")]
    pub producers: usize,
    /// Consume phase (after produce): `consumers` readers read `messages` back.
    #[serde(default)]
    pub consumers: usize,
    #[serde(default = "default_acks")]
    pub acks: String,
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    #[serde(default = "one_u64")]
    pub linger_ms: u64,
    /// Produce rate limit over all producers (0 = unlimited).
    #[serde(default)]
    pub rate: u64,
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Idempotent producers (the client's default).
    #[serde(default = "yes")]
    pub idempotent: bool,
    /// Producer compression: none (default), gzip, snappy, lz4, zstd.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Optional end-to-end phase at a fixed rate.
    #[serde(default)]
    pub e2e_rate: u64,
    #[serde(default)]
    pub e2e_duration_s: u64,
    /// Measure the disk and loopback baselines first (default true).
    #[serde(default = "yes")]
    pub baseline: bool,
    /// Fsync policy for the workload's topic (`always`, `never`, ms).
    #[serde(default)]
    pub fsync: Option<String>,
    /// Consume as members of this group instead of by partition.
    #[serde(default)]
    pub group: Option<String>,
    /// Consume (and ack) through this queue instead of by partition.
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default = "default_prefetch")]
    pub prefetch: u32,
    /// How far the consumers (plain, group and e2e) read: `durable` (the
    /// default) or `written`. Queues always read durably.
    #[serde(default, deserialize_with = "isolation")]
    pub isolation: Isolation,
}

fn isolation<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Isolation, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn default_prefetch() -> u32 {
    100
}

fn one() -> usize {
    1
}
fn one_u64() -> u64 {
    1
}
fn yes() -> bool {
    true
}
fn default_compression() -> String {
    "none".into()
}
fn default_acks() -> String {
    "written".into()
}
fn default_batch_bytes() -> usize {
    256 * 1024
}
fn default_in_flight() -> usize {
    100_000
}

impl Workload {
    pub fn load(path: &std::path::Path) -> Result<Workload, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let workload: Workload =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if workload.partitions == 0 || workload.message_size < 16 {
            return Err(format!(
                "{}: partitions must be >= 1 and message_size >= 16",
                path.display()
            ));
        }
        Ok(workload)
    }
}
