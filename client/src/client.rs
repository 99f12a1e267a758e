//! [`Client`]: a handle to the broker that reconnects with backoff. Cheap to
//! clone. The typed admin API is in `admin.rs`, the wire-level calls in
//! [`crate::wire`].

use std::sync::Arc;

use ferry_protocol::Api;

use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::options::ClientOptions;

struct Shared {
    addr: String,
    options: ClientOptions,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

/// A connection to a Ferry broker.
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
    /// Connects with default options.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    /// Connects with `options`.
    pub async fn connect_with(addr: &str, options: ClientOptions) -> Result<Client> {
        let client = Client {
            shared: Arc::new(Shared {
                addr: addr.to_string(),
                options,
                connection: tokio::sync::Mutex::new(None),
            }),
        };
        client.connection().await?;
        Ok(client)
    }

    /// The broker address this client connects to.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Wire-level access: raw requests and record batches.
    pub fn wire(&self) -> crate::wire::Wire<'_> {
        crate::wire::Wire::new(self)
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// The live connection, reconnecting (with backoff) if it was lost.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>> {
        let mut slot = self.shared.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        let options = &self.shared.options;
        let mut backoff = options.backoff;
        let mut last_error = None;
        for attempt in 0..options.connect_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(options.max_backoff);
            }
            match Connection::connect(
                &self.shared.addr,
                &options.client_id,
                options.connect_timeout,
                None,
            )
            .await
            {
                Ok(connection) => {
                    let connection = Arc::new(connection);
                    *slot = Some(connection.clone());
                    return Ok(connection);
                }
                Err(ClientError::Broker { code, message }) => {
                    return Err(ClientError::Broker { code, message })
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Disconnected("no connection".into())))
    }

    /// Sends a request on the live connection. Requests the API table marks
    /// as safe to resend are retried once on a new connection if the old
    /// one was lost.
    pub(crate) async fn call<R: Api>(&self, request: &R) -> Result<R::Response> {
        let connection = self.connection().await?;
        match connection.call(request).await {
            Err(error) if R::RETRY && error.is_connection_error() => {
                self.connection().await?.call(request).await
            }
            other => other,
        }
    }
}
