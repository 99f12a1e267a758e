//! TLS for client connections. Owns the rustls `ServerConfig`, built once
//! at start from the PEM files of `--tls-cert`, `--tls-key` and (mutual
//! TLS) `--tls-client-ca`, with the ring provider and TLS 1.2 and 1.3; and
//! the server side of each handshake: at most [`TLS_HANDSHAKES_LIMIT`] at
//! once, each within `handshake_timeout_ms`. Client certificates are
//! verified against the client CA; the principal they name is not used yet.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::error::BrokerError;

/// TLS handshakes in progress at once; connections accepted past this are
/// closed at once (a handshake costs CPU before the client is known).
pub const TLS_HANDSHAKES_LIMIT: usize = 256;

/// Why one connection's TLS handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeFailure {
    #[error("no TLS handshake within {0} ms")]
    TimedOut(u64),
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
}

/// The broker's TLS side: the acceptor and the handshake budget.
pub struct Tls {
    acceptor: TlsAcceptor,
    handshakes: Arc<Semaphore>,
    timeout_ms: u64,
}

impl Tls {
    /// TLS as configured, or `None` when the broker speaks plaintext.
    pub fn from_config(config: &Config) -> Result<Option<Tls>, BrokerError> {
        let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
            return Ok(None);
        };
        let server = server_config(cert, key, config.tls_client_ca.as_deref())?;
        Ok(Some(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            handshakes: Arc::new(Semaphore::new(TLS_HANDSHAKES_LIMIT)),
            timeout_ms: config.handshake_timeout_ms,
        }))
    }

    /// A place for one more handshake, unless [`TLS_HANDSHAKES_LIMIT`] run.
    pub fn handshake_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.handshakes.clone().try_acquire_owned().ok()
    }

    /// Runs the server side of the handshake on `stream`, holding `slot`
    /// until it ends.
    pub async fn accept(
        &self,
        slot: OwnedSemaphorePermit,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, HandshakeFailure> {
        let timeout = Duration::from_millis(self.timeout_ms);
        let result = tokio::time::timeout(timeout, self.acceptor.accept(stream)).await;
        drop(slot);
        match result {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(HandshakeFailure::Tls(error)),
            Err(_) => Err(HandshakeFailure::TimedOut(self.timeout_ms)),
        }
    }

    /// [`Tls::accept`], logging a failure with the peer.
    pub async fn accept_logged(
        &self,
        slot: OwnedSemaphorePermit,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        match self.accept(slot, stream).await {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::info!(%peer, %error, "closing connection: TLS handshake failed");
                None
            }
        }
    }
}

/// The server config: `cert`'s chain and `key`; with `client_ca`, client
/// certificates are required and verified against it.
fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, BrokerError> {
    let chain = read_certificates(cert)?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|source| BrokerError::TlsPem {
        what: "private key",
        path: key.to_path_buf(),
        source,
    })?;
    let cert_key_error = |source| BrokerError::TlsCertificateKey {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    let provider: Arc<CryptoProvider> = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(cert_key_error)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = read_roots(path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| BrokerError::TlsClientVerifier {
                    path: path.to_path_buf(),
                    source,
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, private_key)
        .map_err(cert_key_error)
}

/// Every certificate in the PEM file at `path`; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, BrokerError> {
    let pem_error = |source| BrokerError::TlsPem {
        what: "certificates",
        path: path.to_path_buf(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certificates.is_empty() {
        return Err(BrokerError::TlsNoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// The CA certificates at `path` as trust anchors.
fn read_roots(path: &Path) -> Result<RootCertStore, BrokerError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path)? {
        roots
            .add(certificate)
            .map_err(|source| BrokerError::TlsClientCa {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(roots)
}
