//! `ferryctl whoami`: who the broker takes this connection to be (the
//! principal, how it authenticated, whether it is a super user).

use ferry_client::{Client, WhoAmI};
use serde_json::json;

use crate::error::CliResult;
use crate::output::print_json;

/// Asks the broker and prints one `key  value` line per field (with
/// --json: one object with the keys principal, authenticated_by and
/// super_user).
pub async fn run(client: &Client, json_output: bool) -> CliResult {
    let me = client.who_am_i().await?;
    if json_output {
        return print_json(who_json(&me));
    }
    for (key, value) in who_lines(&me) {
        println!("{key}  {value}");
    }
    Ok(())
}

fn who_lines(me: &WhoAmI) -> [(&'static str, String); 3] {
    [
        ("principal", me.principal.clone()),
        ("authenticated_by", me.authenticated_by.to_string()),
        ("super_user", me.super_user.to_string()),
    ]
}

fn who_json(me: &WhoAmI) -> serde_json::Value {
    json!({
        "principal": me.principal,
        "authenticated_by": me.authenticated_by.as_str(),
        "super_user": me.super_user,
    })
}
