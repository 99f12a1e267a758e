//! Everything that writes to standard output on behalf of a subcommand:
//! aligned tables, JSON documents, the one-line `outcome` of a change, and
//! consumed records in either `--format`.

use std::io::Write;

use bytes::Bytes;
use ferry_client::ConsumerRecord;
use serde_json::json;

use crate::cli::Format;
use crate::error::{CliError, CliResult};

/// Prints a one-line outcome: `value` with --json, `text` otherwise.
pub fn outcome(json_output: bool, value: serde_json::Value, text: String) -> CliResult {
    if json_output {
        print_json(value)
    } else {
        println!("{text}");
        Ok(())
    }
}

/// Prints `value` as one line of JSON.
pub fn print_json(value: serde_json::Value) -> CliResult {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &value).map_err(|e| CliError::Io(e.into()))?;
    writeln!(out)?;
    Ok(())
}

/// Prints rows as a table with aligned columns.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) -> CliResult {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Writes one consumed record as a line: its raw value, or a JSON object.
pub fn print_record(out: &mut impl Write, record: &ConsumerRecord, format: Format) -> CliResult {
    match format {
        Format::Value => {
            out.write_all(record.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")?;
        }
        Format::Json => {
            serde_json::to_writer(&mut *out, &record_json(record))
                .map_err(|e| CliError::Io(e.into()))?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// A record as JSON; keys, values and headers are shown as (lossy) UTF-8.
fn record_json(record: &ConsumerRecord) -> serde_json::Value {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let headers: serde_json::Map<String, serde_json::Value> = record
        .headers
        .iter()
        .map(|h| (h.key.clone(), json!(text(&h.value))))
        .collect();
    json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": text(&record.key),
        "value": text(&record.value),
        "headers": headers,
    })
}
