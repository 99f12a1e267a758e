//! Reconnecting: the [`ConnectionState`] a client reports (through tracing
//! and a `tokio::sync::watch` channel), and [`retry_until`], the loop that
//! makes a connection following a [`ReconnectPolicy`], used by
//! [`crate::Client`] and by [`crate::QueueConsumer`]'s own connection.

use std::future::Future;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{ClientError, Result};
use crate::options::{random_u64, ReconnectPolicy};

/// The state of a connection to the broker, as seen by the client.
///
/// Observe it with [`crate::Client::connection_state`] (or
/// [`crate::QueueConsumer::connection_state`] for a queue consumer's own
/// connection); every change is also logged through `tracing` (target
/// `ferry_client`): lost connections and giving up at `warn`, reconnect
/// attempts and reconnections at `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected.
    Connected {
        /// Connections re-established after one was lost, so far.
        reconnects: u64,
    },
    /// The connection was lost; the next request (or poll) reconnects.
    Disconnected,
    /// Reconnecting: `attempt` attempts have failed so far.
    Reconnecting {
        /// Failed attempts since the connection was lost.
        attempt: u32,
        /// Why the last attempt failed.
        error: String,
    },
    /// Gave up at the reconnect deadline; each later request makes one
    /// attempt of its own.
    GaveUp {
        /// Failed attempts before giving up.
        attempts: u32,
        /// Why the last attempt failed.
        error: String,
    },
}

impl ConnectionState {
    /// Connections re-established so far, as of this state (0 unless
    /// `Connected`).
    pub fn reconnects(&self) -> u64 {
        match self {
            ConnectionState::Connected { reconnects } => *reconnects,
            _ => 0,
        }
    }
}

/// Publishes one connection's state changes and logs them.
pub(crate) struct StateReporter {
    addr: String,
    state: watch::Sender<ConnectionState>,
}

impl StateReporter {
    pub(crate) fn new(addr: &str, initial: ConnectionState) -> StateReporter {
        StateReporter {
            addr: addr.to_string(),
            state: watch::Sender::new(initial),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    pub(crate) fn set(&self, next: ConnectionState) {
        let addr = self.addr.as_str();
        match &next {
            ConnectionState::Connected { reconnects } if *reconnects > 0 => {
                tracing::info!(addr, reconnects, "reconnected to the broker")
            }
            ConnectionState::Reconnecting { attempt, error } => {
                tracing::info!(addr, attempt, %error, "reconnecting to the broker")
            }
            ConnectionState::GaveUp { attempts, error } => {
                tracing::warn!(addr, attempts, %error, "gave up reconnecting to the broker")
            }
            _ => {}
        }
        self.state.send_if_modified(|state| {
            let changed = *state != next;
            *state = next;
            changed
        });
    }

    /// Marks the state `Disconnected` (and logs it) once `closed` is
    /// cancelled, unless a newer state was set meanwhile.
    pub(crate) fn watch_closing(self: &std::sync::Arc<Self>, closed: CancellationToken) {
        let reporter = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            closed.cancelled().await;
            let Some(reporter) = reporter.upgrade() else {
                return;
            };
            let lost = reporter.state.send_if_modified(|state| {
                let connected = matches!(state, ConnectionState::Connected { .. });
                if connected {
                    *state = ConnectionState::Disconnected;
                }
                connected
            });
            if lost {
                tracing::warn!(addr = %reporter.addr, "lost the connection to the broker");
            }
        });
    }
}

/// Runs `attempt` until it succeeds, spacing failures by `policy`'s
/// jittered backoff; after `deadline` (if any) it gives up with
/// [`ClientError::Unreachable`]. A broker's refusal (authentication
/// included), and a TLS one, is not retried.
/// `reporter` hears of every failure when `reconnecting`.
pub(crate) async fn retry_until<T, F, Fut>(
    addr: &str,
    policy: &ReconnectPolicy,
    deadline: Option<Instant>,
    reporter: Option<&StateReporter>,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut failed: u32 = 0;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_refusal() => return Err(error),
            Err(ClientError::Unreachable { reason, .. }) => reason,
            Err(error) => error.to_string(),
        };
        failed = failed.saturating_add(1);
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            if let Some(reporter) = reporter {
                reporter.set(ConnectionState::GaveUp {
                    attempts: failed,
                    error: error.clone(),
                });
            }
            return Err(ClientError::Unreachable {
                addr: addr.to_string(),
                reason: format!("gave up after {failed} attempt(s): {error}"),
            });
        }
        match reporter {
            Some(reporter) => reporter.set(ConnectionState::Reconnecting {
                attempt: failed,
                error,
            }),
            None => tracing::debug!(addr, attempt = failed, %error, "cannot connect yet"),
        }
        let wake = now + policy.jittered(failed, random_u64());
        // The last attempt is made at the deadline, not after it.
        tokio::time::sleep_until(deadline.map_or(wake, |d| wake.min(d))).await;
    }
}
