//! The API table: the one place an API is defined. Each row gives the key,
//! the name, the request and response messages, whether a client may resend
//! the request after a lost connection, and the field sent as a raw tail.
//! From it come [`ApiKey`] (with `ALL`, `name`, `from_u16`, `index`), the
//! [`Request`] enum the broker dispatches on, the [`Api`] trait that ties a
//! request type to its key and response type at compile time (so a client
//! writes `call(&request)` and gets the right response type), and the API
//! table in `PROTOCOL.md` (see [`crate::schema`]).
//!
//! Adding an API: add its messages in `messages.rs`, a row here, and a
//! handler in the broker's `cmd/` (the compiler then points at the match
//! arm that is missing).

use bytes::Bytes;

use crate::error::ErrorCode;
use crate::frame::FrameHeader;
use crate::messages::*;

/// Protocol versions this crate speaks (every API is at version 1).
pub const PROTOCOL_VERSION_MIN: u16 = 1;
/// See [`PROTOCOL_VERSION_MIN`].
pub const PROTOCOL_VERSION_MAX: u16 = 1;

/// A request message, tied to its API key and response type.
pub trait Api: WireMessage + Clone + Send + Sync + 'static {
    /// The key frames of this request carry.
    const KEY: ApiKey;
    /// What the broker answers with.
    type Response: WireMessage + Send + 'static;
    /// Safe to send again on a new connection when the first one was lost
    /// before the answer (reads, and writes whose repetition is harmless).
    const RETRY: bool;
    /// Tag of the request field sent as a raw tail after the body, if any.
    const REQUEST_TAIL: Option<u32>;
    /// Tag of the response field sent as a raw tail, if any.
    const RESPONSE_TAIL: Option<u32>;
}

/// One row of the table, for documentation and completeness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRow {
    pub key: ApiKey,
    pub request: &'static str,
    pub response: &'static str,
    pub retry: bool,
    pub request_tail: Option<u32>,
    pub response_tail: Option<u32>,
    /// Sent by the broker unasked (`FLAG_PUSH`), with no request.
    pub push: bool,
}

/// `Some(tag)` when a tail is named, else `None`.
macro_rules! optional {
    () => {
        None
    };
    ($tag:expr) => {
        Some($tag)
    };
}

macro_rules! api_table {
    (
        requests {
            $($key:literal => $variant:ident $name:literal :
                $request:ident => $response:ident, retry = $retry:literal
                $(, request_tail = $rtail:expr)? $(, response_tail = $stail:expr)? ;)*
        }
        pushes {
            $($push_key:literal => $push_variant:ident $push_name:literal : $push_body:ident;)*
        }
    ) => {
        /// Which API a frame belongs to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum ApiKey {
            $($variant = $key,)*
            $($push_variant = $push_key,)*
        }

        /// Number of APIs in the table.
        pub const API_COUNT: usize = [$($key,)* $($push_key,)*].len();

        impl ApiKey {
            /// Every API, in table order.
            pub const ALL: [ApiKey; API_COUNT] = [$(ApiKey::$variant,)* $(ApiKey::$push_variant,)*];

            /// The key with this wire value.
            pub fn from_u16(value: u16) -> Option<ApiKey> {
                match value {
                    $($key => Some(ApiKey::$variant),)*
                    $($push_key => Some(ApiKey::$push_variant),)*
                    _ => None,
                }
            }

            /// The snake_case name used in logs and metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $(ApiKey::$variant => $name,)*
                    $(ApiKey::$push_variant => $push_name,)*
                }
            }

            /// Position in [`ApiKey::ALL`] (dense: index arrays with it).
            pub fn index(self) -> usize {
                ApiKey::ALL.iter().position(|k| *k == self).unwrap_or(0)
            }

            /// This API's row of the table.
            pub fn row(self) -> ApiRow {
                match self {
                    $(ApiKey::$variant => ApiRow {
                        key: self,
                        request: stringify!($request),
                        response: stringify!($response),
                        retry: $retry,
                        request_tail: optional!($($rtail)?),
                        response_tail: optional!($($stail)?),
                        push: false,
                    },)*
                    $(ApiKey::$push_variant => ApiRow {
                        key: self,
                        request: "",
                        response: stringify!($push_body),
                        retry: false,
                        request_tail: None,
                        response_tail: None,
                        push: true,
                    },)*
                }
            }
        }

        $(
            impl Api for $request {
                const KEY: ApiKey = ApiKey::$variant;
                type Response = $response;
                const RETRY: bool = $retry;
                const REQUEST_TAIL: Option<u32> = optional!($($rtail)?);
                const RESPONSE_TAIL: Option<u32> = optional!($($stail)?);
            }
            const _: () = assert!(
                <$response as WireMessage>::HAS_STATUS,
                concat!(stringify!($response), " lacks error_code/error_message")
            );
        )*

        /// A decoded request, one variant per API.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $($variant($request),)*
        }

        impl Request {
            /// Decodes a request body. Errors carry the code to answer with.
            pub fn decode(header: &FrameHeader, body: Bytes) -> Result<Request, (ErrorCode, String)> {
                let key = check_header(header)?;
                let bad = |e: prost::DecodeError| {
                    (ErrorCode::InvalidRequest, format!("{} body does not decode: {e}", key.name()))
                };
                match key {
                    $(ApiKey::$variant => {
                        <$request as prost::Message>::decode(body).map(Request::$variant).map_err(bad)
                    })*
                    $(ApiKey::$push_variant => Err((
                        ErrorCode::InvalidRequest,
                        format!("{} frames are sent by the broker only", key.name()),
                    )),)*
                }
            }

            /// The API this request belongs to.
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(Request::$variant(_) => ApiKey::$variant,)*
                }
            }
        }
    };
}

api_table! {
    requests {
        1 => Handshake "handshake": HandshakeRequest => HandshakeResponse, retry = true;
        2 => CreateTopic "create_topic": CreateTopicRequest => StatusResponse, retry = false;
        3 => DeleteTopic "delete_topic": DeleteTopicRequest => StatusResponse, retry = false;
        4 => ListTopics "list_topics": ListTopicsRequest => ListTopicsResponse, retry = true;
        5 => DescribeTopic "describe_topic": DescribeTopicRequest => DescribeTopicResponse, retry = true;
        6 => Produce "produce": ProduceRequest => ProduceResponse, retry = false,
            request_tail = PRODUCE_RECORDS_TAG;
        7 => Fetch "fetch": FetchRequest => FetchResponse, retry = true,
            response_tail = FETCH_RECORDS_TAG;
        8 => ListOffsets "list_offsets": ListOffsetsRequest => ListOffsetsResponse, retry = true;
        9 => BrokerStatus "broker_status": BrokerStatusRequest => BrokerStatusResponse, retry = true;
        10 => InitProducerId "init_producer_id": InitProducerIdRequest => InitProducerIdResponse, retry = true;
        20 => JoinGroup "join_group": JoinGroupRequest => GroupAssignmentResponse, retry = false;
        21 => Heartbeat "heartbeat": HeartbeatRequest => GroupAssignmentResponse, retry = true;
        22 => LeaveGroup "leave_group": LeaveGroupRequest => StatusResponse, retry = false;
        23 => OffsetCommit "offset_commit": OffsetCommitRequest => StatusResponse, retry = true;
        24 => OffsetFetch "offset_fetch": OffsetFetchRequest => OffsetFetchResponse, retry = true;
        25 => DescribeGroup "describe_group": DescribeGroupRequest => DescribeGroupResponse, retry = true;
        26 => ListGroups "list_groups": ListGroupsRequest => ListGroupsResponse, retry = true;
        27 => DeleteGroup "delete_group": DeleteGroupRequest => StatusResponse, retry = false;
        28 => ResetOffsets "reset_offsets": ResetOffsetsRequest => ResetOffsetsResponse, retry = false;
        30 => CreateQueue "create_queue": CreateQueueRequest => StatusResponse, retry = false;
        31 => DeleteQueue "delete_queue": DeleteQueueRequest => StatusResponse, retry = false;
        32 => ListQueues "list_queues": ListQueuesRequest => ListQueuesResponse, retry = true;
        33 => DescribeQueue "describe_queue": DescribeQueueRequest => DescribeQueueResponse, retry = true;
        39 => PurgeQueue "purge_queue": PurgeQueueRequest => PurgeQueueResponse, retry = false;
        38 => PeekQueue "peek_queue": PeekQueueRequest => PeekQueueResponse, retry = true;
        34 => QueueSubscribe "queue_subscribe": QueueSubscribeRequest => QueueSubscribeResponse, retry = false;
        35 => Ack "ack": AckRequest => StatusResponse, retry = false;
        36 => Nack "nack": NackRequest => StatusResponse, retry = false;
        37 => InProgress "in_progress": InProgressRequest => StatusResponse, retry = false;
        50 => SaslAuthenticate "sasl_authenticate": SaslAuthenticateRequest => SaslAuthenticateResponse, retry = false;
        51 => WhoAmI "who_am_i": WhoAmIRequest => WhoAmIResponse, retry = true;
        52 => CreateUser "create_user": CreateUserRequest => StatusResponse, retry = false;
        53 => DeleteUser "delete_user": DeleteUserRequest => StatusResponse, retry = false;
        54 => ChangePassword "change_password": ChangePasswordRequest => StatusResponse, retry = true;
        55 => ListUsers "list_users": ListUsersRequest => ListUsersResponse, retry = true;
        56 => CreateToken "create_token": CreateTokenRequest => CreateTokenResponse, retry = false;
        57 => RevokeToken "revoke_token": RevokeTokenRequest => StatusResponse, retry = false;
        58 => ListTokens "list_tokens": ListTokensRequest => ListTokensResponse, retry = true;
        60 => CreateAcl "create_acl": CreateAclRequest => StatusResponse, retry = true;
        61 => DeleteAcl "delete_acl": DeleteAclRequest => StatusResponse, retry = false;
        62 => ListAcls "list_acls": ListAclsRequest => ListAclsResponse, retry = true;
        64 => SetQuota "set_quota": SetQuotaRequest => StatusResponse, retry = true;
        65 => DeleteQuota "delete_quota": DeleteQuotaRequest => StatusResponse, retry = false;
        66 => ListQuotas "list_quotas": ListQuotasRequest => ListQuotasResponse, retry = true;
    }
    pushes {
        40 => Deliver "deliver": DeliverBatch;
    }
}

/// The key of a request header, if it is known and its version spoken.
fn check_header(header: &FrameHeader) -> Result<ApiKey, (ErrorCode, String)> {
    let Some(key) = ApiKey::from_u16(header.api_key) else {
        return Err((
            ErrorCode::UnknownApiKey,
            format!("unknown api key {}", header.api_key),
        ));
    };
    if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX).contains(&header.api_version) {
        return Err((
            ErrorCode::UnsupportedVersion,
            format!(
                "{} version {} is not supported (supported: {PROTOCOL_VERSION_MIN}..={PROTOCOL_VERSION_MAX})",
                key.name(),
                header.api_version
            ),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    proptest! {
        #[test]
        fn garbage_bodies_give_errors_not_panics(key in 0u16..80, version in 0u16..3, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let header = FrameHeader::request(key, version, 1);
            let _ = Request::decode(&header, Bytes::from(body));
        }
    }

    #[test]
    fn unknown_keys_and_versions_map_to_codes() {
        let unknown = Request::decode(&FrameHeader::request(999, 1, 1), Bytes::new()).unwrap_err();
        assert_eq!(unknown.0, ErrorCode::UnknownApiKey);
        let version = Request::decode(
            &FrameHeader::request(ApiKey::Fetch as u16, 9, 1),
            Bytes::new(),
        )
        .unwrap_err();
        assert_eq!(version.0, ErrorCode::UnsupportedVersion);
        let produce = ProduceRequest {
            topic: "t".into(),
            records: Bytes::from_static(b"abc"),
            ..ProduceRequest::default()
        };
        let decoded = Request::decode(
            &FrameHeader::request(ProduceRequest::KEY as u16, 1, 1),
            produce.encode_to_vec().into(),
        )
        .unwrap();
        assert_eq!(decoded, Request::Produce(produce));
        assert_eq!(
            Acks::from_u32(ProduceRequest::default().acks),
            Some(Acks::Durable)
        );
    }

    #[test]
    fn the_table_is_consistent() {
        for (index, key) in ApiKey::ALL.iter().enumerate() {
            assert_eq!(key.index(), index);
            assert_eq!(ApiKey::from_u16(*key as u16), Some(*key));
            assert_eq!(key.row().key, *key);
        }
        let mut names: Vec<_> = ApiKey::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), API_COUNT, "API names are unique");
        // Tails name real bytes fields of their messages.
        assert_eq!(ProduceRequest::REQUEST_TAIL, Some(PRODUCE_RECORDS_TAG));
        assert_eq!(FetchRequest::RESPONSE_TAIL, Some(FETCH_RECORDS_TAG));
    }

    #[test]
    fn a_push_key_is_not_a_request() {
        let refused = Request::decode(
            &FrameHeader::request(ApiKey::Deliver as u16, 1, 1),
            Bytes::new(),
        )
        .unwrap_err();
        assert_eq!(refused.0, ErrorCode::InvalidRequest);
    }
}
