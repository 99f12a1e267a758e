//! Raw disk baselines: what the machine can do without Ferry, measured on
//! the same directory and with the same chunk sizes as the workload.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes `chunks` chunks of `chunk_bytes` sequentially with `pwrite` to a
/// fresh file in `dir`, with an `fdatasync` after every chunk if `sync`.
/// Returns the elapsed time (excluding file creation).
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
