//! `ferryctl queue`: create, list, describe and delete queues. (Consuming
//! from a queue is `consume_queue`.)

use ferry_client::{Client, QueueConfig, QueueDescription, StartFrom};
use ferry_protocol::ErrorCode;
use serde_json::json;

use crate::cli::QueueCommand;
use crate::error::{CliError, CliResult};
use crate::output::{outcome, print_json, print_table};
use crate::record_format::{write_record, RecordFormat};

/// Runs one `queue` subcommand.
pub async fn run(client: &Client, command: QueueCommand, json_output: bool) -> CliResult {
    match command {
        QueueCommand::Create {
            topic,
            queue,
            ack_timeout_ms,
            max_deliveries,
            from,
            if_not_exists,
        } => {
            let config = QueueConfig {
                ack_timeout_ms,
                max_deliveries,
                start: parse_start(&from)?,
                dead_letter_topic: None,
            };
            let create = Create {
                topic: &topic,
                queue: &queue,
                config: &config,
                if_not_exists,
            };
            create.run(client, json_output).await
        }
        QueueCommand::List => list(client, json_output).await,
        QueueCommand::Describe { topic, queue } => {
            describe(client, &topic, &queue, json_output).await
        }
        QueueCommand::Purge { topic, queue } => {
            let purged = client.purge_queue(&topic, &queue).await?;
            outcome(
                json_output,
                json!({"purged": purged, "topic": topic, "queue": queue}),
                format!("purged {purged} message(s) from queue {queue} on topic {topic}"),
            )
        }
        QueueCommand::Peek {
            topic,
            queue,
            count,
            format,
        } => peek(client, &topic, &queue, count, format, json_output).await,
        QueueCommand::Delete {
            topic,
            queue,
            if_exists,
        } => delete(client, &topic, &queue, if_exists, json_output).await,
    }
}

/// Parses `queue create --from`.
fn parse_start(from: &str) -> Result<StartFrom, CliError> {
    match from {
        "latest" => Ok(StartFrom::Latest),
        "earliest" => Ok(StartFrom::Earliest),
        other => Err(CliError::InvalidValue {
            flag: "--from",
            value: other.to_string(),
            expected: "earliest or latest",
        }),
    }
}

/// One `queue create`.
struct Create<'a> {
    topic: &'a str,
    queue: &'a str,
    config: &'a QueueConfig,
    if_not_exists: bool,
}

impl Create<'_> {
    async fn run(self, client: &Client, json_output: bool) -> CliResult {
        let (topic, queue) = (self.topic, self.queue);
        let created = match self.if_not_exists {
            true => client.ensure_queue(topic, queue, self.config).await?,
            false => client
                .create_queue(topic, queue, self.config)
                .await
                .map(|()| true)?,
        };
        if !created {
            return outcome(
                json_output,
                json!({"exists": {"topic": topic, "queue": queue}}),
                format!("queue {queue} on topic {topic} exists: unchanged"),
            );
        }
        outcome(
            json_output,
            json!({"created": {"topic": topic, "queue": queue}}),
            format!("created queue {queue} on topic {topic}"),
        )
    }
}

/// Prints up to `count` ready messages; with --json each as JSON with its
/// delivery count.
async fn peek(
    client: &Client,
    topic: &str,
    queue: &str,
    count: u32,
    format: RecordFormat,
    json_output: bool,
) -> CliResult {
    let messages = client.peek_queue(topic, queue, count).await?;
    let format = if json_output {
        RecordFormat::Json
    } else {
        format
    };
    let mut out = std::io::stdout().lock();
    for message in &messages {
        write_record(&mut out, &message.record, &format)?;
    }
    std::io::Write::flush(&mut out)?;
    Ok(())
}

async fn list(client: &Client, json_output: bool) -> CliResult {
    let queues = client.list_queues().await?;
    if json_output {
        let list: Vec<_> = queues
            .iter()
            .map(|q| json!({"topic": q.topic, "queue": q.queue}))
            .collect();
        return print_json(json!({ "queues": list }));
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| vec![q.topic.clone(), q.queue.clone()])
        .collect();
    print_table(&["TOPIC", "QUEUE"], &rows)
}

async fn describe(client: &Client, topic: &str, queue: &str, json_output: bool) -> CliResult {
    let d = client.describe_queue(topic, queue).await?;
    if json_output {
        return print_json(describe_json(&d));
    }
    println!(
        "queue {}/{}  ready {}  in flight {}  acked {}  dead-lettered {}  scheduled {}",
        d.topic, d.queue, d.ready, d.in_flight, d.acked, d.dead_lettered, d.scheduled
    );
    println!(
        "ack timeout {} ms  max deliveries {}  dead-letter topic {}",
        d.ack_timeout_ms, d.max_deliveries, d.dead_letter_topic
    );
    let rows: Vec<Vec<String>> = d
        .consumers
        .iter()
        .map(|c| {
            vec![
                c.subscription_id.to_string(),
                c.prefetch.to_string(),
                c.in_flight.to_string(),
                c.delivered.to_string(),
            ]
        })
        .collect();
    print_table(&["CONSUMER", "PREFETCH", "IN FLIGHT", "DELIVERED"], &rows)
}

/// `queue describe --json`: the queue's counts, settings and consumers.
fn describe_json(d: &QueueDescription) -> serde_json::Value {
    let consumers: Vec<_> = d
        .consumers
        .iter()
        .map(|c| {
            json!({
                "subscription_id": c.subscription_id,
                "prefetch": c.prefetch,
                "in_flight": c.in_flight,
                "delivered": c.delivered,
            })
        })
        .collect();
    json!({
        "topic": d.topic,
        "queue": d.queue,
        "ready": d.ready,
        "in_flight": d.in_flight,
        "acked": d.acked,
        "dead_lettered": d.dead_lettered,
        "scheduled": d.scheduled,
        "ack_timeout_ms": d.ack_timeout_ms,
        "max_deliveries": d.max_deliveries,
        "dead_letter_topic": d.dead_letter_topic,
        "consumers": consumers,
    })
}

async fn delete(
    client: &Client,
    topic: &str,
    queue: &str,
    if_exists: bool,
    json_output: bool,
) -> CliResult {
    let absent = |code| {
        matches!(
            code,
            Some(ErrorCode::UnknownQueue | ErrorCode::UnknownTopic)
        )
    };
    match client.delete_queue(topic, queue).await {
        Err(error) if if_exists && absent(error.code()) => outcome(
            json_output,
            json!({"absent": {"topic": topic, "queue": queue}}),
            format!("no queue {queue} on topic {topic}: nothing to delete"),
        ),
        Err(error) => Err(error.into()),
        Ok(()) => outcome(
            json_output,
            json!({"deleted": {"topic": topic, "queue": queue}}),
            format!("deleted queue {queue} on topic {topic}"),
        ),
    }
}
