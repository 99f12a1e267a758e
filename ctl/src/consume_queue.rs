//! `ferryctl consume TOPIC --queue Q`: one of the queue's competing
//! consumers. Each printed message is acked (or, with `--nack`, rejected);
//! messages delivered past `--count` go back to the queue unprinted.
//! Across a broker restart it subscribes again; messages whose settle was
//! lost with the connection are delivered again (and printed again).

use std::io::Write;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use ferry_client::{Client, ClientError, ConsumerRecord, Delivery, QueueConsumer};

use crate::cli::ConsumeArgs;
use crate::error::{CliError, CliResult};
use crate::interrupt::Interrupt;
use crate::record_format::write_record;

/// With `--timeout-ms 0`: pushes of ready messages follow each other
/// within this; none for this long is taken to mean the queue is drained.
/// (Credit freed by an ack returns only after the ack is durable, so a
/// prefetch smaller than the ready messages makes for longer gaps: this
/// leaves room for several fsyncs.)
const QUEUE_DRAINED_AFTER_MS: u64 = 500;

/// A pending ack or nack.
type Settle = BoxFuture<'static, ferry_client::Result<()>>;

/// Consumes from a queue, acking (or with --nack, rejecting) each printed message.
pub async fn run(client: Client, args: ConsumeArgs, json_lines: bool) -> CliResult {
    let mut interrupt = Interrupt::listen();
    let queue = args.queue.clone().unwrap_or_default();
    // Never take more than --count messages' worth of credit.
    let mut prefetch = args.count.map_or(args.prefetch, |n| {
        args.prefetch.min(n.clamp(1, u64::from(u32::MAX)) as u32)
    });
    let mut consumer = QueueConsumer::subscribe(&client, &args.topic, &queue, prefetch).await?;
    crate::connection::report_reconnects(consumer.connection_state(), client.addr().to_string());
    let format = args.record_format(json_lines)?;
    let idle = match args.timeout_ms {
        // "Do not wait": stop once the ready messages stop arriving.
        Some(0) => Duration::from_millis(QUEUE_DRAINED_AFTER_MS),
        Some(ms) => Duration::from_millis(ms),
        None => Duration::from_secs(3600 * 24 * 365),
    };
    let mut printed: u64 = 0;
    let settles: FuturesUnordered<Settle> = FuturesUnordered::new();
    let stdout = std::io::stdout();
    let mut interrupted = false;
    while args.count.is_none_or(|n| printed < n) {
        let next = tokio::select! {
            next = consumer.recv_timeout(idle) => next,
            _ = interrupt.recv() => {
                interrupted = true;
                break;
            }
        };
        let Some(delivery) = next else { break };
        let delivery = delivery?;
        {
            let mut out = stdout.lock();
            write_record(&mut out, &as_record(&delivery), &format)?;
            out.flush()?;
        }
        printed += 1;
        // Before a settle frees credit: never more credit than messages
        // still wanted (each extra delivery would be requeued, and count
        // as a delivery).
        if let Some(wanted) = args.count.map(|n| n.saturating_sub(printed)) {
            if wanted < u64::from(prefetch) {
                prefetch = wanted as u32;
                consumer.set_prefetch(prefetch).await?;
            }
        }
        settles.push(if args.nack {
            delivery.nack(false).boxed()
        } else {
            delivery.ack().boxed()
        });
    }
    finish(&mut consumer, settles).await?;
    match interrupted {
        true => Err(CliError::Interrupted),
        false => Ok(()),
    }
}

/// A delivery as the record it carries, for printing.
fn as_record(delivery: &Delivery) -> ConsumerRecord {
    ConsumerRecord {
        topic: delivery.topic.clone(),
        partition: delivery.partition,
        offset: delivery.offset,
        timestamp_ms: delivery.timestamp_ms,
        key: delivery.key.clone(),
        value: delivery.value.clone(),
        headers: delivery.headers.clone(),
    }
}

/// Requeues deliveries that arrived past `--count`, then waits for every
/// settle to be confirmed (acks: durable) before the process exits.
async fn finish(consumer: &mut QueueConsumer, mut settles: FuturesUnordered<Settle>) -> CliResult {
    while let Some(Some(Ok(extra))) = consumer.recv().now_or_never() {
        settles.push(extra.nack(true).boxed());
    }
    while let Some(result) = settles.next().await {
        match result {
            // Settles of deliveries from a connection that was lost: the
            // broker puts those messages back and delivers them again.
            Err(ClientError::StaleDelivery { .. } | ClientError::Disconnected { .. }) => {}
            other => other?,
        }
    }
    Ok(())
}
