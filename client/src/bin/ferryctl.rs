//! `ferryctl`: administer topics and produce/consume from a terminal.
//! Human output is aligned tables; `--json` prints one JSON document.
//! Errors print one line on stderr and exit non-zero.

use std::io::{BufRead, Write};
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_client::{
    Acks, Client, ClientError, Consumer, ConsumerConfig, GroupConfig, GroupConsumer, Producer,
    ProducerConfig, ProducerRecord, SeekTo, TopicConfig,
};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "ferryctl",
    version,
    about = "Administer a Ferry broker, produce and consume from a terminal"
)]
struct Cli {
    /// Broker address.
    #[arg(
        long,
        global = true,
        env = "FERRY_BROKER",
        default_value = "127.0.0.1:7171"
    )]
    broker: String,
    /// Print one machine-readable JSON document.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Produce one message per line of standard input.
    Produce(ProduceArgs),
    /// Print messages, one per line.
    Consume(ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Create, list, describe and delete queues.
    #[command(subcommand)]
    Queue(QueueCommand),
}

#[derive(Subcommand)]
enum QueueCommand {
    Create {
        topic: String,
        queue: String,
        /// Redeliver a message not acked within this long.
        #[arg(long, default_value_t = 30_000)]
        ack_timeout_ms: u32,
        /// Dead-letter a message after this many deliveries.
        #[arg(long, default_value_t = 5)]
        max_deliveries: u32,
        /// earliest or latest.
        #[arg(long, default_value = "earliest")]
        from: String,
    },
    List,
    /// Ready, in-flight, acked and dead-lettered counts, and the consumers.
    Describe {
        topic: String,
        queue: String,
    },
    Delete {
        topic: String,
        queue: String,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    List,
    /// Members, assigned partitions, committed offsets, end offsets and lag.
    Describe {
        group: String,
    },
    /// Move the group's committed offsets (refused while it has live members).
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or @TIMESTAMP_MS.
        #[arg(long)]
        to: SeekTo,
    },
    Delete {
        group: String,
    },
}

#[derive(Subcommand)]
enum TopicCommand {
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        #[arg(long)]
        retention_ms: Option<u64>,
        #[arg(long)]
        retention_bytes: Option<u64>,
        #[arg(long)]
        segment_bytes: Option<u64>,
        /// always, never, or an fsync interval in ms.
        #[arg(long)]
        fsync: Option<String>,
    },
    List,
    Describe {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Args)]
struct ProduceArgs {
    topic: String,
    /// Send every message to this partition (default: by key, else round robin).
    #[arg(long)]
    partition: Option<u32>,
    /// Split each line into key and value at the first SEP.
    #[arg(long)]
    key_separator: Option<String>,
    #[arg(long, default_value = "durable")]
    acks: Acks,
    /// Hold the messages back from queue consumers until this time:
    /// milliseconds since the epoch, or +MS from now.
    #[arg(long)]
    deliver_at: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Value,
    Json,
}

#[derive(Args)]
struct ConsumeArgs {
    topic: String,
    /// Read only this partition (default: all).
    #[arg(long)]
    partition: Option<u32>,
    /// earliest, latest, an offset, or @TIMESTAMP_MS.
    #[arg(long, default_value = "earliest")]
    from: SeekTo,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Stop when nothing arrives for this long.
    #[arg(long)]
    timeout_ms: Option<u64>,
    #[arg(long, value_enum, default_value = "value")]
    format: Format,
    /// Consume as a member of this consumer group (commits as it goes;
    /// --from applies to partitions the group has no offset for).
    #[arg(long, conflicts_with = "partition")]
    group: Option<String>,
    /// Consume from this queue (competing consumers, acked one by one).
    #[arg(long, conflicts_with_all = ["group", "partition"])]
    queue: Option<String>,
    /// With --queue: most unacknowledged messages at once.
    #[arg(long, default_value_t = 10, requires = "queue")]
    prefetch: u32,
    /// With --queue: nack (without requeue) instead of ack, to test dead-lettering.
    #[arg(long, requires = "queue")]
    nack: bool,
    /// With --group: the member is removed after this long without a heartbeat.
    #[arg(long, default_value_t = 10_000, requires = "group")]
    session_timeout_ms: u32,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = run(cli).await;
    if let Err(error) = result {
        if error.is_broken_pipe() {
            return;
        }
        eprintln!("ferryctl: error: {error}");
        std::process::exit(1);
    }
}

#[derive(Debug)]
enum CliError {
    Client(ClientError),
    Io(std::io::Error),
    Usage(String),
}

impl CliError {
    fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Client(e) => write!(f, "{e}"),
            CliError::Io(e) => write!(f, "{e}"),
            CliError::Usage(e) => write!(f, "{e}"),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Client(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Io(e)
    }
}

type CliResult = Result<(), CliError>;

async fn run(cli: Cli) -> CliResult {
    let client = Client::connect(&cli.broker).await?;
    match cli.command {
        Command::Topic(command) => topic(&client, command, cli.json).await,
        Command::Produce(args) => produce(client, args, cli.json).await,
        Command::Consume(args) if args.group.is_some() => {
            consume_group(client, args, cli.json).await
        }
        Command::Consume(args) if args.queue.is_some() => {
            consume_queue(client, args, cli.json).await
        }
        Command::Consume(args) => consume(client, args, cli.json).await,
        Command::Group(command) => group(&client, command, cli.json).await,
        Command::Queue(command) => queue_admin(&client, command, cli.json).await,
    }
}

/// Prints a one-line outcome: `value` with --json, `text` otherwise.
fn outcome(json_output: bool, value: serde_json::Value, text: String) -> CliResult {
    if json_output {
        print_json(value)
    } else {
        println!("{text}");
        Ok(())
    }
}

fn print_json(value: serde_json::Value) -> CliResult {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &value).map_err(|e| CliError::Io(e.into()))?;
    writeln!(out)?;
    Ok(())
}

/// Prints rows as a table with aligned columns.
fn print_table(headers: &[&str], rows: &[Vec<String>]) -> CliResult {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

async fn topic(client: &Client, command: TopicCommand, json_output: bool) -> CliResult {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            segment_bytes,
            fsync,
        } => {
            if partitions == 0 {
                return Err(CliError::Usage("--partitions must be at least 1".into()));
            }
            let config = TopicConfig {
                partitions,
                retention_ms,
                retention_bytes,
                segment_bytes,
                fsync,
                segment_ms: None,
            };
            client.create_topic_with(&name, config).await?;
            outcome(
                json_output,
                json!({"created": name, "partitions": partitions}),
                format!("created topic {name} with {partitions} partition(s)"),
            )
        }
        TopicCommand::List => {
            let topics = client.list_topics().await?;
            if json_output {
                let list: Vec<_> = topics
                    .iter()
                    .map(|t| json!({"name": t.name, "partitions": t.partitions}))
                    .collect();
                return print_json(json!({ "topics": list }));
            }
            let rows: Vec<Vec<String>> = topics
                .iter()
                .map(|t| vec![t.name.clone(), t.partitions.to_string()])
                .collect();
            print_table(&["TOPIC", "PARTITIONS"], &rows)
        }
        TopicCommand::Describe { name } => {
            let topic = client.describe_topic(&name).await?;
            if json_output {
                let partitions: Vec<_> = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        json!({
                            "partition": p.partition,
                            "start_offset": p.start_offset,
                            "end_offset": p.end_offset,
                            "size_bytes": p.size_bytes,
                            "segments": p.segments,
                            "durable_offset": p.durable_offset,
                            "problem": if p.problem.is_empty() { None } else { Some(&p.problem) },
                        })
                    })
                    .collect();
                let config = topic.config.unwrap_or_default();
                return print_json(json!({
                    "name": topic.name,
                    "config": {
                        "retention_ms": config.retention_ms,
                        "retention_bytes": config.retention_bytes,
                        "segment_bytes": config.segment_bytes,
                        "fsync": config.fsync,
                    },
                    "partitions": partitions,
                }));
            }
            let rows: Vec<Vec<String>> = topic
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.partition.to_string(),
                        p.start_offset.to_string(),
                        p.end_offset.to_string(),
                        p.size_bytes.to_string(),
                        p.segments.to_string(),
                        if p.problem.is_empty() {
                            "ok".into()
                        } else {
                            p.problem.clone()
                        },
                    ]
                })
                .collect();
            println!("topic {}", topic.name);
            print_table(
                &["PARTITION", "START", "END", "BYTES", "SEGMENTS", "STATUS"],
                &rows,
            )
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            outcome(
                json_output,
                json!({ "deleted": name }),
                format!("deleted topic {name}"),
            )
        }
    }
}

/// Sends stdin lines as records, many in flight; waits for every ack.
async fn produce(client: Client, args: ProduceArgs, json_output: bool) -> CliResult {
    let config = ProducerConfig {
        acks: args.acks,
        linger_ms: 5,
        ..ProducerConfig::default()
    };
    let deliver_at = match &args.deliver_at {
        None => None,
        Some(text) => Some(parse_deliver_at(text)?),
    };
    let producer = Producer::with_config(client, &args.topic, config).await?;
    if let Some(p) = args.partition {
        if p >= producer.partitions() {
            return Err(CliError::Usage(format!(
                "topic {} has no partition {p} ({} partitions)",
                args.topic,
                producer.partitions()
            )));
        }
    }
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(10_000);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    // Acks arrive through callbacks; at most MAX_UNACKED are outstanding.
    const MAX_UNACKED: usize = 50_000;
    let unacked = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_UNACKED));
    let failure: std::sync::Arc<std::sync::Mutex<Option<ClientError>>> = Default::default();
    let mut sent: u64 = 0;
    while let Some(line) = lines_rx.recv().await {
        let line = line?;
        let mut record = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((key, value)) => ProducerRecord::new(Bytes::from(value.to_string()))
                    .with_key(Bytes::from(key.to_string())),
                None => ProducerRecord::new(Bytes::from(line)),
            },
            None => ProducerRecord::new(Bytes::from(line)),
        };
        if let Some(p) = args.partition {
            record = record.with_partition(p);
        }
        if let Some(at) = deliver_at {
            record =
                record.with_header(ferry_protocol::messages::DELIVER_AT_HEADER, at.to_string());
        }
        if let Some(error) = failure.lock().ok().and_then(|f| f.clone()) {
            return Err(error.into());
        }
        let permit = unacked
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let failure = failure.clone();
        let callback: ferry_client::Callback = Box::new(move |result| {
            drop(permit);
            if let (Err(error), Ok(mut slot)) = (result, failure.lock()) {
                slot.get_or_insert(error);
            }
        });
        producer.send_with_callback(record, callback).await?;
        sent += 1;
    }
    let _all = unacked
        .acquire_many(MAX_UNACKED as u32)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(error) = failure.lock().ok().and_then(|f| f.clone()) {
        return Err(error.into());
    }
    if json_output {
        print_json(json!({"topic": args.topic, "produced": sent}))
    } else {
        // The summary goes to stderr so stdout stays clean for pipes.
        eprintln!("produced {sent} message(s) to {}", args.topic);
        Ok(())
    }
}

async fn group(client: &Client, command: GroupCommand, json_output: bool) -> CliResult {
    match command {
        GroupCommand::List => {
            let groups = client.list_groups().await?;
            if json_output {
                let list: Vec<_> = groups
                    .iter()
                    .map(|g| json!({"group": g.group, "state": g.state, "members": g.members}))
                    .collect();
                return print_json(json!({ "groups": list }));
            }
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| vec![g.group.clone(), g.state.clone(), g.members.to_string()])
                .collect();
            print_table(&["GROUP", "STATE", "MEMBERS"], &rows)
        }
        GroupCommand::Describe { group } => {
            let described = client.describe_group(&group).await?;
            if json_output {
                let members: Vec<_> = described
                    .members
                    .iter()
                    .map(|m| {
                        let partitions: Vec<_> = m.assignment.iter().map(|tp| json!({"topic": tp.topic, "partition": tp.partition})).collect();
                        json!({"member_id": m.member_id, "client_id": m.client_id, "member_epoch": m.member_epoch, "topics": m.topics, "partitions": partitions})
                    })
                    .collect();
                let partitions: Vec<_> = described
                    .partitions
                    .iter()
                    .map(|p| {
                        json!({
                            "topic": p.topic,
                            "partition": p.partition,
                            "committed": p.committed,
                            "end_offset": p.end_offset,
                            "lag": p.lag,
                            "member_id": if p.member_id.is_empty() { None } else { Some(&p.member_id) },
                        })
                    })
                    .collect();
                return print_json(json!({
                    "group": described.group,
                    "state": described.state,
                    "group_epoch": described.group_epoch,
                    "assignor": described.assignor,
                    "members": members,
                    "partitions": partitions,
                }));
            }
            println!(
                "group {}  state {}  epoch {}  assignor {}  members {}",
                described.group,
                described.state,
                described.group_epoch,
                described.assignor,
                described.members.len()
            );
            let rows: Vec<Vec<String>> = described
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.committed.map_or("-".into(), |c| c.to_string()),
                        p.end_offset.to_string(),
                        p.lag.to_string(),
                        if p.member_id.is_empty() {
                            "-".into()
                        } else {
                            p.member_id.clone()
                        },
                    ]
                })
                .collect();
            print_table(
                &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"],
                &rows,
            )
        }
        GroupCommand::ResetOffsets { group, topic, to } => {
            let offsets = client.reset_offsets(&group, &topic, to).await?;
            if json_output {
                let list: Vec<_> = offsets
                    .iter()
                    .map(
                        |o| json!({"topic": o.topic, "partition": o.partition, "offset": o.offset}),
                    )
                    .collect();
                return print_json(json!({"group": group, "offsets": list}));
            }
            let rows: Vec<Vec<String>> = offsets
                .iter()
                .map(|o| {
                    vec![
                        o.topic.clone(),
                        o.partition.to_string(),
                        o.offset.map_or("-".into(), |v| v.to_string()),
                    ]
                })
                .collect();
            print_table(&["TOPIC", "PARTITION", "NEW OFFSET"], &rows)
        }
        GroupCommand::Delete { group } => {
            client.delete_group(&group).await?;
            outcome(
                json_output,
                json!({ "deleted": group }),
                format!("deleted group {group}"),
            )
        }
    }
}

fn print_record(
    out: &mut impl Write,
    record: &ferry_client::ConsumerRecord,
    format: Format,
) -> CliResult {
    match format {
        Format::Value => {
            out.write_all(record.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")?;
        }
        Format::Json => {
            let text =
                |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            let headers: serde_json::Map<String, serde_json::Value> = record
                .headers
                .iter()
                .map(|h| {
                    (
                        h.key.clone(),
                        json!(h
                            .value
                            .as_ref()
                            .map(|v| String::from_utf8_lossy(v).into_owned())),
                    )
                })
                .collect();
            let line = json!({
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp_ms": record.timestamp_ms,
                "key": text(&record.key),
                "value": text(&record.value),
                "headers": headers,
            });
            serde_json::to_writer(&mut *out, &line).map_err(|e| CliError::Io(e.into()))?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Consumes as a group member; commits every second and on exit.
async fn consume_group(client: Client, args: ConsumeArgs, json_lines: bool) -> CliResult {
    let group = args.group.clone().unwrap_or_default();
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut config = GroupConfig::new(&group, &[args.topic.as_str()]);
    config.auto_commit_interval_ms = Some(1000);
    config.session_timeout_ms = args.session_timeout_ms;
    config.offset_reset = match args.from {
        SeekTo::Latest => SeekTo::Latest,
        _ => SeekTo::Earliest,
    };
    config.consumer.max_wait_ms = timeout.map_or(500, |t| t.as_millis().clamp(1, 500) as u32);
    let mut consumer = GroupConsumer::join(client, config).await?;
    let format = if json_lines {
        Format::Json
    } else {
        args.format
    };
    let mut printed: u64 = 0;
    let mut last_record = tokio::time::Instant::now();
    let stdout = std::io::stdout();
    loop {
        if args.count.is_some_and(|n| printed >= n)
            || timeout.is_some_and(|t| last_record.elapsed() >= t)
        {
            break;
        }
        let records = tokio::select! {
            records = consumer.poll() => records?,
            _ = tokio::signal::ctrl_c() => break,
        };
        if !records.is_empty() {
            last_record = tokio::time::Instant::now();
        }
        let mut unprinted: std::collections::BTreeMap<(String, u32), u64> = Default::default();
        {
            let mut out = stdout.lock();
            for record in &records {
                if args.count.is_some_and(|n| printed >= n) {
                    unprinted
                        .entry((record.topic.clone(), record.partition))
                        .or_insert(record.offset);
                    continue;
                }
                print_record(&mut out, record, format)?;
                printed += 1;
            }
            out.flush()?;
        }
        // Records past --count were not printed: rewind so they stay uncommitted.
        for ((topic, partition), offset) in unprinted {
            consumer.seek(&topic, partition, offset).await?;
        }
    }
    // Commits what was printed and leaves, so the partitions move at once.
    consumer.close().await?;
    Ok(())
}

fn parse_deliver_at(text: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--deliver-at takes milliseconds since the epoch or +MS, not {text:?}"
        ))
    };
    match text.strip_prefix('+') {
        Some(delay) => {
            Ok(ferry_client::record::now_ms() + delay.parse::<i64>().map_err(|_| bad())?)
        }
        None => text.parse().map_err(|_| bad()),
    }
}

async fn queue_admin(client: &Client, command: QueueCommand, json_output: bool) -> CliResult {
    match command {
        QueueCommand::Create {
            topic,
            queue,
            ack_timeout_ms,
            max_deliveries,
            from,
        } => {
            let request = ferry_protocol::messages::CreateQueueRequest {
                topic: topic.clone(),
                queue: queue.clone(),
                ack_timeout_ms,
                max_deliveries,
                start: from,
                dead_letter_topic: String::new(),
            };
            client.create_queue(&request).await?;
            outcome(
                json_output,
                json!({"created": {"topic": topic, "queue": queue}}),
                format!("created queue {queue} on topic {topic}"),
            )
        }
        QueueCommand::List => {
            let queues = client.list_queues().await?;
            if json_output {
                let list: Vec<_> = queues
                    .iter()
                    .map(|q| json!({"topic": q.topic, "queue": q.queue}))
                    .collect();
                return print_json(json!({ "queues": list }));
            }
            let rows: Vec<Vec<String>> = queues
                .iter()
                .map(|q| vec![q.topic.clone(), q.queue.clone()])
                .collect();
            print_table(&["TOPIC", "QUEUE"], &rows)
        }
        QueueCommand::Describe { topic, queue } => {
            let d = client.describe_queue(&topic, &queue).await?;
            if json_output {
                let consumers: Vec<_> = d
                    .consumers
                    .iter()
                    .map(|c| json!({"subscription_id": c.subscription_id, "prefetch": c.prefetch, "in_flight": c.in_flight, "delivered": c.delivered}))
                    .collect();
                return print_json(json!({
                    "topic": d.topic,
                    "queue": d.queue,
                    "ready": d.ready,
                    "in_flight": d.in_flight,
                    "acked": d.acked,
                    "dead_lettered": d.dead_lettered,
                    "scheduled": d.scheduled,
                    "ack_timeout_ms": d.ack_timeout_ms,
                    "max_deliveries": d.max_deliveries,
                    "dead_letter_topic": d.dead_letter_topic,
                    "consumers": consumers,
                }));
            }
            println!(
                "queue {}/{}  ready {}  in flight {}  acked {}  dead-lettered {}  scheduled {}",
                d.topic, d.queue, d.ready, d.in_flight, d.acked, d.dead_lettered, d.scheduled
            );
            println!(
                "ack timeout {} ms  max deliveries {}  dead-letter topic {}",
                d.ack_timeout_ms, d.max_deliveries, d.dead_letter_topic
            );
            let rows: Vec<Vec<String>> = d
                .consumers
                .iter()
                .map(|c| {
                    vec![
                        c.subscription_id.to_string(),
                        c.prefetch.to_string(),
                        c.in_flight.to_string(),
                        c.delivered.to_string(),
                    ]
                })
                .collect();
            print_table(&["CONSUMER", "PREFETCH", "IN FLIGHT", "DELIVERED"], &rows)
        }
        QueueCommand::Delete { topic, queue } => {
            client.delete_queue(&topic, &queue).await?;
            outcome(
                json_output,
                json!({"deleted": {"topic": topic, "queue": queue}}),
                format!("deleted queue {queue} on topic {topic}"),
            )
        }
    }
}

/// Consumes from a queue, acking (or with --nack, rejecting) each printed message.
async fn consume_queue(client: Client, args: ConsumeArgs, json_lines: bool) -> CliResult {
    let queue = args.queue.clone().unwrap_or_default();
    // Never take more than --count messages' worth of credit.
    let prefetch = args.count.map_or(args.prefetch, |n| {
        args.prefetch.min(n.clamp(1, u64::from(u32::MAX)) as u32)
    });
    let mut consumer =
        ferry_client::QueueConsumer::subscribe(&client, &args.topic, &queue, prefetch).await?;
    let format = if json_lines {
        Format::Json
    } else {
        args.format
    };
    let idle = args
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(3600 * 24 * 365));
    let mut printed: u64 = 0;
    let mut settles = futures::stream::FuturesUnordered::new();
    let stdout = std::io::stdout();
    use futures::StreamExt;
    while args.count.is_none_or(|n| printed < n) {
        let next = tokio::select! {
            next = consumer.recv_timeout(idle) => next,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(delivery) = next else { break };
        let delivery = delivery?;
        let record = ferry_client::ConsumerRecord {
            topic: delivery.topic.clone(),
            partition: delivery.partition,
            offset: delivery.offset,
            timestamp_ms: delivery.timestamp_ms,
            key: delivery.key.clone(),
            value: delivery.value.clone(),
            headers: delivery.headers.clone(),
        };
        {
            let mut out = stdout.lock();
            print_record(&mut out, &record, format)?;
            out.flush()?;
        }
        printed += 1;
        if args.count.is_some_and(|n| printed >= n) {
            // Pause before the last settle frees credit for more deliveries.
            consumer.set_prefetch(0).await?;
        }
        settles.push(if args.nack {
            futures::future::Either::Left(delivery.nack(false))
        } else {
            futures::future::Either::Right(delivery.ack())
        });
    }
    // Deliveries that arrived past --count go back unprinted.
    while let Some(Some(Ok(extra))) = futures::FutureExt::now_or_never(consumer.recv()) {
        settles.push(futures::future::Either::Left(extra.nack(true)));
    }
    // Wait for every settle to be confirmed (acks: durable) before exiting.
    while let Some(result) = settles.next().await {
        result?;
    }
    Ok(())
}

async fn consume(client: Client, args: ConsumeArgs, json_lines: bool) -> CliResult {
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let config = ConsumerConfig {
        max_wait_ms: timeout.map_or(500, |t| t.as_millis().clamp(1, 500) as u32),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::with_config(client, &args.topic, config).await?;
    match args.partition {
        Some(p) => consumer.assign(&[p], args.from).await?,
        None => consumer.assign_all(args.from).await?,
    }
    let format = if json_lines {
        Format::Json
    } else {
        args.format
    };
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
