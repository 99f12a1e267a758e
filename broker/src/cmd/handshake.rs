//! Handshake: the first request on every connection. Answers with the
//! protocol versions and limits this broker enforces.

use ferry_protocol::api::{PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use ferry_protocol::frame::{FrameHeader, OutFrame};
use ferry_protocol::messages::{HandshakeRequest, HandshakeResponse};
use ferry_protocol::ErrorCode;

use super::respond;
use crate::broker::Broker;
use crate::error::BrokerError;

/// Whether the client's protocol versions overlap the broker's.
pub fn versions_overlap(request: &HandshakeRequest) -> bool {
    request.min_version <= u32::from(PROTOCOL_VERSION_MAX)
        && request.max_version >= u32::from(PROTOCOL_VERSION_MIN)
}

pub fn handshake_reply(
    broker: &Broker,
    header: FrameHeader,
    request: &HandshakeRequest,
) -> OutFrame {
    let (error_code, error_message) = if versions_overlap(request) {
        (ErrorCode::None, String::new())
    } else {
        let error = BrokerError::UnsupportedProtocol {
            client_min: request.min_version,
            client_max: request.max_version,
            broker_min: u32::from(PROTOCOL_VERSION_MIN),
            broker_max: u32::from(PROTOCOL_VERSION_MAX),
        };
        (error.code(), error.to_string())
    };
    tracing::debug!(client_id = %request.client_id, "handshake");
    respond(
        header,
        &HandshakeResponse {
            error_code: error_code.as_u32(),
            error_message,
            broker_version: env!("CARGO_PKG_VERSION").to_string(),
            min_version: u32::from(PROTOCOL_VERSION_MIN),
            max_version: u32::from(PROTOCOL_VERSION_MAX),
            max_frame_bytes: broker.config.max_frame_bytes as u32,
            max_batch_bytes: broker.config.max_batch_bytes as u32,
            max_in_flight_requests: broker.config.max_in_flight_requests as u32,
            sasl_mechanisms: vec![
                ferry_protocol::scram::SCRAM_SHA_256.to_string(),
                crate::security::TOKEN_MECHANISM.to_string(),
            ],
            auth_required: broker.security.enforcing(),
            throttle_time_ms: 0,
        },
    )
}
