//! Configuration values with units, as operators write them: sizes
//! (`1GiB`, `64MiB`, `16MB`, or plain bytes), durations (`30s`, `10m`,
//! `7d`, `500ms`, or plain milliseconds) and listen addresses (`host:port`,
//! a DNS name, or a host alone with the default port).
//!
//! Flags, environment variables and the TOML file all go through these
//! parsers, so `--segment-bytes 1GiB` and `segment_bytes = "1GiB"` agree.
//! Every result is checked for overflow; ranges are checked afterwards by
//! `Config::validate`.

use std::net::{SocketAddr, ToSocketAddrs};

use ferry_storage::FsyncPolicy;
use serde::{Deserialize, Deserializer};

use ferry_protocol::DEFAULT_PORT;

/// Size suffixes and their multipliers: binary (KiB = 1024) and decimal
/// (kB = 1000), as `systemd` and Kafka's docs use them.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// Duration suffixes in milliseconds. `ms` is tried before `m` and `s`.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// `"1GiB"` → 1073741824; a plain number is bytes.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    parse_with_units(
        text,
        &SIZE_UNITS,
        "a size in bytes or with KiB, MiB, GiB, TiB, kB, MB, GB, TB",
    )
}

/// `"30s"` → 30000; a plain number is milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    parse_with_units(
        text,
        &DURATION_UNITS,
        "a duration in ms or with ms, s, m, h, d",
    )
}

/// `usize` sizes for limits that index memory.
pub fn parse_size_bytes_usize(text: &str) -> Result<usize, String> {
    let bytes = parse_size_bytes(text)?;
    usize::try_from(bytes).map_err(|_| format!("{text:?} is too large for this machine"))
}

/// `u32` durations (group session timeouts travel as u32 on the wire).
pub fn parse_duration_ms_u32(text: &str) -> Result<u32, String> {
    let ms = parse_duration_ms(text)?;
    u32::try_from(ms).map_err(|_| format!("{text:?} is longer than {} ms", u32::MAX))
}

fn parse_with_units(text: &str, units: &[(&str, u64)], what: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let refuse = || format!("{text:?} is not {what}");
    if number.is_empty() {
        return Err(refuse());
    }
    let value: u64 = number.parse().map_err(|_| refuse())?;
    let unit = unit.trim();
    if unit.is_empty() {
        return Ok(value);
    }
    let (_, multiplier) = units
        .iter()
        .find(|(name, _)| *name == unit)
        .ok_or_else(refuse)?;
    value
        .checked_mul(*multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `always`, `never`, or an interval above 0 (`100`, `100ms`, `1s`).
pub fn parse_fsync(text: &str) -> Result<FsyncPolicy, String> {
    match text.trim() {
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        interval => match parse_duration_ms(interval) {
            Ok(ms) if ms > 0 => Ok(FsyncPolicy::IntervalMs(ms)),
            _ => Err(format!(
                "{text:?} is not an fsync policy: always, never, or an interval above 0 (100, 100ms, 1s)"
            )),
        },
    }
}

/// `host:port`, `[v6]:port`, a host alone (port `DEFAULT_PORT`), or a DNS
/// name, resolved once, at start, to its first address.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    parse_address(text, Some(DEFAULT_PORT))
}

/// Like `parse_listen`, but the port must be given (no default).
pub fn parse_address_with_port(text: &str) -> Result<SocketAddr, String> {
    parse_address(text, None)
}

fn parse_address(text: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let with_port = match (has_port(text), default_port) {
        (true, _) => text.to_owned(),
        (false, Some(port)) if text.starts_with('[') => format!("{text}:{port}"),
        (false, Some(port)) if text.contains(':') => format!("[{text}]:{port}"),
        (false, Some(port)) => format!("{text}:{port}"),
        (false, None) => return Err(format!("{text:?} needs a port (host:port)")),
    };
    let mut resolved = with_port
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {text:?}: {error}"))?;
    resolved
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// Whether `text` ends in `:port` (a bare IPv6 address has colons but no
/// brackets, so it has no port). The client library has the same rule.
fn has_port(text: &str) -> bool {
    let bracketed_v6 = text.starts_with('[') && text.contains("]:");
    let host_port = !text.starts_with('[') && text.matches(':').count() == 1;
    bracketed_v6 || host_port
}

/// A TOML value that is either a plain number or a string with units.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(i64),
    Text(String),
}

/// Deserializes a size (`segment_bytes = 1073741824` or `"1GiB"`).
pub fn size_bytes<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    with_units(deserializer, parse_size_bytes)
}

/// Deserializes a duration (`retention_ms = 604800000` or `"7d"`).
pub fn duration_ms<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    with_units(deserializer, parse_duration_ms)
}

fn with_units<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
    parse: fn(&str) -> Result<u64, String>,
) -> Result<Option<T>, D::Error> {
    use serde::de::Error;
    let value = match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(value) => {
            u64::try_from(value).map_err(|_| D::Error::custom(format!("{value} is negative")))?
        }
        NumberOrText::Text(text) => parse(&text).map_err(D::Error::custom)?,
    };
    T::try_from(value)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{value} is out of range")))
}

/// Deserializes an fsync policy (`fsync = "always"`, `100` or `"1s"`).
pub fn fsync<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<FsyncPolicy>, D::Error> {
    use serde::de::Error;
    let text = match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(ms) => ms.to_string(),
        NumberOrText::Text(text) => text,
    };
    parse_fsync(&text).map(Some).map_err(D::Error::custom)
}

/// Deserializes a listen address (see `parse_listen`).
pub fn listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(deserializer)?;
    parse_listen(&text).map(Some).map_err(D::Error::custom)
}

/// Deserializes an address that must name its port.
pub fn address_with_port<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    use serde::de::Error;
    let text = String::deserialize(deserializer)?;
    parse_address_with_port(&text)
        .map(Some)
        .map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_size_bytes("4096"), Ok(4096));
        assert_eq!(parse_size_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size_bytes("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size_bytes("16MB"), Ok(16_000_000));
        assert_eq!(parse_size_bytes("2kB"), Ok(2000));
        for refused in ["", "GiB", "1.5GiB", "1gib", "-1", "1 GiB B", "10XB"] {
            assert!(parse_size_bytes(refused).is_err(), "{refused}");
        }
        assert!(parse_size_bytes("20000000TiB").is_err(), "overflow");
    }

    #[test]
    fn durations_take_ms_to_days() {
        assert_eq!(parse_duration_ms("250"), Ok(250));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("10m"), Ok(600_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        for refused in ["", "s", "1.5s", "1w", "-5s", "5 sec"] {
            assert!(parse_duration_ms(refused).is_err(), "{refused}");
        }
        assert!(parse_duration_ms_u32("50d").is_err(), "past u32 ms");
    }

    #[test]
    fn addresses_take_names_and_a_default_port() {
        assert_eq!(
            parse_listen("127.0.0.1"),
            Ok(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))
        );
        assert_eq!(
            parse_listen("127.0.0.1:9000"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert_eq!(parse_listen("::1").map(|a| a.port()), Ok(DEFAULT_PORT));
        assert_eq!(parse_listen("[::1]:9000").map(|a| a.port()), Ok(9000));
        assert_eq!(parse_listen("[::1]").map(|a| a.port()), Ok(DEFAULT_PORT));
        let named = parse_listen("localhost").expect("localhost resolves");
        assert!(named.ip().is_loopback());
        assert_eq!(named.port(), DEFAULT_PORT);
        assert!(parse_address_with_port("127.0.0.1").is_err());
        assert!(parse_listen("no such host.invalid").is_err());
    }

    #[test]
    fn fsync_takes_a_policy_or_an_interval_with_units() {
        assert_eq!(parse_fsync("always"), Ok(FsyncPolicy::Always));
        assert_eq!(parse_fsync("never"), Ok(FsyncPolicy::Never));
        assert_eq!(parse_fsync("100"), Ok(FsyncPolicy::IntervalMs(100)));
        assert_eq!(parse_fsync("1s"), Ok(FsyncPolicy::IntervalMs(1000)));
        for refused in ["0", "0s", "sometimes", ""] {
            assert!(parse_fsync(refused).is_err(), "{refused}");
        }
    }

    #[derive(Deserialize)]
    struct File {
        #[serde(default, deserialize_with = "size_bytes")]
        size: Option<usize>,
        #[serde(default, deserialize_with = "duration_ms")]
        wait: Option<u32>,
    }

    #[test]
    fn the_file_takes_numbers_or_text() {
        let file: File = toml::from_str("size = \"1MiB\"\nwait = 30").expect("parses");
        assert_eq!((file.size, file.wait), (Some(1 << 20), Some(30)));
        let file: File = toml::from_str("wait = \"2s\"").expect("parses");
        assert_eq!((file.size, file.wait), (None, Some(2000)));
        assert!(
            toml::from_str::<File>("wait = \"60d\"").is_err(),
            "past u32"
        );
        assert!(toml::from_str::<File>("size = \"big\"").is_err());
        let negative = toml::from_str::<File>("size = -1").err().expect("refused");
        assert!(negative.to_string().contains("negative"), "{negative}");
    }
}
