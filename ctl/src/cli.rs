//! The command line: the clap `Cli` with its global options, the
//! `Command` enum of subcommands, the argument structs they take, and the
//! parsers of their values (principals, durations). Only parsing lives
//! here; each subcommand's module does the work.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::error::CliError;
use crate::record_format::{EscapedBytes, RecordFormat};
use crate::start_at::StartAt;
use ferry_client::{Acks, AclOperation, Compression, FsyncPolicy, Isolation, SeekTo};

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
    /// Authenticate as this user (SCRAM-SHA-256), with the password from
    /// --password-file or else the FERRY_PASSWORD variable (which holds the
    /// password itself). Give it before the command, as `token create
    /// --user` names a token's owner: `ferryctl --user admin
    /// --password-file admin.pw topic list`.
    #[arg(long, value_name = "NAME", conflicts_with = "token")]
    pub user: Option<String>,
    /// With --user: the file whose first line is the password.
    #[arg(long, value_name = "FILE", requires = "user")]
    pub password_file: Option<PathBuf>,
    /// Authenticate with this access token. Without --token or --user,
    /// the token in the FERRY_TOKEN variable is used (a variable does not
    /// show in the process list). Give it before the command.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
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
    /// Show who the broker takes this connection to be: the principal,
    /// how it authenticated, and whether it is a super user.
    Whoami,
    /// Create, delete and list users, and change their passwords.
    #[command(subcommand)]
    User(UserCommand),
    /// Create, revoke and list access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add, remove and list ACL entries.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Set, list and delete per-principal quotas.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Print a completion script for a shell, e.g.
    /// `ferryctl completions bash > /etc/bash_completion.d/ferryctl`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is hashed here: it never reaches the
    /// broker.
    Create {
        /// The user's name (A-Z a-z 0-9 . _ @ -); its principal is User:NAME.
        name: String,
        /// The file whose first line is the new user's password.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
    /// Delete a user with its tokens and ACL entries; its connections close.
    Delete {
        /// The user's name.
        name: String,
    },
    /// List users: iterations, super user, live tokens.
    List,
    /// Change a user's password (its open connections stay).
    Passwd {
        /// The user's name.
        name: String,
        /// The file whose first line is the new password.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make an access token for a user. The token is printed once, on
    /// standard output: it cannot be shown again.
    Create {
        /// The user the token authenticates as.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Lifetime, e.g. 30d, 12h, 15m or 10s (default: until revoked).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// Revoke a token by id; connections that authenticated with it close.
    Revoke {
        /// The token's id (see `token list`).
        id: String,
    },
    /// List live tokens (ids, owners, expiry; never the secrets).
    List {
        /// Only this user's tokens.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AclCommand {
    /// Add an ACL entry.
    Add(AclArgs),
    /// Remove the ACL entry with exactly these fields.
    Remove(AclArgs),
    /// List ACL entries.
    List,
}

/// One ACL entry: who, allow or deny, which operation, on what.
#[derive(Args)]
#[command(group(ArgGroup::new("permission").required(true).args(["allow", "deny"])))]
#[command(group(
    ArgGroup::new("resource")
        .required(true)
        .args(["topic", "group", "queue", "cluster"])
))]
pub struct AclArgs {
    /// The principal: User:NAME, or User:* for everyone.
    #[arg(value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub principal: String,
    /// Allow the operation.
    #[arg(long)]
    pub allow: bool,
    /// Deny the operation (a matching deny beats every allow).
    #[arg(long)]
    pub deny: bool,
    /// read, write, create, delete, alter or describe.
    #[arg(long, value_name = "OP")]
    pub operation: AclOperation,
    /// On this topic (* = every topic).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// On this consumer group (* = every group).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// On this queue (* = every queue).
    #[arg(long, value_name = "TOPIC/QUEUE")]
    pub queue: Option<String>,
    /// On the broker itself (users, tokens, ACLs, quotas, status).
    #[arg(long)]
    pub cluster: bool,
    /// The name is a prefix: `--topic orders. --prefixed` covers
    /// orders.eu and orders.us.
    #[arg(long, conflicts_with = "cluster")]
    pub prefixed: bool,
    /// Only for connections from this IP address (default: any).
    #[arg(long, value_name = "IP")]
    pub host: Option<IpAddr>,
}

#[derive(Subcommand)]
pub enum QuotaCommand {
    /// Set (replace) a principal's quota; a rate not given is unlimited.
    Set(QuotaArgs),
    /// List quotas.
    List,
    /// Delete a principal's quota (its rates become unlimited).
    Delete {
        /// The principal: User:NAME.
        #[arg(value_name = "PRINCIPAL", value_parser = parse_principal)]
        principal: String,
    },
}

/// A principal's rates.
#[derive(Args)]
#[command(group(
    ArgGroup::new("rates")
        .required(true)
        .multiple(true)
        .args(["produce_bytes_per_sec", "fetch_bytes_per_sec", "requests_per_sec"])
))]
pub struct QuotaArgs {
    /// The principal: User:NAME.
    #[arg(value_name = "PRINCIPAL", value_parser = parse_principal)]
    pub principal: String,
    /// Bytes of records it may produce per second.
    #[arg(long, value_name = "N")]
    pub produce_bytes_per_sec: Option<u64>,
    /// Bytes it may fetch per second.
    #[arg(long, value_name = "N")]
    pub fetch_bytes_per_sec: Option<u64>,
    /// Requests it may send per second.
    #[arg(long, value_name = "N")]
    pub requests_per_sec: Option<u64>,
}

/// A principal as ACLs and quotas name it: `User:NAME` (or `User:*`).
/// The broker checks the name itself.
pub fn parse_principal(text: &str) -> Result<String, String> {
    match text.strip_prefix("User:") {
        Some(name) if !name.is_empty() => Ok(text.to_string()),
        _ => Err(format!("expected User:NAME, not {text:?}")),
    }
}

/// `KEY=VALUE` of `-H`: the key non-empty (split at the first `=`, so the
/// value may hold more), the value anything (even empty).
/// The value is kept as `Bytes`, so each message shares it.
fn parse_header(text: &str) -> Result<(String, bytes::Bytes), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((
            key.to_string(),
            bytes::Bytes::copy_from_slice(value.as_bytes()),
        )),
        _ => Err(format!("expected KEY=VALUE, not {text:?}")),
    }
}

/// A lifetime: a positive whole number and a unit, `d`, `h`, `m` or `s`
/// (`30d`, `12h`, `15m`, `10s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("expected a number and a unit d, h, m or s (e.g. 30d), not {text:?}");
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split).ok_or_else(bad)?, text.get(split..));
    let seconds_per_unit: u64 = match unit {
        Some("d") => 86_400,
        Some("h") => 3_600,
        Some("m") => 60,
        Some("s") => 1,
        _ => return Err(bad()),
    };
    let count: u64 = number.parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(format!(
            "{text:?} is not a lifetime: it must be more than zero"
        ));
    }
    let seconds = count
        .checked_mul(seconds_per_unit)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    Ok(Duration::from_secs(seconds))
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Create a queue on a topic: messages pushed to competing consumers,
    /// acknowledged one by one.
    Create {
        /// The topic the queue reads.
        topic: String,
        /// The queue's name (unique on its topic).
        queue: String,
        /// Redeliver a message not acked within this long (ms, at least 1).
        #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u32).range(1..))]
        ack_timeout_ms: u32,
        /// Dead-letter a message after this many deliveries (at least 1).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        max_deliveries: u32,
        /// earliest or latest.
        #[arg(long, default_value = "earliest")]
        from: String,
        /// Succeed without a change if the queue exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Every queue, by topic.
    List,
    /// Ready, in-flight, acked and dead-lettered counts, and the consumers.
    Describe {
        /// The topic the queue reads.
        topic: String,
        /// The queue.
        queue: String,
    },
    /// Drop every ready message (messages in flight stay, and come back if
    /// not acked).
    Purge {
        /// The topic the queue reads.
        topic: String,
        /// The queue.
        queue: String,
    },
    /// Show ready messages (the next to be delivered) without taking them:
    /// they stay ready and nothing counts as a delivery.
    Peek {
        /// The topic the queue reads.
        topic: String,
        /// The queue.
        queue: String,
        /// At most this many (1-1000).
        #[arg(short = 'n', long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
        /// How to print each message: value, json, or a format string (as
        /// for consume).
        #[arg(short = 'f', long, default_value = "value", value_name = "FORMAT")]
        format: RecordFormat,
    },
    /// Delete a queue and its acknowledgements (the topic's data stays).
    Delete {
        /// The topic the queue reads.
        topic: String,
        /// The queue.
        queue: String,
        /// Succeed without a change if there is no such queue.
        #[arg(long)]
        if_exists: bool,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Every group with live members or committed offsets.
    List,
    /// Members, assigned partitions, committed offsets, end offsets and lag.
    Describe {
        /// The consumer group.
        group: String,
    },
    /// Move the group's committed offsets for every partition of a topic
    /// (refused while it has live members, unless --dry-run).
    #[command(group(ArgGroup::new("target").required(true).args(["to", "shift_by"])))]
    ResetOffsets {
        /// The consumer group.
        group: String,
        /// The topic whose partitions move.
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or @TIMESTAMP_MS.
        #[arg(long, value_name = "WHERE")]
        to: Option<SeekTo>,
        /// Move each partition N records from its committed offset (its
        /// start if none): negative to read again, positive to skip; kept
        /// within the partition.
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Show the current and new offsets, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a group and its committed offsets (refused while it has
    /// live members).
    Delete {
        /// The consumer group.
        group: String,
    },
}

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic (settings not given take the broker's defaults).
    Create {
        /// The topic: 1-249 of A-Z a-z 0-9 . _ -
        name: String,
        /// How many partitions (at least 1).
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Delete segments whose newest record is older than this (ms).
        #[arg(long, value_name = "MS")]
        retention_ms: Option<u64>,
        /// Keep each partition under about this many bytes.
        #[arg(long, value_name = "BYTES")]
        retention_bytes: Option<u64>,
        /// Roll to a new segment at this size (bytes, at least 1 MiB).
        #[arg(long, value_name = "BYTES")]
        segment_bytes: Option<u64>,
        /// Roll a partition's active segment once it is this old (ms).
        #[arg(long, value_name = "MS")]
        segment_ms: Option<u64>,
        /// always, never, or an fsync interval in ms.
        #[arg(long)]
        fsync: Option<FsyncPolicy>,
        /// Succeed without a change if the topic exists (whatever its
        /// settings).
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Every topic and its partition count.
    List,
    /// Each partition's start, ends, size, segments and health.
    Describe {
        /// The topic.
        name: String,
    },
    /// Delete a topic with its data (refused if it has queues, unless
    /// --force: they are deleted with it).
    Delete {
        /// The topic.
        name: String,
        /// Succeed without a change if there is no such topic.
        #[arg(long)]
        if_exists: bool,
        /// Delete the topic's queues with it.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
pub struct ProduceArgs {
    /// The topic to write to.
    pub topic: String,
    /// Send every message to this partition (default: by key, else round robin).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Split each message into key and value at the first SEP (escapes
    /// \t \0 ... allowed).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<EscapedBytes>,
    /// Add this header to every message; repeatable (-H a=1 -H b=2).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, bytes::Bytes)>,
    /// Messages in standard input are separated by these bytes instead of
    /// newlines (escapes \n \t \r \0 \\ \xHH allowed). Empty: all of
    /// standard input is one message.
    #[arg(short = 'D', long, value_name = "BYTES", conflicts_with = "files")]
    pub delimiter: Option<EscapedBytes>,
    /// Send the whole content of this file as one message; repeatable.
    /// Standard input is not read.
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// When the broker answers: durable (after the fsync; survives power
    /// loss), written (in the page cache) or none (no answer at all).
    #[arg(long, default_value = "durable", value_name = "durable|written|none")]
    pub acks: Acks,
    /// Compress batches: none, gzip, snappy, lz4 or zstd (consumers
    /// decompress whatever they read).
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// Hold the messages back from queue consumers until this time:
    /// milliseconds since the epoch, or +MS from now.
    #[arg(long)]
    pub deliver_at: Option<String>,
}

#[derive(Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Read only this partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Where to start: earliest, latest, an offset, @TIMESTAMP_MS, -N (N
    /// records before each partition's end), or a time before now such as
    /// -1h, -30m, -2d. With --group only earliest or latest (for
    /// partitions the group has no offset for).
    #[arg(
        long,
        default_value = "earliest",
        allow_hyphen_values = true,
        value_name = "WHERE"
    )]
    pub from: StartAt,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when nothing arrives for this long (ms). 0: do not wait, print
    /// what is there now and stop (like --exit-at-end).
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Stop at each partition's end as it was at start (with --group, of
    /// the partitions this member owns).
    #[arg(long, conflicts_with = "queue")]
    pub exit_at_end: bool,
    /// value (the raw value and a newline), json (one object a line;
    /// bytes that are not UTF-8 as {"base64": ...}), or a format string:
    /// %t topic, %p partition, %o offset, %T timestamp (ms), %k key, %s
    /// value, %K and %S their lengths (-1 if null), %h headers (k=v,...),
    /// %% a percent; escapes \n \t \r \0 \\ \xHH. Example: -f '%p:%o
    /// %k=%s\n'.
    #[arg(short = 'f', long, default_value = "value", value_name = "FORMAT")]
    pub format: RecordFormat,
    /// In value format, print each key before its value, separated by
    /// --key-separator.
    #[arg(long)]
    pub print_key: bool,
    /// With --print-key: what goes between key and value (escapes \t \0
    /// ... allowed).
    #[arg(
        long,
        default_value = "\\t",
        requires = "print_key",
        value_name = "SEP"
    )]
    pub key_separator: EscapedBytes,
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
    /// How far to read: durable (only what a power loss cannot take back)
    /// or written (sooner). Queues always read durably.
    #[arg(long, default_value = "durable", conflicts_with = "queue")]
    pub isolation: Isolation,
}

impl ConsumeArgs {
    /// The record format: `--json` forces JSON lines, else `--format`, with
    /// the key printed first if `--print-key` (value format only).
    pub fn record_format(&self, json_lines: bool) -> Result<RecordFormat, CliError> {
        let format = match json_lines {
            true => RecordFormat::Json,
            false => self.format.clone(),
        };
        match (format, self.print_key) {
            (format, false) => Ok(format),
            (RecordFormat::Value { .. }, true) => Ok(RecordFormat::Value {
                key_separator: Some(self.key_separator.0.clone()),
            }),
            (_, true) => Err(CliError::InvalidValue {
                flag: "--print-key",
                value: "with --format json or a format string".into(),
                expected: "the value format (use %k in a format string)",
            }),
        }
    }

    /// Whether to stop at the ends as they were at start.
    pub fn stops_at_end(&self) -> bool {
        self.exit_at_end || self.timeout_ms == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand, flag and argument has help text.
    #[test]
    fn everything_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                missing.push(path.clone());
            }
            for arg in command.get_arguments() {
                let builtin = ["help", "version"].contains(&arg.get_id().as_str());
                if arg.get_help().is_none() && !builtin && !arg.is_hide_set() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn durations_take_one_number_and_a_unit() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        for bad in [
            "",
            "d",
            "30",
            "30x",
            "-1d",
            "1.5h",
            "0s",
            "99999999999999999d",
            "30 d",
            "é",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn principals_are_user_colon_name() {
        assert_eq!(parse_principal("User:alice").as_deref(), Ok("User:alice"));
        assert!(parse_principal("User:*").is_ok());
        for bad in ["alice", "User:", "user:alice", ""] {
            assert!(parse_principal(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn token_create_names_its_owner_apart_from_the_global_user() {
        let cli = Cli::try_parse_from([
            "ferryctl",
            "--user",
            "admin",
            "--password-file",
            "pw",
            "token",
            "create",
            "--user",
            "alice",
            "--expires-in",
            "30d",
        ]);
        let cli = cli.ok();
        assert_eq!(cli.as_ref().and_then(|c| c.user.as_deref()), Some("admin"));
        let owner = match cli.map(|c| c.command) {
            Some(Command::Token(TokenCommand::Create { user, expires_in })) => {
                Some((user, expires_in))
            }
            _ => None,
        };
        assert_eq!(
            owner,
            Some(("alice".into(), Some(Duration::from_secs(2_592_000))))
        );
    }

    #[test]
    fn acl_flags_need_one_permission_and_one_resource() {
        let parse = |args: &[&str]| {
            let line = [
                &[
                    "ferryctl",
                    "acl",
                    "add",
                    "User:alice",
                    "--operation",
                    "write",
                ],
                args,
            ];
            Cli::try_parse_from(line.concat()).is_ok()
        };
        assert!(parse(&["--allow", "--topic", "orders."]));
        assert!(parse(&["--deny", "--cluster"]));
        assert!(!parse(&["--topic", "orders."]), "no permission");
        assert!(
            !parse(&["--allow", "--deny", "--topic", "t"]),
            "two permissions"
        );
        assert!(!parse(&["--allow"]), "no resource");
        assert!(
            !parse(&["--allow", "--topic", "t", "--group", "g"]),
            "two resources"
        );
        assert!(!parse(&["--allow", "--cluster", "--prefixed"]));
    }
}
