//! Produce: validate every batch of the request (header, CRC and a walk of
//! every record), append them in arrival order, then answer at the requested
//! ack level: `written` at once, `durable` when the group commit covering
//! the last batch completes, `none` never. An idempotent producer's retry
//! of a batch already stored is answered with the stored offsets, once they
//! are durable, and not written again (the log decides, under its lock).

use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::batch::{self, BatchHeader};
use ferry_protocol::frame::{FrameHeader, FLAG_NO_RESPONSE};
use ferry_protocol::messages::{Acks, ProduceRequest, ProduceResponse};

use super::{respond, respond_error, when_durable, Reply};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metrics::Metrics;

/// Batches one produce request may carry.
pub const PRODUCE_BATCHES_LIMIT: usize = 1024;

pub fn produce(broker: &Arc<Broker>, header: FrameHeader, request: ProduceRequest) -> Reply {
    let acks = Acks::from_u32(request.acks);
    let silent = acks == Some(Acks::None) || header.has(FLAG_NO_RESPONSE);
    let result = append(broker, &request, acks);
    if silent {
        if let Err(error) = result {
            tracing::debug!(%error, "produce with acks=none failed");
        }
        return Reply::Nothing;
    }
    let appended = match result {
        Ok(appended) => appended,
        Err(error) => return Reply::Now(respond_error(broker, header, &error)),
    };
    let response = ProduceResponse {
        base_offset: appended.base_offset,
        last_offset: appended.last_offset,
        offsets_unknown: appended.offsets_unknown,
        ..ProduceResponse::default()
    };
    if acks != Some(Acks::Durable) {
        return Reply::Now(respond(header, &response));
    }
    let durable = appended.log.wait_durable(appended.durable_at);
    when_durable(
        broker,
        header,
        async move { durable.await.map_err(BrokerError::from) },
        response,
    )
}

/// What a produce request appended (or found already stored).
struct Appended {
    base_offset: u64,
    last_offset: u64,
    /// A retried batch's offsets are no longer known (see `AppendInfo`).
    offsets_unknown: bool,
    /// The durable wait covers every offset below this.
    durable_at: u64,
    log: ferry_storage::Log,
}

fn append(
    broker: &Broker,
    request: &ProduceRequest,
    acks: Option<Acks>,
) -> Result<Appended, BrokerError> {
    if acks.is_none() {
        return Err(BrokerError::UnknownAcks(request.acks));
    }
    let log = broker.topics.partition(&request.topic, request.partition)?;
    let batches = split_batches(&request.records, broker.config.max_batch_bytes)?;
    let mut first = None;
    let (mut last, mut durable_at, mut offsets_unknown) = (0, 0, false);
    for (header, bytes) in &batches {
        let info = log.append(bytes)?;
        first.get_or_insert(info.base_offset);
        last = info.last_offset;
        durable_at = durable_at.max(info.last_offset + 1);
        offsets_unknown |= !info.offsets_known;
        if info.duplicate {
            Metrics::add(&broker.metrics.produce_duplicate_batches, 1);
            continue;
        }
        Metrics::add(
            &broker.metrics.produce_records,
            u64::from(header.record_count),
        );
        Metrics::add(&broker.metrics.produce_bytes, bytes.len() as u64);
    }
    let first = first.ok_or(BrokerError::EmptyProduce)?;
    Ok(Appended {
        base_offset: first,
        last_offset: last,
        offsets_unknown,
        durable_at,
        log,
    })
}

/// Every batch in `records`, each fully validated, before any is appended.
fn split_batches(
    records: &Bytes,
    max_batch_bytes: usize,
) -> Result<Vec<(BatchHeader, Bytes)>, BrokerError> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position < records.len() {
        let Some((_, total)) = batch::peek_length(&records[position..]) else {
            return Err(BrokerError::InvalidBatch(
                ferry_protocol::ProtocolError::Malformed("trailing bytes after the last batch"),
            ));
        };
        if total > records.len() - position {
            return Err(BrokerError::InvalidBatch(
                ferry_protocol::ProtocolError::Malformed("batch length runs past the request"),
            ));
        }
        if batches.len() == PRODUCE_BATCHES_LIMIT {
            return Err(BrokerError::OverLimit {
                what: "the batches in one produce request",
                requested: batches.len() as u64 + 1,
                limit: PRODUCE_BATCHES_LIMIT as u64,
            });
        }
        let bytes = records.slice(position..position + total);
        let header = batch::validate_batch(&bytes, max_batch_bytes)?;
        batches.push((header, bytes));
        position += total;
    }
    Ok(batches)
}
