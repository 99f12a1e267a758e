//! Frames: `length:u32` then `length` bytes of a fixed 10-byte header and a
//! prost-encoded body. Sans-IO: parse from and encode into byte buffers.
//!
//! ```text
//! u32 length        bytes after this field (header + body), <= max_frame_bytes
//! u16 api_key
//! u16 api_version
//! u32 correlation_id  echoed in the response
//! u16 flags           RESPONSE | ERROR | PUSH | NO_RESPONSE
//! ..  body            protobuf (prost) message
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;

pub const LENGTH_PREFIX_BYTES: usize = 4;
pub const FRAME_HEADER_BYTES: usize = 10;
/// Default `max_frame_bytes`; servers announce theirs in the handshake.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// No configuration may raise the frame limit past this.
pub const MAX_FRAME_BYTES_LIMIT: usize = 256 * 1024 * 1024;

/// Set on every frame the server sends in answer to a request.
pub const FLAG_RESPONSE: u16 = 1;
/// The body is an `ErrorResponse` instead of the API's own response.
pub const FLAG_ERROR: u16 = 1 << 1;
/// A frame the server sends unasked (queue deliveries); correlation id 0.
pub const FLAG_PUSH: u16 = 1 << 2;
/// The client expects no response (produce with acks = none).
pub const FLAG_NO_RESPONSE: u16 = 1 << 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub api_key: u16,
    pub api_version: u16,
    pub correlation_id: u32,
    pub flags: u16,
}

impl FrameHeader {
    pub fn request(api_key: u16, api_version: u16, correlation_id: u32) -> FrameHeader {
        FrameHeader {
            api_key,
            api_version,
            correlation_id,
            flags: 0,
        }
    }

    /// The header of the response to this request.
    pub fn response(&self) -> FrameHeader {
        FrameHeader {
            flags: FLAG_RESPONSE,
            ..*self
        }
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16(self.api_key);
        out.put_u16(self.api_version);
        out.put_u32(self.correlation_id);
        out.put_u16(self.flags);
    }

    pub fn parse(buf: &[u8]) -> Result<FrameHeader, ProtocolError> {
        if buf.len() < FRAME_HEADER_BYTES {
            return Err(ProtocolError::Malformed("frame shorter than its header"));
        }
        Ok(FrameHeader {
            api_key: u16::from_be_bytes([buf[0], buf[1]]),
            api_version: u16::from_be_bytes([buf[2], buf[3]]),
            correlation_id: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            flags: u16::from_be_bytes([buf[8], buf[9]]),
        })
    }
}

/// A received frame: header plus body bytes (zero-copy slice of the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: FrameHeader,
    pub body: Bytes,
}

/// A frame ready to send: `head` (length, header, encoded body) and an
/// optional `tail` of raw bytes counted in the length, sent with a vectored
/// write so record data is never copied into the frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutFrame {
    pub head: Bytes,
    pub tail: Bytes,
}

impl OutFrame {
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Encodes a frame whose body is `message`, then a raw `tail` appended as
/// protobuf field `tail_tag` (a `bytes` field), without copying the tail.
pub fn encode_frame<M: prost::Message>(
    header: FrameHeader,
    message: &M,
    tail: Option<(u32, Bytes)>,
) -> OutFrame {
    let body_len = message.encoded_len();
    let (tail_key, tail) = match tail {
        Some((tag, bytes)) if !bytes.is_empty() => {
            let mut key = BytesMut::with_capacity(16);
            prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut key);
            prost::encoding::encode_varint(bytes.len() as u64, &mut key);
            (key, bytes)
        }
        _ => (BytesMut::new(), Bytes::new()),
    };
    let length = FRAME_HEADER_BYTES + body_len + tail_key.len() + tail.len();
    let mut head = BytesMut::with_capacity(
        LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES + body_len + tail_key.len(),
    );
    head.put_u32(length as u32);
    header.encode(&mut head);
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = message.encode(&mut head);
    head.extend_from_slice(&tail_key);
    OutFrame {
        head: head.freeze(),
        tail,
    }
}

/// Tag of `throttle_time_ms`, a field of every response message.
pub const THROTTLE_TIME_MS_TAG: u32 = 14;

/// `frame` (a response whose message leaves `throttle_time_ms` unset) with
/// `throttle_time_ms` set. The field goes first in the body — protobuf
/// fields may come in any order — so neither the encoded body nor a raw
/// tail is re-encoded or copied; only the head is rebuilt.
pub fn with_throttle_time(frame: &OutFrame, throttle_time_ms: u32) -> OutFrame {
    let body_start = LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES;
    if throttle_time_ms == 0 || frame.head.len() < body_start {
        return frame.clone();
    }
    let mut field = BytesMut::with_capacity(8);
    prost::encoding::uint32::encode(THROTTLE_TIME_MS_TAG, &throttle_time_ms, &mut field);
    let length = u32::from_be_bytes([frame.head[0], frame.head[1], frame.head[2], frame.head[3]]);
    let mut head = BytesMut::with_capacity(frame.head.len() + field.len());
    head.put_u32(length + field.len() as u32);
    head.extend_from_slice(&frame.head[LENGTH_PREFIX_BYTES..body_start]);
    head.extend_from_slice(&field);
    head.extend_from_slice(&frame.head[body_start..]);
    OutFrame {
        head: head.freeze(),
        tail: frame.tail.clone(),
    }
}

/// Looks at the front of `buf`: `Ok(None)` until a whole frame is there;
/// `Err` when the declared length is out of bounds. Nothing is allocated
/// for a declared length before it is checked against `max_frame_bytes`.
pub fn declared_length(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>, ProtocolError> {
    if buf.len() < LENGTH_PREFIX_BYTES {
        return Ok(None);
    }
    let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if length > max_frame_bytes {
        return Err(ProtocolError::TooLarge {
            what: "frame length",
            actual: length as u64,
            limit: max_frame_bytes as u64,
        });
    }
    if length < FRAME_HEADER_BYTES {
        return Err(ProtocolError::Malformed(
            "frame length shorter than the frame header",
        ));
    }
    Ok(Some(length))
}

/// Splits one whole frame off the front of `buf` if it is complete.
pub fn split_frame(
    buf: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<Option<Frame>, ProtocolError> {
    let Some(length) = declared_length(buf, max_frame_bytes)? else {
        return Ok(None);
    };
    if buf.len() < LENGTH_PREFIX_BYTES + length {
        // Reserve only what this (bounded) frame still needs.
        buf.reserve(LENGTH_PREFIX_BYTES + length - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(LENGTH_PREFIX_BYTES + length).freeze();
    let _ = frame.split_to(LENGTH_PREFIX_BYTES);
    let header = FrameHeader::parse(&frame)?;
    let body = frame.split_off(FRAME_HEADER_BYTES);
    Ok(Some(Frame { header, body }))
}

#[cfg(test)]
mod throttle_tests {
    use super::*;
    use crate::messages::{FetchResponse, StatusResponse, FETCH_RECORDS_TAG};
    use prost::Message;

    fn body_of(frame: &OutFrame) -> Bytes {
        let mut all = BytesMut::new();
        all.extend_from_slice(&frame.head);
        all.extend_from_slice(&frame.tail);
        let split = split_frame(&mut all, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        split.body
    }

    #[test]
    fn throttle_time_is_added_without_touching_body_or_tail() {
        let header = FrameHeader::request(7, 1, 9).response();
        let response = FetchResponse {
            next_offset: 42,
            ..FetchResponse::default()
        };
        let records = Bytes::from_static(b"raw record batches");
        let frame = encode_frame(
            header,
            &response,
            Some((FETCH_RECORDS_TAG, records.clone())),
        );
        let throttled = with_throttle_time(&frame, 1234);
        assert_eq!(throttled.tail, frame.tail);
        let decoded = FetchResponse::decode(body_of(&throttled)).unwrap();
        assert_eq!(decoded.throttle_time_ms, 1234);
        assert_eq!(decoded.next_offset, 42);
        assert_eq!(decoded.records, records);
        let status = encode_frame(header, &StatusResponse::default(), None);
        let decoded = StatusResponse::decode(body_of(&with_throttle_time(&status, 7))).unwrap();
        assert_eq!(decoded.throttle_time_ms, 7);
        assert_eq!(with_throttle_time(&status, 0), status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Sample {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(bytes = "bytes", tag = "2")]
        data: Bytes,
    }

    fn joined(frame: &OutFrame) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame.head);
        buf.extend_from_slice(&frame.tail);
        buf
    }

    proptest! {
        #[test]
        fn frames_round_trip_with_zero_copy_tail(name in "[a-z]{0,20}", data in proptest::collection::vec(any::<u8>(), 0..500), id: u32) {
            let header = FrameHeader::request(7, 1, id);
            let message = Sample { name: name.clone(), data: Bytes::new() };
            let out = encode_frame(header, &message, Some((2, Bytes::from(data.clone()))));
            let mut buf = joined(&out);
            let frame = split_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
            prop_assert!(buf.is_empty());
            prop_assert_eq!(frame.header, header);
            let decoded = <Sample as prost::Message>::decode(frame.body).unwrap();
            prop_assert_eq!(decoded, Sample { name, data: Bytes::from(data) });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = split_frame(&mut buf, 64) {}
        }
    }

    #[test]
    fn partial_frames_wait_and_bad_lengths_fail() {
        let out = encode_frame(FrameHeader::request(1, 1, 9), &Sample::default(), None);
        let full = joined(&out);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(split_frame(&mut buf, 1024).unwrap(), None);
        }
        let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(matches!(
            split_frame(&mut huge, 1024),
            Err(ProtocolError::TooLarge { .. })
        ));
        assert!(
            huge.capacity() < 1024,
            "nothing allocated for a refused length"
        );
        for short in [0u32, 1, 9] {
            let mut buf = BytesMut::from(&short.to_be_bytes()[..]);
            assert!(split_frame(&mut buf, 1024).is_err(), "length {short}");
        }
    }
}
