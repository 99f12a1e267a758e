//! Authentication: [`Credentials`] (a user and password for SCRAM-SHA-256,
//! or an access token) and the SASL exchange that proves them on every new
//! connection, right after the protocol handshake. SCRAM takes two rounds
//! (RFC 5802/7677, computed by `ferry_protocol::scram`; the password never
//! leaves the client, and the broker proves in turn that it holds the
//! user's keys); `FERRY-TOKEN` one, which sends the token itself (use TLS).

use std::fmt;

use ferry_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use ferry_protocol::scram::{ScramClient, SCRAM_SHA_256};

use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// The SASL mechanism of access tokens: one round, the token's bytes.
const TOKEN_MECHANISM: &str = "FERRY-TOKEN";

/// Who the client says it is, and the secret that proves it. Set in
/// [`crate::ClientOptions::credentials`]; every connection (reconnections
/// included) authenticates with them. `Debug` shows the user, never the
/// password or the token.
///
/// ```
/// use ferry_client::{ClientOptions, Credentials};
/// let options = ClientOptions {
///     credentials: Some(Credentials::Scram { user: "alice".into(), password: "s3cret".into() }),
///     ..ClientOptions::default()
/// };
/// assert!(!format!("{options:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user created with [`crate::Client::create_user`] (or the
    /// bootstrapped `admin`), proved with SCRAM-SHA-256.
    Scram {
        /// The user's name.
        user: String,
        /// The user's password.
        password: String,
    },
    /// An access token made by [`crate::Client::create_token`].
    Token(String),
}

impl Credentials {
    /// The SASL mechanism these credentials are proved with.
    pub fn mechanism(&self) -> &'static str {
        match self {
            Credentials::Scram { .. } => SCRAM_SHA_256,
            Credentials::Token(_) => TOKEN_MECHANISM,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Scram { user, .. } => f
                .debug_struct("Scram")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
        }
    }
}

/// Proves `credentials` on a freshly handshaken `connection`; answers the
/// principal the broker now takes the connection to be (`User:alice`).
pub(crate) async fn authenticate(
    connection: &Connection,
    credentials: &Credentials,
) -> Result<String> {
    offered(&connection.info.sasl_mechanisms, credentials.mechanism())?;
    match credentials {
        Credentials::Scram { user, password } => scram(connection, user, password).await,
        Credentials::Token(token) => {
            if token.is_empty() {
                return Err(invalid("the token is empty".into()));
            }
            let answer = round(connection, TOKEN_MECHANISM, token.as_bytes().to_vec()).await?;
            completed(answer)
        }
    }
}

/// Refuses a mechanism the broker did not offer. A broker that offers none
/// is asked anyway: its answer says what it thinks.
fn offered(offered: &[String], mechanism: &str) -> Result<()> {
    if offered.is_empty() || offered.iter().any(|m| m == mechanism) {
        return Ok(());
    }
    Err(ClientError::UnsupportedMechanism {
        reason: format!(
            "the credentials need {mechanism}; the broker offers {}",
            offered.join(", ")
        ),
    })
}

/// The two SCRAM-SHA-256 rounds: client-first, then client-final with the
/// proof; the server-final must carry the broker's own proof.
async fn scram(connection: &Connection, user: &str, password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(invalid("the password is empty".into()));
    }
    let mut client =
        ScramClient::new(user, password.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let server_first = round(connection, SCRAM_SHA_256, client.client_first()).await?;
    if server_first.complete {
        return Err(ClientError::UnexpectedAnswer {
            field: "SCRAM exchange complete after server-first",
            value: "true".into(),
        });
    }
    // Salting the password costs the iteration count the broker chose:
    // not on the runtime's threads.
    let (client, client_final) = off_runtime(move || {
        let client_final = client.client_final(&server_first.auth_bytes);
        (client, client_final)
    })
    .await?;
    let client_final = client_final.map_err(|e| ClientError::AuthenticationFailed {
        reason: format!("the broker's SCRAM challenge was refused: {e}"),
    })?;
    let server_final = round(connection, SCRAM_SHA_256, client_final).await?;
    client
        .verify_server_final(&server_final.auth_bytes)
        .map_err(|e| ClientError::AuthenticationFailed {
            reason: format!("the broker did not prove that it holds this user's keys: {e}"),
        })?;
    completed(server_final)
}

/// One `SaslAuthenticate` round trip.
async fn round(
    connection: &Connection,
    mechanism: &str,
    auth_bytes: Vec<u8>,
) -> Result<SaslAuthenticateResponse> {
    let request = SaslAuthenticateRequest {
        mechanism: mechanism.to_string(),
        auth_bytes,
    };
    connection.call(&request).await
}

/// The principal of the last round's answer, which must say the exchange
/// is complete.
fn completed(answer: SaslAuthenticateResponse) -> Result<String> {
    if !answer.complete {
        return Err(ClientError::UnexpectedAnswer {
            field: "SASL exchange complete after the last round",
            value: "false".into(),
        });
    }
    Ok(answer.principal)
}

/// Runs CPU-heavy key derivation on tokio's blocking threads.
pub(crate) async fn off_runtime<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only when the runtime shuts down before the work started.
        Err(_) => Err(ClientError::Closed { what: "runtime" }),
    }
}

fn invalid(reason: String) -> ClientError {
    ClientError::InvalidCredentials { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let scram = Credentials::Scram {
            user: "alice".into(),
            password: "hunter2".into(),
        };
        let token = Credentials::Token("ft_0123456789".into());
        let shown = format!("{scram:?} {token:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("ft_0123"),
            "{shown}"
        );
    }

    #[test]
    fn a_mechanism_the_broker_does_not_offer_is_refused_before_sending() {
        let offered_list = vec!["FERRY-TOKEN".to_string()];
        let refused = offered(&offered_list, SCRAM_SHA_256);
        assert!(matches!(
            refused,
            Err(ClientError::UnsupportedMechanism { .. })
        ));
        assert!(offered(&offered_list, TOKEN_MECHANISM).is_ok());
        assert!(offered(&[], SCRAM_SHA_256).is_ok());
    }
}
