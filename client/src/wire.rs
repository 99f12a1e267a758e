//! Wire-level calls, for tools and tests that speak the protocol directly:
//! any request of the API table ([`Wire::call`]), raw record batches
//! ([`Wire::produce`]) and fetches. Applications want [`crate::Producer`],
//! [`crate::Consumer`], [`crate::GroupConsumer`] and [`crate::QueueConsumer`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_client::ClientError> {
//! use ferry_client::wire::messages::ListTopicsRequest;
//! let client = ferry_client::Client::connect("127.0.0.1:7171").await?;
//! // The response type follows from the request type.
//! let topics = client.wire().call(&ListTopicsRequest {}).await?.topics;
//! # Ok(()) }
//! ```

use bytes::Bytes;
pub use ferry_protocol::messages;
use ferry_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest};
pub use ferry_protocol::{Api, ApiKey};

use crate::client::Client;
use crate::connection::Connection;
use crate::error::Result;
use crate::Acks;

/// Times a produce whose connection was lost before the answer is sent
/// again before the loss is reported.
pub const PRODUCE_RESENDS_LIMIT: u32 = 16;

/// Borrowed wire-level view of a [`Client`]; see [`Client::wire`].
pub struct Wire<'a> {
    client: &'a Client,
}

impl<'a> Wire<'a> {
    pub(crate) fn new(client: &'a Client) -> Wire<'a> {
        Wire { client }
    }

    /// Sends any request and waits for its typed response. Requests that
    /// are safe to resend are retried once after a lost connection.
    pub async fn call<R: Api>(&self, request: &R) -> Result<R::Response> {
        self.client.call(request).await
    }

    /// Appends encoded batches to a partition. Returns (base, last) offsets,
    /// or `None` with `Acks::None`. Not resent: if the connection is lost
    /// before the answer, this fails with
    /// [`crate::ClientError::Disconnected`] (the batch may or may not be
    /// stored).
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        records: Bytes,
        acks: Acks,
    ) -> Result<Option<(u64, u64)>> {
        let connection = self.client.connection().await?;
        produce_on(&connection, topic, partition, records, acks).await
    }

    /// Like [`Wire::produce`], but sent again on a new connection when the
    /// one it went out on was lost before the answer: at most
    /// `PRODUCE_RESENDS_LIMIT` times, each new connection bounded by the
    /// client's reconnect policy, with the policy's backoff between sends
    /// (a broker that drops every produce is not hammered). At-least-once:
    /// a resent batch may be stored twice.
    pub(crate) async fn produce_resending(
        &self,
        topic: &str,
        partition: u32,
        records: Bytes,
        acks: Acks,
    ) -> Result<Option<(u64, u64)>> {
        let policy = &self.client.options().reconnect;
        let mut backoff = policy.initial_backoff;
        let mut resends = 0;
        loop {
            let connection = self.client.connection().await?;
            match produce_on(&connection, topic, partition, records.clone(), acks).await {
                Err(error)
                    if error.is_connection_error()
                        && connection.is_closed()
                        && resends < PRODUCE_RESENDS_LIMIT =>
                {
                    resends += 1;
                    tracing::info!(topic, partition, %error, resends, "sending the batch again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(policy.max_backoff);
                }
                other => return other,
            }
        }
    }

    /// One fetch (long-polling if the request asks to).
    pub async fn fetch(&self, request: &FetchRequest) -> Result<FetchResponse> {
        self.client.call(request).await
    }
}

/// One produce request on `connection`.
async fn produce_on(
    connection: &Connection,
    topic: &str,
    partition: u32,
    records: Bytes,
    acks: Acks,
) -> Result<Option<(u64, u64)>> {
    let request = ProduceRequest {
        topic: topic.to_string(),
        partition,
        acks: acks as u32,
        records: Bytes::new(),
    };
    if acks == Acks::None {
        connection.send_only(&request, Some(records)).await?;
        return Ok(None);
    }
    let response = connection.call_with_tail(&request, Some(records)).await?;
    Ok(Some((response.base_offset, response.last_offset)))
}
