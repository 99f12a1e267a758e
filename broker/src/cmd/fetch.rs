//! Fetch with long polling: read whole batches at `offset`; if fewer than
//! `min_bytes` are there, park until the partition's end offset moves (the
//! append wakes the watch, no polling loop) or `max_wait_ms` passes, then
//! answer with what there is. Records go out as a zero-copy tail.

use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::frame::{encode_frame, FrameHeader, OutFrame};
use ferry_protocol::messages::{FetchRequest, FetchResponse, FETCH_RECORDS_TAG};
use ferry_storage::{Log, ReadResult};
use futures::FutureExt;
use tokio::time::Instant;

use super::{respond_error, Reply};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metrics::Metrics;

/// Longest a fetch may park.
pub const FETCH_MAX_WAIT_MS_LIMIT: u32 = 60_000;
/// `max_bytes` when the request leaves it 0.
pub const FETCH_DEFAULT_MAX_BYTES: usize = 1024 * 1024;

pub fn fetch(broker: &Arc<Broker>, header: FrameHeader, request: FetchRequest) -> Reply {
    let log = match broker.topics.partition(&request.topic, request.partition) {
        Ok(log) => log,
        Err(error) => return Reply::Now(respond_error(broker, header, &error)),
    };
    let frame_room = broker.config.max_frame_bytes.saturating_sub(1024);
    let max_bytes = match request.max_bytes as usize {
        0 => FETCH_DEFAULT_MAX_BYTES,
        n => n,
    }
    .min(frame_room);
    let min_bytes = (request.min_bytes as usize).min(max_bytes);
    // Subscribe before the first read so an append in between is not missed.
    let mut end_offset = log.subscribe_end_offset();
    let first = log.read(request.offset, max_bytes);
    let ready = match &first {
        Ok(read) => read.data.len() >= min_bytes.max(1) || request.max_wait_ms == 0,
        Err(_) => true,
    };
    if ready {
        return Reply::Now(answer(broker, header, first.map_err(Into::into)));
    }
    let broker = broker.clone();
    let wait = Duration::from_millis(u64::from(request.max_wait_ms.min(FETCH_MAX_WAIT_MS_LIMIT)));
    Reply::Later(
        async move {
            let deadline = Instant::now() + wait;
            loop {
                tokio::select! {
                    changed = end_offset.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = broker.shutdown.cancelled() => break,
                }
                match log.read(request.offset, max_bytes) {
                    Ok(read) if read.data.len() < min_bytes.max(1) => continue,
                    other => return answer(&broker, header, other.map_err(Into::into)),
                }
            }
            answer(&broker, header, read_now(&log, request.offset, max_bytes))
        }
        .boxed(),
    )
}

fn read_now(log: &Log, offset: u64, max_bytes: usize) -> Result<ReadResult, BrokerError> {
    Ok(log.read(offset, max_bytes)?)
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
