//! Build-time facts about the compiler: `ferry_avx512_crc` is set when it
//! has the AVX-512 and VPCLMULQDQ intrinsics (stable since Rust 1.89), which
//! the record batch CRC uses on CPUs that have them (`src/batch/crc.rs`).
//! With an older compiler that path is left out, nothing else changes.

use std::process::Command;

/// The first Rust release with stable AVX-512 and VPCLMULQDQ intrinsics.
const AVX512_MINOR: u32 = 89;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(ferry_avx512_crc)");
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let minor = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|version| minor_version(&version));
    if minor.is_some_and(|minor| minor >= AVX512_MINOR) {
        println!("cargo:rustc-cfg=ferry_avx512_crc");
    }
}

/// `29` from `rustc 1.29.0 (...)`.
fn minor_version(version: &str) -> Option<u32> {
    let number = version.split_whitespace().nth(1)?;
    let mut parts = number.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}
