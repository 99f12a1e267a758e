//! `ferryctl group`: list, describe, reset the offsets of and delete
//! consumer groups. (Consuming as a member is `consume_group`.)

use std::collections::BTreeMap;

use ferry_client::{Client, GroupDescription, ResetTarget, SeekTo};
use serde_json::json;

use crate::cli::GroupCommand;
use crate::error::CliResult;
use crate::output::{outcome, print_json, print_table};

/// Runs one `group` subcommand.
pub async fn run(client: &Client, command: GroupCommand, json_output: bool) -> CliResult {
    match command {
        GroupCommand::List => list(client, json_output).await,
        GroupCommand::Describe { group } => describe(client, &group, json_output).await,
        GroupCommand::ResetOffsets {
            group,
            topic,
            to,
            shift_by,
            dry_run,
        } => {
            let target = match (to, shift_by) {
                (_, Some(shift)) => ResetTarget::ShiftBy(shift),
                (Some(to), None) => ResetTarget::To(to),
                (None, None) => ResetTarget::To(SeekTo::Earliest),
            };
            let reset = Reset {
                group: &group,
                topic: &topic,
                target,
                dry_run,
            };
            reset_offsets(client, reset, json_output).await
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

/// One `group reset-offsets`.
struct Reset<'a> {
    group: &'a str,
    topic: &'a str,
    target: ResetTarget,
    dry_run: bool,
}

/// Resets (or with --dry-run previews) the offsets; prints each
/// partition's committed offset before and its new one.
async fn reset_offsets(client: &Client, reset: Reset<'_>, json_output: bool) -> CliResult {
    let before: BTreeMap<(String, u32), Option<u64>> = client
        .describe_group(reset.group)
        .await
        .map(|d| {
            d.partitions
                .into_iter()
                .map(|p| ((p.topic, p.partition), p.committed))
                .collect()
        })
        .unwrap_or_default();
    let offsets = client
        .reset_offsets_with(reset.group, reset.topic, reset.target, reset.dry_run)
        .await?;
    let current = |topic: &str, partition: u32| {
        before
            .get(&(topic.to_string(), partition))
            .copied()
            .flatten()
    };
    if json_output {
        let list: Vec<_> = offsets
            .iter()
            .map(|o| json!({"topic": o.topic, "partition": o.partition, "current": current(&o.topic, o.partition), "offset": o.offset}))
            .collect();
        return print_json(
            json!({"group": reset.group, "dry_run": reset.dry_run, "offsets": list}),
        );
    }
    let shown = |offset: Option<u64>| offset.map_or("-".into(), |v| v.to_string());
    let rows: Vec<Vec<String>> = offsets
        .iter()
        .map(|o| {
            vec![
                o.topic.clone(),
                o.partition.to_string(),
                shown(current(&o.topic, o.partition)),
                shown(o.offset),
            ]
        })
        .collect();
    if reset.dry_run {
        println!("dry run: nothing changed");
    }
    print_table(&["TOPIC", "PARTITION", "CURRENT", "NEW OFFSET"], &rows)
}

async fn delete(client: &Client, group: &str, json_output: bool) -> CliResult {
    client.delete_group(group).await?;
    outcome(
        json_output,
        json!({ "deleted": group }),
        format!("deleted group {group}"),
    )
}
