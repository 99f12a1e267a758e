//! Harness for end-to-end tests: runs the real `ferry-broker` binary on an
//! OS-assigned port of 127.0.0.1 with a temporary data directory (and extra
//! flags, e.g. `--auth required`), learns the address from its JSON "ready"
//! log line, and can stop it with SIGTERM or SIGKILL and start it again on
//! the same data. Runs `ferryctl` against it, with extra environment and a
//! bounded wait when asked.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod raw;

/// Held by tests that load the machine or measure time, so that within one
/// test binary they do not run at the same time on CI's two cores.
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until no other heavy or timing-sensitive test of this binary runs.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().await
}

/// Raises this process's open-file soft limit to its hard limit (brokers
/// spawned afterwards inherit it) and returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

/// How long a broker may take to report ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of a workspace binary, building it if it is missing. Note: `cargo
/// test --workspace` (the CI command) rebuilds the binaries; with `cargo test
/// -p ferry-e2e` alone, run `cargo build --bins` first or stale binaries run.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = profile_dir.join(name);
    if !path.exists() {
        // Each binary is built by the package of the same name.
        let package = name;
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", package, "--bin", name]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo build");
        assert!(status.success(), "building {name} failed");
    }
    path
}

pub struct Broker {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    _temp: Option<Arc<tempfile::TempDir>>,
    extra_args: Vec<String>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Broker {
    /// A broker on a fresh temporary data directory.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker on `data_dir` (which the caller owns).
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Broker {
        let mut broker = Broker {
            child: None,
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        broker.spawn();
        broker
    }

    pub fn start_with(extra_args: &[&str]) -> Broker {
        let temp = Arc::new(tempfile::tempdir().expect("temp dir"));
        let data_dir = temp.path().join("data");
        let mut broker = Broker {
            child: None,
            addr: String::new(),
            data_dir,
            _temp: Some(temp),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        // First start: an OS-assigned port; restarts keep the same address.
        let listen = if self.addr.is_empty() {
            "127.0.0.1:0".to_string()
        } else {
            self.addr.clone()
        };
        let mut child = Command::new(binary("ferry-broker"))
            .arg("--listen")
            .arg(&listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--log-format")
            .arg("json")
            .args(&self.extra_args)
            .env("FERRY_LOG", "info")
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ferry-broker");
        // The broker logs to stderr; the log is kept for `log_contains`.
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ferry broker ready") {
                    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    if let Some(listen) = parsed["fields"]["listen"].as_str() {
                        let _ = ready_tx.send(listen.to_string());
                    }
                }
                log.lock().unwrap().push(line);
            }
        });
        let addr = ready_rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "broker did not become ready; log: {:?}",
                self.log.lock().unwrap()
            )
        });
        self.addr = addr;
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no shutdown code runs (the page cache survives).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().expect("wait")
    }

    /// Starts again on the same data directory and address.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker first");
        self.spawn();
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub async fn client(&self) -> ferry_client::Client {
        ferry_client::Client::connect(&self.addr)
            .await
            .expect("connect")
    }

    /// Runs `ferryctl --broker <addr> args...` with `stdin`, returning
    /// (exit code, stdout, stderr).
    pub fn ferryctl(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        ferryctl(&self.addr, args, stdin)
    }

    /// Like [`Broker::ferryctl`], with `env` set for the run (e.g.
    /// `FERRY_TOKEN`), no stdin, and killed after [`FERRYCTL_TIMEOUT`].
    pub fn ferryctl_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        ferryctl_with(&self.addr, args, env, "", FERRYCTL_TIMEOUT)
    }

    /// A client connected with `options` (credentials, TLS, ...).
    pub async fn client_with(
        &self,
        options: ferry_client::ClientOptions,
    ) -> ferry_client::Result<ferry_client::Client> {
        ferry_client::Client::connect_with(&self.addr, options).await
    }
}

/// Variables that would make `ferryctl` authenticate: never inherited from
/// the environment the tests run in (a test sets them itself).
const CREDENTIAL_VARIABLES: [&str; 2] = ["FERRY_TOKEN", "FERRY_PASSWORD"];

/// How long [`ferryctl_with`] lets one run of `ferryctl` take in
/// [`Broker::ferryctl_env`].
pub const FERRYCTL_TIMEOUT: Duration = Duration::from_secs(30);

/// `ferryctl --broker <addr> args...`, every stream piped, credential
/// variables cleared.
fn ferryctl_command(addr: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary("ferryctl"));
    command
        .arg("--broker")
        .arg(addr)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for variable in CREDENTIAL_VARIABLES {
        command.env_remove(variable);
    }
    command
}

/// `ferryctl --broker <addr> args...` running, every stream piped.
pub fn spawn_ferryctl(addr: &str, args: &[&str]) -> Child {
    ferryctl_command(addr, args)
        .spawn()
        .expect("start ferryctl")
}

/// Runs `ferryctl --broker <addr> args...` with `env` set and `stdin`
/// written, for at most `timeout` (then it is killed, its exit code is -1
/// and its stderr says so): (exit code, stdout, stderr).
pub fn ferryctl_with(
    addr: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
    timeout: Duration,
) -> (i32, String, String) {
    let mut command = ferryctl_command(addr, args);
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("start ferryctl");
    let writer = write_in_background(child.stdin.take(), stdin);
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for ferryctl") {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let stdout = stdout.join().unwrap_or_default();
    let mut stderr = stderr.join().unwrap_or_default();
    if code.is_none() {
        stderr.push_str(&format!("[harness: ferryctl killed after {timeout:?}]"));
    }
    (code.unwrap_or(-1), stdout, stderr)
}

/// Writes `text` to `pipe` (then closes it) on a thread of its own.
fn write_in_background(
    pipe: Option<std::process::ChildStdin>,
    text: &str,
) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    let text = text.to_string();
    std::thread::spawn(move || {
        if let Some(mut pipe) = pipe {
            let _ = pipe.write_all(text.as_bytes());
        }
    })
}

/// Reads `pipe` to its end (lossy UTF-8) on a thread of its own.
fn read_in_background(
    pipe: Option<impl std::io::Read + Send + 'static>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

pub fn ferryctl(addr: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = spawn_ferryctl(addr, args);
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let output = child.wait_with_output().expect("ferryctl output");
    let _ = writer.join();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The end offset of every partition of `topic`, in partition order.
pub async fn end_offsets(client: &ferry_client::Client, topic: &str) -> Vec<u64> {
    client
        .describe_topic(topic)
        .await
        .expect("describe topic")
        .partitions
        .iter()
        .map(|p| p.end_offset)
        .collect()
}

/// Reads every record of every partition from the start, until `expected`
/// records arrived (or 60 s passed), in the order the consumer got them.
pub async fn read_all(
    client: &ferry_client::Client,
    topic: &str,
    expected: usize,
) -> Vec<ferry_client::ConsumerRecord> {
    let config = ferry_client::ConsumerConfig {
        max_wait_ms: 200,
        ..ferry_client::ConsumerConfig::default()
    };
    let mut consumer = ferry_client::Consumer::with_config(client, topic, config)
        .await
        .expect("consumer");
    consumer
        .assign_all(ferry_client::SeekTo::Earliest)
        .await
        .expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut records = Vec::with_capacity(expected);
    while records.len() < expected && std::time::Instant::now() < deadline {
        records.extend(consumer.poll().await.expect("poll"));
    }
    records
}

/// Runs `ferry-broker` with `args` until it exits by itself (killed after
/// `timeout`): (exit code, or `None` if it had to be killed; its stderr).
pub fn broker_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(binary("ferry-broker"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry-broker");
    let deadline = std::time::Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    (code, stderr)
}

/// A broker with `--auth required` (plus `extra` flags) whose super user
/// `admin` is bootstrapped with `admin_password`; the temporary directory
/// holding the password file lives as long as the caller keeps it.
pub fn secure_broker(admin_password: &str, extra: &[&str]) -> (Broker, tempfile::TempDir) {
    let secrets = tempfile::tempdir().expect("temp dir");
    let file = secrets.path().join("admin-password");
    std::fs::write(&file, format!("{admin_password}\n")).expect("write password file");
    let file = file.to_str().expect("utf-8 path").to_string();
    let mut args = vec![
        "--auth",
        "required",
        "--bootstrap-admin-password-file",
        &file,
    ];
    args.extend_from_slice(extra);
    (Broker::start_with(&args), secrets)
}
