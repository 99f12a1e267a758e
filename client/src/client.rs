//! [`Client`]: a handle to the broker that reconnects following its
//! [`crate::ReconnectPolicy`] and reports its [`ConnectionState`]. Cheap to
//! clone. The typed admin API is in `admin.rs`, the wire-level calls in
//! [`crate::wire`], the reconnect loop in `reconnect.rs`.

use std::sync::Arc;

use ferry_protocol::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::Result;
use crate::options::{random_u64, ClientOptions};
use crate::reconnect::{retry_until, ConnectionState, StateReporter};

/// The live connection and what the reconnect policy needs to know.
struct Slot {
    connection: Option<Arc<Connection>>,
    /// When the current (or last) connection was made.
    connected_at: Instant,
    /// When the connection was found lost; the deadline runs from here.
    lost_at: Option<Instant>,
    reconnects: u64,
}

struct Shared {
    addr: String,
    options: ClientOptions,
    slot: tokio::sync::Mutex<Slot>,
    state: Arc<StateReporter>,
}

/// A connection to a Ferry broker.
///
/// A lost connection is re-established by the next request, following
/// [`ClientOptions::reconnect`] (by default: keep trying). Requests that are
/// safe to resend (reads, heartbeats, commits) wait for the new connection
/// and are sent again; others fail with [`crate::ClientError::Disconnected`]
/// if the connection was lost before their answer.
///
/// ```no_run
/// # async fn demo() -> Result<(), ferry_client::ClientError> {
/// use ferry_client::Client;
/// let client = Client::connect("127.0.0.1:7171").await?;
/// client.create_topic("orders", 3).await?;
/// for topic in client.list_topics().await? {
///     println!("{} ({} partitions)", topic.name, topic.partitions);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// Connects with default options: tries for up to 5 s, and once
    /// connected keeps reconnecting for as long as it takes.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    /// Connects with `options`, trying for up to
    /// [`ClientOptions::first_connect_deadline`].
    pub async fn connect_with(addr: &str, options: ClientOptions) -> Result<Client> {
        let deadline = options.first_connect_deadline.map(|d| Instant::now() + d);
        let connection = retry_until(addr, &options.reconnect, deadline, None, || {
            Connection::connect(addr, &options, None)
        })
        .await?;
        let connection = Arc::new(connection);
        let connected = ConnectionState::Connected { reconnects: 0 };
        let state = Arc::new(StateReporter::new(addr, connected));
        state.watch_closing(connection.closed_token());
        Ok(Client {
            shared: Arc::new(Shared {
                addr: addr.to_string(),
                options,
                slot: tokio::sync::Mutex::new(Slot {
                    connection: Some(connection),
                    connected_at: Instant::now(),
                    lost_at: None,
                    reconnects: 0,
                }),
                state,
            }),
        })
    }

    /// The broker address this client connects to.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Watches the connection's state: connected, disconnected,
    /// reconnecting (attempt n), gave up. The receiver sees the latest
    /// state; `Connected::reconnects` counts reconnections, so none is
    /// missed even if intermediate states are.
    ///
    /// ```no_run
    /// # async fn demo(client: ferry_client::Client) {
    /// use ferry_client::ConnectionState;
    /// let mut state = client.connection_state();
    /// tokio::spawn(async move {
    ///     while state.changed().await.is_ok() {
    ///         if let ConnectionState::Reconnecting { attempt, .. } = &*state.borrow() {
    ///             eprintln!("broker away, attempt {attempt}");
    ///         }
    ///     }
    /// });
    /// # }
    /// ```
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    /// Wire-level access: raw requests and record batches.
    pub fn wire(&self) -> crate::wire::Wire<'_> {
        crate::wire::Wire::new(self)
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// The live connection, reconnecting (with backoff, until the policy's
    /// deadline) if it was lost.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>> {
        let mut slot = self.shared.slot.lock().await;
        if let Some(connection) = slot.connection.as_ref() {
            if !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        let policy = &self.shared.options.reconnect;
        if slot.connection.take().is_some() && slot.connected_at.elapsed() < policy.max_backoff {
            // It died young: do not hammer a broker that accepts and drops.
            tokio::time::sleep(policy.jittered(1, random_u64())).await;
        }
        let lost_at = *slot.lost_at.get_or_insert_with(Instant::now);
        let deadline = policy.deadline.map(|d| lost_at + d);
        let (addr, options) = (&self.shared.addr, &self.shared.options);
        let connection = retry_until(addr, policy, deadline, Some(&self.shared.state), || {
            Connection::connect(addr, options, None)
        })
        .await?;
        let connection = Arc::new(connection);
        slot.connection = Some(connection.clone());
        slot.connected_at = Instant::now();
        slot.lost_at = None;
        slot.reconnects += 1;
        let reconnects = slot.reconnects;
        self.shared
            .state
            .set(ConnectionState::Connected { reconnects });
        self.shared.state.watch_closing(connection.closed_token());
        Ok(connection)
    }

    /// Sends a request on the live connection. Requests the API table marks
    /// as safe to resend are sent again on a new connection for as long as
    /// the connection they went out on was lost before their answer (the
    /// reconnect policy bounds how long).
    pub(crate) async fn call<R: Api>(&self, request: &R) -> Result<R::Response> {
        loop {
            let connection = self.connection().await?;
            match connection.call(request).await {
                Err(error) if R::RETRY && error.is_connection_error() && connection.is_closed() => {
                    tracing::debug!(api = ?R::KEY, %error, "connection lost; sending again");
                }
                other => return other,
            }
        }
    }
}
