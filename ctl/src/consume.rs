//! `ferryctl consume TOPIC` without `--group` or `--queue`: reads the
//! topic (or one partition) from `--from` and writes each record in
//! `--format`, until `--count` records, `--timeout-ms` without any, or
//! (`--exit-at-end`, `--timeout-ms 0`) the partitions' ends as they were at
//! start; up to the durable end unless `--isolation written`. Across a
//! broker restart it waits for the broker and resumes at the next offset.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use ferry_client::{Client, Consumer, ConsumerConfig, ConsumerRecord};

use crate::cli::ConsumeArgs;
use crate::error::{CliError, CliResult};
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::record_format::write_record;
use crate::start_at::{bounds, seek_all};

/// The longest a poll waits for records before `--timeout-ms` is checked.
const POLL_WAIT_MS_LIMIT: u32 = 500;

/// Reads and writes records until `--count`, `--timeout-ms` or the end.
pub async fn run(client: Client, args: ConsumeArgs, json_lines: bool) -> CliResult {
    let mut interrupt = Interrupt::listen();
    let format = args.record_format(json_lines)?;
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let config = ConsumerConfig {
        max_wait_ms: timeout.map_or(POLL_WAIT_MS_LIMIT, |t| {
            t.as_millis().min(u128::from(POLL_WAIT_MS_LIMIT)) as u32
        }),
        isolation: args.isolation,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::with_config(&client, &args.topic, config).await?;
    let partitions: Vec<u32> = match args.partition {
        Some(partition) => vec![partition],
        None => (0..consumer.partitions()).collect(),
    };
    let bounds = bounds(&client, &args.topic, args.isolation).await?;
    seek_all(&mut consumer, &partitions, args.from, &bounds).await?;
    let mut ends = match args.stops_at_end() {
        true => Some(Ends::new(&consumer, &partitions, &bounds)),
        false => None,
    };
    let mut printed: u64 = 0;
    let mut last_record = tokio::time::Instant::now();
    let stdout = std::io::stdout();
    let mut progress = Progress::on_terminal("read");
    loop {
        if let Some(ends) = ends.as_mut() {
            ends.close_reached(&consumer);
        }
        // A zero timeout means "stop at the end", not "stop at once".
        let quiet = timeout.is_some_and(|t| !t.is_zero() && last_record.elapsed() >= t);
        let done = args.count.is_some_and(|n| printed >= n)
            || ends.as_ref().is_some_and(Ends::all_reached)
            || quiet;
        if done {
            return Ok(());
        }
        let records = tokio::select! {
            records = consumer.poll() => records?,
            _ = interrupt.recv() => return Err(CliError::Interrupted),
        };
        if !records.is_empty() {
            last_record = tokio::time::Instant::now();
        }
        let mut out = stdout.lock();
        for record in records {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            if let Some(ends) = ends.as_mut() {
                if !ends.take(&record) {
                    continue;
                }
            }
            write_record(&mut out, &record, &format)?;
            printed += 1;
        }
        out.flush()?;
        if let Some(progress) = progress.as_mut() {
            progress.tick(printed);
        }
    }
}

/// Each partition's end as it was at start, and whether it was reached.
struct Ends {
    /// Partitions still short of their end, with that end.
    open: BTreeMap<u32, u64>,
}

impl Ends {
    fn new(consumer: &Consumer, partitions: &[u32], bounds: &BTreeMap<u32, (u64, u64)>) -> Ends {
        let open = partitions
            .iter()
            .filter_map(|&partition| {
                let end = bounds.get(&partition).map_or(0, |&(_, end)| end);
                let position = consumer.position(partition).unwrap_or(end);
                (position < end).then_some((partition, end))
            })
            .collect();
        Ends { open }
    }

    fn all_reached(&self) -> bool {
        self.open.is_empty()
    }

    /// Closes the partitions the consumer has read up to their end (its
    /// position can pass offsets no record holds).
    fn close_reached(&mut self, consumer: &Consumer) {
        self.open.retain(|&partition, &mut end| {
            consumer
                .position(partition)
                .is_none_or(|position| position < end)
        });
    }

    /// Whether `record` is before its partition's end (to be written).
    fn take(&mut self, record: &ConsumerRecord) -> bool {
        self.open
            .get(&record.partition)
            .is_some_and(|&end| record.offset < end)
    }
}
