//! InitProducerId: an idempotent producer's identity, a new id at epoch 0
//! or the next epoch of the id it has (see `producer_ids.rs`). The caller
//! needs write on the topic it names (the authorization table), and the
//! topic must exist; the id itself is good on every partition.

use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use super::{blocking, respond, respond_error, Reply};
use crate::broker::Broker;
use crate::error::BrokerError;

pub fn init_producer_id(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: InitProducerIdRequest,
) -> Reply {
    let current = match current_identity(&request) {
        Ok(current) => current,
        Err(error) => return Reply::Now(respond_error(broker, header, &error)),
    };
    if let Err(error) = broker.topics.get(&request.topic) {
        return Reply::Now(respond_error(broker, header, &error));
    }
    blocking(broker, header, move |broker| {
        let (producer_id, producer_epoch) = broker.producer_ids.init(current)?;
        tracing::debug!(producer_id, producer_epoch, "producer identity given");
        let response = InitProducerIdResponse {
            producer_id,
            producer_epoch: i32::from(producer_epoch),
            ..InitProducerIdResponse::default()
        };
        Ok(respond(header, &response))
    })
}

/// The producer's current id and epoch, or `None` for a new producer.
fn current_identity(request: &InitProducerIdRequest) -> Result<Option<(i64, i16)>, BrokerError> {
    if request.producer_id <= 0 {
        return Ok(None);
    }
    let epoch = i16::try_from(request.producer_epoch)
        .ok()
        .filter(|epoch| *epoch >= 0)
        .ok_or_else(|| BrokerError::InvalidChoice {
            field: "producer_epoch",
            expected: "0 ..= 32767 with a producer id",
            value: request.producer_epoch.to_string(),
        })?;
    Ok(Some((request.producer_id, epoch)))
}
