//! Arbitrary bytes as SCRAM-SHA-256 messages, on both sides. The input up to
//! its first NUL (which no SCRAM message contains) is a client-first for
//! `ScramServer::start`; if that parses, the server answers with fake
//! credentials and the rest of the input is its client-final. The whole input
//! is also a server-first for a client and a server-final for a client that
//! has already sent client-final. Nothing may panic, and no client-final may
//! verify against fake credentials.
#![no_main]

use std::sync::OnceLock;

use ferry_protocol::scram::{ScramClient, ScramServer, StoredCredentials};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz server secret, 32 bytes....";
const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST: &[u8] =
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

/// A client past client-final, built once: verify_server_final only reads it.
fn finished_client() -> &'static ScramClient {
    static CLIENT: OnceLock<ScramClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut client = ScramClient::with_nonce("user", b"pencil", CLIENT_NONCE).unwrap();
        client.client_final(SERVER_FIRST).unwrap();
        client
    })
}

/// Whether every `i=` in the input has at most four digits: a valid
/// server-first then costs the client at most 9999 PBKDF2 iterations, so the
/// fuzzer does not spend its time deriving keys.
fn cheap_iterations(data: &[u8]) -> bool {
    data.windows(2)
        .enumerate()
        .filter(|(_, pair)| pair == b"i=")
        .all(|(at, _)| {
            data[at + 2..]
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count()
                <= 4
        })
}

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|&byte| byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    if let Ok((mut server, username)) = ScramServer::start(first) {
        server.server_first(&StoredCredentials::fake(&username, SECRET));
        assert!(server.finish(rest).is_err());
    }

    if cheap_iterations(data) {
        let mut client = ScramClient::with_nonce("user", b"pencil", CLIENT_NONCE).unwrap();
        let _ = client.client_final(data);
    }

    let _ = finished_client().verify_server_final(data);
});
