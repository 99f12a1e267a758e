//! `ferryctl quota`: set, list and delete per-principal quotas (produce
//! bytes/s, fetch bytes/s, requests/s; a rate not set is unlimited).

use ferry_client::{Client, QuotaSpec};
use serde_json::json;

use crate::cli::{QuotaArgs, QuotaCommand};
use crate::error::CliResult;
use crate::output::{outcome, print_json, print_table};

/// Runs one `quota` subcommand.
pub async fn run(client: &Client, command: QuotaCommand, json_output: bool) -> CliResult {
    match command {
        QuotaCommand::Set(args) => {
            let quota = spec(args);
            client.set_quota(&quota).await?;
            outcome(
                json_output,
                json!({ "set": quota_json(&quota) }),
                format!("set the quota of {}: {}", quota.principal, rates(&quota)),
            )
        }
        QuotaCommand::List => list(client, json_output).await,
        QuotaCommand::Delete { principal } => {
            client.delete_quota(&principal).await?;
            outcome(
                json_output,
                json!({"deleted": {"principal": principal}}),
                format!("deleted the quota of {principal}"),
            )
        }
    }
}

fn spec(args: QuotaArgs) -> QuotaSpec {
    QuotaSpec {
        principal: args.principal,
        produce_bytes_per_sec: args.produce_bytes_per_sec,
        fetch_bytes_per_sec: args.fetch_bytes_per_sec,
        requests_per_sec: args.requests_per_sec,
    }
}

async fn list(client: &Client, json_output: bool) -> CliResult {
    let quotas = client.list_quotas().await?;
    if json_output {
        let list: Vec<_> = quotas.iter().map(quota_json).collect();
        return print_json(json!({ "quotas": list }));
    }
    let rows: Vec<Vec<String>> = quotas
        .iter()
        .map(|q| {
            vec![
                q.principal.clone(),
                rate(q.produce_bytes_per_sec),
                rate(q.fetch_bytes_per_sec),
                rate(q.requests_per_sec),
            ]
        })
        .collect();
    let headers = ["PRINCIPAL", "PRODUCE B/S", "FETCH B/S", "REQUESTS/S"];
    print_table(&headers, &rows)
}

/// `--json`: unset rates are `null`.
fn quota_json(quota: &QuotaSpec) -> serde_json::Value {
    json!({
        "principal": quota.principal,
        "produce_bytes_per_sec": quota.produce_bytes_per_sec,
        "fetch_bytes_per_sec": quota.fetch_bytes_per_sec,
        "requests_per_sec": quota.requests_per_sec,
    })
}

/// `produce 1048576 B/s, fetch unlimited, requests 100 req/s`.
fn rates(quota: &QuotaSpec) -> String {
    format!(
        "produce {}, fetch {}, requests {}",
        with_unit(quota.produce_bytes_per_sec, "B/s"),
        with_unit(quota.fetch_bytes_per_sec, "B/s"),
        with_unit(quota.requests_per_sec, "req/s"),
    )
}

fn with_unit(rate: Option<u64>, unit: &str) -> String {
    rate.map_or_else(|| "unlimited".into(), |n| format!("{n} {unit}"))
}

/// A table cell: the rate, or "unlimited".
fn rate(rate: Option<u64>) -> String {
    rate.map_or_else(|| "unlimited".into(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_rates_read_as_unlimited() {
        let quota = QuotaSpec {
            principal: "User:bob".into(),
            produce_bytes_per_sec: Some(1_048_576),
            fetch_bytes_per_sec: None,
            requests_per_sec: Some(100),
        };
        assert_eq!(
            rates(&quota),
            "produce 1048576 B/s, fetch unlimited, requests 100 req/s"
        );
        assert_eq!(
            quota_json(&quota)["fetch_bytes_per_sec"],
            serde_json::Value::Null
        );
    }
}
