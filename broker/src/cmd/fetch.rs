//! Fetch with long polling: read whole batches at `offset`, up to the end
//! the request's isolation may see (the durable end by default, the
//! written end with `isolation = written`; see `ferry_storage::Isolation`);
//! if fewer than `min_bytes` are there, park until that end moves (the
//! fsync or the append wakes the watch, no polling loop) or `max_wait_ms`
//! passes, then answer with what there is. Records go out as a zero-copy
//! tail.

use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::frame::{encode_frame, FrameHeader, OutFrame};
use ferry_protocol::messages::{FetchRequest, FetchResponse, FETCH_RECORDS_TAG};
use ferry_storage::{EndWatch, Log, ReadResult};
use futures::FutureExt;
use tokio::time::Instant;

use super::{respond_error, Reply};
use crate::broker::Broker;
use crate::domain::{parse_isolation, Isolation};
use crate::error::BrokerError;
use crate::metrics::Metrics;

/// Longest a fetch may park.
pub const FETCH_MAX_WAIT_MS_LIMIT: u32 = 60_000;
/// `max_bytes` when the request leaves it 0.
pub const FETCH_DEFAULT_MAX_BYTES: usize = 1024 * 1024;

/// One fetch's typed arguments.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    offset: u64,
    max_bytes: usize,
    min_bytes: usize,
    isolation: Isolation,
}

impl Wanted {
    fn read(&self, log: &Log) -> Result<ReadResult, BrokerError> {
        Ok(log.read_isolated(self.offset, self.max_bytes, self.isolation)?)
    }

    /// Whether `read` is worth answering with now (enough bytes, or an error).
    fn enough(&self, read: &Result<ReadResult, BrokerError>) -> bool {
        read.as_ref()
            .map_or(true, |read| read.data.len() >= self.min_bytes.max(1))
    }
}

pub fn fetch(broker: &Arc<Broker>, header: FrameHeader, request: FetchRequest) -> Reply {
    let found = broker
        .topics
        .partition(&request.topic, request.partition)
        .and_then(|log| Ok((log, parse_isolation(request.isolation)?)));
    let (log, isolation) = match found {
        Ok(found) => found,
        Err(error) => return Reply::Now(respond_error(broker, header, &error)),
    };
    let frame_room = broker.config.max_frame_bytes.saturating_sub(1024);
    let max_bytes = match request.max_bytes as usize {
        0 => FETCH_DEFAULT_MAX_BYTES,
        n => n,
    }
    .min(frame_room);
    let wanted = Wanted {
        offset: request.offset,
        max_bytes,
        min_bytes: (request.min_bytes as usize).min(max_bytes),
        isolation,
    };
    // Subscribe before the first read so a move in between is not missed.
    let readable_end = log.watch_readable_end(isolation);
    let first = wanted.read(&log);
    if request.max_wait_ms == 0 || wanted.enough(&first) {
        return Reply::Now(answer(broker, header, first));
    }
    let wait = Duration::from_millis(u64::from(request.max_wait_ms.min(FETCH_MAX_WAIT_MS_LIMIT)));
    let broker = broker.clone();
    Reply::Later(
        async move {
            let read = long_poll(&broker, &log, wanted, readable_end, wait).await;
            answer(&broker, header, read)
        }
        .boxed(),
    )
}

/// Re-reads each time the readable end moves, until there is enough, `wait`
/// passes or the broker stops; then answers with what there is.
async fn long_poll(
    broker: &Broker,
    log: &Log,
    wanted: Wanted,
    mut readable_end: EndWatch,
    wait: Duration,
) -> Result<ReadResult, BrokerError> {
    let deadline = Instant::now() + wait;
    loop {
        tokio::select! {
            changed = readable_end.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = broker.shutdown.cancelled() => break,
        }
        let read = wanted.read(log);
        if wanted.enough(&read) {
            return read;
        }
    }
    wanted.read(log)
}

fn answer(broker: &Broker, header: FrameHeader, read: Result<ReadResult, BrokerError>) -> OutFrame {
    match read {
        Ok(read) => {
            Metrics::add(&broker.metrics.fetch_bytes, read.data.len() as u64);
            let response = FetchResponse {
                start_offset: read.start_offset,
                end_offset: read.end_offset,
                next_offset: read.next_offset,
                ..FetchResponse::default()
            };
            encode_frame(
                header.response(),
                &response,
                Some((FETCH_RECORDS_TAG, read.data)),
            )
        }
        Err(error) => respond_error(broker, header, &error),
    }
}
