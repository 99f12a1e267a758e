//! TLS for the client: [`TlsOptions`] (whose CA to trust, an optional
//! client identity for mutual TLS, the server name to check) and the
//! connector built from them for each connection (ring provider, TLS 1.2
//! and 1.3). The broker's certificate is always verified, its name
//! included.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::error::{ClientError, Result};

/// Where PEM data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file, read at each connection (a replaced file is picked up).
    File(PathBuf),
    /// PEM text in memory.
    Bytes(Vec<u8>),
}

impl Pem {
    /// Where it comes from, for errors.
    fn describe(&self) -> String {
        match self {
            Pem::File(path) => path.display().to_string(),
            Pem::Bytes(_) => "PEM bytes".into(),
        }
    }

    fn certificates(&self, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
        let certificates: std::result::Result<Vec<_>, _> = match self {
            Pem::File(path) => CertificateDer::pem_file_iter(path).and_then(|it| it.collect()),
            Pem::Bytes(bytes) => CertificateDer::pem_slice_iter(bytes).collect(),
        };
        match certificates {
            Ok(certificates) if certificates.is_empty() => {
                Err(self.invalid(what, "no certificate found".into()))
            }
            Ok(certificates) => Ok(certificates),
            Err(error) => Err(self.invalid(what, error.to_string())),
        }
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>> {
        let key = match self {
            Pem::File(path) => PrivateKeyDer::from_pem_file(path),
            Pem::Bytes(bytes) => PrivateKeyDer::from_pem_slice(bytes),
        };
        key.map_err(|error| self.invalid("client key", error.to_string()))
    }

    fn invalid(&self, what: &'static str, reason: String) -> ClientError {
        ClientError::TlsConfig {
            what,
            origin: self.describe(),
            reason,
        }
    }
}

/// A client certificate chain and its key, for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate chain, the client's own first.
    pub cert: Pem,
    /// The private key of the first certificate.
    pub key: Pem,
}

/// How a client speaks TLS to the broker.
///
/// ```
/// use ferry_client::{ClientOptions, Pem, TlsOptions};
/// let options = ClientOptions {
///     tls: Some(TlsOptions::new(Pem::File("ca.pem".into()))),
///     ..ClientOptions::default()
/// };
/// assert!(options.tls.is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The CA certificates the broker's certificate must chain to.
    pub ca: Pem,
    /// Presented when the broker asks for one (mutual TLS).
    pub identity: Option<ClientIdentity>,
    /// The name the broker's certificate must carry; default: the host of
    /// the address connected to (a DNS name or an IP address).
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Trust `ca`, no client certificate, the name from the address.
    pub fn new(ca: Pem) -> TlsOptions {
        TlsOptions {
            ca,
            identity: None,
            server_name: None,
        }
    }

    fn connector(&self) -> Result<TlsConnector> {
        let mut roots = RootCertStore::empty();
        for certificate in self.ca.certificates("CA certificates")? {
            roots
                .add(certificate)
                .map_err(|error| self.ca.invalid("CA certificates", error.to_string()))?;
        }
        let provider: Arc<CryptoProvider> = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| self.ca.invalid("TLS versions", error.to_string()))?
            .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let chain = identity.cert.certificates("client certificate")?;
                let key = identity.key.private_key()?;
                builder.with_client_auth_cert(chain, key).map_err(|error| {
                    identity
                        .cert
                        .invalid("client certificate", error.to_string())
                })?
            }
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The name to check: the override, or the host part of `addr`.
    fn server_name(&self, addr: &str) -> Result<ServerName<'static>> {
        let host = match &self.server_name {
            Some(name) => name.as_str(),
            None => host_of(addr),
        };
        ServerName::try_from(host.to_string()).map_err(|error| ClientError::TlsConfig {
            what: "server name",
            origin: host.to_string(),
            reason: error.to_string(),
        })
    }

    /// The TLS handshake over `stream`, connected to `addr`.
    pub(crate) async fn handshake(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>> {
        let connector = self.connector()?;
        let name = self.server_name(addr)?;
        connector
            .connect(name, stream)
            .await
            .map_err(|error| handshake_error(addr, error))
    }
}

/// `host` of `host:port` (brackets of an IPv6 literal removed).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A refused certificate (ours or the broker's) is `TlsRefused`: trying
/// again would not help. Anything else is a connection failure.
fn handshake_error(addr: &str, error: std::io::Error) -> ClientError {
    use tokio_rustls::rustls::Error as TlsError;
    let refused = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>())
        .filter(|tls| {
            matches!(
                tls,
                TlsError::InvalidCertificate(_) | TlsError::AlertReceived(_)
            )
        });
    match refused {
        Some(tls) => ClientError::TlsRefused {
            addr: addr.to_string(),
            reason: tls.to_string(),
        },
        None => ClientError::Unreachable {
            addr: addr.to_string(),
            reason: format!("TLS handshake: {error}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_defaults_to_the_host_of_the_address() {
        assert_eq!(host_of("localhost:7171"), "localhost");
        assert_eq!(host_of("127.0.0.1:7171"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7171"), "::1");
    }

    #[test]
    fn a_ca_without_certificates_is_a_configuration_error() {
        let options = TlsOptions::new(Pem::Bytes(b"not pem".to_vec()));
        assert!(matches!(
            options.connector(),
            Err(ClientError::TlsConfig { .. })
        ));
    }
}
