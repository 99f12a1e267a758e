//! Physical baselines measured in the same run as the figures they scale:
//! raw sequential write to the data directory with and without fdatasync
//! (same chunk size as the workload), and loopback TCP bandwidth.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes `chunks` chunks of `chunk_bytes` sequentially with `pwrite` to a
/// fresh file in `dir`, with an `fdatasync` after every chunk if `sync`.
pub fn sequential_write(
    dir: &Path,
    chunk_bytes: usize,
    chunks: usize,
    sync: bool,
) -> std::io::Result<Duration> {
    let path = dir.join(format!("ferry-baseline-{}.tmp", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let chunk = vec![0xa5u8; chunk_bytes];
    let start = Instant::now();
    for i in 0..chunks {
        file.write_all_at(&chunk, (i * chunk_bytes) as u64)?;
        if sync {
            file.sync_data()?;
        }
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(elapsed)
}

pub fn mb_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// Bytes each baseline moves (bounded so a run stays short).
pub const DISK_BASELINE_BYTES: usize = 256 * 1024 * 1024;
pub const DISK_SYNC_BASELINE_BYTES: usize = 32 * 1024 * 1024;
pub const TCP_BASELINE_BYTES: usize = 1024 * 1024 * 1024;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Baseline {
    /// Sequential `pwrite` of `chunk_bytes` chunks, MB/s.
    pub disk_write_mb_per_sec: f64,
    /// The same with `fdatasync` after every chunk, MB/s.
    pub disk_write_fdatasync_mb_per_sec: f64,
    /// One TCP stream over 127.0.0.1, MB/s.
    pub loopback_tcp_mb_per_sec: f64,
    pub chunk_bytes: usize,
}

impl Baseline {
    pub fn mb_per_sec(&self, name: &str) -> Option<f64> {
        match name {
            "disk_write" => Some(self.disk_write_mb_per_sec),
            "disk_write_fdatasync" => Some(self.disk_write_fdatasync_mb_per_sec),
            "loopback_tcp" => Some(self.loopback_tcp_mb_per_sec),
            _ => None,
        }
    }

    /// Measures all three (a few seconds).
    pub async fn measure(dir: &Path, chunk_bytes: usize) -> std::io::Result<Baseline> {
        let chunk_bytes = chunk_bytes.clamp(4096, 16 * 1024 * 1024);
        let dir_owned = dir.to_path_buf();
        let (write, write_sync) =
            tokio::task::spawn_blocking(move || -> std::io::Result<(f64, f64)> {
                let chunks = DISK_BASELINE_BYTES / chunk_bytes;
                let plain = sequential_write(&dir_owned, chunk_bytes, chunks, false)?;
                let sync_chunks = (DISK_SYNC_BASELINE_BYTES / chunk_bytes).max(16);
                let synced = sequential_write(&dir_owned, chunk_bytes, sync_chunks, true)?;
                Ok((
                    mb_per_sec((chunks * chunk_bytes) as u64, plain),
                    mb_per_sec((sync_chunks * chunk_bytes) as u64, synced),
                ))
            })
            .await
            .map_err(std::io::Error::other)??;
        let tcp = loopback_tcp(TCP_BASELINE_BYTES).await?;
        Ok(Baseline {
            disk_write_mb_per_sec: write,
            disk_write_fdatasync_mb_per_sec: write_sync,
            loopback_tcp_mb_per_sec: tcp,
            chunk_bytes,
        })
    }
}

/// One TCP stream on 127.0.0.1 writing `bytes` in 1 MiB writes to a reader
/// that discards them; MB/s.
pub async fn loopback_tcp(bytes: usize) -> std::io::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 1024 * 1024];
        let mut total = 0usize;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<usize, std::io::Error>(total);
            }
            total += n;
        }
    });
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let chunk = vec![0x5au8; 1024 * 1024];
    let start = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        stream.write_all(&chunk).await?;
        sent += chunk.len();
    }
    stream.shutdown().await?;
    let received = reader.await.map_err(std::io::Error::other)??;
    let elapsed = start.elapsed();
    Ok(mb_per_sec(received as u64, elapsed))
}
