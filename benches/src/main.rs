//! `ferry-bench`: drive a running broker (or one it spawns, plaintext or
//! TLS) through the real client crate and report throughput and latency
//! percentiles, with ratios to the machine's physical limits measured in
//! the same run.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferry_bench::baseline::Baseline;
use ferry_bench::scenarios::{self, ConsumeSpec, E2eSpec, Payload, ProduceSpec};
use ferry_bench::spawn::SpawnedBroker;
use ferry_bench::stats::Report;
use ferry_bench::target::Target;
use ferry_bench::workload::Workload;
use ferry_client::{Acks, Compression, FsyncPolicy, Isolation, TopicConfig};

#[derive(Parser)]
#[command(
    name = "ferry-bench",
    version,
    about = "Load generator and benchmarks for Ferry"
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
    /// Print one JSON object.
    #[arg(long, global = true)]
    json: bool,
    /// Start this ferry-broker binary on a temporary data directory and use it.
    #[arg(long, global = true)]
    spawn_broker: Option<PathBuf>,
    /// Extra flags for the spawned broker (repeatable), e.g. --broker-arg=--fsync=never
    #[arg(long = "broker-arg", global = true, allow_hyphen_values = true)]
    broker_args: Vec<String>,
    /// Speak TLS: the spawned broker gets a self-signed certificate made at
    /// start, which the clients trust.
    #[arg(long, global = true, requires = "spawn_broker")]
    tls: bool,
    /// Measure disk and loopback baselines first and report ratios to them.
    #[arg(long, global = true)]
    baseline: bool,
    /// Directory for the disk baseline (default: the spawned broker's data dir, else .).
    #[arg(long, global = true)]
    baseline_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce messages as fast as possible (or at --rate).
    Produce(ProduceArgs),
    /// Read messages back.
    Consume(ConsumeArgs),
    /// A producer at a fixed rate with a consumer attached: end-to-end latency.
    E2e(E2eArgs),
    /// Only the baselines: disk write, disk write + fdatasync, loopback TCP.
    Disk,
    /// Run a workload file (benches/workloads/*.toml).
    Run { workload: PathBuf },
    /// Every compression codec against none on JSON log lines: produce and
    /// consume MB/s of payload, bytes on disk.
    Compression(CompressionArgs),
}

#[derive(Args)]
struct CompressionArgs {
    #[arg(long, default_value_t = 500_000)]
    messages: u64,
    /// About this many bytes per JSON line.
    #[arg(long, default_value_t = 256)]
    size: usize,
    #[arg(long, default_value = "written")]
    acks: Acks,
}

#[derive(Args)]
struct ProduceArgs {
    #[arg(long, default_value = "bench")]
    topic: String,
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes: usize,
    #[arg(long, default_value_t = 1)]
    linger_ms: u64,
    #[arg(long, default_value = "written")]
    acks: Acks,
    /// Messages per second over all producers (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Unacknowledged sends per producer (1 = one round trip at a time).
    #[arg(long, default_value_t = 100_000)]
    max_in_flight: usize,
    /// Idempotent producers (the client's default): true or false.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    idempotent: bool,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: Compression,
    /// zeros or json-logs.
    #[arg(long, default_value = "zeros")]
    payload: Payload,
}

#[derive(Args)]
struct ConsumeArgs {
    #[arg(long, default_value = "bench")]
    topic: String,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Consume as members of this consumer group.
    #[arg(long, conflicts_with = "queue")]
    group: Option<String>,
    /// Consume (and ack) from this queue, created from the earliest offset if missing.
    #[arg(long)]
    queue: Option<String>,
    /// Prefetch of each queue consumer.
    #[arg(long, default_value_t = 100)]
    prefetch: u32,
    /// How far the consumers read: durable (default) or written.
    #[arg(long, default_value = "durable", conflicts_with = "queue")]
    isolation: Isolation,
}

#[derive(Args)]
struct E2eArgs {
    #[arg(long, default_value = "bench-e2e")]
    topic: String,
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long, default_value = "written")]
    acks: Acks,
    /// How far the consumer reads: durable (default) or written.
    #[arg(long, default_value = "durable")]
    isolation: Isolation,
    /// The producer's linger (1 is the client's default).
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(message) = run(cli).await {
        eprintln!("ferry-bench: error: {message}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let spawned = match &cli.spawn_broker {
        Some(binary) => Some(SpawnedBroker::start(binary, &cli.broker_args, cli.tls)?),
        None => None,
    };
    let target = spawned
        .as_ref()
        .map_or_else(|| Target::plaintext(&cli.broker), SpawnedBroker::target);
    let baseline_dir = cli
        .baseline_dir
        .clone()
        .or_else(|| spawned.as_ref().map(|s| s.data_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&baseline_dir)
        .map_err(|e| format!("{}: {e}", baseline_dir.display()))?;
    let quiet = cli.json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let baseline = |chunk: usize| optional_baseline(cli.baseline, baseline_dir.clone(), chunk);
    let json = cli.json;
    match cli.command {
        Command::Disk => {
            let baseline = optional_baseline(true, baseline_dir.clone(), 256 * 1024).await?;
            match (baseline, json) {
                (Some(b), true) => print_json(&serde_json::to_value(b).map_err(|e| e.to_string())?),
                (Some(b), false) => print_baseline(&b),
                (None, _) => {}
            }
        }
        Command::Produce(args) => {
            let baseline = baseline(args.batch_bytes).await?;
            let acks = args.acks;
            let report = scenarios::produce(&target, &args.spec(), quiet).await?;
            emit(
                with_baseline(report, baseline, produce_baseline(acks)),
                json,
            );
        }
        Command::Consume(args) => {
            let baseline = baseline(256 * 1024).await?;
            let report = consume_by(&target, &args.spec(), &args.how(), quiet).await?;
            emit(with_baseline(report, baseline, "loopback_tcp"), json);
        }
        Command::E2e(args) => emit(scenarios::e2e(&target, &args.spec(), quiet).await?, json),
        Command::Compression(args) => compression(&target, &args, quiet, json).await?,
        Command::Run { workload } => {
            let workload = Workload::load(&workload)?;
            let measure = optional_baseline(true, baseline_dir.clone(), workload.batch_bytes);
            let measure = async move { measure.await?.ok_or_else(String::new) };
            run_workload(&target, &workload, quiet, json, measure).await?;
        }
    }
    drop(spawned);
    Ok(())
}

/// The disk and loopback baselines in `dir`, if `wanted`.
async fn optional_baseline(
    wanted: bool,
    dir: PathBuf,
    chunk: usize,
) -> Result<Option<Baseline>, String> {
    if !wanted {
        return Ok(None);
    }
    let baseline = Baseline::measure(&dir, chunk)
        .await
        .map_err(|e| format!("baseline: {e}"))?;
    Ok(Some(baseline))
}

impl ConsumeArgs {
    fn spec(&self) -> ConsumeSpec {
        ConsumeSpec {
            topic: self.topic.clone(),
            consumers: self.consumers,
            messages: self.messages,
            isolation: self.isolation,
        }
    }

    fn how(&self) -> ConsumeBy<'_> {
        ConsumeBy {
            group: self.group.as_deref(),
            queue: self.queue.as_deref(),
            prefetch: self.prefetch,
        }
    }
}

impl ProduceArgs {
    fn spec(self) -> ProduceSpec {
        ProduceSpec {
            topic: self.topic,
            partitions: self.partitions,
            producers: self.producers,
            messages: self.messages,
            size: self.size,
            batch_bytes: self.batch_bytes,
            linger_ms: self.linger_ms,
            acks: self.acks,
            rate: self.rate,
            max_in_flight: self.max_in_flight,
            idempotent: self.idempotent,
            compression: self.compression,
            payload: self.payload,
        }
    }
}

impl E2eArgs {
    fn spec(self) -> E2eSpec {
        E2eSpec {
            topic: self.topic,
            partitions: self.partitions,
            rate: self.rate,
            duration_s: self.duration_s,
            size: self.size,
            acks: self.acks,
            isolation: self.isolation,
            linger_ms: self.linger_ms,
        }
    }
}

/// How a consume phase reads: as plain consumers, group members, or a
/// queue's consumers.
struct ConsumeBy<'a> {
    group: Option<&'a str>,
    queue: Option<&'a str>,
    prefetch: u32,
}

async fn consume_by(
    target: &Target,
    spec: &ConsumeSpec,
    how: &ConsumeBy<'_>,
    quiet: bool,
) -> Result<ferry_bench::stats::Report, String> {
    match (how.group, how.queue) {
        (Some(group), _) => scenarios::consume_group(target, spec, group, quiet).await,
        (_, Some(queue)) => {
            let (topic, consumers, messages) = (&spec.topic, spec.consumers, spec.messages);
            scenarios::consume_queue(
                target,
                topic,
                queue,
                consumers,
                how.prefetch,
                messages,
                quiet,
            )
            .await
        }
        (None, None) => scenarios::consume(target, spec, quiet).await,
    }
}

/// `ferry-bench compression`: every codec against none, as a table or JSON.
async fn compression(
    target: &Target,
    args: &CompressionArgs,
    quiet: bool,
    json: bool,
) -> Result<(), String> {
    let rows =
        ferry_bench::compression::compare(target, args.messages, args.size, args.acks, quiet)
            .await?;
    if json {
        print_json(&serde_json::to_value(&rows).map_err(|e| e.to_string())?);
    } else {
        ferry_bench::compression::print(&rows);
    }
    Ok(())
}

fn produce_baseline(acks: Acks) -> &'static str {
    if acks == Acks::Durable {
        "disk_write_fdatasync"
    } else {
        "disk_write"
    }
}

fn with_baseline(report: Report, baseline: Option<Baseline>, name: &str) -> Report {
    match baseline {
        Some(baseline) => report.with_baseline(baseline, name),
        None => report,
    }
}

async fn run_workload(
    target: &Target,
    workload: &Workload,
    quiet: bool,
    json: bool,
    baseline: impl std::future::Future<Output = Result<Baseline, String>>,
) -> Result<(), String> {
    let acks: Acks = workload.acks.parse()?;
    let baseline = if workload.baseline {
        Some(baseline.await?)
    } else {
        None
    };
    if let (Some(b), false) = (&baseline, json) {
        println!("workload {}", workload.name);
        print_baseline(b);
    }
    let client = target.connect().await?;
    let config = TopicConfig {
        partitions: workload.partitions,
        fsync: workload
            .fsync
            .as_deref()
            .map(str::parse::<FsyncPolicy>)
            .transpose()
            .map_err(|e| e.to_string())?,
        ..TopicConfig::default()
    };
    match client.create_topic_with(&workload.topic, &config).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(ferry_protocol::ErrorCode::TopicAlreadyExists) => {}
        Err(e) => return Err(e.to_string()),
    }
    let mut reports = Vec::new();
    if workload.messages > 0 {
        let spec = ProduceSpec {
            topic: workload.topic.clone(),
            partitions: workload.partitions,
            producers: workload.producers,
            messages: workload.messages,
            size: workload.message_size,
            batch_bytes: workload.batch_bytes,
            linger_ms: workload.linger_ms,
            acks,
            rate: workload.rate,
            max_in_flight: workload.max_in_flight,
            idempotent: workload.idempotent,
            compression: workload.compression.parse().map_err(|e| format!("{e}"))?,
            payload: Payload::Zeros,
        };
        let report = scenarios::produce(target, &spec, quiet).await?;
        reports.push(with_baseline(report, baseline, produce_baseline(acks)));
        if workload.consumers > 0 {
            let spec = ConsumeSpec {
                topic: workload.topic.clone(),
                consumers: workload.consumers,
                messages: workload.messages,
                isolation: workload.isolation,
            };
            let how = ConsumeBy {
                group: workload.group.as_deref(),
                queue: workload.queue.as_deref(),
                prefetch: workload.prefetch,
            };
            let report = consume_by(target, &spec, &how, quiet).await?;
            reports.push(with_baseline(report, baseline, "loopback_tcp"));
        }
    }
    if workload.e2e_rate > 0 {
        let spec = E2eSpec {
            topic: format!("{}-e2e", workload.topic),
            partitions: workload.partitions,
            rate: workload.e2e_rate,
            duration_s: workload.e2e_duration_s.max(1),
            size: workload.message_size,
            acks,
            isolation: workload.isolation,
            linger_ms: 0,
        };
        reports.push(scenarios::e2e(target, &spec, quiet).await?);
    }
    if json {
        print_json(&serde_json::json!({
            "workload": workload.name,
            "tls": target.is_tls(),
            "baseline": baseline,
            "results": reports,
        }));
    } else {
        reports.iter().for_each(Report::print_human);
    }
    Ok(())
}

fn emit(report: Report, json: bool) {
    if json {
        print_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        report.print_human();
    }
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

fn print_baseline(b: &Baseline) {
    println!(
        "baseline: disk write {:.0} MB/s, disk write+fdatasync per {} KiB {:.0} MB/s, loopback TCP {:.0} MB/s",
        b.disk_write_mb_per_sec,
        b.chunk_bytes / 1024,
        b.disk_write_fdatasync_mb_per_sec,
        b.loopback_tcp_mb_per_sec
    );
}
