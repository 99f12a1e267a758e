//! Queue APIs: CreateQueue, DeleteQueue, ListQueues, DescribeQueue,
//! QueueSubscribe (the broker then pushes Deliver frames on this
//! connection), Ack (answered once durable), Nack and InProgress.

use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::{
    CreateQueueRequest, ListQueuesResponse, QueueRequest, QueueSubscribeRequest,
    QueueSubscribeResponse, SettleRequest, StatusResponse,
};

use super::{blocking, respond, respond_error, when_durable, ConnectionContext, Reply};
use crate::broker::Broker;
use crate::error::BrokerError;

/// Delivery ids one settle request may carry.
pub const SETTLE_IDS_LIMIT: usize = 10_000;

pub fn create(broker: &Arc<Broker>, header: FrameHeader, request: CreateQueueRequest) -> Reply {
    let runner = broker.clone();
    let handle = tokio::runtime::Handle::current();
    blocking(broker, header, move |broker| {
        let queue = broker.queues.create(&broker.topics, request)?;
        handle.spawn(crate::queues::drive(runner, queue));
        Ok(respond(header, &StatusResponse::default()))
    })
}

pub fn delete(broker: &Arc<Broker>, header: FrameHeader, request: QueueRequest) -> Reply {
    blocking(broker, header, move |broker| {
        broker.queues.delete(&request.topic, &request.queue)?;
        Ok(respond(header, &StatusResponse::default()))
    })
}

pub fn list(broker: &Arc<Broker>, header: FrameHeader) -> Reply {
    let queues = broker
        .queues
        .list()
        .into_iter()
        .map(|(topic, queue)| QueueRequest { topic, queue })
        .collect();
    Reply::Now(respond(
        header,
        &ListQueuesResponse {
            queues,
            ..ListQueuesResponse::default()
        },
    ))
}

pub fn describe(broker: &Arc<Broker>, header: FrameHeader, request: QueueRequest) -> Reply {
    Reply::Now(
        match broker.queues.describe(&request.topic, &request.queue) {
            Ok(described) => respond(header, &described),
            Err(error) => respond_error(broker, header, &error),
        },
    )
}

pub fn subscribe(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: QueueSubscribeRequest,
    context: &ConnectionContext,
) -> Reply {
    if request.subscription_id != 0 {
        let id = request.subscription_id;
        let mine = context
            .subscriptions
            .lock()
            .iter()
            .any(|(t, q, s)| *s == id && *t == request.topic && *q == request.queue);
        let changed = if mine {
            broker
                .queues
                .set_prefetch(&request.topic, &request.queue, id, request.prefetch)
        } else {
            Err(BrokerError::InvalidRequest(format!(
                "subscription {id} is not one of this connection's"
            )))
        };
        return Reply::Now(match changed {
            Ok(()) => respond(
                header,
                &QueueSubscribeResponse {
                    subscription_id: id,
                    ..QueueSubscribeResponse::default()
                },
            ),
            Err(error) => respond_error(broker, header, &error),
        });
    }
    let subscribed = broker.queues.subscribe(
        &request.topic,
        &request.queue,
        request.prefetch,
        context.push.clone(),
    );
    Reply::Now(match subscribed {
        Ok(subscription_id) => {
            context
                .subscriptions
                .lock()
                .push((request.topic, request.queue, subscription_id));
            respond(
                header,
                &QueueSubscribeResponse {
                    subscription_id,
                    ..QueueSubscribeResponse::default()
                },
            )
        }
        Err(error) => respond_error(broker, header, &error),
    })
}

fn check_ids(request: &SettleRequest) -> Result<(), BrokerError> {
    if request.delivery_ids.len() > SETTLE_IDS_LIMIT {
        return Err(BrokerError::InvalidRequest(format!(
            "more than {SETTLE_IDS_LIMIT} delivery ids in one request"
        )));
    }
    Ok(())
}

pub fn ack(broker: &Arc<Broker>, header: FrameHeader, request: SettleRequest) -> Reply {
    let durable = check_ids(&request).and_then(|()| {
        broker
            .queues
            .ack(&request.topic, &request.queue, &request.delivery_ids)
    });
    match durable {
        Err(error) => Reply::Now(respond_error(broker, header, &error)),
        Ok(durable) => when_durable(broker, header, durable, StatusResponse::default()),
    }
}

pub fn nack(broker: &Arc<Broker>, header: FrameHeader, request: SettleRequest) -> Reply {
    let done = check_ids(&request).and_then(|()| {
        broker.queues.nack(
            &request.topic,
            &request.queue,
            &request.delivery_ids,
            request.requeue,
            request.delay_ms,
        )
    });
    Reply::Now(match done {
        Ok(()) => respond(header, &StatusResponse::default()),
        Err(error) => respond_error(broker, header, &error),
    })
}

pub fn in_progress(broker: &Arc<Broker>, header: FrameHeader, request: SettleRequest) -> Reply {
    let done = check_ids(&request).and_then(|()| {
        broker
            .queues
            .in_progress(&request.topic, &request.queue, &request.delivery_ids)
    });
    Reply::Now(match done {
        Ok(()) => respond(header, &StatusResponse::default()),
        Err(error) => respond_error(broker, header, &error),
    })
}
