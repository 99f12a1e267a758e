//! What `ferryctl produce` reads its messages from: standard input split
//! into lines (the default), split at `--delimiter` bytes, or whole (an
//! empty `--delimiter`), or each `--file` whole. Input is read on its own
//! thread and handed over message by message; no message may exceed
//! `MESSAGE_BYTES_LIMIT`, so a runaway input fails instead of filling memory.

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::cli::ProduceArgs;

/// The largest message read: the broker refuses batches above its
/// `--max-batch-bytes` (8 MiB by default, 64 MiB at most), so a larger
/// message could never be stored.
pub const MESSAGE_BYTES_LIMIT: usize = 64 * 1024 * 1024;
/// Messages read ahead of the sends.
const READ_AHEAD_MESSAGES: usize = 10_000;
/// Bytes asked of standard input at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Where the messages come from.
enum Source {
    /// Standard input, split at these bytes; a trailing `\r` is removed
    /// from each message when they are `\n` (text lines).
    Delimited(Vec<u8>),
    /// All of standard input, one message.
    Whole,
    /// Each file, one message.
    Files(Vec<PathBuf>),
}

/// Starts reading the input `args` name; messages arrive in order.
pub fn read_messages(args: &ProduceArgs) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let source = match (&args.delimiter, args.files.is_empty()) {
        (_, false) => Source::Files(args.files.clone()),
        (Some(delimiter), true) if delimiter.0.is_empty() => Source::Whole,
        (Some(delimiter), true) => Source::Delimited(delimiter.0.clone()),
        (None, true) => Source::Delimited(b"\n".to_vec()),
    };
    let (messages_tx, messages_rx) = mpsc::channel(READ_AHEAD_MESSAGES);
    std::thread::spawn(move || {
        let send = |message| messages_tx.blocking_send(message).is_ok();
        match source {
            Source::Files(paths) => {
                for path in paths {
                    if !send(read_file(&path)) {
                        return;
                    }
                }
            }
            Source::Whole => {
                let mut stdin = std::io::stdin().lock();
                send(read_bounded(&mut stdin));
            }
            Source::Delimited(delimiter) => {
                let mut stdin = std::io::stdin().lock();
                split(&mut stdin, &delimiter, send);
            }
        }
    });
    messages_rx
}

fn too_large() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a message is larger than {MESSAGE_BYTES_LIMIT} bytes"),
    )
}

/// All of `input`, at most `MESSAGE_BYTES_LIMIT` bytes.
fn read_bounded(input: &mut impl Read) -> std::io::Result<Bytes> {
    let mut message = Vec::new();
    input
        .take(MESSAGE_BYTES_LIMIT as u64 + 1)
        .read_to_end(&mut message)?;
    match message.len() > MESSAGE_BYTES_LIMIT {
        true => Err(too_large()),
        false => Ok(Bytes::from(message)),
    }
}

fn read_file(path: &PathBuf) -> std::io::Result<Bytes> {
    let mut file = std::fs::File::open(path).map_err(|error| {
        std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
    })?;
    read_bounded(&mut file)
}

/// Splits `input` at `delimiter` and hands each message to `send` until
/// it returns false. The bytes after the last delimiter are a message if
/// there are any.
fn split(
    input: &mut impl Read,
    delimiter: &[u8],
    mut send: impl FnMut(std::io::Result<Bytes>) -> bool,
) {
    debug_assert!(!delimiter.is_empty());
    let lines = delimiter == b"\n";
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut scanned = 0;
    loop {
        let read = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                send(Err(error));
                return;
            }
        };
        pending.extend_from_slice(&chunk[..read]);
        let mut start = 0;
        while let Some(found) = find(&pending[scanned..], delimiter) {
            let end = scanned + found;
            if end - start > MESSAGE_BYTES_LIMIT {
                send(Err(too_large()));
                return;
            }
            if !send(Ok(message(&pending[start..end], lines))) {
                return;
            }
            start = end + delimiter.len();
            scanned = start;
        }
        pending.drain(..start);
        scanned = pending.len().saturating_sub(delimiter.len() - 1);
        if pending.len() > MESSAGE_BYTES_LIMIT {
            send(Err(too_large()));
            return;
        }
    }
    if !pending.is_empty() {
        send(Ok(message(&pending, lines)));
    }
}

/// A message's bytes; text lines lose a trailing `\r`.
fn message(bytes: &[u8], lines: bool) -> Bytes {
    let bytes = match lines {
        true => bytes.strip_suffix(b"\r").unwrap_or(bytes),
        false => bytes,
    };
    Bytes::copy_from_slice(bytes)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(input: &[u8], delimiter: &[u8]) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        split(&mut &input[..], delimiter, |message| {
            found.push(message.expect("read").to_vec());
            true
        });
        found
    }

    #[test]
    fn lines_and_delimiters_split_where_expected() {
        assert_eq!(
            split_all(b"a\nb\r\nc", b"\n"),
            [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(split_all(b"a\nb\n", b"\n"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            split_all(b"x--y----z", b"--"),
            [b"x".to_vec(), b"y".to_vec(), Vec::new(), b"z".to_vec()]
        );
        assert_eq!(split_all(b"\0\xff\0", b"\0"), [Vec::new(), vec![0xff]]);
        assert!(split_all(b"", b"\n").is_empty());
    }

    /// Hands out 1, 2 or 3 bytes a read, so delimiters fall across reads
    /// at every offset.
    struct Trickle<'a> {
        bytes: &'a [u8],
        reads: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            let n = (self.reads % 3 + 1).min(self.bytes.len()).min(buffer.len());
            buffer[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_delimiter_across_reads_is_found() {
        let mut input = Vec::new();
        for i in 0..200u8 {
            input.extend_from_slice(&vec![b'a' + i % 26; usize::from(i % 7)]);
            input.extend_from_slice(b"|#|");
        }
        let mut found = Vec::new();
        let mut reader = Trickle {
            bytes: &input,
            reads: 0,
        };
        split(&mut reader, b"|#|", |message| {
            found.push(message.expect("read").to_vec());
            true
        });
        assert_eq!(found.len(), 200);
        for (i, message) in found.iter().enumerate() {
            assert_eq!(message.len(), i % 7, "message {i}");
        }
    }

    #[test]
    fn whole_input_is_bounded() {
        let big = vec![1u8; MESSAGE_BYTES_LIMIT + 1];
        assert!(read_bounded(&mut &big[..]).is_err());
        assert_eq!(
            read_bounded(&mut &b"abc"[..]).unwrap(),
            Bytes::from_static(b"abc")
        );
    }
}
