//! A raw protocol client for tests that must misbehave: it speaks frames
//! directly (no client library), so it can skip the handshake, never read
//! its socket, or inspect every frame the broker sends. Also the broker's
//! resource readings from `/proc` that hostile-client tests bound.

use std::time::Duration;

use bytes::BytesMut;
use ferry_protocol::frame::{encode_frame, split_frame, Frame, FrameHeader};
use ferry_protocol::messages::HandshakeRequest;
use ferry_protocol::{Api, ApiKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest frame a raw client accepts when reading.
pub const RAW_FRAME_MAX_BYTES: usize = 1 << 26;

pub struct RawClient {
    pub stream: TcpStream,
    buffer: BytesMut,
    next_correlation_id: u32,
}

impl RawClient {
    /// Connects without saying anything.
    pub async fn connect(addr: &str) -> RawClient {
        RawClient {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buffer: BytesMut::new(),
            next_correlation_id: 1,
        }
    }

    /// Connects and completes a handshake for protocol version 1.
    pub async fn handshaken(addr: &str) -> RawClient {
        let mut client = RawClient::connect(addr).await;
        let hello = HandshakeRequest {
            client_id: "raw".into(),
            min_version: 1,
            max_version: 1,
        };
        client.send(&hello).await;
        client.next_frame().await.expect("a handshake answer");
        client
    }

    /// Connects, handshakes and authenticates as `user` with SCRAM-SHA-256;
    /// `Err` with the broker's error code when it refuses.
    pub async fn scram(addr: &str, user: &str, password: &str) -> Result<RawClient, u32> {
        use ferry_protocol::messages::SaslAuthenticateRequest;
        use ferry_protocol::scram::{ScramClient, SCRAM_SHA_256};
        let mut client = RawClient::handshaken(addr).await;
        let mut scram = ScramClient::new(user, password.as_bytes()).expect("scram client");
        let first = SaslAuthenticateRequest {
            mechanism: SCRAM_SHA_256.into(),
            auth_bytes: scram.client_first(),
        };
        let answer = client.call(&first).await;
        if answer.error_code != 0 {
            return Err(answer.error_code);
        }
        let client_final = scram
            .client_final(&answer.auth_bytes)
            .expect("server-first");
        let last = SaslAuthenticateRequest {
            mechanism: SCRAM_SHA_256.into(),
            auth_bytes: client_final,
        };
        let answer = client.call(&last).await;
        if answer.error_code != 0 {
            return Err(answer.error_code);
        }
        assert!(answer.complete, "the second SCRAM round completes");
        scram
            .verify_server_final(&answer.auth_bytes)
            .expect("the broker proves it knows the credentials");
        Ok(client)
    }

    /// Creates a SCRAM user (the credentials derived here, as a client
    /// does); panics if the broker refuses.
    pub async fn create_user(&mut self, name: &str, password: &str) {
        use ferry_protocol::messages::{CreateUserRequest, ScramCredentials};
        use ferry_protocol::scram::{StoredCredentials, ITERATIONS_MIN};
        let credentials =
            StoredCredentials::generate(password.as_bytes(), ITERATIONS_MIN).expect("credentials");
        let request = CreateUserRequest {
            name: name.into(),
            credentials: Some(ScramCredentials {
                salt: credentials.salt,
                iterations: credentials.iterations,
                stored_key: credentials.stored_key.to_vec(),
                server_key: credentials.server_key.to_vec(),
            }),
        };
        let answer = self.call(&request).await;
        assert_eq!(
            answer.error_code, 0,
            "create user {name}: {}",
            answer.error_message
        );
    }

    /// Connects, handshakes and authenticates with an access token.
    pub async fn token(addr: &str, token: &str) -> Result<RawClient, u32> {
        use ferry_protocol::messages::SaslAuthenticateRequest;
        let mut client = RawClient::handshaken(addr).await;
        let request = SaslAuthenticateRequest {
            mechanism: "FERRY-TOKEN".into(),
            auth_bytes: token.as_bytes().to_vec(),
        };
        let answer = client.call(&request).await;
        match answer.error_code {
            0 => Ok(client),
            code => Err(code),
        }
    }

    /// Sends one request (no tail); returns its correlation id.
    pub async fn send<R: Api>(&mut self, request: &R) -> u32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = FrameHeader::request(R::KEY as u16, 1, id);
        let frame = encode_frame(header, request, None);
        self.stream.write_all(&frame.head).await.expect("send");
        id
    }

    /// The next frame, or `None` once the broker closed the connection
    /// (panics after 10 s of silence).
    pub async fn next_frame(&mut self) -> Option<Frame> {
        self.next_frame_within(Duration::from_secs(10))
            .await
            .expect("no frame and no close within the time")
    }

    /// Like [`RawClient::next_frame`]; `Err(())` when `wait` passed.
    pub async fn next_frame_within(&mut self, wait: Duration) -> Result<Option<Frame>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(Some(frame)) = split_frame(&mut self.buffer, RAW_FRAME_MAX_BYTES) {
                return Ok(Some(frame));
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buffer));
            match read.await {
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
                Err(_) => return Err(()),
            }
        }
    }

    /// The answer to correlation id `id` (skipping pushed frames), decoded.
    pub async fn answer<R: Api>(&mut self, id: u32) -> R::Response {
        loop {
            let frame = self.next_frame().await.expect("an answer before the close");
            if frame.header.correlation_id == id && frame.header.api_key == R::KEY as u16 {
                return prost::Message::decode(frame.body).expect("decodes");
            }
        }
    }

    /// Sends `request` and waits for its answer.
    pub async fn call<R: Api>(&mut self, request: &R) -> R::Response {
        let id = self.send(request).await;
        self.answer::<R>(id).await
    }
}

/// The frame's API key.
pub fn api_of(frame: &Frame) -> Option<ApiKey> {
    ApiKey::from_u16(frame.header.api_key)
}

/// A field of `/proc/<pid>/status` in KiB (e.g. "VmRSS", "RssAnon").
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The broker's resident memory in MiB.
pub fn rss_mib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS") / 1024
}

/// File descriptors the process holds open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}
