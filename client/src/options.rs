//! [`ClientOptions`]: how a [`crate::Client`] connects (TLS, credentials)
//! and reconnects, and
//! [`ReconnectPolicy`]: capped exponential backoff with jitter until an
//! optional deadline.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Connection settings.
///
/// The first connection ([`crate::Client::connect`]) is tried for at most
/// `first_connect_deadline` (5 s by default), so a wrong address fails
/// quickly. Once connected, a lost connection is re-established following
/// `reconnect`, which by default keeps trying for as long as it takes.
///
/// ```
/// use std::time::Duration;
/// use ferry_client::{ClientOptions, ReconnectPolicy};
/// let options = ClientOptions {
///     client_id: "billing".into(),
///     // Give up when the broker has been gone for a minute.
///     reconnect: ReconnectPolicy { deadline: Some(Duration::from_secs(60)), ..ReconnectPolicy::default() },
///     ..ClientOptions::default()
/// };
/// assert_eq!(options.reconnect.initial_backoff, Duration::from_millis(50));
/// assert_eq!(ClientOptions::default().reconnect.deadline, None); // keep trying
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent in the handshake; shows up in the broker's logs.
    pub client_id: String,
    /// Longest one connection attempt (TCP connect + handshake) may take.
    pub connect_timeout: Duration,
    /// How long the first connection is tried (with `reconnect`'s backoff)
    /// before [`crate::Client::connect`] fails; `None` = keep trying.
    pub first_connect_deadline: Option<Duration>,
    /// How a lost connection is re-established.
    pub reconnect: ReconnectPolicy,
    /// Speak TLS to the broker (on every connection); `None` = plaintext.
    pub tls: Option<crate::TlsOptions>,
    /// Authenticate every connection (reconnections included) with these,
    /// right after the handshake; `None` = stay anonymous (or rely on a
    /// client certificate, [`crate::TlsOptions::identity`]).
    pub credentials: Option<crate::Credentials>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_id: "ferry-client".into(),
            connect_timeout: Duration::from_secs(5),
            first_connect_deadline: Some(Duration::from_secs(5)),
            reconnect: ReconnectPolicy::default(),
            tls: None,
            credentials: None,
        }
    }
}

/// How a lost connection is re-established: attempts are spaced by a
/// backoff that starts at `initial_backoff`, doubles after every failed
/// attempt up to `max_backoff`, and is jittered by up to a quarter either
/// way. After `deadline` without a connection the client gives up: the call
/// waiting for the connection fails with [`crate::ClientError::Unreachable`],
/// and each later call makes a single attempt of its own.
///
/// ```
/// use std::time::Duration;
/// use ferry_client::ReconnectPolicy;
/// let policy = ReconnectPolicy::default();
/// assert_eq!((policy.initial_backoff, policy.max_backoff), (Duration::from_millis(50), Duration::from_secs(1)));
/// assert_eq!(policy.deadline, None); // keep trying
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Wait after the first failed attempt.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Give up this long after the connection was lost; `None` = never.
    pub deadline: Option<Duration>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            deadline: None,
        }
    }
}

impl ReconnectPolicy {
    /// The wait after `failed` attempts (1 = after the first), before jitter:
    /// `initial_backoff * 2^(failed - 1)`, at most `max_backoff`.
    pub(crate) fn backoff(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }

    /// [`ReconnectPolicy::backoff`] jittered by up to a quarter either way
    /// (`random` in `0..=u64::MAX`), still at most `max_backoff`.
    pub(crate) fn jittered(&self, failed: u32, random: u64) -> Duration {
        let base = self.backoff(failed);
        let quarter = base / 4;
        let spread = quarter.as_nanos() as u64 * 2;
        let offset = if spread == 0 {
            0
        } else {
            random % (spread + 1)
        };
        (base - quarter + Duration::from_nanos(offset)).min(self.max_backoff)
    }
}

/// A random number for jitter (std's per-map random keys; no extra crate).
pub(crate) fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::UNIX_EPOCH
            .elapsed()
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let policy = ReconnectPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            deadline: None,
        };
        let waits: Vec<u64> = (1..=5)
            .map(|n| policy.backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn jitter_stays_within_a_quarter_and_under_the_cap() {
        let policy = ReconnectPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            deadline: None,
        };
        for random in [0, 1, u64::MAX / 2, u64::MAX, random_u64()] {
            let first = policy.jittered(1, random);
            assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125));
            assert!(policy.jittered(9, random) <= Duration::from_millis(400));
        }
        assert_eq!(policy.jittered(1, 0), Duration::from_millis(75));
    }
}
