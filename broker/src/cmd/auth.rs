//! `SaslAuthenticate` and `WhoAmI`: the wire side of a connection's
//! identity (`security/session.rs` holds the state and the rules).

use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse, WhoAmIResponse};
use ferry_protocol::scram::SCRAM_MESSAGE_BYTES_LIMIT;

use super::{respond, respond_error, ConnectionContext, Reply};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::metrics::Metrics;
use crate::security::session::SaslStep;

/// One SASL round. A failure is answered and the connection closed (a
/// client with a wrong password gets no second try on the same
/// connection; its next connection counts against its address).
pub fn sasl_authenticate(
    broker: &Arc<Broker>,
    header: FrameHeader,
    request: SaslAuthenticateRequest,
    context: &mut ConnectionContext,
) -> Reply {
    if request.auth_bytes.len() > SCRAM_MESSAGE_BYTES_LIMIT {
        let error = BrokerError::TooLong {
            field: "auth_bytes",
            bytes: request.auth_bytes.len(),
            limit: SCRAM_MESSAGE_BYTES_LIMIT,
        };
        return Reply::Close(respond_error(broker, header, &error));
    }
    let session = &mut context.session;
    let step = session.sasl_round(&broker.security, &request.mechanism, &request.auth_bytes);
    let (auth_bytes, complete) = match step {
        Ok(SaslStep::Continue(bytes)) => (bytes, false),
        Ok(SaslStep::Done(bytes)) => (bytes, true),
        Err(error) => {
            Metrics::add(&broker.metrics.auth_failures, 1);
            return Reply::Close(respond_error(broker, header, &error));
        }
    };
    if complete {
        Metrics::add(&broker.metrics.auth_successes, 1);
    }
    let response = SaslAuthenticateResponse {
        auth_bytes,
        complete,
        principal: match complete {
            true => session.principal.text().to_string(),
            false => String::new(),
        },
        ..SaslAuthenticateResponse::default()
    };
    Reply::Now(respond(header, &response))
}

pub fn who_am_i(broker: &Arc<Broker>, header: FrameHeader, context: &ConnectionContext) -> Reply {
    let session = &context.session;
    let response = WhoAmIResponse {
        principal: session.principal.text().to_string(),
        authenticated_by: session.method.name().to_string(),
        super_user: broker.security.is_super_user(&session.principal),
        ..WhoAmIResponse::default()
    };
    Reply::Now(respond(header, &response))
}
