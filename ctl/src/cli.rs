//! The command line: the clap `Cli` with its global options, the
//! `Command` enum of subcommands, and the argument structs they take.
//! Only parsing lives here; each subcommand's module does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_client::{Acks, FsyncPolicy, SeekTo};

#[derive(Parser)]
#[command(
    name = "ferryctl",
    version,
    about = "Administer a Ferry broker, produce and consume from a terminal"
)]
pub struct Cli {
    /// Broker address.
    #[arg(
        long,
        global = true,
        env = "FERRY_BROKER",
        default_value = "127.0.0.1:7171"
    )]
    pub broker: String,
    /// Print one machine-readable JSON document.
    #[arg(long, global = true)]
    pub json: bool,
    /// Once connected, how long to keep trying to reconnect after losing
    /// the broker before failing (default: keep trying, so consume and
    /// produce ride through a broker restart). The first connection is
    /// tried for 5 s.
    #[arg(long, global = true, value_name = "MS")]
    pub reconnect_timeout_ms: Option<u64>,
    /// Speak TLS, trusting the broker certificate's CA in this PEM file.
    #[arg(long, global = true, env = "FERRY_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `--tls-ca` and
    /// `--tls-key`. (Its variable is not `FERRY_TLS_CERT`, the broker's own.)
    #[arg(
        long,
        global = true,
        env = "FERRY_TLS_CLIENT_CERT",
        value_name = "FILE",
        requires_all = ["tls_ca", "tls_key"]
    )]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert`.
    #[arg(
        long,
        global = true,
        env = "FERRY_TLS_CLIENT_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Produce one message per line of standard input.
    ///
    /// Rides through a broker restart: a batch whose answer was lost is
    /// sent again on the new connection (after a crash, rather than a clean
    /// restart, it may then be stored twice). A run that fails part-way
    /// says how many records were acknowledged and exits 1.
    Produce(ProduceArgs),
    /// Print messages, one per line.
    ///
    /// Rides through a broker restart: partitions resume at their next
    /// offset, a group member re-joins (records printed but not committed
    /// may be printed again), a queue consumer subscribes again (unacked
    /// messages are delivered again).
    Consume(ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Create, list, describe and delete queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Show the broker's version, uptime, data directory, counts and health.
    ///
    /// Prints one `key  value` line per field: version, uptime (whole
    /// seconds), data_dir, topics, partitions, groups, queues, connections
    /// and health ("ok" or how many partitions are unhealthy). With --json,
    /// one object with the keys version, uptime_ms, data_dir, topics,
    /// partitions, groups, queues, connections_open and unhealthy_partitions.
    Status,
}

#[derive(Subcommand)]
pub enum QueueCommand {
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
pub enum GroupCommand {
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
pub enum TopicCommand {
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
        fsync: Option<FsyncPolicy>,
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
pub struct ProduceArgs {
    pub topic: String,
    /// Send every message to this partition (default: by key, else round robin).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Split each line into key and value at the first SEP.
    #[arg(long)]
    pub key_separator: Option<String>,
    #[arg(long, default_value = "durable")]
    pub acks: Acks,
    /// Hold the messages back from queue consumers until this time:
    /// milliseconds since the epoch, or +MS from now.
    #[arg(long)]
    pub deliver_at: Option<String>,
}

/// How `consume` prints each message.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Value,
    Json,
}

#[derive(Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Read only this partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// earliest, latest, an offset, or @TIMESTAMP_MS.
    #[arg(long, default_value = "earliest")]
    pub from: SeekTo,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when nothing arrives for this long.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    #[arg(long, value_enum, default_value = "value")]
    pub format: Format,
    /// Consume as a member of this consumer group (commits as it goes;
    /// --from applies to partitions the group has no offset for).
    #[arg(long, conflicts_with = "partition")]
    pub group: Option<String>,
    /// Consume from this queue (competing consumers, acked one by one).
    #[arg(long, conflicts_with_all = ["group", "partition"])]
    pub queue: Option<String>,
    /// With --queue: most unacknowledged messages at once.
    #[arg(long, default_value_t = 10, requires = "queue")]
    pub prefetch: u32,
    /// With --queue: nack (without requeue) instead of ack, to test dead-lettering.
    #[arg(long, requires = "queue")]
    pub nack: bool,
    /// With --group: the member is removed after this long without a heartbeat.
    #[arg(long, default_value_t = 10_000, requires = "group")]
    pub session_timeout_ms: u32,
}

impl ConsumeArgs {
    /// The record format: `--json` forces JSON lines, else `--format`.
    pub fn record_format(&self, json_lines: bool) -> Format {
        if json_lines {
            Format::Json
        } else {
            self.format
        }
    }
}
