//! `ferryctl consume TOPIC --group G`: consumes as a member of a consumer
//! group, committing what it printed every second and when it leaves.
//! Across a broker restart the member re-joins; records printed but not
//! yet committed may be printed again.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use ferry_client::{Client, ConsumerRecord, GroupConfig, GroupConsumer, OffsetReset, SeekTo};

use crate::cli::ConsumeArgs;
use crate::error::{CliError, CliResult};
use crate::interrupt::Interrupt;
use crate::record_format::{write_record, RecordFormat};
use crate::start_at::bounds;

/// Consumes as a group member; commits every second and on exit (also
/// on Ctrl-C or SIGTERM, then exits 130).
pub async fn run(client: Client, args: ConsumeArgs, json_lines: bool) -> CliResult {
    let mut interrupt = Interrupt::listen();
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let format = args.record_format(json_lines)?;
    let ends = match args.stops_at_end() {
        true => Some(bounds(&client, &args.topic, args.isolation).await?),
        false => None,
    };
    let mut consumer = GroupConsumer::join(&client, group_config(&args, timeout)?).await?;
    let mut printed: u64 = 0;
    let mut last_record = tokio::time::Instant::now();
    let mut interrupted = false;
    loop {
        let done = match &ends {
            Some(ends) => reached_ends(&consumer, ends),
            None => timeout.is_some_and(|t| last_record.elapsed() >= t),
        };
        if args.count.is_some_and(|n| printed >= n) || done {
            break;
        }
        let records = tokio::select! {
            records = consumer.poll() => records?,
            _ = interrupt.recv() => {
                interrupted = true;
                break;
            }
        };
        if !records.is_empty() {
            last_record = tokio::time::Instant::now();
        }
        let unprinted = print_up_to(&records, &format, args.count, &mut printed)?;
        // Records past --count were not printed: rewind so they stay uncommitted.
        for ((topic, partition), offset) in unprinted {
            consumer.seek(&topic, partition, offset).await?;
        }
    }
    // Commits what was printed and leaves, so the partitions move at once.
    consumer.close().await?;
    match interrupted {
        true => Err(CliError::Interrupted),
        false => Ok(()),
    }
}

/// With `--exit-at-end` or `--timeout-ms 0`: whether this member holds
/// what the broker assigned it and has read every partition of it up to
/// its end as it was at start (a member assigned none has nothing to read).
fn reached_ends(consumer: &GroupConsumer, ends: &BTreeMap<u32, (u64, u64)>) -> bool {
    consumer.assignment_settled()
        && consumer.assignment().iter().all(|(topic, partition)| {
            let end = ends.get(partition).map_or(0, |&(_, end)| end);
            consumer
                .position(topic, *partition)
                .is_some_and(|position| position >= end)
        })
}

/// The membership: auto-commit every second, `--from` for partitions
/// the group has no offset for (earliest or latest: a group has no
/// single offset or time to start every partition at), polls no longer
/// than `--timeout-ms`.
fn group_config(args: &ConsumeArgs, timeout: Option<Duration>) -> Result<GroupConfig, CliError> {
    let group = args.group.clone().unwrap_or_default();
    let mut config = GroupConfig::new(&group, &[args.topic.as_str()]);
    config.auto_commit_interval_ms = Some(1000);
    config.session_timeout_ms = args.session_timeout_ms;
    config.offset_reset = match args.from.as_seek() {
        Some(SeekTo::Earliest) => OffsetReset::Earliest,
        Some(SeekTo::Latest) => OffsetReset::Latest,
        _ => {
            return Err(CliError::InvalidValue {
                flag: "--from",
                value: args.from.to_string(),
                expected: "earliest or latest with --group",
            })
        }
    };
    config.consumer.max_wait_ms = timeout.map_or(500, |t| t.as_millis().min(500) as u32);
    config.consumer.isolation = args.isolation;
    Ok(config)
}

/// Prints `records` until `printed` reaches `count`, and returns, for each
/// partition with records left over, the offset of its first unprinted one.
fn print_up_to(
    records: &[ConsumerRecord],
    format: &RecordFormat,
    count: Option<u64>,
    printed: &mut u64,
) -> Result<BTreeMap<(String, u32), u64>, CliError> {
    let mut unprinted: BTreeMap<(String, u32), u64> = BTreeMap::new();
    let mut out = std::io::stdout().lock();
    for record in records {
        if count.is_some_and(|n| *printed >= n) {
            unprinted
                .entry((record.topic.clone(), record.partition))
                .or_insert(record.offset);
            continue;
        }
        write_record(&mut out, record, format)?;
        *printed += 1;
    }
    out.flush()?;
    Ok(unprinted)
}
