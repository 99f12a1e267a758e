//! Queue APIs: CreateQueue, DeleteQueue, ListQueues, DescribeQueue,
//! QueueSubscribe (the broker then pushes Deliver frames on this
//! connection, encoded here by [`PushSink`]), Ack (answered once durable),
//! Nack and InProgress.

use std::sync::Arc;

use ferry_protocol::frame::{
    encode_frame, FrameHeader, FLAG_PUSH, FRAME_HEADER_BYTES, LENGTH_PREFIX_BYTES,
};
use ferry_protocol::messages::{
    AckRequest, CreateQueueRequest, DeleteQueueRequest, DeliverBatch, Delivery, DeliveryHeader,
    DescribeQueueRequest, DescribeQueueResponse, InProgressRequest, ListQueuesResponse,
    NackRequest, PeekQueueRequest, PeekQueueResponse, PurgeQueueRequest, PurgeQueueResponse,
    QueueConsumerInfo, QueueName as WireQueueName, QueueSubscribeRequest, QueueSubscribeResponse,
    StatusResponse,
};
use ferry_protocol::ApiKey;
use prost::Message as _;
use tokio::sync::{mpsc, Semaphore};

use super::{
    blocking, respond, respond_error, when_durable, ConnectionContext, PushHold, Pushed, Reply,
};
use crate::broker::Broker;
use crate::domain::{QueueName, StartFrom, TopicName};
use crate::error::BrokerError;
use crate::queues::{Delivered, DeliverySink, Handed, Queue, QueueSpec, QueueView};

/// Delivery ids one settle request may carry.
pub const SETTLE_IDS_LIMIT: usize = 10_000;
/// Deliveries per pushed frame.
const DELIVERIES_PER_FRAME: usize = 256;
/// Room left in a Deliver frame for everything but the deliveries: frame
/// header, subscription id, topic and queue names (255 bytes each at most).
const DELIVER_FRAME_OVERHEAD_BYTES: usize = 1024;
/// Queue subscriptions one connection may hold.
pub const SUBSCRIPTIONS_PER_CONNECTION_LIMIT: usize = 1024;

fn queue_spec(request: CreateQueueRequest) -> Result<QueueSpec, BrokerError> {
    let dead_letter_topic = match request.dead_letter_topic.as_str() {
        "" => None,
        _ => Some(TopicName::new(request.dead_letter_topic)?),
    };
    Ok(QueueSpec {
        topic: TopicName::new(request.topic)?,
        name: QueueName::new(request.queue)?,
        ack_timeout_ms: Some(request.ack_timeout_ms).filter(|ms| *ms > 0),
        max_deliveries: Some(request.max_deliveries).filter(|n| *n > 0),
        start: StartFrom::parse(&request.start)?,
        dead_letter_topic,
    })
}

pub fn create(broker: &Arc<Broker>, header: FrameHeader, request: CreateQueueRequest) -> Reply {
    let handles = broker.queue_handles();
    let runtime = tokio::runtime::Handle::current();
    blocking(broker, header, move |broker| {
        let queue = broker.queues.create(&broker.topics, queue_spec(request)?)?;
        runtime.spawn(crate::queues::drive(handles, queue));
        Ok(respond(header, &StatusResponse::default()))
    })
}

pub fn delete(broker: &Arc<Broker>, header: FrameHeader, request: DeleteQueueRequest) -> Reply {
    blocking(broker, header, move |broker| {
        broker.queues.delete(&request.topic, &request.queue)?;
        Ok(respond(header, &StatusResponse::default()))
    })
}

/// Queues the caller may describe (`visible`, given `topic/queue`).
pub fn list(broker: &Arc<Broker>, header: FrameHeader, visible: &dyn Fn(&str) -> bool) -> Reply {
    let queues = broker
        .queues
        .list()
        .into_iter()
        .filter(|(topic, queue)| visible(&format!("{topic}/{queue}")))
        .map(|(topic, queue)| WireQueueName { topic, queue })
        .collect();
    let response = ListQueuesResponse {
        queues,
        ..ListQueuesResponse::default()
    };
    Reply::Now(respond(header, &response))
}

fn describe_response(view: QueueView) -> DescribeQueueResponse {
    let consumers = view
        .subscribers
        .into_iter()
        .map(|s| QueueConsumerInfo {
            subscription_id: s.subscription_id,
            prefetch: s.prefetch,
            in_flight: s.in_flight,
            delivered: s.delivered,
        })
        .collect();
    DescribeQueueResponse {
        topic: view.def.topic.to_string(),
        queue: view.def.name.to_string(),
        ready: view.ready,
        in_flight: view.in_flight,
        acked: view.acked,
        dead_lettered: view.dead_lettered,
        scheduled: view.scheduled,
        consumers,
        ack_timeout_ms: view.def.ack_timeout_ms,
        max_deliveries: view.def.max_deliveries,
        dead_letter_topic: view.def.dead_letter_topic.to_string(),
        ..DescribeQueueResponse::default()
    }
}

/// DescribeQueue, off the runtime: counting scheduled messages may read the
/// log past the read-ahead.
pub fn describe(broker: &Arc<Broker>, header: FrameHeader, request: DescribeQueueRequest) -> Reply {
    blocking(broker, header, move |broker| {
        let view = broker.queues.describe(&request.topic, &request.queue)?;
        Ok(respond(header, &describe_response(view)))
    })
}

/// PurgeQueue: answered once the purge is durable in the ack log.
pub fn purge(broker: &Arc<Broker>, header: FrameHeader, request: PurgeQueueRequest) -> Reply {
    match broker.queues.purge(&request.topic, &request.queue) {
        Ok((purged, durable)) => {
            let response = PurgeQueueResponse {
                purged,
                ..PurgeQueueResponse::default()
            };
            when_durable(broker, header, durable, response)
        }
        Err(error) => Reply::Now(respond_error(broker, header, &error)),
    }
}

/// PeekQueue: ready messages as they would be delivered; nothing changes.
pub fn peek(broker: &Arc<Broker>, header: FrameHeader, request: PeekQueueRequest) -> Reply {
    blocking(broker, header, move |broker| {
        let now_ms = i64::try_from(ferry_storage::now_ms()).unwrap_or(i64::MAX);
        let messages = broker
            .queues
            .peek(&request.topic, &request.queue, request.max_messages, now_ms)?
            .into_iter()
            .map(|message| {
                to_delivery(Delivered {
                    delivery_id: 0,
                    partition: message.partition,
                    offset: message.offset,
                    delivery_count: message.deliveries,
                    record: message.record,
                })
            })
            .collect();
        let response = PeekQueueResponse {
            messages,
            ..PeekQueueResponse::default()
        };
        Ok(respond(header, &response))
    })
}

/// Deliveries of one subscription, pushed as `Deliver` frames on its
/// connection: each frame within the client's `max_frame_bytes`, and all
/// frames not yet written within the connection's push budget.
pub struct PushSink {
    push: mpsc::UnboundedSender<Pushed>,
    push_bytes: Arc<Semaphore>,
    max_frame_bytes: usize,
    /// The push budget's size (a frame never waits for more than this).
    push_bytes_limit: usize,
}

fn to_delivery(delivered: Delivered) -> Delivery {
    let record = delivered.record;
    Delivery {
        delivery_id: delivered.delivery_id,
        partition: delivered.partition,
        offset: delivered.offset,
        delivery_count: delivered.delivery_count,
        timestamp_ms: record.timestamp_ms,
        key: record.key,
        value: record.value,
        headers: record
            .headers
            .into_iter()
            .map(|h| DeliveryHeader {
                key: h.key,
                value: h.value,
            })
            .collect(),
    }
}

/// The next frame's worth of deliveries: at most `DELIVERIES_PER_FRAME`,
/// and at most `body_bytes` encoded (a delivery larger than that goes
/// alone).
fn next_frame_deliveries(
    rest: &mut std::iter::Peekable<impl Iterator<Item = Delivery>>,
    body_bytes: usize,
) -> Vec<Delivery> {
    let mut taken = Vec::new();
    let mut size = 0;
    while let Some(next) = rest.peek() {
        // Field tag and length prefix: at most 1 + 10 bytes.
        let cost = next.encoded_len() + 11;
        let full = taken.len() == DELIVERIES_PER_FRAME || size + cost > body_bytes;
        if full && !taken.is_empty() {
            break;
        }
        size += cost;
        taken.extend(rest.next());
    }
    taken
}

impl PushSink {
    /// Calls `queue.resume(subscription)` once `need_bytes` of push budget
    /// are free (or never, if the connection closes first).
    fn resume_when_room(&self, queue: &Arc<Queue>, subscription: u64, need_bytes: u32) {
        let room = self.push_bytes.clone();
        let push = self.push.clone();
        let queue = Arc::downgrade(queue);
        tokio::spawn(async move {
            tokio::select! {
                permit = room.acquire_many_owned(need_bytes) => drop(permit),
                _ = push.closed() => return,
            }
            if let Some(queue) = queue.upgrade() {
                queue.resume(subscription);
            }
        });
    }
}

impl DeliverySink for PushSink {
    fn deliver(
        &self,
        subscription_id: u64,
        queue: &Arc<Queue>,
        deliveries: Vec<Delivered>,
    ) -> Handed {
        if self.push.is_closed() {
            return Handed::Gone;
        }
        let def = queue.def();
        let header = FrameHeader {
            api_key: ApiKey::Deliver as u16,
            api_version: 1,
            correlation_id: 0,
            flags: FLAG_PUSH,
        };
        let body_bytes = self
            .max_frame_bytes
            .saturating_sub(DELIVER_FRAME_OVERHEAD_BYTES);
        let mut rest = deliveries.into_iter().map(to_delivery).peekable();
        loop {
            let deliveries = next_frame_deliveries(&mut rest, body_bytes);
            if deliveries.is_empty() {
                return Handed::All;
            }
            let ids: Vec<u64> = deliveries.iter().map(|d| d.delivery_id).collect();
            let batch = DeliverBatch {
                subscription_id,
                topic: def.topic.to_string(),
                queue: def.name.to_string(),
                deliveries,
            };
            // Sized before encoding: deliveries the connection has no room for
            // are not copied into a frame only to be thrown away.
            let frame_bytes = LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES + batch.encoded_len();
            let need_bytes = frame_bytes.min(self.push_bytes_limit) as u32;
            let Ok(budget) = self.push_bytes.clone().try_acquire_many_owned(need_bytes) else {
                self.resume_when_room(queue, subscription_id, need_bytes);
                let unsent = ids.into_iter().chain(rest.map(|d| d.delivery_id)).collect();
                return Handed::Partly { unsent };
            };
            let frame = encode_frame(header, &batch, None);
            debug_assert_eq!(frame.len(), frame_bytes);
            let written = Arc::downgrade(queue);
            let on_written: Box<dyn FnOnce() + Send + Sync> = Box::new(move || {
                if let Some(queue) = written.upgrade() {
                    queue.written(&ids);
                }
            });
            let hold = PushHold {
                budget,
                on_written: Some(on_written),
            };
            if self.push.send(Pushed { frame, hold }).is_err() {
                return Handed::Gone;
            }
        }
    }
}

fn change_prefetch(
    broker: &Broker,
    request: &QueueSubscribeRequest,
    context: &ConnectionContext,
) -> Result<u64, BrokerError> {
    let id = request.subscription_id;
    let mine = context
        .subscriptions
        .lock()
        .iter()
        .any(|(t, q, s)| *s == id && *t == request.topic && *q == request.queue);
    if !mine {
        return Err(BrokerError::UnknownSubscription(id));
    }
    broker
        .queues
        .set_prefetch(&request.topic, &request.queue, id, request.prefetch)?;
    Ok(id)
}

fn subscribe_new(
    broker: &Broker,
    request: QueueSubscribeRequest,
    context: &ConnectionContext,
) -> Result<u64, BrokerError> {
    if context.subscriptions.lock().len() >= SUBSCRIPTIONS_PER_CONNECTION_LIMIT {
        return Err(BrokerError::OverLimit {
            what: "the queue subscriptions of one connection",
            requested: SUBSCRIPTIONS_PER_CONNECTION_LIMIT as u64 + 1,
            limit: SUBSCRIPTIONS_PER_CONNECTION_LIMIT as u64,
        });
    }
    let sink = Arc::new(PushSink {
        push: context.push.clone(),
        push_bytes: context.push_bytes.clone(),
        max_frame_bytes: context.max_frame_bytes,
        push_bytes_limit: broker.config.max_in_flight_bytes,
    });
    let id = broker
        .queues
        .subscribe(&request.topic, &request.queue, request.prefetch, sink)?;
    context
        .subscriptions
        .lock()
        .push((request.topic, request.queue, id));
    Ok(id)
}

pub fn subscribe(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: QueueSubscribeRequest,
    context: &ConnectionContext,
) -> Reply {
    let subscribed = match request.subscription_id {
        0 => subscribe_new(broker, request, context),
        _ => change_prefetch(broker, &request, context),
    };
    Reply::Now(match subscribed {
        Ok(subscription_id) => {
            let response = QueueSubscribeResponse {
                subscription_id,
                ..QueueSubscribeResponse::default()
            };
            respond(header, &response)
        }
        Err(error) => respond_error(broker, header, &error),
    })
}

fn check_ids(delivery_ids: &[u64]) -> Result<(), BrokerError> {
    if delivery_ids.len() > SETTLE_IDS_LIMIT {
        return Err(BrokerError::OverLimit {
            what: "the delivery ids in one request",
            requested: delivery_ids.len() as u64,
            limit: SETTLE_IDS_LIMIT as u64,
        });
    }
    Ok(())
}

pub fn ack(broker: &Arc<Broker>, header: FrameHeader, request: AckRequest) -> Reply {
    let durable = check_ids(&request.delivery_ids).and_then(|()| {
        broker
            .queues
            .ack(&request.topic, &request.queue, &request.delivery_ids)
    });
    match durable {
        Err(error) => Reply::Now(respond_error(broker, header, &error)),
        Ok(durable) => when_durable(broker, header, durable, StatusResponse::default()),
    }
}

pub fn nack(broker: &Arc<Broker>, header: FrameHeader, request: NackRequest) -> Reply {
    let done = check_ids(&request.delivery_ids).and_then(|()| {
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

pub fn in_progress(broker: &Arc<Broker>, header: FrameHeader, request: InProgressRequest) -> Reply {
    let done = check_ids(&request.delivery_ids).and_then(|()| {
        broker
            .queues
            .in_progress(&request.topic, &request.queue, &request.delivery_ids)
    });
    Reply::Now(match done {
        Ok(()) => respond(header, &StatusResponse::default()),
        Err(error) => respond_error(broker, header, &error),
    })
}
