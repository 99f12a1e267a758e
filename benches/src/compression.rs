//! `ferry-bench compression`: every codec against none, in one run, on a
//! compressible workload (JSON log lines): produce and consume MB/s of
//! payload, and the bytes the partition takes on disk. Each codec gets its
//! own one-partition topic; the producer and the consumer are the real
//! client's, so compressing and decompressing are in the figures.

use ferry_client::Compression;

use crate::scenarios::{self, ConsumeSpec, Payload, ProduceSpec};
use crate::stats::Report;
use crate::target::Target;

/// One codec's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CodecRow {
    pub codec: String,
    pub produce: Report,
    pub consume: Report,
    pub disk_bytes: u64,
}

/// Runs produce then consume of `messages` JSON lines of about `size`
/// bytes with each codec, `none` first.
pub async fn compare(
    target: &Target,
    messages: u64,
    size: usize,
    acks: ferry_client::Acks,
    quiet: bool,
) -> Result<Vec<CodecRow>, String> {
    let admin = target.connect().await?;
    let mut rows = Vec::with_capacity(Compression::ALL.len());
    for codec in Compression::ALL {
        let topic = format!("compression-{codec}-{}", std::process::id());
        let spec = ProduceSpec {
            topic: topic.clone(),
            partitions: 1,
            producers: 1,
            messages,
            size,
            batch_bytes: 256 * 1024,
            linger_ms: 1,
            acks,
            rate: 0,
            max_in_flight: 100_000,
            idempotent: true,
            compression: codec,
            payload: Payload::JsonLogs,
        };
        let produce = scenarios::produce(target, &spec, quiet).await?;
        let consume_spec = ConsumeSpec {
            topic: topic.clone(),
            consumers: 1,
            messages,
            isolation: ferry_client::Isolation::Written,
        };
        let consume = scenarios::consume(target, &consume_spec, quiet).await?;
        let description = admin
            .describe_topic(&topic)
            .await
            .map_err(|e| e.to_string())?;
        let disk_bytes = description.partitions.iter().map(|p| p.size_bytes).sum();
        rows.push(CodecRow {
            codec: codec.to_string(),
            produce,
            consume,
            disk_bytes,
        });
    }
    Ok(rows)
}

/// The table: each codec's figures and its ratios to `none`.
pub fn print(rows: &[CodecRow]) {
    let Some(none) = rows.first() else {
        return;
    };
    println!("| codec | produce MB/s | x none | consume MB/s | x none | on disk (MiB) | x none |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!(
            "| {} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} | {:.3} |",
            row.codec,
            row.produce.mb_per_sec,
            row.produce.mb_per_sec / none.produce.mb_per_sec,
            row.consume.mb_per_sec,
            row.consume.mb_per_sec / none.consume.mb_per_sec,
            row.disk_bytes as f64 / (1024.0 * 1024.0),
            row.disk_bytes as f64 / none.disk_bytes.max(1) as f64,
        );
    }
}
