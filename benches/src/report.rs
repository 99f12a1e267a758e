//! Reads criterion's estimates back so a bench can print its figures as
//! ratios to the baseline measured in the same run.

use std::path::{Path, PathBuf};

/// Criterion's output directory (`target/criterion`), found from the bench
/// executable's location (`target/release/deps/...`).
pub fn criterion_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CRITERION_HOME") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(|target| target.join("criterion"))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Mean time per iteration, in nanoseconds, of `group/bench` in the last run.
pub fn mean_ns(group: &str, bench: &str) -> Option<f64> {
    let path: PathBuf = criterion_dir()
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    read_mean(&path)
}

fn read_mean(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("mean")?.get("point_estimate")?.as_f64()
}
