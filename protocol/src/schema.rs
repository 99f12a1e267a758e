//! The protocol's documentation, generated from its one source: the API
//! table ([`crate::api`]) and the message declarations
//! ([`crate::messages`]). [`render`] writes the API table and the proto3
//! schema that `PROTOCOL.md` carries between its `BEGIN GENERATED` and
//! `END GENERATED` markers; a test fails when the file differs from it
//! (`FERRY_BLESS=1 cargo test -p ferry-protocol` rewrites the section).

use crate::api::ApiKey;
use crate::messages::MESSAGES;

/// One message as declared (doc lines are the `///` comments).
#[derive(Debug)]
pub struct MessageSchema {
    pub name: &'static str,
    pub doc: &'static [&'static str],
    pub fields: &'static [FieldSchema],
}

/// One field as declared: its prost attribute and Rust type, as written.
#[derive(Debug)]
pub struct FieldSchema {
    pub name: &'static str,
    /// The inside of `#[prost(...)]`, e.g. `uint64, optional, tag = "2"`.
    pub prost: &'static str,
    pub rust_type: &'static str,
    pub doc: &'static [&'static str],
}

/// Marker lines around the generated part of `PROTOCOL.md`.
pub const BEGIN_MARKER: &str =
    "<!-- BEGIN GENERATED from protocol/src/{api,messages}.rs: FERRY_BLESS=1 cargo test -p ferry-protocol -->";
pub const END_MARKER: &str = "<!-- END GENERATED -->";

/// The generated section: the API table, then the proto3 schema.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str("| api_key | API | request | response | resend after a lost connection |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    for key in ApiKey::ALL {
        let row = key.row();
        let request = if row.push {
            "— (broker to client, `PUSH` flag)".to_string()
        } else {
            with_tail(row.request, row.request_tail)
        };
        let retry = match (row.push, row.retry) {
            (true, _) => "—",
            (false, true) => "yes",
            (false, false) => "no",
        };
        out.push_str(&format!(
            "| {} | {:?} | {request} | {} | {retry} |\n",
            key as u16,
            key,
            with_tail(row.response, row.response_tail),
        ));
    }
    out.push_str("\n```proto\nsyntax = \"proto3\";\n");
    for message in MESSAGES {
        out.push('\n');
        render_message(&mut out, message);
    }
    out.push_str("```\n");
    out
}

fn with_tail(message: &str, tail: Option<u32>) -> String {
    match tail {
        Some(tag) => format!("{message} (field {tag} as a raw tail)"),
        None => message.to_string(),
    }
}

fn render_message(out: &mut String, message: &MessageSchema) {
    for line in message.doc {
        out.push_str(&format!("//{line}\n"));
    }
    if message.fields.is_empty() {
        out.push_str(&format!("message {} {{}}\n", message.name));
        return;
    }
    out.push_str(&format!("message {} {{\n", message.name));
    for field in message.fields {
        for line in field.doc {
            out.push_str(&format!("  //{line}\n"));
        }
        out.push_str(&format!("  {};\n", field_line(field)));
    }
    out.push_str("}\n");
}

/// `optional uint64 retention_ms = 2`, from the prost attribute and type.
fn field_line(field: &FieldSchema) -> String {
    let parts: Vec<&str> = field.prost.split(',').map(str::trim).collect();
    let kind = parts.first().copied().unwrap_or_default();
    let tag = parts
        .iter()
        .find_map(|p| p.strip_prefix("tag"))
        .map(|t| t.trim_start_matches([' ', '=']).trim_matches([' ', '"']))
        .unwrap_or("?");
    let repeated = parts.contains(&"repeated");
    let optional = parts.contains(&"optional");
    let proto_type = if kind == "message" {
        inner_type(field.rust_type)
    } else if kind.starts_with("bytes") {
        "bytes".to_string()
    } else {
        kind.to_string()
    };
    // Singular message fields are optional by nature in proto3.
    let label = match (repeated, optional && kind != "message") {
        (true, _) => "repeated ",
        (false, true) => "optional ",
        (false, false) => "",
    };
    format!("{label}{proto_type} {} = {tag}", field.name)
}

/// `Option < TopicConfig >` or `Vec < TopicPartition >` -> the inner name.
fn inner_type(rust_type: &str) -> String {
    let compact: String = rust_type.chars().filter(|c| !c.is_whitespace()).collect();
    compact
        .trim_start_matches("Option<")
        .trim_start_matches("Vec<")
        .trim_end_matches('>')
        .to_string()
}

/// The generated section of `document`, or `None` without both markers.
pub fn generated_section(document: &str) -> Option<&str> {
    let start = document.find(BEGIN_MARKER)? + BEGIN_MARKER.len();
    let end = start + document[start..].find(END_MARKER)?;
    Some(document[start..end].trim_matches('\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTOCOL_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");

    #[test]
    fn protocol_md_carries_the_generated_table_and_schema() {
        let document = std::fs::read_to_string(PROTOCOL_MD).expect("PROTOCOL.md is readable");
        let expected = render();
        if std::env::var_os("FERRY_BLESS").is_some() {
            let start = document.find(BEGIN_MARKER).expect("begin marker") + BEGIN_MARKER.len();
            let end = start + document[start..].find(END_MARKER).expect("end marker");
            let rewritten = format!(
                "{}\n\n{}\n{}",
                &document[..start],
                expected.trim_end(),
                &document[end..]
            );
            std::fs::write(PROTOCOL_MD, rewritten).expect("PROTOCOL.md is writable");
            return;
        }
        let section =
            generated_section(&document).expect("PROTOCOL.md has the BEGIN/END GENERATED markers");
        assert_eq!(
            section.trim(),
            expected.trim(),
            "PROTOCOL.md is out of date: run FERRY_BLESS=1 cargo test -p ferry-protocol"
        );
    }

    #[test]
    fn every_api_and_message_is_in_the_schema() {
        let rendered = render();
        for key in ApiKey::ALL {
            let row = key.row();
            assert!(rendered.contains(&format!("| {} | {:?} |", key as u16, key)));
            for name in [row.request, row.response] {
                if !name.is_empty() {
                    assert!(rendered.contains(&format!("message {name} ")), "{name}");
                }
            }
        }
    }

    #[test]
    fn fields_render_as_proto3() {
        let field = |prost, rust_type| FieldSchema {
            name: "f",
            prost,
            rust_type,
            doc: &[],
        };
        assert_eq!(
            field_line(&field("uint64, optional, tag = \"2\"", "Option<u64>")),
            "optional uint64 f = 2"
        );
        assert_eq!(
            field_line(&field(
                "message, optional, tag = \"2\"",
                "Option < TopicConfig >"
            )),
            "TopicConfig f = 2"
        );
        assert_eq!(
            field_line(&field(
                "message, repeated, tag = \"6\"",
                "Vec<TopicPartition>"
            )),
            "repeated TopicPartition f = 6"
        );
        assert_eq!(
            field_line(&field("bytes = \"bytes\", tag = \"15\"", "Bytes")),
            "bytes f = 15"
        );
        assert_eq!(
            field_line(&field(
                "bytes = \"bytes\", optional, tag = \"7\"",
                "Option<Bytes>"
            )),
            "optional bytes f = 7"
        );
    }
}
