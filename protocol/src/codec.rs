//! A `tokio_util` codec over [`crate::frame`]: `Decoder` yields whole frames
//! (refusing oversized declared lengths before allocating), `Encoder` writes
//! [`OutFrame`]s. Servers that want zero-copy vectored writes use the
//! `OutFrame` parts directly instead of the encoder.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::ProtocolError;
use crate::frame::{split_frame, Frame, OutFrame, DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_BYTES_LIMIT};

#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_bytes: usize,
}

impl FrameCodec {
    pub fn new(max_frame_bytes: usize) -> FrameCodec {
        FrameCodec {
            max_frame_bytes: max_frame_bytes.min(MAX_FRAME_BYTES_LIMIT),
        }
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

/// Codec errors: bad frames, or the transport's own I/O error.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(split_frame(src, self.max_frame_bytes)?)
    }
}

impl Encoder<OutFrame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, item: OutFrame, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(item.len());
        dst.extend_from_slice(&item.head);
        dst.extend_from_slice(&item.tail);
        Ok(())
    }
}
