//! Bad input over raw TCP: oversized declared lengths, garbage, a missing
//! handshake and unknown APIs get error frames (and a closed connection where
//! the stream cannot be trusted), while other clients keep working.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferry_e2e::Broker;
use ferry_protocol::frame::{encode_frame, split_frame, Frame, FrameHeader, FLAG_ERROR};
use ferry_protocol::messages::{ErrorResponse, HandshakeRequest};
use ferry_protocol::ApiKey;
use ferry_protocol::ErrorCode;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(broker: &Broker) -> TcpStream {
    TcpStream::connect(&broker.addr).await.unwrap()
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
}

fn handshake() -> Vec<u8> {
    let hello = HandshakeRequest {
        client_id: "raw".into(),
        min_version: 1,
        max_version: 1,
    };
    let frame = encode_frame(
        FrameHeader::request(ApiKey::Handshake as u16, 1, 1),
        &hello,
        None,
    );
    frame.head.to_vec()
}

/// Reads frames until one arrives or the peer closes; returns (frames, closed).
async fn read_frames(stream: &mut TcpStream, want: usize) -> (Vec<Frame>, bool) {
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    loop {
        while let Ok(Some(frame)) = split_frame(&mut buffer, 1 << 24) {
            frames.push(frame);
        }
        if frames.len() >= want {
            return (frames, false);
        }
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buffer)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return (frames, true),
            Ok(Ok(_)) => {}
            Err(_) => panic!("no answer from the broker"),
        }
    }
}

async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn error_of(frame: &Frame) -> ErrorCode {
    assert!(frame.header.has(FLAG_ERROR), "expected an error frame");
    ErrorCode::from_u32(
        ErrorResponse::decode(frame.body.clone())
            .unwrap()
            .error_code,
    )
}

async fn still_serves(broker: &Broker) {
    let client = broker.client().await;
    client
        .create_topic(&format!("ok-{}", rand::random::<u32>()), 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn oversized_declared_length_is_refused_and_closed_without_allocating() {
    let broker = Broker::start();
    for length in [u32::MAX, 16 * 1024 * 1024 + 1] {
        let mut stream = connect(&broker).await;
        send(&mut stream, &handshake()).await;
        let (frames, _) = read_frames(&mut stream, 1).await;
        assert!(!frames[0].header.has(FLAG_ERROR));
        let mut frame = length.to_be_bytes().to_vec();
        FrameHeader::request(ApiKey::Produce as u16, 1, 77).encode(&mut BytesMut::new());
        frame.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 77, 0, 0]);
        send(&mut stream, &frame).await;
        let (frames, _) = read_frames(&mut stream, 1).await;
        assert_eq!(error_of(&frames[0]), ErrorCode::FrameTooLarge);
        assert_eq!(
            frames[0].header.correlation_id, 77,
            "correlation id recovered from the header"
        );
        assert!(closed(&mut stream).await);
    }
    still_serves(&broker).await;
}

#[tokio::test]
async fn lengths_shorter_than_a_header_are_refused() {
    let broker = Broker::start();
    for length in [0u32, 1, 9] {
        let mut stream = connect(&broker).await;
        send(&mut stream, &handshake()).await;
        read_frames(&mut stream, 1).await;
        send(&mut stream, &length.to_be_bytes()).await;
        let (frames, _) = read_frames(&mut stream, 1).await;
        assert_eq!(
            error_of(&frames[0]),
            ErrorCode::InvalidRequest,
            "length {length}"
        );
        assert!(closed(&mut stream).await);
    }
    still_serves(&broker).await;
}

#[tokio::test]
async fn garbage_without_a_handshake_gets_an_error_and_a_close() {
    let broker = Broker::start();
    let mut stream = connect(&broker).await;
    // A complete frame of random bytes (a partial one would just be waited for,
    // up to the frame read timeout).
    let mut garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage[..4].copy_from_slice(&4092u32.to_be_bytes());
    let _ = stream.write_all(&garbage).await;
    let (frames, closed_early) = read_frames(&mut stream, 1).await;
    assert!(closed_early || !frames.is_empty());
    if let Some(frame) = frames.first() {
        assert!(frame.header.has(FLAG_ERROR));
    }
    assert!(closed(&mut stream).await);

    // A well-formed frame that is not a handshake: HandshakeRequired.
    let mut stream = connect(&broker).await;
    let list = encode_frame(
        FrameHeader::request(ApiKey::ListTopics as u16, 1, 5),
        &ferry_protocol::messages::ListTopicsRequest {},
        None,
    );
    send(&mut stream, &list.head).await;
    let (frames, _) = read_frames(&mut stream, 1).await;
    assert_eq!(error_of(&frames[0]), ErrorCode::HandshakeRequired);
    assert!(closed(&mut stream).await);
    still_serves(&broker).await;
}

#[tokio::test]
async fn unknown_api_keys_and_versions_get_errors_and_the_connection_lives() {
    let broker = Broker::start();
    let mut stream = connect(&broker).await;
    send(&mut stream, &handshake()).await;
    read_frames(&mut stream, 1).await;
    let unknown = encode_frame(
        FrameHeader::request(999, 1, 2),
        &HandshakeRequest::default(),
        None,
    );
    let bad_version = encode_frame(
        FrameHeader::request(ApiKey::ListTopics as u16, 42, 3),
        &HandshakeRequest::default(),
        None,
    );
    let bad_body = {
        let mut head = BytesMut::new();
        head.extend_from_slice(&(10u32 + 3).to_be_bytes());
        FrameHeader::request(ApiKey::Produce as u16, 1, 4).encode(&mut head);
        head.extend_from_slice(&[0xff, 0xff, 0xff]);
        head.freeze()
    };
    let list = encode_frame(
        FrameHeader::request(ApiKey::ListTopics as u16, 1, 5),
        &ferry_protocol::messages::ListTopicsRequest {},
        None,
    );
    for frame in [unknown.head, bad_version.head, bad_body, list.head] {
        send(&mut stream, &frame).await;
    }
    let (frames, closed) = read_frames(&mut stream, 4).await;
    assert!(!closed);
    let by_id = |id: u32| {
        frames
            .iter()
            .find(|f| f.header.correlation_id == id)
            .unwrap()
    };
    assert_eq!(error_of(by_id(2)), ErrorCode::UnknownApiKey);
    assert_eq!(error_of(by_id(3)), ErrorCode::UnsupportedVersion);
    assert_eq!(error_of(by_id(4)), ErrorCode::InvalidRequest);
    assert!(
        !by_id(5).header.has(FLAG_ERROR),
        "the connection still answers"
    );
}

#[tokio::test]
async fn corrupt_and_lying_batches_are_refused_and_nothing_is_stored() {
    use ferry_protocol::batch::{BatchBuilder, NewRecord};
    let broker = Broker::start();
    let client = broker.client().await;
    client.create_topic("strict", 1).await.unwrap();
    let mut builder = BatchBuilder::new();
    builder.push(&NewRecord {
        value: Some(Bytes::from_static(b"payload")),
        ..NewRecord::default()
    });
    let good = builder.finish();
    let mut flipped = good.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let mut truncated = good.to_vec();
    truncated.truncate(good.len() - 3);
    for bad in [
        Bytes::from(flipped),
        Bytes::from(truncated),
        Bytes::from_static(b"not a batch at all"),
    ] {
        let error = client
            .wire()
            .produce("strict", 0, bad, ferry_client::Acks::Durable)
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::CorruptBatch), "{error}");
    }
    let error = client
        .wire()
        .produce("nope", 0, good.clone(), ferry_client::Acks::Durable)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownTopic));
    assert_eq!(
        client.describe_topic("strict").await.unwrap().partitions[0].end_offset,
        0
    );
    let (base, _) = client
        .wire()
        .produce("strict", 0, good, ferry_client::Acks::Durable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(base, 0);
}
