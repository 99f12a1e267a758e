//! `ferryctl token`: create, revoke and list access tokens. A new token is
//! printed once, alone on standard output (so `$(ferryctl token create
//! ...)` captures it), with a reminder on standard error that it cannot be
//! shown again.

use std::time::Duration;

use ferry_client::{Client, TokenInfo};
use serde_json::json;

use crate::cli::TokenCommand;
use crate::error::CliResult;
use crate::output::{outcome, print_json, print_table};

/// Runs one `token` subcommand.
pub async fn run(client: &Client, command: TokenCommand, json_output: bool) -> CliResult {
    match command {
        TokenCommand::Create { user, expires_in } => {
            create(client, &user, expires_in, json_output).await
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(&id).await?;
            outcome(
                json_output,
                json!({"revoked": {"token_id": id}}),
                format!("revoked token {id}"),
            )
        }
        TokenCommand::List { user } => list(client, user.as_deref(), json_output).await,
    }
}

async fn create(
    client: &Client,
    user: &str,
    expires_in: Option<Duration>,
    json_output: bool,
) -> CliResult {
    let made = client.create_token(user, expires_in).await?;
    let expires = match made.expires_at_ms {
        None => "never expires".to_string(),
        Some(ms) => format!("expires at {ms} ms since the epoch"),
    };
    if json_output {
        print_json(json!({
            "token": made.token,
            "id": made.id,
            "user": user,
            "expires_at_ms": made.expires_at_ms,
        }))?;
    } else {
        println!("{}", made.token);
    }
    eprintln!(
        "ferryctl: token {} for user {user} ({expires}); \
         store it now: it will not be shown again",
        made.id
    );
    Ok(())
}

async fn list(client: &Client, user: Option<&str>, json_output: bool) -> CliResult {
    let tokens = client.list_tokens(user).await?;
    if json_output {
        let list: Vec<_> = tokens.iter().map(token_json).collect();
        return print_json(json!({ "tokens": list }));
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.user.clone(),
                t.created_at_ms.to_string(),
                expiry(t.expires_at_ms),
            ]
        })
        .collect();
    print_table(&["ID", "USER", "CREATED AT MS", "EXPIRES AT MS"], &rows)
}

fn token_json(token: &TokenInfo) -> serde_json::Value {
    json!({
        "id": token.id,
        "user": token.user,
        "created_at_ms": token.created_at_ms,
        "expires_at_ms": token.expires_at_ms,
    })
}

/// An expiry in ms since the epoch, or "never".
fn expiry(expires_at_ms: Option<u64>) -> String {
    expires_at_ms.map_or_else(|| "never".into(), |ms| ms.to_string())
}
