//! Every request message decoder, reached directly: the first byte picks
//! an API from the table, the rest is its body. `frame_decode` reaches the
//! decoders only through a valid header; this target spends its time inside
//! them. Nothing may panic.
#![no_main]

use bytes::Bytes;
use ferry_protocol::frame::FrameHeader;
use ferry_protocol::{ApiKey, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let key = ApiKey::ALL[usize::from(pick) % ApiKey::ALL.len()];
    let header = FrameHeader::request(key as u16, 1, 1);
    if let Ok(request) = Request::decode(&header, Bytes::copy_from_slice(body)) {
        assert_eq!(request.api_key(), key);
    }
});
