//! One connection's identity: the principal, how it authenticated, when its
//! token expires, and a SCRAM exchange between its two rounds.
//!
//! A connection starts anonymous, or as the user its verified TLS client
//! certificate names. A SASL exchange (SCRAM-SHA-256 or an access token)
//! makes it that user. A failed exchange is answered with
//! `AuthenticationFailed` and the connection is closed; failures count
//! against the source IP (`ratelimit.rs`), and past the limit an IP gets
//! `Throttled` before any credential is looked at.

use std::net::SocketAddr;

use ferry_protocol::scram::{ScramServer, SCRAM_SHA_256};

use super::{now_ms, AuthMethod, Principal, Security, UserName, TOKEN_MECHANISM};
use crate::error::BrokerError;

/// A connection's identity.
pub struct Session {
    pub principal: Principal,
    pub method: AuthMethod,
    pub peer: SocketAddr,
    /// Unix ms at which the token it authenticated with expires.
    pub expires_at_ms: Option<u64>,
    /// A SCRAM exchange waiting for the client-final message.
    scram: Option<(ScramServer, String)>,
}

/// What one SASL round answers.
pub enum SaslStep {
    /// Send these bytes; the exchange goes on.
    Continue(Vec<u8>),
    /// Authenticated: send these bytes (possibly empty).
    Done(Vec<u8>),
}

impl Session {
    /// A new connection from `peer`, authenticated already if a verified
    /// client certificate names a valid user.
    pub fn new(peer: SocketAddr, certificate_user: Option<String>) -> Session {
        let user = certificate_user.as_deref().and_then(UserName::parse);
        let (principal, method) = match user {
            Some(user) => (Principal::user(user), AuthMethod::Certificate),
            None => (Principal::anonymous(), AuthMethod::None),
        };
        Session {
            principal,
            method,
            peer,
            expires_at_ms: None,
            scram: None,
        }
    }

    pub fn authenticated(&self) -> bool {
        self.method != AuthMethod::None
    }

    /// One round of SASL. An error ends the exchange; the caller answers it
    /// and closes the connection.
    pub fn sasl_round(
        &mut self,
        security: &Security,
        mechanism: &str,
        bytes: &[u8],
    ) -> Result<SaslStep, BrokerError> {
        if matches!(self.method, AuthMethod::Scram | AuthMethod::Token { .. }) {
            return Err(BrokerError::AlreadyAuthenticated);
        }
        let ip = self.peer.ip();
        if self.scram.is_none() {
            let now = std::time::Instant::now();
            if let Err(retry_after) = security.auth_failures.check(ip, now) {
                return Err(BrokerError::AuthRateLimited {
                    retry_after_ms: retry_after.as_millis() as u64,
                });
            }
        }
        let step = match mechanism {
            SCRAM_SHA_256 => self.scram_round(security, bytes),
            TOKEN_MECHANISM => self.token_round(security, bytes),
            other => {
                return Err(BrokerError::UnsupportedMechanism(
                    other.chars().take(64).collect(),
                ))
            }
        };
        if matches!(step, Err(BrokerError::AuthenticationFailed)) {
            let now = std::time::Instant::now();
            security.auth_failures.record_failure(ip, now);
            tracing::info!(peer = %self.peer, mechanism, "authentication failed");
        }
        step
    }

    fn scram_round(&mut self, security: &Security, bytes: &[u8]) -> Result<SaslStep, BrokerError> {
        match self.scram.take() {
            None => {
                let (mut exchange, user) =
                    ScramServer::start(bytes).map_err(|_| BrokerError::AuthenticationFailed)?;
                let credentials = security.scram_credentials(&user);
                let server_first = exchange.server_first(&credentials);
                self.scram = Some((exchange, user));
                Ok(SaslStep::Continue(server_first))
            }
            Some((exchange, user)) => {
                let server_final = exchange
                    .finish(bytes)
                    .map_err(|_| BrokerError::AuthenticationFailed)?;
                // Fake credentials never verify, so `user` exists; it must
                // still be a valid name to become a principal.
                let name = UserName::parse(&user).ok_or(BrokerError::AuthenticationFailed)?;
                self.become_user(name, AuthMethod::Scram, None);
                Ok(SaslStep::Done(server_final))
            }
        }
    }

    fn token_round(&mut self, security: &Security, bytes: &[u8]) -> Result<SaslStep, BrokerError> {
        let token = std::str::from_utf8(bytes).map_err(|_| BrokerError::AuthenticationFailed)?;
        let (user, id) = security
            .verify_token(token, now_ms())
            .ok_or(BrokerError::AuthenticationFailed)?;
        let expires_at_ms = security.token_expiry(&id);
        self.become_user(user, AuthMethod::Token { id }, expires_at_ms);
        Ok(SaslStep::Done(Vec::new()))
    }

    fn become_user(&mut self, user: UserName, method: AuthMethod, expires_at_ms: Option<u64>) {
        tracing::info!(peer = %self.peer, user = %user, method = method.name(), "authenticated");
        self.principal = Principal::user(user);
        self.method = method;
        self.expires_at_ms = expires_at_ms;
    }
}
