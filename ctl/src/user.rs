//! `ferryctl user`: create, delete and list SCRAM users, and change their
//! passwords. Passwords come from files and are hashed by the client: they
//! never reach the broker.

use std::path::Path;

use ferry_client::{Client, UserInfo};
use serde_json::json;

use crate::cli::UserCommand;
use crate::error::CliResult;
use crate::output::{outcome, print_json, print_table};
use crate::password::read_password_file;

/// Runs one `user` subcommand.
pub async fn run(client: &Client, command: UserCommand, json_output: bool) -> CliResult {
    match command {
        UserCommand::Create {
            name,
            password_file,
        } => create(client, &name, &password_file, json_output).await,
        UserCommand::Delete { name } => {
            client.delete_user(&name).await?;
            outcome(
                json_output,
                json!({"deleted": {"user": name}}),
                format!("deleted user {name}"),
            )
        }
        UserCommand::List => list(client, json_output).await,
        UserCommand::Passwd {
            name,
            password_file,
        } => passwd(client, &name, &password_file, json_output).await,
    }
}

async fn create(client: &Client, name: &str, password_file: &Path, json_output: bool) -> CliResult {
    let password = read_password_file(password_file)?;
    client.create_user(name, &password).await?;
    outcome(
        json_output,
        json!({"created": {"user": name}}),
        format!("created user {name} (principal User:{name})"),
    )
}

async fn passwd(client: &Client, name: &str, password_file: &Path, json_output: bool) -> CliResult {
    let password = read_password_file(password_file)?;
    client.change_password(name, &password).await?;
    outcome(
        json_output,
        json!({"password_changed": {"user": name}}),
        format!("changed the password of user {name}"),
    )
}

async fn list(client: &Client, json_output: bool) -> CliResult {
    let users = client.list_users().await?;
    if json_output {
        let list: Vec<_> = users.iter().map(user_json).collect();
        return print_json(json!({ "users": list }));
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.iterations.to_string(),
                yes_no(u.super_user).into(),
                u.tokens.to_string(),
            ]
        })
        .collect();
    print_table(&["USER", "ITERATIONS", "SUPER USER", "TOKENS"], &rows)
}

fn user_json(user: &UserInfo) -> serde_json::Value {
    json!({
        "name": user.name,
        "iterations": user.iterations,
        "super_user": user.super_user,
        "tokens": user.tokens,
    })
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
