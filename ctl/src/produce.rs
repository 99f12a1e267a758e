//! `ferryctl produce`: sends each message of its input (lines of standard
//! input by default; see `produce_input`) as one record, with any `-H`
//! headers, many in flight at once, and waits for every ack before it exits. It
//! rides through a broker restart (batches whose answer was lost are sent
//! again); a run that fails part-way says how many records were
//! acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_client::{Callback, Client, ClientError, Producer, ProducerConfig, ProducerRecord};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::cli::ProduceArgs;
use crate::error::{CliError, CliResult};
use crate::output::print_json;
use crate::produce_input::read_messages;
use crate::progress::Progress;

/// Most records sent but not yet acked.
const MAX_UNACKED: usize = 50_000;

/// Sends stdin lines as records, many in flight; waits for every ack. A
/// failure part-way reports how many records were acknowledged.
pub async fn run(client: Client, args: ProduceArgs, json_output: bool) -> CliResult {
    let config = ProducerConfig {
        acks: args.acks,
        compression: args.compression,
        linger_ms: 5,
        // Ride through a broker restart: idempotent (the default) with
        // acks written or durable, at-least-once with acks none.
        resend_after_disconnect: true,
        ..ProducerConfig::default()
    };
    let deliver_at = match &args.deliver_at {
        None => None,
        Some(text) => Some(parse_deliver_at(text)?),
    };
    let producer = Producer::with_config(&client, &args.topic, config).await?;
    check_partition(&producer, &args)?;
    let in_flight = InFlight::new();
    let (sent, reading) = send_lines(&producer, &args, deliver_at, &in_flight).await;
    let outcome = reading.and(in_flight.wait_for_all().await);
    if let Err(CliError::Client(error)) = outcome {
        let acknowledged = in_flight.acknowledged();
        return Err(CliError::Produce {
            error,
            acknowledged,
            sent,
        });
    }
    outcome?;
    if json_output {
        print_json(json!({"topic": args.topic, "produced": sent}))
    } else {
        // The summary goes to stderr so stdout stays clean for pipes.
        eprintln!("produced {sent} message(s) to {}", args.topic);
        Ok(())
    }
}

/// Sends each line of stdin until the end or the first failure; returns
/// how many records were sent, and why it stopped early if it did.
async fn send_lines(
    producer: &Producer,
    args: &ProduceArgs,
    deliver_at: Option<i64>,
    in_flight: &InFlight,
) -> (u64, CliResult) {
    let mut messages = read_messages(args);
    let mut sent: u64 = 0;
    let mut progress = Progress::on_terminal("sent");
    while let Some(message) = messages.recv().await {
        let step = async {
            let record = record_for(message?, args, deliver_at);
            in_flight.first_failure()?;
            let callback = in_flight.track().await?;
            producer.send_with_callback(record, callback).await?;
            CliResult::Ok(())
        };
        if let Err(error) = step.await {
            return (sent, Err(error));
        }
        sent += 1;
        if let Some(progress) = progress.as_mut() {
            progress.tick(sent);
        }
    }
    (sent, Ok(()))
}

/// Refuses a `--partition` the topic does not have.
fn check_partition(producer: &Producer, args: &ProduceArgs) -> CliResult {
    match args.partition {
        Some(partition) if partition >= producer.partitions() => Err(CliError::NoSuchPartition {
            topic: args.topic.clone(),
            partition,
            partitions: producer.partitions(),
        }),
        _ => Ok(()),
    }
}

/// The record for one message: split at `--key-separator` when given,
/// with the `-H` headers, pinned to `--partition` and held back by
/// `--deliver-at` when given.
fn record_for(message: Bytes, args: &ProduceArgs, deliver_at: Option<i64>) -> ProducerRecord {
    let split = args.key_separator.as_ref().and_then(|separator| {
        let separator = &separator.0;
        let at = message
            .windows(separator.len().max(1))
            .position(|window| window == separator.as_slice())?;
        Some((message.slice(..at), message.slice(at + separator.len()..)))
    });
    let mut record = match split {
        Some((key, value)) => ProducerRecord::new(value).with_key(key),
        None => ProducerRecord::new(message),
    };
    for (key, value) in &args.headers {
        record = record.with_header(key, value.clone());
    }
    if let Some(p) = args.partition {
        record = record.with_partition(p);
    }
    if let Some(at) = deliver_at {
        record = record.with_header(ferry_protocol::batch::DELIVER_AT_HEADER, at.to_string());
    }
    record
}

/// Parses `--deliver-at`: milliseconds since the epoch, or `+MS` from now.
fn parse_deliver_at(text: &str) -> Result<i64, CliError> {
    let bad = || CliError::InvalidValue {
        flag: "--deliver-at",
        value: text.to_string(),
        expected: "milliseconds since the epoch or +MS",
    };
    match text.strip_prefix('+') {
        Some(delay) => Ok(ferry_client::now_ms() + delay.parse::<i64>().map_err(|_| bad())?),
        None => text.parse().map_err(|_| bad()),
    }
}

/// The records in flight: acks arrive through callbacks, at most
/// `MAX_UNACKED` are outstanding, and the first failed ack is kept.
struct InFlight {
    unacked: Arc<Semaphore>,
    failure: Arc<Mutex<Option<ClientError>>>,
    acknowledged: Arc<AtomicU64>,
}

impl InFlight {
    fn new() -> Self {
        InFlight {
            unacked: Arc::new(Semaphore::new(MAX_UNACKED)),
            failure: Default::default(),
            acknowledged: Default::default(),
        }
    }

    /// The first ack that failed so far, as an error.
    fn first_failure(&self) -> CliResult {
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// Waits for room for one more record; the callback frees it on its ack.
    async fn track(&self) -> Result<Callback, CliError> {
        let permit = self.unacked.clone().acquire_owned().await?;
        let (failure, acknowledged) = (self.failure.clone(), self.acknowledged.clone());
        Ok(Box::new(move |result| {
            drop(permit);
            match (result, failure.lock()) {
                (Ok(_), _) => {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                (Err(error), Ok(mut slot)) => {
                    slot.get_or_insert(error);
                }
                (Err(_), Err(_)) => {}
            }
        }))
    }

    /// Records the broker acknowledged so far.
    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Waits until every record is acked; fails if any ack failed.
    async fn wait_for_all(&self) -> CliResult {
        let _all = self.unacked.acquire_many(MAX_UNACKED as u32).await?;
        self.first_failure()
    }
}
