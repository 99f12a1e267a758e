//! `CliError`, the one error type of every subcommand, and the exit code
//! each failure maps to. Argument errors never get here: clap prints them
//! and exits 2 itself.

use ferry_client::ClientError;

/// Why a subcommand failed.
#[derive(Debug)]
pub enum CliError {
    /// The broker refused the request or could not be reached.
    Client(ClientError),
    /// Reading standard input or writing standard output failed.
    Io(std::io::Error),
    /// The arguments parsed but make no sense together.
    Usage(String),
}

/// What every subcommand returns.
pub type CliResult = Result<(), CliError>;

impl CliError {
    /// Whoever read standard output stopped (`ferryctl consume t | head`):
    /// not worth a message, and the run counts as a success.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The exit code of a run that ends in this reported error: 1.
    ///
    /// All of ferryctl's exit codes: 0 on success, and also on a broken
    /// pipe (which `main` does not report); 1 for any error printed as
    /// `ferryctl: error: ...`; 2 for bad arguments (clap exits with it
    /// before a subcommand runs).
    pub fn exit_code(&self) -> i32 {
        1
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
