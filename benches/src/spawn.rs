//! `--spawn-broker PATH`: run a broker of our own on 127.0.0.1 with a
//! temporary data directory, so one command gives a number. The address is
//! read from the broker's JSON "ready" log line (it binds port 0).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct SpawnedBroker {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl SpawnedBroker {
    pub fn start(binary: &Path, extra_args: &[String]) -> Result<SpawnedBroker, String> {
        // Beside the build, on the same file system a real deployment would use.
        let temp = tempfile::Builder::new()
            .prefix("ferry-bench-data-")
            .tempdir_in(std::env::current_dir().map_err(|e| e.to_string())?)
            .or_else(|_| tempfile::tempdir())
            .map_err(|e| format!("temp dir: {e}"))?;
        let data_dir = temp.path().join("data");
        let mut child = Command::new(binary)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(&data_dir)
            .args(extra_args)
            .env("FERRY_LOG", "warn,ferry_broker=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("ferry broker ready") {
                    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    if let Some(listen) = parsed["fields"]["listen"].as_str() {
                        let _ = tx.send(listen.to_string());
                    }
                }
            }
        });
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
            _temp: temp,
        })
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
