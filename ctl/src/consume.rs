//! `ferryctl consume TOPIC` without `--group` or `--queue`: reads the
//! topic (or one partition) from `--from` and prints each record, until
//! `--count` records or `--timeout-ms` without any; up to the durable end
//! unless `--isolation written`. Across a broker restart it waits for the
//! broker and resumes at the next offset.

use std::io::Write;
use std::time::Duration;

use ferry_client::{Client, Consumer, ConsumerConfig};

use crate::cli::ConsumeArgs;
use crate::error::CliResult;
use crate::output::print_record;

/// Reads and prints records until `--count` or `--timeout-ms` says stop.
pub async fn run(client: Client, args: ConsumeArgs, json_lines: bool) -> CliResult {
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let config = ConsumerConfig {
        max_wait_ms: timeout.map_or(500, |t| t.as_millis().clamp(1, 500) as u32),
        isolation: args.isolation,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::with_config(&client, &args.topic, config).await?;
    match args.partition {
        Some(p) => consumer.assign(&[p], args.from).await?,
        None => consumer.assign_all(args.from).await?,
    }
    let format = args.record_format(json_lines);
    let mut printed: u64 = 0;
    let mut last_record = tokio::time::Instant::now();
    let stdout = std::io::stdout();
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        if timeout.is_some_and(|t| last_record.elapsed() >= t) {
            return Ok(());
        }
        let records = consumer.poll().await?;
        if !records.is_empty() {
            last_record = tokio::time::Instant::now();
        }
        let mut out = stdout.lock();
        for record in records {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            print_record(&mut out, &record, format)?;
            printed += 1;
        }
        out.flush()?;
    }
}
