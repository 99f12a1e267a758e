//! Everything that writes to standard output on behalf of a subcommand:
//! aligned tables, JSON documents and the one-line `outcome` of a change.
//! (Consumed records are written by `record_format`.)

use std::io::Write;

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

/// Whether tables may use colour: stdout is a terminal and `NO_COLOR` is
/// unset (<https://no-color.org>).
fn colour_on_stdout() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Prints rows as a table with aligned columns, the header in bold on a
/// terminal.
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
    let header = line(headers.to_vec());
    match colour_on_stdout() {
        true => writeln!(out, "\x1b[1m{header}\x1b[0m")?,
        false => writeln!(out, "{header}")?,
    }
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
