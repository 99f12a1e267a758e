//! How ferryctl connects (`ClientOptions` from the global flags: TLS and
//! credentials) and what it says on stderr while it rides through a lost
//! connection: one line when it starts reconnecting, one when it is back.

use std::time::Duration;

use ferry_client::{
    ClientIdentity, ClientOptions, ConnectionState, Credentials, Pem, ReconnectPolicy, TlsOptions,
};
use tokio::sync::watch;

use crate::cli::Cli;
use crate::error::CliError;
use crate::password::read_password_file;

/// Holds the password of `--user` when `--password-file` is not given.
const PASSWORD_VARIABLE: &str = "FERRY_PASSWORD";
/// Holds an access token when neither `--user` nor `--token` is given.
const TOKEN_VARIABLE: &str = "FERRY_TOKEN";

/// The first connection is tried for 5 s (the client's default); after
/// that, `--reconnect-timeout-ms` (default: keep trying).
pub fn client_options(cli: &Cli) -> Result<ClientOptions, CliError> {
    Ok(ClientOptions {
        reconnect: ReconnectPolicy {
            deadline: cli.reconnect_timeout_ms.map(Duration::from_millis),
            ..ReconnectPolicy::default()
        },
        tls: tls_options(cli),
        credentials: credentials(cli, |name| std::env::var(name).ok())?,
        ..ClientOptions::default()
    })
}

/// Who to authenticate as: `--token`; else `--user` with the password of
/// `--password-file` or `FERRY_PASSWORD`; else the token in `FERRY_TOKEN`;
/// else nobody. (clap refuses `--user` with `--token`.) `variable` reads
/// the environment.
fn credentials(
    cli: &Cli,
    variable: impl Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, CliError> {
    let set = |name: &str| variable(name).filter(|value| !value.is_empty());
    if let Some(token) = &cli.token {
        return Ok(Some(Credentials::Token(token.clone())));
    }
    if let Some(user) = &cli.user {
        let password = match &cli.password_file {
            Some(path) => read_password_file(path)?,
            None => set(PASSWORD_VARIABLE)
                .ok_or_else(|| CliError::MissingPassword { user: user.clone() })?,
        };
        return Ok(Some(Credentials::Scram {
            user: user.clone(),
            password,
        }));
    }
    Ok(set(TOKEN_VARIABLE).map(Credentials::Token))
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn resolve(args: &[&str], variables: &[(&str, &str)]) -> Result<Option<Credentials>, CliError> {
        let cli = Cli::try_parse_from([&["ferryctl"], args, &["whoami"]].concat());
        let cli = cli.map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
        credentials(&cli, |name| {
            variables
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    fn scram(user: &str, password: &str) -> Option<Credentials> {
        Some(Credentials::Scram {
            user: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn flags_and_variables_become_credentials() {
        let token = Some(Credentials::Token("t0k".into()));
        assert_eq!(resolve(&[], &[]).ok(), Some(None));
        assert_eq!(resolve(&["--token", "t0k"], &[]).ok(), Some(token.clone()));
        assert_eq!(resolve(&[], &[("FERRY_TOKEN", "t0k")]).ok(), Some(token));
        let with_password = resolve(&["--user", "admin"], &[("FERRY_PASSWORD", "pw")]);
        assert_eq!(with_password.ok(), Some(scram("admin", "pw")));
        // An explicit user beats a token in the environment.
        let both = [("FERRY_PASSWORD", "pw"), ("FERRY_TOKEN", "t0k")];
        assert_eq!(
            resolve(&["--user", "admin"], &both).ok(),
            Some(scram("admin", "pw"))
        );
    }

    #[test]
    fn a_user_without_a_password_is_a_usage_error() {
        let missing = resolve(&["--user", "admin"], &[("FERRY_PASSWORD", "")]);
        assert!(matches!(&missing, Err(e) if e.is_usage() && e.exit_code() == 2));
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.to_str().unwrap();
        let args = ["--user", "admin", "--password-file", path];
        let from_file = resolve(&args, &[("FERRY_PASSWORD", "ignored")]);
        assert_eq!(from_file.ok(), Some(scram("admin", "from-file")));
    }

    #[test]
    fn conflicting_or_orphan_flags_are_refused_by_clap() {
        assert!(
            Cli::try_parse_from(["ferryctl", "--user", "a", "--token", "t", "whoami"]).is_err()
        );
        assert!(Cli::try_parse_from(["ferryctl", "--password-file", "pw", "whoami"]).is_err());
    }
}
