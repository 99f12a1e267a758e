//! Compression of a batch's records region (bytes `[61, end)`), with
//! Kafka's four codecs as their wire formats are:
//!
//! ```text
//! codec  attribute  records region holds
//! none   0          the records as they are
//! gzip   1          one gzip stream (RFC 1952; further members are read too)
//! snappy 2          xerial framing: "\x82SNAPPY\0", i32 version (1), i32
//!                   compatible version (1), then repeated [i32 length][raw
//!                   snappy block of at most 32 KiB of input]; a plain raw
//!                   snappy block (no magic) is read too, as Kafka's readers do
//! lz4    3          one LZ4 frame (independent 64 KiB blocks, no checksums
//!                   written; any valid frame is read, and nothing after it)
//! zstd   4          one zstd frame with its content size (concatenated frames
//!                   are read too)
//! ```
//!
//! Every codec's output is bounded by the caller's limit: decompression
//! reads at most `limit + 1` bytes of output into a buffer that grows by
//! doubling and is never larger than that, whatever sizes the compressed
//! stream declares, so a decompression bomb costs about `limit` bytes of
//! memory and is refused as `TooLarge { what: "decompressed records" }`.
//! Corrupt input is `Malformed`, with one message per codec.
//!
//! gzip, snappy and lz4 are pure Rust (flate2 on miniz_oxide, snap,
//! lz4_flex). zstd binds the C libzstd (the `zstd` crate, bundled source
//! built with cc): the pure-Rust ruzstd decodes several times slower and its
//! encoder only offers the fastest levels.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use super::{
    COMPRESSION_GZIP, COMPRESSION_LZ4, COMPRESSION_MASK, COMPRESSION_NONE, COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
};
use crate::error::ProtocolError;

/// gzip level: Kafka's default (the deflate default).
const GZIP_LEVEL: u32 = 6;
/// zstd level: Kafka's default (libzstd's default).
const ZSTD_LEVEL: i32 = 3;
/// Smallest zstd window (log2 bytes) a frame may ask the decoder for,
/// whatever the limit: 8 MiB covers what producers declare when streaming
/// at levels up to 19.
const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;
/// Largest zstd window (log2 bytes) ever granted: libzstd's own default cap.
const ZSTD_WINDOW_LOG_CEILING: u32 = 27;
/// The xerial stream header: magic, version 1, compatible version 1.
const XERIAL_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
];
/// Bytes of the xerial magic, the part that tells a framed stream.
const XERIAL_MAGIC_BYTES: usize = 8;
/// Input bytes per xerial block: xerial's (and kafka-python's) default.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// No raw snappy block expands more than this: its densest element, a copy
/// with a two-byte offset, is 3 bytes for 64.
const SNAPPY_MAX_EXPANSION: usize = 22;
/// First output step of a bounded decompression; each later step doubles
/// what is there.
const FIRST_STEP_BYTES: usize = 16 * 1024;

const TOO_LARGE: &str = "decompressed records";
const CORRUPT_GZIP: &str = "corrupt gzip records";
const CORRUPT_SNAPPY: &str = "corrupt snappy records";
const CORRUPT_XERIAL: &str = "corrupt xerial snappy framing";
const CORRUPT_LZ4: &str = "corrupt lz4 frame";
const CORRUPT_ZSTD: &str = "corrupt zstd frame";

/// A batch's compression codec (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec of a batch's attributes; codecs 5-7 are undefined.
    pub fn from_attributes(attributes: u16) -> Result<Compression, ProtocolError> {
        match attributes & COMPRESSION_MASK {
            COMPRESSION_NONE => Ok(Compression::None),
            COMPRESSION_GZIP => Ok(Compression::Gzip),
            COMPRESSION_SNAPPY => Ok(Compression::Snappy),
            COMPRESSION_LZ4 => Ok(Compression::Lz4),
            COMPRESSION_ZSTD => Ok(Compression::Zstd),
            codec => Err(ProtocolError::Unsupported {
                what: "compression codec (undefined)",
                value: u64::from(codec),
            }),
        }
    }

    /// The attribute bits of the codec (`COMPRESSION_*`).
    pub fn attribute(self) -> u16 {
        match self {
            Compression::None => COMPRESSION_NONE,
            Compression::Gzip => COMPRESSION_GZIP,
            Compression::Snappy => COMPRESSION_SNAPPY,
            Compression::Lz4 => COMPRESSION_LZ4,
            Compression::Zstd => COMPRESSION_ZSTD,
        }
    }

    /// The codec's name, as Kafka's `compression.type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = ProtocolError;

    fn from_str(name: &str) -> Result<Compression, ProtocolError> {
        Compression::ALL
            .into_iter()
            .find(|codec| codec.name().eq_ignore_ascii_case(name))
            .ok_or(ProtocolError::Malformed(
                "unknown compression codec (valid: none, gzip, snappy, lz4, zstd)",
            ))
    }
}

/// `records` compressed with `codec`, in Kafka's wire format for it.
pub fn compress(codec: Compression, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress_into(codec, records, &mut out);
    out
}

/// Appends `records` compressed with `codec` to `out`.
pub(super) fn compress_into(codec: Compression, records: &[u8], out: &mut Vec<u8>) {
    // Every writer below writes into memory: only a bug can fail it.
    const IN_MEMORY: &str = "compressing into memory cannot fail";
    match codec {
        Compression::None => out.extend_from_slice(records),
        Compression::Gzip => {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut encoder = flate2::write::GzEncoder::new(out, level);
            encoder.write_all(records).expect(IN_MEMORY);
            encoder.finish().expect(IN_MEMORY);
        }
        Compression::Snappy => xerial_compress(records, out),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            encoder.write_all(records).expect(IN_MEMORY);
            encoder.finish().expect(IN_MEMORY);
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).expect(IN_MEMORY);
            encoder
                .set_pledged_src_size(Some(records.len() as u64))
                .expect(IN_MEMORY);
            encoder.include_contentsize(true).expect(IN_MEMORY);
            encoder.write_all(records).expect(IN_MEMORY);
            encoder.finish().expect(IN_MEMORY);
        }
    }
}

/// Kafka's (xerial's) snappy framing around raw snappy blocks.
fn xerial_compress(records: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&XERIAL_HEADER);
    let mut encoder = snap::raw::Encoder::new();
    for chunk in records.chunks(XERIAL_BLOCK_BYTES) {
        let length_at = out.len();
        let block_at = length_at + 4;
        out.resize(block_at + snap::raw::max_compress_len(chunk.len()), 0);
        let written = encoder
            .compress(chunk, &mut out[block_at..])
            .expect("a xerial block is far below snappy's input limit");
        out.truncate(block_at + written);
        out[length_at..block_at].copy_from_slice(&(written as u32).to_be_bytes());
    }
}

/// `compressed` decompressed with `codec`: at most `limit_bytes` of output,
/// else `TooLarge` (after producing at most `limit_bytes + 1`); corrupt or
/// truncated input is `Malformed`.
pub fn decompress(
    codec: Compression,
    compressed: &[u8],
    limit_bytes: usize,
) -> Result<Vec<u8>, ProtocolError> {
    match codec {
        Compression::None => {
            if compressed.len() > limit_bytes {
                return Err(too_large(compressed.len(), limit_bytes));
            }
            Ok(compressed.to_vec())
        }
        Compression::Gzip => read_bounded(
            flate2::bufread::MultiGzDecoder::new(compressed),
            limit_bytes,
            CORRUPT_GZIP,
        ),
        Compression::Snappy => snappy_decompress(compressed, limit_bytes),
        Compression::Lz4 => {
            let mut decoder = lz4_flex::frame::FrameDecoder::new(compressed);
            let out = read_bounded(&mut decoder, limit_bytes, CORRUPT_LZ4)?;
            // The decoder stops at the frame's end mark: nothing may follow,
            // and the end mark must be there (the decoder takes the end of
            // its input inside the end mark as the end of the frame).
            if !decoder.get_ref().is_empty() || !lz4_frame_is_whole(compressed) {
                return Err(ProtocolError::Malformed(CORRUPT_LZ4));
            }
            Ok(out)
        }
        Compression::Zstd => {
            let corrupt = |_| ProtocolError::Malformed(CORRUPT_ZSTD);
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(compressed).map_err(corrupt)?;
            decoder
                .window_log_max(zstd_window_log_max(limit_bytes))
                .map_err(corrupt)?;
            read_bounded(decoder, limit_bytes, CORRUPT_ZSTD)
        }
    }
}

/// The largest zstd window granted for output of at most `limit` bytes:
/// the limit rounded up to a power of two, within the floor and ceiling.
fn zstd_window_log_max(limit: usize) -> u32 {
    let bits = usize::BITS - limit.saturating_sub(1).leading_zeros();
    bits.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_CEILING)
}

/// Reads `reader` to its end, growing the output by doubling steps capped
/// so that it never holds more than `limit + 1` bytes.
/// Whether `frame` is one whole LZ4 frame: its header, blocks, end mark
/// and (if its flags say so) content checksum, and nothing else. Reads only
/// the framing (sizes and flags), after the decoder has checked the rest.
fn lz4_frame_is_whole(frame: &[u8]) -> bool {
    const MAGIC_BYTES: usize = 4;
    let Some(&flags) = frame.get(MAGIC_BYTES) else {
        return false;
    };
    let block_checksum = flags & 0x10 != 0;
    let content_size = flags & 0x08 != 0;
    let content_checksum = flags & 0x04 != 0;
    let dictionary = flags & 0x01 != 0;
    // Magic, FLG, BD, optional content size and dictionary id, HC.
    let mut at =
        MAGIC_BYTES + 2 + if content_size { 8 } else { 0 } + if dictionary { 4 } else { 0 } + 1;
    loop {
        let Some(size) = at.checked_add(4).and_then(|end| frame.get(at..end)) else {
            return false;
        };
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
        at += 4;
        if size == 0 {
            break;
        }
        let data = (size & 0x7fff_ffff) as usize;
        at = at.saturating_add(data + if block_checksum { 4 } else { 0 });
    }
    at.checked_add(if content_checksum { 4 } else { 0 }) == Some(frame.len())
}

fn read_bounded(
    mut reader: impl Read,
    limit: usize,
    corrupt: &'static str,
) -> Result<Vec<u8>, ProtocolError> {
    let ceiling = limit.saturating_add(1);
    let mut out = Vec::new();
    loop {
        let room = ceiling - out.len();
        if room == 0 {
            return Err(too_large(ceiling, limit));
        }
        let step = out.len().max(FIRST_STEP_BYTES).min(room);
        out.reserve_exact(step);
        let read = (&mut reader)
            .take(step as u64)
            .read_to_end(&mut out)
            .map_err(|_| ProtocolError::Malformed(corrupt))?;
        if read < step {
            return Ok(out);
        }
    }
}

/// Xerial-framed snappy, or (without the xerial magic) one raw block.
fn snappy_decompress(compressed: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    if !compressed.starts_with(&XERIAL_HEADER[..XERIAL_MAGIC_BYTES]) {
        snappy_block(compressed, &mut out, limit)?;
        return Ok(out);
    }
    let malformed = || ProtocolError::Malformed(CORRUPT_XERIAL);
    let version = compressed
        .get(XERIAL_MAGIC_BYTES..XERIAL_MAGIC_BYTES + 4)
        .ok_or_else(malformed)?;
    // Version 1 is the only one there is; what claims to be older is not
    // xerial's (its compatible version is not checked, as xerial does not).
    if i32::from_be_bytes([version[0], version[1], version[2], version[3]]) < 1 {
        return Err(malformed());
    }
    let mut rest = compressed
        .get(XERIAL_HEADER.len()..)
        .ok_or_else(malformed)?;
    while !rest.is_empty() {
        let (length, after) = rest.split_first_chunk::<4>().ok_or_else(malformed)?;
        let length = usize::try_from(i32::from_be_bytes(*length)).map_err(|_| malformed())?;
        if length > after.len() {
            return Err(malformed());
        }
        let (block, after) = after.split_at(length);
        snappy_block(block, &mut out, limit)?;
        rest = after;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, refusing it before any
/// allocation when its declared length passes `limit` in all or could not
/// come from its compressed size.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), ProtocolError> {
    let malformed = |_| ProtocolError::Malformed(CORRUPT_SNAPPY);
    let declared = snap::raw::decompress_len(block).map_err(malformed)?;
    if declared > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
        return Err(ProtocolError::Malformed(CORRUPT_SNAPPY));
    }
    let start = out.len();
    let end = start.saturating_add(declared);
    if end > limit {
        return Err(too_large(end, limit));
    }
    if end > out.capacity() {
        let grown = out.capacity().saturating_mul(2).clamp(end, limit);
        out.reserve_exact(grown - start);
    }
    out.resize(end, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(malformed)?;
    if written != declared {
        return Err(ProtocolError::Malformed(CORRUPT_SNAPPY));
    }
    Ok(())
}

fn too_large(actual: usize, limit: usize) -> ProtocolError {
    ProtocolError::TooLarge {
        what: TOO_LARGE,
        actual: actual as u64,
        limit: limit as u64,
    }
}
