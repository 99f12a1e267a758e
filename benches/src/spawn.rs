//! `--spawn-broker PATH`: run a broker of our own on 127.0.0.1 with a
//! temporary data directory, so one command gives a number. The address is
//! read from the broker's JSON "ready" log line (it binds port 0). With
//! `--tls` the broker gets a self-signed certificate made at start (rcgen),
//! which the clients of [`SpawnedBroker::target`] trust.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::target::Target;

/// The names the spawned broker's certificate carries (it listens on
/// 127.0.0.1; clients check the name they connect to).
const CERTIFICATE_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

pub struct SpawnedBroker {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    /// The broker's self-signed certificate (PEM) when it speaks TLS.
    pub certificate_pem: Option<Vec<u8>>,
    _temp: tempfile::TempDir,
}

/// A self-signed certificate and key for the broker, written to `dir`:
/// the certificate's PEM and the broker flags naming the files.
fn self_signed_tls(dir: &Path) -> Result<(Vec<u8>, Vec<OsString>), String> {
    let names: Vec<String> = CERTIFICATE_NAMES.iter().map(|n| n.to_string()).collect();
    let failed = |e: rcgen::Error| format!("self-signed certificate: {e}");
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let params = rcgen::CertificateParams::new(names).map_err(failed)?;
    let certificate = params.self_signed(&key).map_err(failed)?;
    let (cert_path, key_path) = (dir.join("broker.pem"), dir.join("broker.key"));
    let pem = certificate.pem();
    std::fs::write(&cert_path, &pem).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    std::fs::write(&key_path, key.serialize_pem())
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let flags = vec![
        "--tls-cert".into(),
        cert_path.into_os_string(),
        "--tls-key".into(),
        key_path.into_os_string(),
    ];
    Ok((pem.into_bytes(), flags))
}

impl SpawnedBroker {
    /// Starts `binary` with `extra_args`, over TLS when `tls` is set.
    pub fn start(binary: &Path, extra_args: &[String], tls: bool) -> Result<SpawnedBroker, String> {
        // Beside the build, on the same file system a real deployment would use.
        let temp = tempfile::Builder::new()
            .prefix("ferry-bench-data-")
            .tempdir_in(std::env::current_dir().map_err(|e| e.to_string())?)
            .or_else(|_| tempfile::tempdir())
            .map_err(|e| format!("temp dir: {e}"))?;
        let data_dir = temp.path().join("data");
        let (certificate_pem, tls_flags) = match tls {
            true => {
                let (pem, flags) = self_signed_tls(temp.path())?;
                (Some(pem), flags)
            }
            false => (None, Vec::new()),
        };
        let mut child = Command::new(binary)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(&data_dir)
            .args(&tls_flags)
            .args(extra_args)
            .env("FERRY_LOG", "warn,ferry_broker=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        // Brokers log to stderr (older builds to stdout): watch both.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        watch_for_ready(stdout, tx.clone());
        watch_for_ready(stderr, tx);
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                return Err("the spawned broker did not become ready within 30 s".into());
            }
        };
        Ok(SpawnedBroker {
            child,
            addr,
            data_dir,
            certificate_pem,
            _temp: temp,
        })
    }

    /// How clients reach this broker: over TLS trusting its certificate,
    /// or plaintext.
    pub fn target(&self) -> Target {
        match &self.certificate_pem {
            Some(pem) => Target::tls(&self.addr, pem),
            None => Target::plaintext(&self.addr),
        }
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// Sends the address of the broker's "ready" line, and passes its warnings
/// and errors (and anything not JSON, such as a panic) through to stderr.
fn watch_for_ready(stream: impl std::io::Read + Send + 'static, ready: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if line.contains("ferry broker ready") {
                if let Some(listen) = parsed["fields"]["listen"].as_str() {
                    let _ = ready.send(listen.to_string());
                }
            }
            if !matches!(parsed["level"].as_str(), Some("INFO" | "DEBUG" | "TRACE")) {
                eprintln!("{line}");
            }
        }
    });
}
