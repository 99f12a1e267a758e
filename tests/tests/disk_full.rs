//! A full disk through the real broker: producers get a clear DiskFull
//! error, the broker stays up and readable, and writes are accepted again
//! once space is freed. Needs a small filesystem: a tmpfs mounted for the
//! test (root only); elsewhere the test says so and skips.

use std::path::PathBuf;
use std::process::Command;

use bytes::Bytes;
use ferry_client::{Acks, ProducerRecord};
use ferry_e2e::Broker;
use ferry_protocol::batch::{BatchBuilder, NewRecord};
use ferry_protocol::ErrorCode;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallFs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .ok()?;
        mounted
            .status
            .success()
            .then_some(SmallFs { path, _dir: dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn batch(size: usize) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.push(&NewRecord {
        timestamp_ms: 1,
        value: Some(Bytes::from(vec![9u8; size])),
        ..NewRecord::default()
    });
    builder.finish()
}

#[tokio::test]
async fn a_full_disk_is_a_clear_error_and_writes_resume_once_space_is_freed() {
    let Some(fs) = SmallFs::mount("24m") else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    // Other data shares the disk; deleting it later frees space.
    let other = fs.path.join("other-data");
    std::fs::write(&other, vec![1u8; 4 * 1024 * 1024]).unwrap();
    let mut broker = Broker::start_in(&fs.path.join("data"), &["--segment-bytes", "1048576"]);
    let client = broker.client().await;
    client.create_topic("fill", 1).await.unwrap();
    let mut acked = 0u64;
    let mut full = None;
    for _ in 0..2000 {
        match client
            .wire()
            .produce("fill", 0, batch(64 * 1024), Acks::Durable)
            .await
        {
            Ok(_) => acked += 1,
            Err(error) => {
                full = Some(error);
                break;
            }
        }
    }
    let error = full.expect("the disk never filled");
    assert_eq!(error.code(), Some(ErrorCode::DiskFull), "{error}");
    assert!(error.to_string().contains("disk full"), "{error}");
    // Still up and readable: everything acknowledged is there.
    let described = client.describe_topic("fill").await.unwrap();
    assert_eq!(described.partitions[0].end_offset, acked);
    let read = client
        .wire()
        .fetch(&ferry_protocol::messages::FetchRequest {
            topic: "fill".into(),
            partition: 0,
            offset: acked - 1,
            max_bytes: 1 << 20,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!read.records.is_empty());
    // Free space: writes are accepted again, at the next offset.
    std::fs::remove_file(&other).unwrap();
    let (base, _) = client
        .wire()
        .produce("fill", 0, batch(1024), Acks::Durable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(base, acked);
    let producer = ferry_client::Producer::new(&client, "fill").await.unwrap();
    producer.send(ProducerRecord::new("after")).await.unwrap();
    assert!(
        broker.terminate().success(),
        "clean shutdown on a full-then-freed disk"
    );
    drop(fs);
}
