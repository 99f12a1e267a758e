//! Where the load goes: the broker's address and the client options that
//! reach it, plaintext or TLS (trusting the spawned broker's certificate).
//! Every scenario connects through [`Target::connect`].

use ferry_client::{Client, ClientOptions, Pem, TlsOptions};

#[derive(Debug, Clone)]
pub struct Target {
    pub addr: String,
    pub options: ClientOptions,
}

impl Target {
    /// A broker at `addr` spoken to in plaintext.
    pub fn plaintext(addr: &str) -> Target {
        Target {
            addr: addr.to_string(),
            options: ClientOptions::default(),
        }
    }

    /// A broker at `addr` spoken to over TLS, trusting `ca_pem`.
    pub fn tls(addr: &str, ca_pem: &[u8]) -> Target {
        Target {
            addr: addr.to_string(),
            options: ClientOptions {
                tls: Some(TlsOptions::new(Pem::Bytes(ca_pem.to_vec()))),
                ..ClientOptions::default()
            },
        }
    }

    /// Whether clients speak TLS.
    pub fn is_tls(&self) -> bool {
        self.options.tls.is_some()
    }

    /// A new client (its own connection).
    pub async fn connect(&self) -> Result<Client, String> {
        Client::connect_with(&self.addr, self.options.clone())
            .await
            .map_err(|e| e.to_string())
    }
}
