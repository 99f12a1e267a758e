//! Request handlers, one file per API. `dispatch` turns a decoded request
//! into a [`Reply`]: an immediate frame, a future (durable waits, long polls,
//! admin work on the blocking pool), or nothing (produce with acks = none).
//!
//! Anything order-sensitive (appending a batch) happens synchronously inside
//! `dispatch`, in the order requests arrived on the connection; only the
//! waiting is deferred, so pipelined produces to a partition stay in order.

mod admin;
mod auth;
mod fetch;
mod group;
mod handshake;
mod produce;
mod producer;
mod queue;
mod security;
mod status;

use std::sync::Arc;

use ferry_protocol::frame::{encode_frame, FrameHeader, OutFrame, FLAG_ERROR};
use ferry_protocol::messages::{ErrorResponse, OffsetSpecCode, StatusResponse};
use ferry_protocol::ErrorCode;
use ferry_protocol::Request;
use futures::future::BoxFuture;
use futures::FutureExt;
use tracing::Instrument;

use crate::broker::Broker;
use crate::domain::OffsetSpec;
use crate::error::BrokerError;
use crate::security::authz::{self, Need};
use crate::security::session::Session;
use crate::security::{Operation, ResourceType};

pub use handshake::{handshake_reply, versions_overlap};

pub enum Reply {
    Now(OutFrame),
    /// Send this frame, then close the connection (failed authentication).
    Close(OutFrame),
    Later(BoxFuture<'static, OutFrame>),
    Nothing,
}

/// A frame the broker pushes unasked (a queue delivery).
pub struct Pushed {
    pub frame: OutFrame,
    pub hold: PushHold,
}

/// What a pushed frame holds until it is written: its bytes of the
/// connection's push budget, and what to do once it is on the socket.
pub struct PushHold {
    pub budget: tokio::sync::OwnedSemaphorePermit,
    pub on_written: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl PushHold {
    /// The frame is on the socket: run the callback, return the budget.
    pub fn written(mut self) {
        if let Some(callback) = self.on_written.take() {
            callback();
        }
    }
}

/// What a handler may need from the connection it runs on.
pub struct ConnectionContext {
    /// Frames the broker pushes unasked (queue deliveries).
    pub push: tokio::sync::mpsc::UnboundedSender<Pushed>,
    /// Bytes of pushed frames not yet written, at most
    /// `max_in_flight_bytes` (apart from the requests' budget, so that a
    /// consumer's acks are always read while deliveries wait for it).
    pub push_bytes: Arc<tokio::sync::Semaphore>,
    /// Largest frame the client accepts (announced in the handshake).
    pub max_frame_bytes: usize,
    /// Queue subscriptions made on this connection: (topic, queue, id),
    /// dropped when it closes.
    pub subscriptions: Arc<parking_lot::Mutex<Vec<(String, String, u64)>>>,
    /// Who the connection is (see `security/session.rs`).
    pub session: Session,
}

pub fn dispatch(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: Request,
    context: &mut ConnectionContext,
) -> Reply {
    let key = request.api_key();
    broker.metrics.count_request(key);
    let started = std::time::Instant::now();
    let span = tracing::debug_span!(
        "request",
        api = key.name(),
        correlation_id = header.correlation_id
    );
    let reply = span.in_scope(|| match authorize(broker, &request, &context.session) {
        Ok(()) => route(broker, header, request, context),
        Err(error) => Reply::Now(respond_error(broker, header, &error)),
    });
    match reply {
        Reply::Later(future) => {
            let broker = broker.clone();
            let timed = async move {
                let frame = future.await;
                broker.metrics.observe_latency(key, started.elapsed());
                frame
            };
            Reply::Later(timed.instrument(span).boxed())
        }
        other => {
            broker.metrics.observe_latency(key, started.elapsed());
            other
        }
    }
}

/// Whether the session may make this request (`security/authz.rs` says
/// what each API needs). Checked before the request is looked at, so a
/// caller without access learns nothing of whether what it named exists.
fn authorize(broker: &Broker, request: &Request, session: &Session) -> Result<(), BrokerError> {
    let security = &broker.security;
    if !security.enforcing() {
        return Ok(());
    }
    let (resource, operation) = match authz::need(request.api_key()) {
        Need::Nothing | Need::Authenticated | Need::Filtered(_) | Need::NotARequest => {
            return Ok(())
        }
        Need::On(resource, operation) => (resource, operation),
        Need::ClusterOrSelf(operation) => {
            let own = match request {
                Request::ChangePassword(req) => session
                    .principal
                    .name()
                    .is_some_and(|user| user.as_str() == req.name),
                _ => false,
            };
            if own {
                return Ok(());
            }
            (ResourceType::Cluster, operation)
        }
    };
    let name = authz::resource_name(request).unwrap_or_default();
    let host = session.peer.ip();
    match security.authorize(&session.principal, host, resource, &name, operation) {
        true => Ok(()),
        false => Err(BrokerError::NotAuthorized {
            principal: session.principal.text().to_string(),
            operation,
            resource,
            name: name.chars().take(256).collect(),
        }),
    }
}

/// What of `resource` the session may see in a list.
fn visible<'a>(
    broker: &'a Broker,
    session: &'a Session,
    resource: ResourceType,
) -> impl Fn(&str) -> bool + 'a {
    move |name| {
        let host = session.peer.ip();
        let principal = &session.principal;
        broker
            .security
            .authorize(principal, host, resource, name, Operation::Describe)
    }
}

/// One arm per API.
fn route(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: Request,
    context: &mut ConnectionContext,
) -> Reply {
    match request {
        Request::Handshake(req) => Reply::Now(handshake_reply(broker, header, &req)),
        Request::SaslAuthenticate(req) => auth::sasl_authenticate(broker, header, req, context),
        Request::WhoAmI(_) => auth::who_am_i(broker, header, context),
        Request::CreateTopic(req) => admin::create_topic(broker, header, req),
        Request::DeleteTopic(req) => admin::delete_topic(broker, header, req),
        Request::ListTopics(_) => {
            let visible = visible(broker, &context.session, ResourceType::Topic);
            admin::list_topics(broker, header, &visible)
        }
        Request::DescribeTopic(req) => admin::describe_topic(broker, header, req),
        Request::Produce(req) => produce::produce(broker, header, req),
        Request::Fetch(req) => fetch::fetch(broker, header, req),
        Request::ListOffsets(req) => admin::list_offsets(broker, header, req),
        Request::BrokerStatus(_) => status::broker_status(broker, header),
        Request::InitProducerId(req) => producer::init_producer_id(broker, header, req),
        Request::JoinGroup(req) => group::join(broker, header, req),
        Request::Heartbeat(req) => group::heartbeat(broker, header, req),
        Request::LeaveGroup(req) => group::leave(broker, header, req),
        Request::OffsetCommit(req) => group::commit(broker, header, req),
        Request::OffsetFetch(req) => group::fetch_offsets(broker, header, req),
        Request::DescribeGroup(req) => group::describe(broker, header, req),
        Request::ListGroups(_) => {
            let visible = visible(broker, &context.session, ResourceType::Group);
            group::list(broker, header, &visible)
        }
        Request::DeleteGroup(req) => group::delete(broker, header, req),
        Request::ResetOffsets(req) => group::reset(broker, header, req),
        Request::CreateQueue(req) => queue::create(broker, header, req),
        Request::DeleteQueue(req) => queue::delete(broker, header, req),
        Request::ListQueues(_) => {
            let visible = visible(broker, &context.session, ResourceType::Queue);
            queue::list(broker, header, &visible)
        }
        Request::DescribeQueue(req) => queue::describe(broker, header, req),
        Request::PeekQueue(req) => queue::peek(broker, header, req),
        Request::PurgeQueue(req) => queue::purge(broker, header, req),
        Request::QueueSubscribe(req) => queue::subscribe(broker, header, req, context),
        Request::Ack(req) => queue::ack(broker, header, req),
        Request::Nack(req) => queue::nack(broker, header, req),
        Request::InProgress(req) => queue::in_progress(broker, header, req),
        Request::CreateUser(req) => security::create_user(broker, header, req),
        Request::DeleteUser(req) => security::delete_user(broker, header, req),
        Request::ChangePassword(req) => security::change_password(broker, header, req),
        Request::ListUsers(_) => security::list_users(broker, header),
        Request::CreateToken(req) => security::create_token(broker, header, req),
        Request::RevokeToken(req) => security::revoke_token(broker, header, req),
        Request::ListTokens(req) => security::list_tokens(broker, header, req),
        Request::CreateAcl(req) => security::create_acl(broker, header, req),
        Request::DeleteAcl(req) => security::delete_acl(broker, header, req),
        Request::ListAcls(_) => security::list_acls(broker, header),
        Request::SetQuota(req) => security::set_quota(broker, header, req),
        Request::DeleteQuota(req) => security::delete_quota(broker, header, req),
        Request::ListQuotas(_) => security::list_quotas(broker, header),
    }
}

/// The typed offset spec of a wire `spec` code (see `OffsetSpecCode`).
pub fn offset_spec(code: u32, timestamp_ms: i64, offset: u64) -> Result<OffsetSpec, BrokerError> {
    match OffsetSpecCode::from_u32(code) {
        Some(OffsetSpecCode::Earliest) => Ok(OffsetSpec::Earliest),
        Some(OffsetSpecCode::Latest) => Ok(OffsetSpec::Latest),
        Some(OffsetSpecCode::Timestamp) => Ok(OffsetSpec::Timestamp(timestamp_ms)),
        Some(OffsetSpecCode::Offset) => Ok(OffsetSpec::Offset(offset)),
        None => Err(BrokerError::InvalidChoice {
            field: "spec",
            expected: "0 (earliest), 1 (latest), 2 (timestamp) or 3 (offset)",
            value: code.to_string(),
        }),
    }
}

/// A response frame for `message`.
pub fn respond<M: prost::Message>(header: FrameHeader, message: &M) -> OutFrame {
    encode_frame(header.response(), message, None)
}

/// Every response message has `error_code = 1` and `error_message = 2`, so
/// an error answer to any API is a `StatusResponse` with those two set.
pub fn respond_error(broker: &Broker, header: FrameHeader, error: &BrokerError) -> OutFrame {
    let code = error.code();
    broker.metrics.count_error(code);
    tracing::debug!(code = code.name(), %error, "request failed");
    respond(
        header,
        &StatusResponse {
            error_code: code.as_u32(),
            error_message: error.to_string(),
            throttle_time_ms: 0,
        },
    )
}

/// A connection-level refusal (a frame that cannot be read, no handshake,
/// too many connections) as a protocol error frame.
pub fn connection_error(header: FrameHeader, error: &BrokerError) -> OutFrame {
    protocol_error(header, error.code(), error.to_string())
}

/// A protocol-level error (unknown API, undecodable body): `FLAG_ERROR` set.
pub fn protocol_error(header: FrameHeader, code: ErrorCode, message: String) -> OutFrame {
    let mut response = header.response();
    response.flags |= FLAG_ERROR;
    encode_frame(
        response,
        &ErrorResponse {
            error_code: code.as_u32(),
            error_message: message,
            throttle_time_ms: 0,
        },
        None,
    )
}

/// Answers with `response` once `durable` resolves (or with its error).
pub fn when_durable<M, F>(
    broker: &Arc<Broker>,
    header: FrameHeader,
    durable: F,
    response: M,
) -> Reply
where
    M: prost::Message + Send + 'static,
    F: std::future::Future<Output = Result<(), BrokerError>> + Send + 'static,
{
    let broker = broker.clone();
    Reply::Later(
        async move {
            match durable.await {
                Ok(()) => respond(header, &response),
                Err(error) => respond_error(&broker, header, &error),
            }
        }
        .boxed(),
    )
}

/// Runs blocking work (file creation, fsyncs) off the async workers.
pub fn blocking<F>(broker: &Arc<Broker>, header: FrameHeader, work: F) -> Reply
where
    F: FnOnce(&Broker) -> Result<OutFrame, BrokerError> + Send + 'static,
{
    let broker = broker.clone();
    Reply::Later(
        async move {
            let worker = broker.clone();
            match tokio::task::spawn_blocking(move || work(&worker)).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(error)) => respond_error(&broker, header, &error),
                Err(join) => respond_error(&broker, header, &BrokerError::TaskFailed(join)),
            }
        }
        .boxed(),
    )
}
