//! `ferryctl group`: list, describe, reset the offsets of and delete
//! consumer groups. (Consuming as a member is `consume_group`.)

use ferry_client::{Client, GroupDescription, SeekTo};
use serde_json::json;

use crate::cli::GroupCommand;
use crate::error::CliResult;
use crate::output::{outcome, print_json, print_table};

/// Runs one `group` subcommand.
pub async fn run(client: &Client, command: GroupCommand, json_output: bool) -> CliResult {
    match command {
        GroupCommand::List => list(client, json_output).await,
        GroupCommand::Describe { group } => describe(client, &group, json_output).await,
        GroupCommand::ResetOffsets { group, topic, to } => {
            reset_offsets(client, &group, &topic, to, json_output).await
        }
        GroupCommand::Delete { group } => delete(client, &group, json_output).await,
    }
}

async fn list(client: &Client, json_output: bool) -> CliResult {
    let groups = client.list_groups().await?;
    if json_output {
        let list: Vec<_> = groups
            .iter()
            .map(|g| json!({"group": g.group, "state": g.state.as_str(), "members": g.members}))
            .collect();
        return print_json(json!({ "groups": list }));
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| vec![g.group.clone(), g.state.to_string(), g.members.to_string()])
        .collect();
    print_table(&["GROUP", "STATE", "MEMBERS"], &rows)
}

async fn describe(client: &Client, group: &str, json_output: bool) -> CliResult {
    let described = client.describe_group(group).await?;
    if json_output {
        return print_json(describe_json(&described));
    }
    println!(
        "group {}  state {}  epoch {}  assignor {}  members {}",
        described.group,
        described.state,
        described.group_epoch,
        described.assignor.name(),
        described.members.len()
    );
    let rows: Vec<Vec<String>> = described
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.committed.map_or("-".into(), |c| c.to_string()),
                p.end_offset.to_string(),
                p.lag.to_string(),
                p.member_id.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(
        &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"],
        &rows,
    )
}

/// `group describe --json`: the group, its members and their assignments,
/// and every partition's committed offset and lag.
fn describe_json(described: &GroupDescription) -> serde_json::Value {
    let members: Vec<_> = described
        .members
        .iter()
        .map(|m| {
            let partitions: Vec<_> = m
                .assignment
                .iter()
                .map(|(topic, partition)| json!({"topic": topic, "partition": partition}))
                .collect();
            json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "member_epoch": m.member_epoch,
                "topics": m.topics,
                "partitions": partitions,
            })
        })
        .collect();
    let partitions: Vec<_> = described
        .partitions
        .iter()
        .map(|p| {
            json!({
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "end_offset": p.end_offset,
                "lag": p.lag,
                "member_id": p.member_id,
            })
        })
        .collect();
    json!({
        "group": described.group,
        "state": described.state.as_str(),
        "group_epoch": described.group_epoch,
        "assignor": described.assignor.name(),
        "members": members,
        "partitions": partitions,
    })
}

async fn reset_offsets(
    client: &Client,
    group: &str,
    topic: &str,
    to: SeekTo,
    json_output: bool,
) -> CliResult {
    let offsets = client.reset_offsets(group, topic, to).await?;
    if json_output {
        let list: Vec<_> = offsets
            .iter()
            .map(|o| json!({"topic": o.topic, "partition": o.partition, "offset": o.offset}))
            .collect();
        return print_json(json!({"group": group, "offsets": list}));
    }
    let rows: Vec<Vec<String>> = offsets
        .iter()
        .map(|o| {
            vec![
                o.topic.clone(),
                o.partition.to_string(),
                o.offset.map_or("-".into(), |v| v.to_string()),
            ]
        })
        .collect();
    print_table(&["TOPIC", "PARTITION", "NEW OFFSET"], &rows)
}

async fn delete(client: &Client, group: &str, json_output: bool) -> CliResult {
    client.delete_group(group).await?;
    outcome(
        json_output,
        json!({ "deleted": group }),
        format!("deleted group {group}"),
    )
}
