//! `ferryctl status`: the broker's version, uptime, data directory, how
//! many topics, partitions, groups, queues and connections it has, and
//! whether every partition is healthy.

use ferry_client::{BrokerStatus, Client};
use serde_json::json;

use crate::error::CliResult;
use crate::output::print_json;

/// Asks the broker for its status and prints it.
pub async fn run(client: &Client, json_output: bool) -> CliResult {
    let status = client.broker_status().await?;
    if json_output {
        return print_json(status_json(&status));
    }
    for (key, value) in status_lines(&status) {
        println!("{key}  {value}");
    }
    Ok(())
}

/// The human form: one (key, value) pair per line.
fn status_lines(status: &BrokerStatus) -> Vec<(&'static str, String)> {
    let health = match status.unhealthy_partitions {
        0 => "ok".to_string(),
        n => format!("{n} unhealthy partition(s)"),
    };
    vec![
        ("version", status.broker_version.clone()),
        ("uptime", format!("{}s", status.uptime.as_secs())),
        ("data_dir", status.data_dir.clone()),
        ("topics", status.topics.to_string()),
        ("partitions", status.partitions.to_string()),
        ("groups", status.groups.to_string()),
        ("queues", status.queues.to_string()),
        ("connections", status.connections_open.to_string()),
        ("health", health),
    ]
}

/// The `--json` form.
fn status_json(status: &BrokerStatus) -> serde_json::Value {
    json!({
        "version": status.broker_version,
        "uptime_ms": u64::try_from(status.uptime.as_millis()).unwrap_or(u64::MAX),
        "data_dir": status.data_dir,
        "topics": status.topics,
        "partitions": status.partitions,
        "groups": status.groups,
        "queues": status.queues,
        "connections_open": status.connections_open,
        "unhealthy_partitions": status.unhealthy_partitions,
    })
}
