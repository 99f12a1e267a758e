//! `ferryctl topic`: create, list, describe and delete topics.

use ferry_client::{Client, TopicConfig, TopicDescription};
use ferry_protocol::ErrorCode;
use serde_json::json;

use crate::cli::TopicCommand;
use crate::error::{CliError, CliResult};
use crate::output::{outcome, print_json, print_table};

/// Runs one `topic` subcommand.
pub async fn run(client: &Client, command: TopicCommand, json_output: bool) -> CliResult {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            segment_bytes,
            segment_ms,
            fsync,
            if_not_exists,
        } => {
            let config = TopicConfig {
                partitions,
                retention_ms,
                retention_bytes,
                segment_bytes,
                fsync,
                segment_ms,
            };
            create(client, &name, &config, if_not_exists, json_output).await
        }
        TopicCommand::List => list(client, json_output).await,
        TopicCommand::Describe { name } => describe(client, &name, json_output).await,
        TopicCommand::Delete {
            name,
            if_exists,
            force,
        } => delete(client, &name, if_exists, force, json_output).await,
    }
}

async fn create(
    client: &Client,
    name: &str,
    config: &TopicConfig,
    if_not_exists: bool,
    json_output: bool,
) -> CliResult {
    let partitions = config.partitions;
    if partitions == 0 {
        return Err(CliError::NoPartitions);
    }
    let created = match if_not_exists {
        true => client.ensure_topic_with(name, config).await?,
        false => client
            .create_topic_with(name, config)
            .await
            .map(|()| true)?,
    };
    if !created {
        return outcome(
            json_output,
            json!({"exists": name}),
            format!("topic {name} exists: unchanged"),
        );
    }
    outcome(
        json_output,
        json!({"created": name, "partitions": partitions}),
        format!("created topic {name} with {partitions} partition(s)"),
    )
}

async fn list(client: &Client, json_output: bool) -> CliResult {
    let topics = client.list_topics().await?;
    if json_output {
        let list: Vec<_> = topics
            .iter()
            .map(|t| json!({"name": t.name, "partitions": t.partitions}))
            .collect();
        return print_json(json!({ "topics": list }));
    }
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| vec![t.name.clone(), t.partitions.to_string()])
        .collect();
    print_table(&["TOPIC", "PARTITIONS"], &rows)
}

async fn describe(client: &Client, name: &str, json_output: bool) -> CliResult {
    let topic = client.describe_topic(name).await?;
    if json_output {
        return print_json(describe_json(topic));
    }
    let rows: Vec<Vec<String>> = topic
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                p.start_offset.to_string(),
                p.end_offset.to_string(),
                p.durable_offset.to_string(),
                p.size_bytes.to_string(),
                p.segments.to_string(),
                p.problem.clone().unwrap_or_else(|| "ok".into()),
            ]
        })
        .collect();
    println!("topic {}", topic.name);
    print_table(
        &[
            "PARTITION",
            "START",
            "WRITTEN_END",
            "DURABLE_END",
            "BYTES",
            "SEGMENTS",
            "STATUS",
        ],
        &rows,
    )
}

/// `topic describe --json`: the topic's config and every partition.
fn describe_json(topic: TopicDescription) -> serde_json::Value {
    let partitions: Vec<_> = topic
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition,
                "start_offset": p.start_offset,
                "end_offset": p.end_offset,
                "size_bytes": p.size_bytes,
                "segments": p.segments,
                "durable_offset": p.durable_offset,
                "problem": p.problem,
            })
        })
        .collect();
    let config = topic.config.unwrap_or_default();
    json!({
        "name": topic.name,
        "config": {
            "retention_ms": config.retention_ms,
            "retention_bytes": config.retention_bytes,
            "segment_bytes": config.segment_bytes,
            "fsync": config.fsync.map(|policy| policy.to_string()),
        },
        "partitions": partitions,
    })
}

/// Deletes a topic; one with queues only with `--force` (they go with it).
async fn delete(
    client: &Client,
    name: &str,
    if_exists: bool,
    force: bool,
    json_output: bool,
) -> CliResult {
    let queues: Vec<String> = client
        .list_queues()
        .await?
        .into_iter()
        .filter(|q| q.topic == name)
        .map(|q| q.queue)
        .collect();
    if !queues.is_empty() && !force {
        return Err(CliError::TopicHasQueues {
            topic: name.to_string(),
            queues: queues.join(", "),
        });
    }
    match client.delete_topic(name).await {
        Err(error) if if_exists && error.code() == Some(ErrorCode::UnknownTopic) => outcome(
            json_output,
            json!({ "absent": name }),
            format!("no topic {name}: nothing to delete"),
        ),
        Err(error) => Err(error.into()),
        Ok(()) => outcome(
            json_output,
            json!({ "deleted": name, "queues": queues }),
            format!("deleted topic {name}"),
        ),
    }
}
