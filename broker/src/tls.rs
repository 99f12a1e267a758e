//! TLS for client connections. Owns the rustls `ServerConfig`, built at
//! start from the PEM files of `--tls-cert`, `--tls-key` and (mutual TLS)
//! `--tls-client-ca`, with the ring provider and TLS 1.2 and 1.3, and built
//! again from the same files on SIGHUP (a failure keeps the config in use);
//! the server side of each handshake: at most [`TLS_HANDSHAKES_LIMIT`] at
//! once, each within `handshake_timeout_ms`; and the user a verified client
//! certificate names ([`certificate_user`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, ServerConnection};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::config::Config;
use crate::error::BrokerError;

/// TLS handshakes in progress at once; connections accepted past this are
/// closed at once (a handshake costs CPU before the client is known).
pub const TLS_HANDSHAKES_LIMIT: usize = 256;

/// Longest user name a client certificate may carry (characters).
pub const USER_NAME_MAX_CHARS: usize = 128;

/// The name of the unauthenticated principal, never a user's.
const ANONYMOUS_USER: &str = "ANONYMOUS";

/// Why one connection's TLS handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeFailure {
    #[error("no TLS handshake within {0} ms")]
    TimedOut(u64),
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
}

/// The PEM files the server config is built from (read again on reload).
#[derive(Debug, Clone)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn server_config(&self) -> Result<ServerConfig, BrokerError> {
        server_config(&self.cert, &self.key, self.client_ca.as_deref())
    }
}

/// The broker's TLS side: the acceptor in use (swapped by a reload; each
/// handshake takes the one current when it starts), the files it came
/// from, and the handshake budget.
pub struct Tls {
    acceptor: RwLock<TlsAcceptor>,
    files: TlsFiles,
    handshakes: Arc<Semaphore>,
    timeout_ms: u64,
}

impl Tls {
    /// TLS as configured, or `None` when the broker speaks plaintext.
    pub fn from_config(config: &Config) -> Result<Option<Tls>, BrokerError> {
        let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
            return Ok(None);
        };
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.tls_client_ca.clone(),
        };
        Tls::new(files, config.handshake_timeout_ms).map(Some)
    }

    /// TLS from `files`, each handshake allowed `timeout_ms`.
    fn new(files: TlsFiles, timeout_ms: u64) -> Result<Tls, BrokerError> {
        let server = files.server_config()?;
        Ok(Tls {
            acceptor: RwLock::new(TlsAcceptor::from(Arc::new(server))),
            files,
            handshakes: Arc::new(Semaphore::new(TLS_HANDSHAKES_LIMIT)),
            timeout_ms,
        })
    }

    /// Reads the PEM files again and, if they make a valid config, serves
    /// new handshakes with it. On error the config in use stays. Sessions
    /// already established keep the config they started with.
    pub fn reload(&self) -> Result<(), BrokerError> {
        let server = self.files.server_config()?;
        *self.acceptor.write() = TlsAcceptor::from(Arc::new(server));
        Ok(())
    }

    /// [`Tls::reload`] on a blocking thread (it reads files), logged.
    async fn reload_logged(self: &Arc<Self>) {
        let tls = self.clone();
        let cert = self.files.cert.display().to_string();
        match tokio::task::spawn_blocking(move || tls.reload()).await {
            Ok(Ok(())) => tracing::info!(%cert, "SIGHUP: TLS certificates reloaded"),
            Ok(Err(error)) => tracing::error!(
                %cert,
                %error,
                "SIGHUP: TLS certificates not reloaded, the previous ones stay in use"
            ),
            Err(error) => tracing::error!(%error, "SIGHUP: the TLS reload task failed"),
        }
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
        let acceptor = self.acceptor.read().clone();
        let result = tokio::time::timeout(timeout, acceptor.accept(stream)).await;
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

/// Installs the SIGHUP handler (from then on SIGHUP no longer ends the
/// process) and returns the task that, on each SIGHUP until `shutdown`,
/// reloads `tls` ([`Tls::reload`]), or without TLS logs that there is
/// nothing to reload.
pub fn reload_on_hangup(
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                received = hangups.recv() => if received.is_none() { return },
                _ = shutdown.cancelled() => return,
            }
            match &tls {
                Some(tls) => tls.reload_logged().await,
                None => tracing::info!("SIGHUP: no TLS configured, nothing to reload"),
            }
        }
    })
}

/// The user a verified client certificate names, by this rule: the first
/// DNS name of its subject alternative names if it has one, else the first
/// common name (CN) of its subject; neither gives no user. The name so
/// chosen must be a valid user name ([`is_valid_user_name`]), or there is
/// no user (the next candidate is not tried). `None` too without a client
/// certificate (no mutual TLS). Only the end-entity certificate counts.
pub fn certificate_user(conn: &ServerConnection) -> Option<String> {
    let certificate = conn.peer_certificates()?.first()?;
    user_from_der(certificate.as_ref())
}

/// [`certificate_user`] for one DER certificate.
fn user_from_der(der: &[u8]) -> Option<String> {
    let certificate = match X509Certificate::from_der(der) {
        Ok((_, certificate)) => certificate,
        Err(error) => {
            tracing::debug!(%error, "client certificate not parsed: no user");
            return None;
        }
    };
    let name = match certificate_name(&certificate) {
        Ok(Some(name)) => name,
        Ok(None) => {
            tracing::debug!("client certificate has neither a DNS name nor a CN: no user");
            return None;
        }
        Err(error) => {
            tracing::debug!(%error, "client certificate names unreadable: no user");
            return None;
        }
    };
    if !is_valid_user_name(name) {
        tracing::debug!(
            name,
            "client certificate name is not a valid user name: no user"
        );
        return None;
    }
    Some(name.to_string())
}

/// The first DNS subject alternative name, else the first subject CN.
fn certificate_name<'a>(
    certificate: &'a X509Certificate<'_>,
) -> Result<Option<&'a str>, x509_parser::error::X509Error> {
    if let Some(san) = certificate.subject_alternative_name()? {
        let dns = san.value.general_names.iter().find_map(|name| match name {
            GeneralName::DNSName(dns) => Some(*dns),
            _ => None,
        });
        if dns.is_some() {
            return Ok(dns);
        }
    }
    match certificate.subject().iter_common_name().next() {
        Some(common_name) => common_name.as_str().map(Some),
        None => Ok(None),
    }
}

/// A user name: 1 to [`USER_NAME_MAX_CHARS`] characters, each an ASCII
/// letter or digit or one of `.`, `_`, `@`, `-`; not [`ANONYMOUS_USER`].
pub fn is_valid_user_name(name: &str) -> bool {
    (1..=USER_NAME_MAX_CHARS).contains(&name.len())
        && name != ANONYMOUS_USER
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
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

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        SanType,
    };
    use tokio_rustls::rustls::ClientConfig;
    use tokio_rustls::TlsConnector;

    use super::*;

    /// A self-signed certificate with `dns` names and, if given, a CN.
    fn certificate(dns: &[&str], common_name: Option<&str>) -> Vec<u8> {
        let names: Vec<String> = dns.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = DistinguishedName::new();
        if let Some(common_name) = common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_first_dns_name_wins_over_the_common_name() {
        let der = certificate(&["svc.orders", "other.example"], Some("carol"));
        assert_eq!(user_from_der(&der).as_deref(), Some("svc.orders"));
    }

    #[test]
    fn the_common_name_is_used_without_a_dns_name() {
        let der = certificate(&[], Some("alice@example.com"));
        assert_eq!(user_from_der(&der).as_deref(), Some("alice@example.com"));
        // Alternative names that are not DNS names do not count.
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "bob");
        params.subject_alt_names = vec![
            SanType::IpAddress([127, 0, 0, 1].into()),
            SanType::Rfc822Name("mallory@example.com".try_into().unwrap()),
        ];
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(user_from_der(&der).as_deref(), Some("bob"));
    }

    #[test]
    fn a_name_that_is_not_a_valid_user_name_gives_no_user() {
        let too_long = "a".repeat(USER_NAME_MAX_CHARS + 1);
        for name in [
            "Alice Smith",
            "*.example.com",
            "a/b",
            "é",
            too_long.as_str(),
        ] {
            assert_eq!(user_from_der(&certificate(&[], Some(name))), None, "{name}");
        }
        // The DNS name decides: an invalid one does not fall back to the CN.
        let der = certificate(&["*.example.com"], Some("carol"));
        assert_eq!(user_from_der(&der), None);
        let longest = "a".repeat(USER_NAME_MAX_CHARS);
        let der = certificate(&[], Some(&longest));
        assert_eq!(user_from_der(&der), Some(longest));
    }

    #[test]
    fn no_dns_name_and_no_common_name_gives_no_user() {
        assert_eq!(user_from_der(&certificate(&[], None)), None);
        assert_eq!(user_from_der(b"not a certificate"), None);
    }

    #[test]
    fn user_names_follow_one_rule() {
        for good in ["alice", "svc.orders-1", "a@b", "x_y", "A9"] {
            assert!(is_valid_user_name(good), "{good}");
        }
        for bad in ["", "a b", "a:b", "ANONYMOUS", "ü"] {
            assert!(!is_valid_user_name(bad), "{bad}");
        }
    }

    /// How long the handshakes of these tests may take (ms).
    const HANDSHAKE_MS: u64 = 5_000;

    /// A CA: its PEM certificate and what signs with it.
    fn ca() -> (String, Issuer<'static, KeyPair>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(params, key))
    }

    /// A certificate for `names` signed by `issuer`: (cert, key) PEM.
    fn leaf(issuer: &Issuer<'static, KeyPair>, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names).unwrap();
        let certificate = params.signed_by(&key, issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    /// A client trusting `ca_pem` that presents `identity`.
    fn connector(ca_pem: &str, identity: &(String, String)) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let chain = vec![CertificateDer::from_pem_slice(identity.0.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(identity.1.as_bytes()).unwrap();
        let provider = Arc::new(ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        TlsConnector::from(Arc::new(config))
    }

    /// The user the broker's side of a real handshake sees for a client
    /// certificate naming `client_names`, with or without mutual TLS.
    async fn handshake_user(client_names: &[&str], mutual: bool) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca();
        let server = leaf(&issuer, &["localhost"]);
        let client = leaf(&issuer, client_names);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let files = TlsFiles {
            cert: write("server.pem", &server.0),
            key: write("server.key", &server.1),
            client_ca: mutual.then(|| write("ca.pem", &ca_pem)),
        };
        let tls = Tls::new(files, HANDSHAKE_MS).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let slot = tls.handshake_slot().unwrap();
            let stream = tls.accept(slot, stream).await.unwrap();
            certificate_user(stream.get_ref().1)
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let _client = connector(&ca_pem, &client)
            .connect(name, stream)
            .await
            .unwrap();
        served.await.unwrap()
    }

    #[tokio::test]
    async fn certificate_user_names_the_verified_client_certificate() {
        let user = handshake_user(&["svc.orders"], true).await;
        assert_eq!(user.as_deref(), Some("svc.orders"));
        // Without mutual TLS no certificate is asked for: no user.
        assert_eq!(handshake_user(&["svc.orders"], false).await, None);
    }
}
