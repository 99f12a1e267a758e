//! [`ClientOptions`]: how a [`crate::Client`] connects and reconnects.

use std::time::Duration;

/// Connection settings.
///
/// ```
/// use std::time::Duration;
/// use ferry_client::ClientOptions;
/// let options = ClientOptions { client_id: "billing".into(), connect_attempts: 10, ..ClientOptions::default() };
/// assert_eq!(options.backoff, Duration::from_millis(50));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent in the handshake; shows up in the broker's logs.
    pub client_id: String,
    /// Longest one connection attempt (TCP connect + handshake) may take.
    pub connect_timeout: Duration,
    /// Attempts per (re)connection before giving up.
    pub connect_attempts: u32,
    /// First backoff between attempts; doubles up to `max_backoff`.
    pub backoff: Duration,
    /// Longest backoff between attempts.
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_id: "ferry-client".into(),
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}
