//! `ferryctl`: administer topics, groups, queues, users, tokens, ACLs and
//! quotas, and produce/consume from a terminal.
//! Human output is aligned tables; `--json` prints one JSON document.
//! Errors print one line on stderr and exit non-zero.
//!
//! This file is the entry point: it parses the arguments, connects to the
//! broker, hands the subcommand to its module and turns the result into an
//! exit code (see `error`). How it connects (TLS, credentials) and reports
//! reconnects is in `connection`.

mod acl;
mod cli;
mod connection;
mod consume;
mod consume_group;
mod consume_queue;
mod error;
mod group;
mod interrupt;
mod output;
mod password;
mod produce;
mod produce_input;
mod progress;
mod queue;
mod quota;
mod record_format;
mod start_at;
mod status;
mod token;
mod topic;
mod user;
mod whoami;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use ferry_client::Client;

use crate::cli::{Cli, Command};
use crate::error::CliResult;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = run(cli).await;
    if let Err(error) = result {
        if error.is_broken_pipe() {
            return;
        }
        if matches!(error, error::CliError::Interrupted) {
            std::process::exit(error.exit_code());
        }
        if error.is_usage() {
            Cli::command()
                .error(ErrorKind::MissingRequiredArgument, error)
                .exit();
        }
        eprintln!("ferryctl: error: {error}");
        if let Some(hint) = error.hint() {
            eprintln!("ferryctl: hint: {hint}");
        }
        std::process::exit(error.exit_code());
    }
}

/// Connects, then runs the one subcommand (completions need no broker).
async fn run(cli: Cli) -> CliResult {
    if let Command::Completions { shell } = cli.command {
        // Into memory first: the generator panics on a write error (a
        // closed pipe), which must stay a quiet exit like everywhere else.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ferryctl", &mut script);
        std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
        return Ok(());
    }
    let client = Client::connect_with(&cli.broker, connection::client_options(&cli)?).await?;
    connection::report_reconnects(client.connection_state(), cli.broker.clone());
    match cli.command {
        Command::Topic(command) => topic::run(&client, command, cli.json).await,
        Command::Produce(args) => produce::run(client, args, cli.json).await,
        Command::Consume(args) if args.group.is_some() => {
            consume_group::run(client, args, cli.json).await
        }
        Command::Consume(args) if args.queue.is_some() => {
            consume_queue::run(client, args, cli.json).await
        }
        Command::Consume(args) => consume::run(client, args, cli.json).await,
        Command::Group(command) => group::run(&client, command, cli.json).await,
        Command::Queue(command) => queue::run(&client, command, cli.json).await,
        Command::Status => status::run(&client, cli.json).await,
        Command::Whoami => whoami::run(&client, cli.json).await,
        Command::User(command) => user::run(&client, command, cli.json).await,
        Command::Token(command) => token::run(&client, command, cli.json).await,
        Command::Acl(command) => acl::run(&client, command, cli.json).await,
        Command::Quota(command) => quota::run(&client, command, cli.json).await,
        Command::Completions { .. } => Ok(()),
    }
}
