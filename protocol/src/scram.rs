//! SCRAM-SHA-256 (RFC 5802 with the SHA-256 hash of RFC 7677), with no I/O.
//!
//! This module owns the SCRAM messages and the key arithmetic for both sides
//! of one exchange: [`ScramClient`] builds client-first and client-final and
//! checks server-final; [`ScramServer`] parses client-first, answers with
//! server-first for the [`StoredCredentials`] the caller looked up, and checks
//! client-final. Moving the bytes, picking the mechanism and looking users up
//! belong to the caller.
//!
//! The cryptography comes from `ring` (PBKDF2-HMAC-SHA-256, HMAC-SHA-256,
//! SHA-256 and the system random generator): it is already our TLS crypto
//! provider through rustls, so SCRAM adds no further crypto crate. Secret
//! comparisons go through `subtle`, and base64 uses the standard alphabet
//! with canonical padding.
//!
//! Parsing is strict: a message longer than [`SCRAM_MESSAGE_BYTES_LIMIT`] is
//! refused before anything else, then it must be UTF-8 with its attributes
//! in the order of the RFC grammar. Optional extensions (`x=value`) are
//! allowed where the grammar allows them and ignored; the mandatory extension
//! marker `m=` is refused. Channel binding (`p=`) is not supported.
//!
//! Neither side applies SASLprep: a username is sent as its UTF-8 bytes and a
//! password as the bytes given. For ASCII names and passwords that is what
//! SASLprep would produce anyway.

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};
use subtle::ConstantTimeEq;

/// The SASL mechanism name.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// Fewest PBKDF2 iterations accepted, by both sides (RFC 7677 section 4).
pub const ITERATIONS_MIN: u32 = 4096;
/// Most PBKDF2 iterations accepted, by both sides: a hostile server must not
/// be able to burn the client's CPU.
pub const ITERATIONS_MAX: u32 = 1_000_000;
/// Any SCRAM message longer than this is refused before it is parsed.
pub const SCRAM_MESSAGE_BYTES_LIMIT: usize = 1024;
/// Longest username, in bytes of UTF-8 (before `,`/`=` escaping).
pub const USERNAME_BYTES_LIMIT: usize = 128;
/// Length of a generated salt.
pub const SALT_BYTES: usize = 16;
/// Random bytes in a generated nonce (base64 encoded in messages).
pub const NONCE_BYTES: usize = 24;

/// Longest client nonce accepted, in characters. With it, every message of
/// an exchange fits in [`SCRAM_MESSAGE_BYTES_LIMIT`].
const CLIENT_NONCE_CHARS_LIMIT: usize = 256;

/// The only GS2 header a client built here sends: no channel binding
/// support, no authorization identity.
const CLIENT_GS2_HEADER: &str = "n,,";

const KEY_BYTES: usize = 32;

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("SCRAM message longer than {SCRAM_MESSAGE_BYTES_LIMIT} bytes")]
    TooLong,
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("username longer than {USERNAME_BYTES_LIMIT} bytes")]
    UsernameTooLong,
    #[error("channel binding is not supported")]
    UnsupportedChannelBinding,
    #[error("channel binding does not match the GS2 header")]
    ChannelBindingMismatch,
    #[error("unsupported mandatory SCRAM extension")]
    UnsupportedExtension,
    #[error("iteration count {0} outside {ITERATIONS_MIN}..={ITERATIONS_MAX}")]
    BadIterations(u32),
    #[error("nonce does not match the exchange")]
    NonceMismatch,
    #[error("invalid client proof")]
    InvalidProof,
    #[error("invalid server signature")]
    InvalidServerSignature,
    #[error("server refused authentication: {0}")]
    ServerError(String),
    #[error("SCRAM message out of order")]
    OutOfOrder,
    #[error("system random generator failed")]
    Random,
}

/// What a server stores per user: never the password or SaltedPassword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl StoredCredentials {
    /// Derives the stored keys for `password` with this salt and iteration
    /// count. The iteration count must be within
    /// [`ITERATIONS_MIN`]..=[`ITERATIONS_MAX`] and the salt non-empty.
    pub fn derive(
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<StoredCredentials, ScramError> {
        if salt.is_empty() {
            return Err(ScramError::Malformed("empty salt"));
        }
        let mut salted = salted_password(password, salt, iterations)?;
        let keys = Keys::from_salted_password(&salted);
        wipe(&mut salted);
        Ok(StoredCredentials {
            salt: salt.to_vec(),
            iterations,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        })
    }

    /// Like [`StoredCredentials::derive`], with a fresh random salt of
    /// [`SALT_BYTES`].
    pub fn generate(password: &[u8], iterations: u32) -> Result<StoredCredentials, ScramError> {
        check_iterations(iterations)?;
        let mut salt = [0u8; SALT_BYTES];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| ScramError::Random)?;
        StoredCredentials::derive(password, &salt, iterations)
    }

    /// Credentials for a user that does not exist, so that the exchange looks
    /// the same as for one that does: the salt is the first [`SALT_BYTES`] of
    /// HMAC-SHA-256(`server_secret`, username), stable per user and not
    /// computable without the secret, and the iteration count is
    /// [`ITERATIONS_MIN`] (real credentials should use the same count to stay
    /// indistinguishable).
    ///
    /// The keys are HMACs of the secret, not derived from any password: a
    /// proof verifies only given a SHA-256 preimage of the stored key, so no
    /// proof ever verifies against these. `server_secret` should be at least
    /// 32 random bytes kept for the life of the server (or longer, to keep
    /// salts stable across restarts).
    pub fn fake(username: &str, server_secret: &[u8]) -> StoredCredentials {
        let key = hmac::Key::new(hmac::HMAC_SHA256, server_secret);
        let salt_tag = hmac::sign(&key, username.as_bytes());
        // Usernames never contain NUL, so these inputs never equal the salt's.
        let labelled = |label: &[u8]| {
            let mut context = hmac::Context::with_key(&key);
            context.update(label);
            context.update(username.as_bytes());
            to_key(context.sign().as_ref())
        };
        StoredCredentials {
            salt: salt_tag.as_ref()[..SALT_BYTES].to_vec(),
            iterations: ITERATIONS_MIN,
            stored_key: labelled(b"\0ferry scram fake stored key\0"),
            server_key: labelled(b"\0ferry scram fake server key\0"),
        }
    }
}

/// Client side of one exchange.
pub struct ScramClient {
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
    /// The server signature to expect, once client-final has been built.
    server_signature: Option<[u8; KEY_BYTES]>,
}

impl ScramClient {
    /// A client for this user with a fresh random nonce.
    pub fn new(username: &str, password: &[u8]) -> Result<ScramClient, ScramError> {
        let nonce = random_nonce()?;
        ScramClient::with_nonce(username, password, &nonce)
    }

    /// A client with a chosen nonce, for tests: the nonce must be printable
    /// ASCII without `,` and at most 256 characters. Real exchanges use
    /// [`ScramClient::new`].
    pub fn with_nonce(
        username: &str,
        password: &[u8],
        nonce: &str,
    ) -> Result<ScramClient, ScramError> {
        check_username(username)?;
        check_nonce(nonce)?;
        if nonce.len() > CLIENT_NONCE_CHARS_LIMIT {
            return Err(ScramError::TooLong);
        }
        let client_first_bare = format!("n={},r={}", escape_username(username), nonce);
        Ok(ScramClient {
            password: password.to_vec(),
            client_nonce: nonce.to_owned(),
            client_first_bare,
            server_signature: None,
        })
    }

    /// The client-first message: `n,,n=<saslname>,r=<nonce>`.
    pub fn client_first(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CLIENT_GS2_HEADER.len() + self.client_first_bare.len());
        out.extend_from_slice(CLIENT_GS2_HEADER.as_bytes());
        out.extend_from_slice(self.client_first_bare.as_bytes());
        out
    }

    /// Reads server-first and returns client-final. The server nonce must
    /// extend ours and the iteration count must be within bounds before any
    /// key is derived. Called once; the password is wiped on success.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if self.server_signature.is_some() {
            return Err(ScramError::OutOfOrder);
        }
        let server_first = message_str(server_first)?;
        let mut fields = server_first.split(',');

        let nonce = match fields.next() {
            Some(field) if field.starts_with("m=") => return Err(ScramError::UnsupportedExtension),
            Some(field) => attribute(field, 'r', "expected nonce")?,
            None => return Err(ScramError::Malformed("expected nonce")),
        };
        check_nonce(nonce)?;
        match nonce.strip_prefix(self.client_nonce.as_str()) {
            Some(server_part) if !server_part.is_empty() => {}
            _ => return Err(ScramError::NonceMismatch),
        }
        let salt = attribute(
            next_field(&mut fields, "expected salt")?,
            's',
            "expected salt",
        )?;
        let salt = decode_base64(salt, "salt is not base64")?;
        if salt.is_empty() {
            return Err(ScramError::Malformed("empty salt"));
        }
        let iterations = attribute(
            next_field(&mut fields, "expected iteration count")?,
            'i',
            "expected iteration count",
        )?;
        let iterations = parse_iterations(iterations)?;
        check_iterations(iterations)?;
        check_extensions(fields)?;

        let without_proof = format!("c={},r={}", STANDARD.encode(CLIENT_GS2_HEADER), nonce);
        // ",p=" and 44 characters of base64 proof.
        if without_proof.len() + 3 + 44 > SCRAM_MESSAGE_BYTES_LIMIT {
            return Err(ScramError::TooLong);
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );

        let mut salted = salted_password(&self.password, &salt, iterations)?;
        let keys = Keys::from_salted_password(&salted);
        wipe(&mut salted);
        let client_signature = hmac_sha256(&keys.stored_key, auth_message.as_bytes());
        let mut proof = keys.client_key;
        for (byte, signature) in proof.iter_mut().zip(client_signature.iter()) {
            *byte ^= signature;
        }
        let server_signature = hmac_sha256(&keys.server_key, auth_message.as_bytes());

        wipe(&mut self.password);
        self.password = Vec::new();
        self.server_signature = Some(server_signature);

        let mut out = without_proof.into_bytes();
        out.extend_from_slice(b",p=");
        out.extend_from_slice(STANDARD.encode(proof).as_bytes());
        Ok(out)
    }

    /// Checks server-final: `v=<signature>` must carry the signature we
    /// expect (compared in constant time); `e=<error>` is the server's
    /// refusal, returned as [`ScramError::ServerError`].
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let Some(expected) = self.server_signature else {
            return Err(ScramError::OutOfOrder);
        };
        let server_final = message_str(server_final)?;
        let mut fields = server_final.split(',');
        let first = next_field(&mut fields, "expected verifier")?;
        if let Some(error) = first.strip_prefix("e=") {
            if error.is_empty() || error.contains('\0') {
                return Err(ScramError::Malformed("bad server error value"));
            }
            return Err(ScramError::ServerError(error.to_owned()));
        }
        let verifier = attribute(first, 'v', "expected verifier")?;
        let signature = decode_base64(verifier, "verifier is not base64")?;
        check_extensions(fields)?;
        if bool::from(expected[..].ct_eq(&signature[..])) {
            Ok(())
        } else {
            Err(ScramError::InvalidServerSignature)
        }
    }
}

impl Drop for ScramClient {
    fn drop(&mut self) {
        wipe(&mut self.password);
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("client_first_bare", &self.client_first_bare)
            .field("client_final_sent", &self.server_signature.is_some())
            .finish_non_exhaustive()
    }
}

/// Server side of one exchange. The server looks the user up itself between
/// [`ScramServer::start`] and [`ScramServer::server_first`].
pub struct ScramServer {
    /// The GS2 header as the client sent it; client-final's `c=` must carry it.
    gs2_header: String,
    client_first_bare: String,
    /// Client nonce followed by ours.
    nonce: String,
    /// Server-first as sent and the keys it was built for.
    answered: Option<(String, [u8; KEY_BYTES], [u8; KEY_BYTES])>,
}

impl ScramServer {
    /// Parses client-first; returns the exchange and the username it names
    /// (saslname decoded: `=2C` is `,` and `=3D` is `=`; any other escape is
    /// malformed). The GS2 header may be `n` or `y`, with an authorization
    /// identity that is empty or equal to the username; `p=` is
    /// [`ScramError::UnsupportedChannelBinding`].
    pub fn start(client_first: &[u8]) -> Result<(ScramServer, String), ScramError> {
        let nonce = random_nonce()?;
        ScramServer::with_server_nonce(client_first, &nonce)
    }

    /// Like [`ScramServer::start`] with a chosen server nonce (printable ASCII
    /// without `,`, at most 48 characters), for tests such as the RFC 7677 example. Real exchanges
    /// use [`ScramServer::start`].
    pub fn with_server_nonce(
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<(ScramServer, String), ScramError> {
        check_nonce(server_nonce)?;
        if server_nonce.len() > NONCE_BYTES * 2 {
            return Err(ScramError::TooLong);
        }
        let client_first = message_str(client_first)?;
        let mut fields = client_first.split(',');

        let flag = next_field(&mut fields, "expected GS2 header")?;
        match flag {
            "n" | "y" => {}
            _ if flag.starts_with("p=") => return Err(ScramError::UnsupportedChannelBinding),
            _ => return Err(ScramError::Malformed("bad channel binding flag")),
        }
        let authzid_field = next_field(&mut fields, "expected GS2 header")?;
        let authzid = if authzid_field.is_empty() {
            None
        } else {
            let name = attribute(authzid_field, 'a', "bad authorization identity")?;
            Some(unescape_username(name)?)
        };
        let header_len = flag.len() + 1 + authzid_field.len() + 1;
        let (gs2_header, client_first_bare) = match (
            client_first.get(..header_len),
            client_first.get(header_len..),
        ) {
            (Some(header), Some(bare)) => (header, bare),
            _ => return Err(ScramError::Malformed("expected GS2 header")),
        };

        let username = match fields.next() {
            Some(field) if field.starts_with("m=") => return Err(ScramError::UnsupportedExtension),
            Some(field) => attribute(field, 'n', "expected username")?,
            None => return Err(ScramError::Malformed("expected username")),
        };
        let username = unescape_username(username)?;
        let client_nonce = attribute(
            next_field(&mut fields, "expected nonce")?,
            'r',
            "expected nonce",
        )?;
        check_nonce(client_nonce)?;
        if client_nonce.len() > CLIENT_NONCE_CHARS_LIMIT {
            return Err(ScramError::TooLong);
        }
        check_extensions(fields)?;
        if authzid.is_some_and(|authzid| authzid != username) {
            return Err(ScramError::Malformed(
                "authorization identity differs from username",
            ));
        }

        let server = ScramServer {
            gs2_header: gs2_header.to_owned(),
            client_first_bare: client_first_bare.to_owned(),
            nonce: format!("{client_nonce}{server_nonce}"),
            answered: None,
        };
        Ok((server, username))
    }

    /// Answers with server-first (`r=<nonce>,s=<salt>,i=<iterations>`) for
    /// these credentials. For an unknown user, pass
    /// [`StoredCredentials::fake`] so the exchange looks the same.
    pub fn server_first(&mut self, credentials: &StoredCredentials) -> Vec<u8> {
        let message = format!(
            "r={},s={},i={}",
            self.nonce,
            STANDARD.encode(&credentials.salt),
            credentials.iterations
        );
        let out = message.as_bytes().to_vec();
        self.answered = Some((message, credentials.stored_key, credentials.server_key));
        out
    }

    /// Checks client-final: the channel binding must carry the GS2 header of
    /// client-first (`c=biws` for `n,,`, `c=eSws` for `y,,`), the nonce must
    /// be the combined nonce and the proof must verify (in constant time).
    /// Returns server-final, `v=<signature>`.
    pub fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let Some((server_first, stored_key, server_key)) = &self.answered else {
            return Err(ScramError::OutOfOrder);
        };
        let client_final = message_str(client_final)?;
        let Some((without_proof, proof)) = client_final.rsplit_once(',') else {
            return Err(ScramError::Malformed("expected proof"));
        };
        let proof = attribute(proof, 'p', "expected proof")?;
        let mut fields = without_proof.split(',');
        let binding = attribute(
            next_field(&mut fields, "expected channel binding")?,
            'c',
            "expected channel binding",
        )?;
        let binding = decode_base64(binding, "channel binding is not base64")?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        let nonce = attribute(
            next_field(&mut fields, "expected nonce")?,
            'r',
            "expected nonce",
        )?;
        check_nonce(nonce)?;
        if nonce != self.nonce {
            return Err(ScramError::NonceMismatch);
        }
        check_extensions(fields)?;
        let proof = decode_base64(proof, "proof is not base64")?;
        let proof: [u8; KEY_BYTES] = proof
            .as_slice()
            .try_into()
            .map_err(|_| ScramError::Malformed("proof is not 32 bytes"))?;

        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );
        let client_signature = hmac_sha256(stored_key, auth_message.as_bytes());
        let mut client_key = proof;
        for (byte, signature) in client_key.iter_mut().zip(client_signature.iter()) {
            *byte ^= signature;
        }
        let computed = sha256(&client_key);
        wipe(&mut client_key);
        if !bool::from(computed.ct_eq(stored_key)) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac_sha256(server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("gs2_header", &self.gs2_header)
            .field("client_first_bare", &self.client_first_bare)
            .field("nonce", &self.nonce)
            .field("answered", &self.answered.is_some())
            .finish_non_exhaustive()
    }
}

/// ClientKey, StoredKey and ServerKey from a SaltedPassword.
struct Keys {
    client_key: [u8; KEY_BYTES],
    stored_key: [u8; KEY_BYTES],
    server_key: [u8; KEY_BYTES],
}

impl Keys {
    fn from_salted_password(salted: &[u8; KEY_BYTES]) -> Keys {
        let client_key = hmac_sha256(salted, b"Client Key");
        Keys {
            client_key,
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(salted, b"Server Key"),
        }
    }
}

fn salted_password(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<[u8; KEY_BYTES], ScramError> {
    check_iterations(iterations)?;
    let count = NonZeroU32::new(iterations).ok_or(ScramError::BadIterations(iterations))?;
    let mut out = [0u8; KEY_BYTES];
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, count, salt, password, &mut out);
    Ok(out)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; KEY_BYTES] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    to_key(hmac::sign(&key, message).as_ref())
}

fn sha256(data: &[u8]) -> [u8; KEY_BYTES] {
    to_key(digest::digest(&digest::SHA256, data).as_ref())
}

/// Copies a SHA-256-sized output (always 32 bytes) into an array.
fn to_key(bytes: &[u8]) -> [u8; KEY_BYTES] {
    let mut out = [0u8; KEY_BYTES];
    for (to, from) in out.iter_mut().zip(bytes) {
        *to = *from;
    }
    out
}

/// Zeroes secret bytes; `black_box` keeps the optimizer from dropping the
/// writes as dead (best effort, without `unsafe`).
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

fn random_nonce() -> Result<String, ScramError> {
    let mut bytes = [0u8; NONCE_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ScramError::Random)?;
    Ok(STANDARD.encode(bytes))
}

fn check_iterations(iterations: u32) -> Result<(), ScramError> {
    if (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        Ok(())
    } else {
        Err(ScramError::BadIterations(iterations))
    }
}

/// The length check, then UTF-8.
fn message_str(message: &[u8]) -> Result<&str, ScramError> {
    if message.len() > SCRAM_MESSAGE_BYTES_LIMIT {
        return Err(ScramError::TooLong);
    }
    std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))
}

fn next_field<'a>(
    fields: &mut impl Iterator<Item = &'a str>,
    missing: &'static str,
) -> Result<&'a str, ScramError> {
    fields.next().ok_or(ScramError::Malformed(missing))
}

/// The value of `<name>=<value>`, which must be non-empty.
fn attribute<'a>(field: &'a str, name: char, wrong: &'static str) -> Result<&'a str, ScramError> {
    let mut chars = field.chars();
    if chars.next() != Some(name) || chars.next() != Some('=') {
        return Err(ScramError::Malformed(wrong));
    }
    let value = chars.as_str();
    if value.is_empty() {
        return Err(ScramError::Malformed(wrong));
    }
    Ok(value)
}

/// Optional extensions: `<letter>=<value>`, ignored. `m` is the mandatory
/// extension marker and refused; the attribute letters SCRAM itself uses are
/// out of place here.
fn check_extensions<'a>(fields: impl Iterator<Item = &'a str>) -> Result<(), ScramError> {
    for field in fields {
        let mut chars = field.chars();
        let name = match (chars.next(), chars.next()) {
            (Some(name), Some('=')) if name.is_ascii_alphabetic() => name,
            _ => return Err(ScramError::Malformed("bad attribute")),
        };
        if name == 'm' {
            return Err(ScramError::UnsupportedExtension);
        }
        if "anrcsipve".contains(name) {
            return Err(ScramError::Malformed("attribute out of order"));
        }
        let value = chars.as_str();
        if value.is_empty() || value.contains('\0') {
            return Err(ScramError::Malformed("bad extension value"));
        }
    }
    Ok(())
}

/// A nonce is printable ASCII except `,`, and not empty.
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if nonce.is_empty() {
        return Err(ScramError::Malformed("empty nonce"));
    }
    if nonce
        .bytes()
        .all(|byte| (0x21..=0x7e).contains(&byte) && byte != b',')
    {
        Ok(())
    } else {
        Err(ScramError::Malformed("bad nonce character"))
    }
}

fn decode_base64(value: &str, wrong: &'static str) -> Result<Vec<u8>, ScramError> {
    STANDARD
        .decode(value)
        .map_err(|_| ScramError::Malformed(wrong))
}

/// Digits only, no sign and no leading zero.
fn parse_iterations(value: &str) -> Result<u32, ScramError> {
    let bytes = value.as_bytes();
    if !matches!(bytes.first(), Some(b'1'..=b'9')) || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(ScramError::Malformed("bad iteration count"));
    }
    value
        .parse::<u32>()
        .map_err(|_| ScramError::BadIterations(u32::MAX))
}

fn check_username(username: &str) -> Result<(), ScramError> {
    if username.is_empty() {
        return Err(ScramError::Malformed("empty username"));
    }
    if username.len() > USERNAME_BYTES_LIMIT {
        return Err(ScramError::UsernameTooLong);
    }
    if username.contains('\0') {
        return Err(ScramError::Malformed("NUL in username"));
    }
    Ok(())
}

/// A username as a saslname: `,` is `=2C` and `=` is `=3D`.
fn escape_username(username: &str) -> String {
    let mut out = String::with_capacity(username.len());
    for c in username.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// A saslname back to a username; any escape but `=2C` and `=3D` is
/// malformed.
fn unescape_username(saslname: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(saslname.len());
    let mut rest = saslname;
    while let Some(at) = rest.find('=') {
        let (plain, escape) = rest.split_at(at);
        out.push_str(plain);
        if let Some(after) = escape.strip_prefix("=2C") {
            out.push(',');
            rest = after;
        } else if let Some(after) = escape.strip_prefix("=3D") {
            out.push('=');
            rest = after;
        } else {
            return Err(ScramError::Malformed("bad escape in username"));
        }
    }
    out.push_str(rest);
    check_username(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    // RFC 7677 section 3.
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn rfc_credentials() -> StoredCredentials {
        static CREDENTIALS: OnceLock<StoredCredentials> = OnceLock::new();
        CREDENTIALS
            .get_or_init(|| {
                let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
                StoredCredentials::derive(b"pencil", &salt, 4096).unwrap()
            })
            .clone()
    }

    /// An RFC client that has sent client-final.
    fn rfc_client_after_final() -> &'static ScramClient {
        static CLIENT: OnceLock<ScramClient> = OnceLock::new();
        CLIENT.get_or_init(|| {
            let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
            client.client_final(RFC_SERVER_FIRST.as_bytes()).unwrap();
            client
        })
    }

    /// An RFC server that has sent server-first.
    fn rfc_server() -> ScramServer {
        let (mut server, username) =
            ScramServer::with_server_nonce(RFC_CLIENT_FIRST.as_bytes(), RFC_SERVER_NONCE).unwrap();
        assert_eq!(username, "user");
        server.server_first(&rfc_credentials());
        server
    }

    fn run(
        username: &str,
        client_password: &[u8],
        credentials: &StoredCredentials,
    ) -> Result<(), ScramError> {
        let mut client = ScramClient::new(username, client_password)?;
        let (mut server, name) = ScramServer::start(&client.client_first())?;
        assert_eq!(name, username);
        let server_first = server.server_first(credentials);
        let client_final = client.client_final(&server_first)?;
        let server_final = server.finish(&client_final)?;
        client.verify_server_final(&server_final)
    }

    #[test]
    fn scram_rfc7677_client_messages() {
        let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
        assert_eq!(client.client_first(), RFC_CLIENT_FIRST.as_bytes());
        let client_final = client.client_final(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            std::str::from_utf8(&client_final).unwrap(),
            RFC_CLIENT_FINAL
        );
        client
            .verify_server_final(RFC_SERVER_FINAL.as_bytes())
            .unwrap();
    }

    #[test]
    fn scram_rfc7677_server_messages() {
        let (mut server, username) =
            ScramServer::with_server_nonce(RFC_CLIENT_FIRST.as_bytes(), RFC_SERVER_NONCE).unwrap();
        assert_eq!(username, "user");
        let server_first = server.server_first(&rfc_credentials());
        assert_eq!(
            std::str::from_utf8(&server_first).unwrap(),
            RFC_SERVER_FIRST
        );
        let server_final = server.finish(RFC_CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(
            std::str::from_utf8(&server_final).unwrap(),
            RFC_SERVER_FINAL
        );
    }

    #[test]
    fn scram_round_trip_with_random_nonces_and_salt() {
        let credentials = StoredCredentials::generate(b"hunter2", ITERATIONS_MIN).unwrap();
        assert_eq!(credentials.salt.len(), SALT_BYTES);
        run("alice", b"hunter2", &credentials).unwrap();
    }

    #[test]
    fn scram_wrong_password_is_invalid_proof() {
        let credentials = StoredCredentials::generate(b"right", ITERATIONS_MIN).unwrap();
        assert_eq!(
            run("alice", b"wrong", &credentials),
            Err(ScramError::InvalidProof)
        );
    }

    #[test]
    fn scram_fake_credentials_never_verify() {
        let fake = StoredCredentials::fake("ghost", SECRET);
        assert_eq!(fake.iterations, ITERATIONS_MIN);
        assert_eq!(fake.salt.len(), SALT_BYTES);
        for password in [&b""[..], b"ghost", SECRET] {
            assert_eq!(run("ghost", password, &fake), Err(ScramError::InvalidProof));
        }
    }

    #[test]
    fn scram_fake_credentials_are_stable_per_user_and_secret() {
        let fake = StoredCredentials::fake("ghost", SECRET);
        assert_eq!(fake, StoredCredentials::fake("ghost", SECRET));
        let other_user = StoredCredentials::fake("phantom", SECRET);
        let other_secret = StoredCredentials::fake("ghost", b"another secret, also 32 bytes...");
        assert_ne!(fake.salt, other_user.salt);
        assert_ne!(fake.salt, other_secret.salt);
        assert_ne!(fake.stored_key, fake.server_key);
        assert_ne!(fake.stored_key, other_user.stored_key);
        assert_ne!(&fake.stored_key[..SALT_BYTES], &fake.salt[..]);
    }

    #[test]
    fn scram_replayed_client_final_fails_against_new_exchange() {
        let (mut server, _) =
            ScramServer::with_server_nonce(RFC_CLIENT_FIRST.as_bytes(), "anotherServerNonce")
                .unwrap();
        server.server_first(&rfc_credentials());
        assert_eq!(
            server.finish(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::NonceMismatch)
        );

        // Same client nonce, fresh random server nonce.
        let (mut server, _) = ScramServer::start(RFC_CLIENT_FIRST.as_bytes()).unwrap();
        server.server_first(&rfc_credentials());
        assert_eq!(
            server.finish(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::NonceMismatch)
        );

        // A replay whose nonce is rewritten to the new exchange's nonce
        // changes AuthMessage, so the proof no longer verifies.
        let (mut server, _) =
            ScramServer::with_server_nonce(RFC_CLIENT_FIRST.as_bytes(), "fresh").unwrap();
        server.server_first(&rfc_credentials());
        let replay = RFC_CLIENT_FINAL.replace(RFC_SERVER_NONCE, "fresh");
        assert_eq!(
            server.finish(replay.as_bytes()),
            Err(ScramError::InvalidProof)
        );
    }

    #[test]
    fn scram_username_escaping_round_trip() {
        for username in ["a,b", "=", "a=2C", ",,==", "x=3Dy,", "é,=☃"] {
            let client = ScramClient::with_nonce(username, b"pw", "nonce").unwrap();
            let first = String::from_utf8(client.client_first()).unwrap();
            let saslname = first
                .strip_prefix("n,,n=")
                .and_then(|rest| rest.strip_suffix(",r=nonce"))
                .unwrap();
            assert!(!saslname.contains(','));
            assert_eq!(saslname, escape_username(username));
            let (_, decoded) = ScramServer::start(first.as_bytes()).unwrap();
            assert_eq!(decoded, username);
        }
        assert_eq!(escape_username("a,b=c"), "a=2Cb=3Dc");
        let credentials = StoredCredentials::generate(b"pw", ITERATIONS_MIN).unwrap();
        run("a,b=c", b"pw", &credentials).unwrap();
    }

    #[test]
    fn scram_bad_username_escapes_refused() {
        for saslname in [
            "a=", "a=2", "a=2c", "a=3d", "a=41", "=", "a==2C", "a=2Cb=", "=3",
        ] {
            let message = format!("n,,n={saslname},r=nonce");
            assert_eq!(
                ScramServer::start(message.as_bytes()).unwrap_err(),
                ScramError::Malformed("bad escape in username"),
                "{saslname}"
            );
        }
    }

    #[test]
    fn scram_username_limits() {
        let longest = "u".repeat(USERNAME_BYTES_LIMIT);
        ScramClient::with_nonce(&longest, b"pw", "n").unwrap();
        let message = format!("n,,n={},r=n", escape_username(&longest));
        assert_eq!(ScramServer::start(message.as_bytes()).unwrap().1, longest);

        let too_long = "u".repeat(USERNAME_BYTES_LIMIT + 1);
        assert_eq!(
            ScramClient::with_nonce(&too_long, b"pw", "n").unwrap_err(),
            ScramError::UsernameTooLong
        );
        let message = format!("n,,n={too_long},r=n");
        assert_eq!(
            ScramServer::start(message.as_bytes()).unwrap_err(),
            ScramError::UsernameTooLong
        );
        // Escapes count as the byte they stand for.
        let commas = ",".repeat(USERNAME_BYTES_LIMIT);
        let message = format!("n,,n={},r=n", escape_username(&commas));
        assert_eq!(ScramServer::start(message.as_bytes()).unwrap().1, commas);

        assert!(ScramClient::with_nonce("", b"pw", "n").is_err());
        assert!(ScramClient::with_nonce("a\0b", b"pw", "n").is_err());
        assert!(ScramServer::start(b"n,,n=,r=n").is_err());
        assert!(ScramServer::start(b"n,,n=a\0b,r=n").is_err());
    }

    fn server_first_with_iterations(iterations: &str) -> String {
        format!("r={RFC_CLIENT_NONCE}xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i={iterations}")
    }

    #[test]
    fn scram_client_refuses_iterations_out_of_bounds() {
        let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
        for (iterations, error) in [
            ("4095", ScramError::BadIterations(4095)),
            ("1", ScramError::BadIterations(1)),
            ("1000001", ScramError::BadIterations(1_000_001)),
            ("4294967295", ScramError::BadIterations(u32::MAX)),
            ("99999999999999999999", ScramError::BadIterations(u32::MAX)),
            ("0", ScramError::Malformed("bad iteration count")),
            ("04096", ScramError::Malformed("bad iteration count")),
            ("+4096", ScramError::Malformed("bad iteration count")),
            ("4096 ", ScramError::Malformed("bad iteration count")),
            ("-1", ScramError::Malformed("bad iteration count")),
        ] {
            let message = server_first_with_iterations(iterations);
            assert_eq!(
                client.client_final(message.as_bytes()),
                Err(error),
                "{iterations}"
            );
        }
        // Still usable: nothing was derived.
        client.client_final(RFC_SERVER_FIRST.as_bytes()).unwrap();
    }

    #[test]
    fn scram_stored_credentials_check_iterations() {
        for iterations in [0, 1, ITERATIONS_MIN - 1, ITERATIONS_MAX + 1, u32::MAX] {
            assert_eq!(
                StoredCredentials::derive(b"pw", b"salt", iterations),
                Err(ScramError::BadIterations(iterations))
            );
            assert_eq!(
                StoredCredentials::generate(b"pw", iterations),
                Err(ScramError::BadIterations(iterations))
            );
        }
        assert!(StoredCredentials::derive(b"pw", b"", ITERATIONS_MIN).is_err());
        let a = StoredCredentials::generate(b"pw", ITERATIONS_MIN).unwrap();
        let b = StoredCredentials::generate(b"pw", ITERATIONS_MIN).unwrap();
        assert_ne!(a.salt, b.salt);
        assert_eq!(
            StoredCredentials::derive(b"pw", &a.salt, ITERATIONS_MIN).unwrap(),
            a
        );
    }

    #[test]
    fn scram_client_refuses_server_nonce_not_extending_its_own() {
        let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
        for nonce in [
            "somethingElse%hvYDpWUa2RaTCAfuxFIlj",
            RFC_CLIENT_NONCE,      // not extended at all
            "rOprNGfwEbeRWgbNEkq", // a prefix of ours
            "XrOprNGfwEbeRWgbNEkqO%hv",
        ] {
            let message = format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
            assert_eq!(
                client.client_final(message.as_bytes()),
                Err(ScramError::NonceMismatch),
                "{nonce}"
            );
        }
        let message = format!("r={RFC_CLIENT_NONCE}a b,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        assert_eq!(
            client.client_final(message.as_bytes()),
            Err(ScramError::Malformed("bad nonce character"))
        );
    }

    #[test]
    fn scram_client_refuses_bad_server_first() {
        let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
        let n = RFC_CLIENT_NONCE;
        for (message, error) in [
            (
                format!("m=x,r={n}x,s=AAAA,i=4096"),
                ScramError::UnsupportedExtension,
            ),
            (
                format!("r={n}x,s=AAAA,i=4096,m=x"),
                ScramError::UnsupportedExtension,
            ),
            (
                format!("s=AAAA,r={n}x,i=4096"),
                ScramError::Malformed("expected nonce"),
            ),
            (
                format!("r={n}x,i=4096,s=AAAA"),
                ScramError::Malformed("expected salt"),
            ),
            (
                format!("r={n}x,s=AAAA"),
                ScramError::Malformed("expected iteration count"),
            ),
            (
                format!("r={n}x,s=,i=4096"),
                ScramError::Malformed("expected salt"),
            ),
            (
                format!("r={n}x,s=AAA,i=4096"),
                ScramError::Malformed("salt is not base64"),
            ),
            (
                format!("r={n}x,s=AAB=,i=4096"),
                ScramError::Malformed("salt is not base64"),
            ),
            (
                format!("r={n}x,s=AAAA,i=4096,"),
                ScramError::Malformed("bad attribute"),
            ),
            (
                format!("r={n}x,s=AAAA,i=4096,r=x"),
                ScramError::Malformed("attribute out of order"),
            ),
            ("".to_owned(), ScramError::Malformed("expected nonce")),
            (
                "x".repeat(SCRAM_MESSAGE_BYTES_LIMIT + 1),
                ScramError::TooLong,
            ),
        ] {
            assert_eq!(
                client.client_final(message.as_bytes()),
                Err(error),
                "{message}"
            );
        }
        assert_eq!(
            client.client_final(&[b'r', b'=', 0xff]),
            Err(ScramError::Malformed("not UTF-8"))
        );
        // A server nonce long enough that client-final would be too long.
        let message = format!(
            "r={n}{},s=AAAA,i=4096",
            "x".repeat(SCRAM_MESSAGE_BYTES_LIMIT - 60)
        );
        assert_eq!(
            client.client_final(message.as_bytes()),
            Err(ScramError::TooLong)
        );
        // Optional extensions are ignored.
        let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
        let message = format!("{RFC_SERVER_FIRST},x=whatever=1");
        client.client_final(message.as_bytes()).unwrap();
    }

    #[test]
    fn scram_tampered_server_signature_refused() {
        let client = rfc_client_after_final();
        let mut signature = STANDARD.decode(&RFC_SERVER_FINAL[2..]).unwrap();
        signature[31] ^= 1;
        let tampered = format!("v={}", STANDARD.encode(&signature));
        assert_eq!(
            client.verify_server_final(tampered.as_bytes()),
            Err(ScramError::InvalidServerSignature)
        );
        let short = format!("v={}", STANDARD.encode(&signature[..31]));
        assert_eq!(
            client.verify_server_final(short.as_bytes()),
            Err(ScramError::InvalidServerSignature)
        );
        assert_eq!(
            client.verify_server_final(b"v=not base64"),
            Err(ScramError::Malformed("verifier is not base64"))
        );
        assert_eq!(
            client.verify_server_final(b"x=1"),
            Err(ScramError::Malformed("expected verifier"))
        );
        let with_extension = format!("{RFC_SERVER_FINAL},x=1");
        client
            .verify_server_final(with_extension.as_bytes())
            .unwrap();
    }

    #[test]
    fn scram_server_error_is_reported() {
        let client = rfc_client_after_final();
        assert_eq!(
            client.verify_server_final(b"e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".to_owned()))
        );
        assert_eq!(
            client.verify_server_final(b"e="),
            Err(ScramError::Malformed("bad server error value"))
        );
    }

    #[test]
    fn scram_out_of_order_calls_refused() {
        let client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
        assert_eq!(
            client.verify_server_final(RFC_SERVER_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
        let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
        client.client_final(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            client.client_final(RFC_SERVER_FIRST.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
        let (server, _) =
            ScramServer::with_server_nonce(RFC_CLIENT_FIRST.as_bytes(), RFC_SERVER_NONCE).unwrap();
        assert_eq!(
            server.finish(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::OutOfOrder)
        );
    }

    #[test]
    fn scram_server_gs2_header_and_channel_binding() {
        assert_eq!(
            ScramServer::start(b"p=tls-server-end-point,,n=user,r=abc").unwrap_err(),
            ScramError::UnsupportedChannelBinding
        );
        for message in [
            "x,,n=user,r=abc",
            "n,x,n=user,r=abc",
            "n=user,r=abc",
            "n,",
            "n",
        ] {
            assert!(
                matches!(
                    ScramServer::start(message.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{message}"
            );
        }
        assert_eq!(
            ScramServer::start(b"n,,m=ext,n=user,r=abc").unwrap_err(),
            ScramError::UnsupportedExtension
        );
        assert_eq!(
            ScramServer::start(b"n,,n=user,r=abc,m=ext").unwrap_err(),
            ScramError::UnsupportedExtension
        );
        assert_eq!(
            ScramServer::start(b"n,a=other,n=user,r=abc").unwrap_err(),
            ScramError::Malformed("authorization identity differs from username")
        );
        assert_eq!(
            ScramServer::start(b"n,,r=abc,n=user").unwrap_err(),
            ScramError::Malformed("expected username")
        );
        assert_eq!(
            ScramServer::start(b"n,,n=user,r=a b").unwrap_err(),
            ScramError::Malformed("bad nonce character")
        );
        assert_eq!(
            ScramServer::start(b"n,,n=user,r=").unwrap_err(),
            ScramError::Malformed("expected nonce")
        );
        let long_nonce = format!("n,,n=user,r={}", "x".repeat(CLIENT_NONCE_CHARS_LIMIT + 1));
        assert_eq!(
            ScramServer::start(long_nonce.as_bytes()).unwrap_err(),
            ScramError::TooLong
        );
        let too_long = format!("n,,n=user,r={}", "x".repeat(SCRAM_MESSAGE_BYTES_LIMIT));
        assert_eq!(
            ScramServer::start(too_long.as_bytes()).unwrap_err(),
            ScramError::TooLong
        );
        // Optional extensions are allowed and ignored.
        ScramServer::start(b"n,,n=user,r=abc,x=1").unwrap();

        // "y,,": the client-final binding must be "c=eSws".
        let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
        let client_final = client.client_final(RFC_SERVER_FIRST.as_bytes()).unwrap();
        let y_first = RFC_CLIENT_FIRST.replacen("n,,", "y,,", 1);
        let (mut server, _) =
            ScramServer::with_server_nonce(y_first.as_bytes(), RFC_SERVER_NONCE).unwrap();
        server.server_first(&rfc_credentials());
        assert_eq!(
            server.finish(&client_final),
            Err(ScramError::ChannelBindingMismatch)
        );
        // A "y" client computes its proof over "c=eSws"; rebuild one by hand.
        let credentials = rfc_credentials();
        let (mut server, _) =
            ScramServer::with_server_nonce(y_first.as_bytes(), RFC_SERVER_NONCE).unwrap();
        server.server_first(&credentials);
        let without_proof = format!("c=eSws,r={RFC_CLIENT_NONCE}{RFC_SERVER_NONCE}");
        let proof = hand_proof(
            b"pencil",
            &credentials,
            &format!("n=user,r={RFC_CLIENT_NONCE},{RFC_SERVER_FIRST},{without_proof}"),
        );
        let message = format!("{without_proof},p={proof}");
        server.finish(message.as_bytes()).unwrap();

        // An authorization identity equal to the username is accepted and
        // bound: "c=" carries the whole header.
        let (mut server, name) = ScramServer::with_server_nonce(
            format!("n,a=user,n=user,r={RFC_CLIENT_NONCE}").as_bytes(),
            RFC_SERVER_NONCE,
        )
        .unwrap();
        assert_eq!(name, "user");
        server.server_first(&credentials);
        assert_eq!(
            server.finish(RFC_CLIENT_FINAL.as_bytes()),
            Err(ScramError::ChannelBindingMismatch)
        );
    }

    fn hand_proof(password: &[u8], credentials: &StoredCredentials, auth_message: &str) -> String {
        let salted = salted_password(password, &credentials.salt, credentials.iterations).unwrap();
        let keys = Keys::from_salted_password(&salted);
        let signature = hmac_sha256(&keys.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = keys
            .client_key
            .iter()
            .zip(signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        STANDARD.encode(proof)
    }

    #[test]
    fn scram_server_refuses_bad_client_final() {
        let nonce = format!("{RFC_CLIENT_NONCE}{RFC_SERVER_NONCE}");
        let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        for (message, error) in [
            (
                format!("c=biws,r={nonce}"),
                ScramError::Malformed("expected proof"),
            ),
            (
                format!("r={nonce},c=biws,p={proof}"),
                ScramError::Malformed("expected channel binding"),
            ),
            (
                format!("c=biws,p={proof}"),
                ScramError::Malformed("expected nonce"),
            ),
            (
                format!("c=biws,r={nonce},p=AAAA"),
                ScramError::Malformed("proof is not 32 bytes"),
            ),
            (
                format!("c=biws,r={nonce},p=AAA"),
                ScramError::Malformed("proof is not base64"),
            ),
            (
                format!("c=biws,r={nonce},p="),
                ScramError::Malformed("expected proof"),
            ),
            (
                format!("c=biws,r={nonce},p={proof},x=1"),
                ScramError::Malformed("expected proof"),
            ),
            (
                format!("c=biws,r={nonce},m=1,p={proof}"),
                ScramError::UnsupportedExtension,
            ),
            (
                format!("c=biws,r={nonce},p=x,p={proof}"),
                ScramError::Malformed("attribute out of order"),
            ),
            (
                format!("c=eSws,r={nonce},p={proof}"),
                ScramError::ChannelBindingMismatch,
            ),
            (
                format!("c=bi,r={nonce},p={proof}"),
                ScramError::Malformed("channel binding is not base64"),
            ),
            (
                format!("c=biws,r={RFC_CLIENT_NONCE},p={proof}"),
                ScramError::NonceMismatch,
            ),
            (
                format!("c=biws,r={nonce}x,p={proof}"),
                ScramError::NonceMismatch,
            ),
            (
                format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU="),
                ScramError::InvalidProof,
            ),
            (
                "x".repeat(SCRAM_MESSAGE_BYTES_LIMIT + 1),
                ScramError::TooLong,
            ),
        ] {
            assert_eq!(
                rfc_server().finish(message.as_bytes()),
                Err(error),
                "{message}"
            );
        }
        // Optional extensions before the proof are allowed, but are part of
        // AuthMessage, so the RFC proof no longer verifies.
        let message = format!("c=biws,r={nonce},x=1,p={proof}");
        assert_eq!(
            rfc_server().finish(message.as_bytes()),
            Err(ScramError::InvalidProof)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn scram_server_start_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
            let _ = ScramServer::start(&data);
        }

        #[test]
        fn scram_server_finish_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
            let _ = rfc_server().finish(&data);
        }

        #[test]
        fn scram_client_final_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
            let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
            let _ = client.client_final(&data);
        }

        #[test]
        fn scram_verify_server_final_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
            let _ = rfc_client_after_final().verify_server_final(&data);
        }

        #[test]
        fn scram_mutated_messages_never_panic(
            which in 0usize..4,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let original = [RFC_CLIENT_FIRST, RFC_SERVER_FIRST, RFC_CLIENT_FINAL, RFC_SERVER_FINAL][which];
            let mut message = original.as_bytes().to_vec();
            for (at, byte) in edits {
                let at = at % message.len();
                message[at] = byte;
            }
            match which {
                0 => {
                    let _ = ScramServer::start(&message);
                }
                1 => {
                    let mut client = ScramClient::with_nonce("user", b"pencil", RFC_CLIENT_NONCE).unwrap();
                    let _ = client.client_final(&message);
                }
                2 => {
                    let result = rfc_server().finish(&message);
                    prop_assert!(result.is_err() || message == RFC_CLIENT_FINAL.as_bytes());
                }
                _ => {
                    let result = rfc_client_after_final().verify_server_final(&message);
                    prop_assert!(result.is_err() || message == RFC_SERVER_FINAL.as_bytes());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn scram_round_trip_arbitrary_users(
            username in "[a-zA-Z0-9,=_.@ é☃-]{1,64}"
                .prop_filter("fits the limit", |name| name.len() <= USERNAME_BYTES_LIMIT),
            password in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let credentials = StoredCredentials::generate(&password, ITERATIONS_MIN).unwrap();
            prop_assert_eq!(run(&username, &password, &credentials), Ok(()));
        }
    }
}
