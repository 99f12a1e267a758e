//! How ferryctl connects (`ClientOptions` from the global flags, TLS
//! included) and what
//! it says on stderr while it rides through a lost connection: one line
//! when it starts reconnecting, one when it is back.

use std::time::Duration;

use ferry_client::{
    ClientIdentity, ClientOptions, ConnectionState, Pem, ReconnectPolicy, TlsOptions,
};
use tokio::sync::watch;

use crate::cli::Cli;

/// The first connection is tried for 5 s (the client's default); after
/// that, `--reconnect-timeout-ms` (default: keep trying).
pub fn client_options(cli: &Cli) -> ClientOptions {
    ClientOptions {
        reconnect: ReconnectPolicy {
            deadline: cli.reconnect_timeout_ms.map(Duration::from_millis),
            ..ReconnectPolicy::default()
        },
        tls: tls_options(cli),
        ..ClientOptions::default()
    }
}

/// TLS when `--tls-ca` is given, with the client identity of `--tls-cert`
/// and `--tls-key` (clap makes sure they come together).
fn tls_options(cli: &Cli) -> Option<TlsOptions> {
    let ca = cli.tls_ca.clone()?;
    let identity = cli
        .tls_cert
        .clone()
        .zip(cli.tls_key.clone())
        .map(|(cert, key)| ClientIdentity {
            cert: Pem::File(cert),
            key: Pem::File(key),
        });
    Some(TlsOptions {
        identity,
        ..TlsOptions::new(Pem::File(ca))
    })
}

/// Prints `ferryctl: lost ...; reconnecting` once reconnect attempts start
/// failing, and `ferryctl: reconnected ...` when a connection is back.
pub fn report_reconnects(mut state: watch::Receiver<ConnectionState>, addr: String) {
    tokio::spawn(async move {
        let mut away = false;
        while state.changed().await.is_ok() {
            let line = match &*state.borrow_and_update() {
                ConnectionState::Reconnecting { error, .. } if !away => {
                    away = true;
                    format!("lost the broker at {addr} ({error}); reconnecting")
                }
                ConnectionState::Connected { .. } if away => {
                    away = false;
                    format!("reconnected to {addr}")
                }
                _ => continue,
            };
            eprintln!("ferryctl: {line}");
        }
    });
}
