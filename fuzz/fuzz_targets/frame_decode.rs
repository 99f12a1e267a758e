//! Arbitrary bytes from the network: split into frames under a small frame
//! limit, and decode every frame as a request. Nothing may panic, and no
//! allocation may follow a declared length over the limit.
#![no_main]

use bytes::BytesMut;
use ferry_protocol::frame::split_frame;
use ferry_protocol::Request;
use libfuzzer_sys::fuzz_target;

const MAX_FRAME_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut buffer = BytesMut::from(data);
    while let Ok(Some(frame)) = split_frame(&mut buffer, MAX_FRAME_BYTES) {
        let _ = Request::decode(&frame.header, frame.body);
    }
    assert!(buffer.capacity() <= data.len().max(MAX_FRAME_BYTES + 4) * 2);
});
