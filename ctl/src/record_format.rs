//! How `consume` writes each record: `value` (the raw value and a newline,
//! with `--print-key` the key and a separator first), `json` (one object a
//! line; headers a list of `{"key", "value"}` in order; bytes that are
//! not UTF-8 as `{"base64": "..."}`), or a kcat-style
//! format string:
//!
//! | field | | field | |
//! | --- | --- | --- | --- |
//! | `%t` | topic | `%k` | key (empty if null) |
//! | `%p` | partition | `%s` | value (empty if null) |
//! | `%o` | offset | `%K` | key length in bytes (-1 if null) |
//! | `%T` | timestamp, ms since the epoch | `%S` | value length (-1 if null) |
//! | `%h` | headers, `key=value` joined by `,` | `%%` | a `%` |
//!
//! and the escapes `\n`, `\t`, `\r`, `\0`, `\\` and `\xHH`. Keys and values are
//! written as raw bytes: `-f '%s'` reproduces a binary value exactly.

use std::io::Write;

use base64::Engine;
use bytes::Bytes;
use ferry_client::ConsumerRecord;
use serde_json::json;

use crate::error::{CliError, CliResult};

/// A format string longer than this is refused (it is typed by a person).
const FORMAT_BYTES_LIMIT: usize = 4096;

/// How each consumed record is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    /// The value and a newline; with `Some(separator)`, the key and the
    /// separator before it.
    Value { key_separator: Option<Vec<u8>> },
    /// One JSON object a line.
    Json,
    /// A format string, parsed.
    Template(Vec<Piece>),
}

/// One part of a format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    KeyLength,
    ValueLength,
    Headers,
}

impl std::str::FromStr for RecordFormat {
    type Err = String;

    /// `value`, `json`, or a format string with `%` fields or `\` escapes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "value" => Ok(RecordFormat::Value {
                key_separator: None,
            }),
            "json" => Ok(RecordFormat::Json),
            _ if text.len() > FORMAT_BYTES_LIMIT => Err(format!(
                "a format string is at most {FORMAT_BYTES_LIMIT} bytes"
            )),
            _ if text.contains(['%', '\\']) => parse_template(text).map(RecordFormat::Template),
            _ => Err(format!(
                "expected value, json, or a format string with %-fields such as '%o %s\\n', not {text:?}"
            )),
        }
    }
}

/// Parses `%` fields and `\` escapes; anything else is literal.
fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let piece = match c {
            '%' => match chars.next() {
                Some('%') => None,
                Some(field) => Some(field_piece(field)?),
                None => return Err("a format string ends with a lone %".into()),
            },
            '\\' => {
                literal.push(unescape(&mut chars)?);
                continue;
            }
            _ => None,
        };
        match piece {
            Some(piece) => {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
            }
            None => {
                let mut buffer = [0u8; 4];
                literal.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn field_piece(field: char) -> Result<Piece, String> {
    Ok(match field {
        't' => Piece::Topic,
        'p' => Piece::Partition,
        'o' => Piece::Offset,
        'T' => Piece::Timestamp,
        'k' => Piece::Key,
        's' => Piece::Value,
        'K' => Piece::KeyLength,
        'S' => Piece::ValueLength,
        'h' => Piece::Headers,
        other => {
            return Err(format!(
                "unknown field %{other} (known: %t %p %o %T %k %s %K %S %h %%)"
            ))
        }
    })
}

/// The byte of `\n`, `\t`, `\r`, `\0`, `\\` or `\xHH` (two hex
/// digits: any byte).
fn unescape(chars: &mut std::str::Chars<'_>) -> Result<u8, String> {
    match chars.next() {
        Some('x') => {
            let digits: String = chars.by_ref().take(2).collect();
            match u8::from_str_radix(&digits, 16) {
                Ok(byte) if digits.len() == 2 => Ok(byte),
                _ => Err(format!("\\x takes two hex digits, not {digits:?}")),
            }
        }
        Some('n') => Ok(b'\n'),
        Some('t') => Ok(b'\t'),
        Some('r') => Ok(b'\r'),
        Some('0') => Ok(0),
        Some('\\') => Ok(b'\\'),
        Some(other) => Err(format!(
            "unknown escape \\{other} (known: \\n \\t \\r \\0 \\\\ \\xHH)"
        )),
        None => Err("a format string ends with a lone \\".into()),
    }
}

/// A separator or delimiter typed with the escapes above (`\n`, `\t`,
/// `\0`, ...); `%` is literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscapedBytes(pub Vec<u8>);

impl std::str::FromStr for EscapedBytes {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_escaped_bytes(text).map(EscapedBytes)
    }
}

fn parse_escaped_bytes(text: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => bytes.push(unescape(&mut chars)?),
            _ => {
                let mut buffer = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    Ok(bytes)
}

/// Writes one record in `format`.
pub fn write_record(
    out: &mut impl Write,
    record: &ConsumerRecord,
    format: &RecordFormat,
) -> CliResult {
    match format {
        RecordFormat::Value { key_separator } => {
            if let Some(separator) = key_separator {
                out.write_all(record.key.as_deref().unwrap_or_default())?;
                out.write_all(separator)?;
            }
            out.write_all(record.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")?;
        }
        RecordFormat::Json => {
            serde_json::to_writer(&mut *out, &record_json(record))
                .map_err(|e| CliError::Io(e.into()))?;
            out.write_all(b"\n")?;
        }
        RecordFormat::Template(pieces) => {
            for piece in pieces {
                write_piece(out, record, piece)?;
            }
        }
    }
    Ok(())
}

fn write_piece(out: &mut impl Write, record: &ConsumerRecord, piece: &Piece) -> CliResult {
    let length = |bytes: &Option<Bytes>| bytes.as_ref().map_or(-1, |b| b.len() as i64);
    match piece {
        Piece::Literal(bytes) => out.write_all(bytes)?,
        Piece::Topic => out.write_all(record.topic.as_bytes())?,
        Piece::Partition => write!(out, "{}", record.partition)?,
        Piece::Offset => write!(out, "{}", record.offset)?,
        Piece::Timestamp => write!(out, "{}", record.timestamp_ms)?,
        Piece::Key => out.write_all(record.key.as_deref().unwrap_or_default())?,
        Piece::Value => out.write_all(record.value.as_deref().unwrap_or_default())?,
        Piece::KeyLength => write!(out, "{}", length(&record.key))?,
        Piece::ValueLength => write!(out, "{}", length(&record.value))?,
        Piece::Headers => {
            for (i, header) in record.headers.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(header.key.as_bytes())?;
                out.write_all(b"=")?;
                out.write_all(header.value.as_deref().unwrap_or_default())?;
            }
        }
    }
    Ok(())
}

/// Bytes as JSON: null, a string when they are UTF-8, else
/// `{"base64": "..."}` (standard alphabet, padded).
fn bytes_json(bytes: &Option<Bytes>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => json!(text),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
        },
    }
}

/// A record as one JSON object.
fn record_json(record: &ConsumerRecord) -> serde_json::Value {
    // A list, not an object: a key may repeat, and order is kept.
    let headers: Vec<serde_json::Value> = record
        .headers
        .iter()
        .map(|h| json!({ "key": h.key, "value": bytes_json(&h.value) }))
        .collect();
    json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": bytes_json(&record.key),
        "value": bytes_json(&record.value),
        "headers": headers,
    })
}

#[cfg(test)]
mod tests {
    use ferry_client::RecordHeader;

    use super::*;

    fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_000,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: vec![
                RecordHeader {
                    key: "trace".into(),
                    value: Some(Bytes::from_static(b"abc")),
                },
                RecordHeader {
                    key: "empty".into(),
                    value: None,
                },
            ],
        }
    }

    fn render(format: &str, record: &ConsumerRecord) -> Vec<u8> {
        let format: RecordFormat = format.parse().expect("a format");
        let mut out = Vec::new();
        write_record(&mut out, record, &format).expect("written");
        out
    }

    #[test]
    fn every_field_and_escape_renders() {
        let r = record(Some(b"k1"), Some(b"hello"));
        assert_eq!(
            render("%t/%p@%o %T [%k=%s] %K %S {%h} 100%%\\t\\n", &r),
            b"orders/2@41 1700000000000 [k1=hello] 2 5 {trace=abc,empty=} 100%\t\n"
        );
        let null = record(None, None);
        assert_eq!(render("%K %S|%k|%s", &null), b"-1 -1||");
    }

    #[test]
    fn values_are_written_as_raw_bytes() {
        let binary = [0u8, 159, 146, 150, 255, b'\n'];
        let r = record(None, Some(&binary));
        assert_eq!(render("%s", &r), binary);
    }

    #[test]
    fn value_mode_prints_the_key_before_a_separator() {
        let r = record(Some(b"alice"), Some(b"hi"));
        let format = RecordFormat::Value {
            key_separator: Some(b"\t".to_vec()),
        };
        let mut out = Vec::new();
        write_record(&mut out, &r, &format).unwrap();
        assert_eq!(out, b"alice\thi\n");
    }

    #[test]
    fn json_shows_non_utf8_bytes_as_base64() {
        let r = record(Some(b"k"), Some(&[0xff, 0x00]));
        let line = render("json", &r);
        let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed["key"], "k");
        assert_eq!(parsed["value"]["base64"], "/wA=");
        assert_eq!(
            parsed["headers"][0],
            json!({"key": "trace", "value": "abc"})
        );
        assert_eq!(parsed["headers"][1], json!({"key": "empty", "value": null}));
    }

    #[test]
    fn bad_formats_are_refused_with_the_reason() {
        for (bad, why) in [
            ("%x", "unknown field %x"),
            ("%", "lone %"),
            ("\\q", "unknown escape"),
            ("plain", "expected value, json"),
        ] {
            let error = bad.parse::<RecordFormat>().unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!("%s"
            .repeat(FORMAT_BYTES_LIMIT)
            .parse::<RecordFormat>()
            .is_err());
    }

    #[test]
    fn separators_take_escapes() {
        assert_eq!(parse_escaped_bytes("\\0"), Ok(vec![0]));
        assert_eq!(parse_escaped_bytes("--\\n"), Ok(b"--\n".to_vec()));
        assert_eq!(parse_escaped_bytes(""), Ok(Vec::new()));
        assert_eq!(parse_escaped_bytes("\\xff\\x00"), Ok(vec![0xff, 0]));
        assert!(parse_escaped_bytes("\\xg1").is_err());
        assert!(parse_escaped_bytes("\\x1").is_err());
    }
}
