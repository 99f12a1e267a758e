//! A lane: one partition's idempotent batches in flight, kept in order on
//! the wire across lost connections.
//!
//! Each batch takes a ticket when it is built (tickets rise with its
//! sequence numbers). A batch goes on a connection only once every older
//! unanswered batch of the lane went out on that same connection: requests
//! queued on one connection are written in queue order, so the broker sees
//! the lane's batches in sequence order, never a gap. When a connection is
//! lost, the oldest unanswered batch is sent again first on the new one,
//! then the next, and so on (pipelined, not one round trip each); a batch
//! the broker already stored is answered with its original offsets (see
//! the storage crate's `producers.rs`), so a resend never duplicates.
//!
//! At most [`LANE_BATCHES_LIMIT`] batches of a lane are unanswered at once.
//! The broker remembers the offsets of a producer's last five batches per
//! partition; a resend of an older one is still recognised (its sequences
//! are below the kept ones) and answered as stored, only without offsets.
//! Five in flight would stop a partition's writes from overlapping its
//! fsyncs under `acks = durable`.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::messages::{Acks, ProduceRequest};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::client::Client;
use crate::connection::Connection;
use crate::error::Result;
use crate::wire::PRODUCE_RESENDS_LIMIT;

/// Unanswered batches per lane.
pub const LANE_BATCHES_LIMIT: usize = 64;

/// One unanswered batch: its ticket and the connection it last went out
/// on (`None`: not sent yet).
struct InFlight {
    ticket: u64,
    connection: Option<u64>,
}

/// The unanswered batches, oldest first, and the next ticket.
#[derive(Default)]
struct Tickets {
    in_flight: VecDeque<InFlight>,
    next: u64,
}

#[derive(Default)]
pub(crate) struct Lane {
    tickets: Mutex<Tickets>,
    /// Serializes "check the order, queue the request" so that two batches
    /// never pass each other between the check and the queueing.
    queueing: tokio::sync::Mutex<()>,
    changed: Notify,
}

impl Lane {
    /// A ticket for the next batch, which is now unanswered.
    pub fn take_ticket(&self) -> u64 {
        let mut tickets = self.tickets.lock();
        let ticket = tickets.next;
        tickets.next += 1;
        tickets.in_flight.push_back(InFlight {
            ticket,
            connection: None,
        });
        debug_assert!(tickets.in_flight.len() <= LANE_BATCHES_LIMIT);
        ticket
    }

    /// Whether every batch older than `ticket` went out on `connection`.
    fn older_all_on(&self, ticket: u64, connection: u64) -> bool {
        self.tickets
            .lock()
            .in_flight
            .iter()
            .take_while(|batch| batch.ticket < ticket)
            .all(|batch| batch.connection == Some(connection))
    }

    fn mark_sent(&self, ticket: u64, connection: u64) {
        let mut tickets = self.tickets.lock();
        if let Some(batch) = tickets.in_flight.iter_mut().find(|b| b.ticket == ticket) {
            batch.connection = Some(connection);
        }
        drop(tickets);
        self.changed.notify_waiters();
    }

    /// The batch is answered (or has failed for good).
    fn resolve(&self, ticket: u64) {
        let mut tickets = self.tickets.lock();
        tickets.in_flight.retain(|batch| batch.ticket != ticket);
        drop(tickets);
        self.changed.notify_waiters();
    }

    /// Waits until every older batch went out on `connection`, or the
    /// connection is lost.
    async fn wait_turn(&self, ticket: u64, connection: &Connection) {
        let closed = connection.closed_token();
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.older_all_on(ticket, connection.id) || connection.is_closed() {
                return;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = closed.cancelled() => return,
            }
        }
    }
}

/// Sends an idempotent batch of `lane` (holding `ticket`) and waits for its
/// answer, sending it again in lane order on a new connection when the one
/// it went out on is lost (at most `PRODUCE_RESENDS_LIMIT` times, with the
/// client's reconnect backoff). Returns its (base, last) offsets, or `None`
/// for a resend the broker had stored before its last five batches of the
/// producer (stored once; the offsets are no longer known).
pub(crate) async fn produce_in_order(
    client: &Client,
    lane: &Arc<Lane>,
    ticket: u64,
    request: ProduceRequest,
    records: Bytes,
) -> Result<Option<(u64, u64)>> {
    debug_assert!(request.acks != Acks::None as u32);
    let result = send_until_answered(client, lane, ticket, &request, records).await;
    lane.resolve(ticket);
    result
}

async fn send_until_answered(
    client: &Client,
    lane: &Lane,
    ticket: u64,
    request: &ProduceRequest,
    records: Bytes,
) -> Result<Option<(u64, u64)>> {
    let policy = &client.options().reconnect;
    let mut backoff = policy.initial_backoff;
    let mut resends = 0;
    loop {
        let connection = client.connection().await?;
        lane.wait_turn(ticket, &connection).await;
        let queued = {
            let _queueing = lane.queueing.lock().await;
            if connection.is_closed() || !lane.older_all_on(ticket, connection.id) {
                continue;
            }
            let queued = connection.enqueue(request, Some(records.clone())).await;
            lane.mark_sent(ticket, connection.id);
            queued
        };
        let answer = match queued {
            Ok(answer) => answer.await,
            Err(error) => Err(error),
        };
        match answer {
            Ok(response) if response.offsets_unknown => return Ok(None),
            Ok(response) => return Ok(Some((response.base_offset, response.last_offset))),
            Err(error)
                if error.is_connection_error()
                    && connection.is_closed()
                    && resends < PRODUCE_RESENDS_LIMIT =>
            {
                resends += 1;
                tracing::info!(topic = %request.topic, partition = request.partition, %error, resends, "sending the batch again, in order");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
            }
            Err(error) => return Err(error),
        }
    }
}
