//! `CliError`, the one error type of every subcommand, and the exit code
//! each failure maps to. Argument errors clap can see never get here: clap
//! prints them and exits 2 itself; the few it cannot see (`--user` without
//! a password) are `CliError::is_usage` and `main` reports them the way
//! clap would.

use std::path::PathBuf;

use ferry_client::ClientError;
use thiserror::Error;

/// Why a subcommand failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// The broker refused the request or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Reading standard input or writing standard output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A flag's value that parsed but makes no sense here.
    #[error("{flag} takes {expected}, not {value:?}")]
    InvalidValue {
        /// The flag, e.g. `--from`.
        flag: &'static str,
        /// What it was given.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
    /// `--user` with neither `--password-file` nor `FERRY_PASSWORD`.
    #[error(
        "--user {user} needs a password: --password-file FILE, or the FERRY_PASSWORD variable"
    )]
    MissingPassword {
        /// The user given.
        user: String,
    },
    /// A password file that cannot be used.
    #[error("password file {}: {reason}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// `topic delete` of a topic with queues, without `--force`.
    #[error(
        "topic {topic} has queues ({queues}): deleting it deletes them and their acknowledgements"
    )]
    TopicHasQueues {
        /// The topic.
        topic: String,
        /// Its queues, comma separated.
        queues: String,
    },
    /// `topic create --partitions 0`.
    #[error("--partitions must be at least 1")]
    NoPartitions,
    /// `produce --partition` beyond the topic's partitions.
    #[error("topic {topic} has no partition {partition} ({partitions} partitions)")]
    NoSuchPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many it has.
        partitions: u32,
    },
    /// `produce` could not wait for its acks (its bookkeeping was closed).
    #[error("waiting for acknowledgements failed: {0}")]
    AckTracking(#[from] tokio::sync::AcquireError),
    /// Ctrl-C or SIGTERM ended a consumer (after it committed or settled
    /// what it printed): exit 130, no message.
    #[error("interrupted")]
    Interrupted,
    /// `produce` failed part-way: how many of the records it sent the
    /// broker acknowledged before the failure.
    #[error("{error} ({acknowledged} of {sent} records acknowledged)")]
    Produce {
        /// The first failure.
        #[source]
        error: ClientError,
        /// Records acknowledged.
        acknowledged: u64,
        /// Records sent (handed to the producer).
        sent: u64,
    },
}

/// 128 + SIGINT, what shells report for a command stopped by Ctrl-C.
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// What every subcommand returns.
pub type CliResult = Result<(), CliError>;

impl CliError {
    /// Whoever read standard output stopped (`ferryctl consume t | head`):
    /// not worth a message, and the run counts as a success.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Bad arguments clap could not see: reported like clap's own (with
    /// the usage line), exit code 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CliError::MissingPassword { .. } | CliError::InvalidValue { .. }
        )
    }

    /// Advice printed after the error, if there is any.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CliError::Client(ClientError::AuthenticationRequired { .. }) => Some(
                "before the command, give --user NAME with --password-file FILE (or \
                 FERRY_PASSWORD), or --token TOKEN (or FERRY_TOKEN)",
            ),
            CliError::TopicHasQueues { .. } => {
                Some("pass --force to delete the topic with its queues")
            }
            _ => None,
        }
    }

    /// The exit code of a run that ends in this error: 1 (2 for a usage
    /// error, 130 for an interrupted consumer).
    ///
    /// All of ferryctl's exit codes: 0 on success, and also on a broken
    /// pipe (which `main` does not report); 1 for any error printed as
    /// `ferryctl: error: ...` (a refused authentication included); 2 for
    /// bad arguments (clap exits with it before a subcommand runs, and
    /// `main` for [`CliError::is_usage`]); 130 for Ctrl-C or SIGTERM.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Interrupted => INTERRUPTED_EXIT_CODE,
            _ if self.is_usage() => 2,
            _ => 1,
        }
    }
}
