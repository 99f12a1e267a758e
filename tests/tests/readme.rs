//! The README runs as written: its shell tour, top to bottom, against a
//! fresh broker (each command must exit 0 and its output keep the shape
//! recorded in `tests/readme/tour.shape`), and its Rust programs are the
//! files in `client/examples/`, which are run twice each (they must be
//! re-runnable).
//!
//! `FERRY_BLESS=1 cargo test -p ferry-e2e --test readme` records the shape
//! anew after a deliberate change of output.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_e2e::Broker;

/// What precedes a block the tour test does not run.
const SKIP_MARK: &str = "<!-- readme-test: skip";
/// What precedes a Rust program that mirrors a file.
const EXAMPLE_MARK: &str = "<!-- client/examples/";
/// The programs, in the order the README shows them (later ones read what
/// the first produced).
const EXAMPLES: [&str; 5] = [
    "readme_streams",
    "readme_group",
    "readme_queue",
    "readme_reconnect",
    "readme_admin",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md")
}

/// Every fenced block: (the line before its opening fence, language, body).
fn blocks(text: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut lines = text.lines().peekable();
    let mut previous = String::new();
    while let Some(line) = lines.next() {
        if let Some(language) = line.strip_prefix("```") {
            let mut body = String::new();
            for inner in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
                body.push_str(inner);
                body.push('\n');
            }
            found.push((previous.clone(), language.to_string(), body));
        }
        previous = line.to_string();
    }
    found
}

#[test]
fn every_rust_program_in_the_readme_is_an_example_file() {
    let text = readme();
    let rust: Vec<_> = blocks(&text)
        .into_iter()
        .filter(|(_, language, _)| language == "rust")
        .collect();
    assert_eq!(rust.len(), EXAMPLES.len(), "one program per example");
    for ((mark, _, body), name) in rust.iter().zip(EXAMPLES) {
        let file = mark
            .strip_prefix(EXAMPLE_MARK)
            .and_then(|rest| rest.strip_suffix(".rs -->"))
            .unwrap_or_else(|| panic!("a Rust block not marked with its file: {mark:?}"));
        assert_eq!(file, name, "the README's order");
        let path = repo_root().join(format!("client/examples/{name}.rs"));
        let example = std::fs::read_to_string(&path).expect("the example file");
        assert_eq!(
            body, &example,
            "the README's copy of {name}.rs differs from the file"
        );
        assert!(body.contains("fn main()"), "{name} is a whole program");
    }
}

#[test]
fn the_readme_programs_run_and_run_again() {
    let broker = Broker::start();
    for round in 0..2 {
        for name in EXAMPLES {
            let path = example_binary(name);
            let output = Command::new(&path)
                .env("FERRY_BROKER", &broker.addr)
                .output()
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert!(
                output.status.success(),
                "{name} (run {}) failed: {}",
                round + 1,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// `target/<profile>/examples/<name>`, built when it is missing or older
/// than its source (`cargo test --workspace` builds examples; a test run
/// of this package alone does not), so an edited example never runs stale.
fn example_binary(name: &str) -> PathBuf {
    let broker = ferry_e2e::binary("ferry-broker");
    let profile_dir = broker.parent().expect("the profile dir");
    let path = profile_dir.join("examples").join(name);
    let source = repo_root().join(format!("client/examples/{name}.rs"));
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if modified(&path) < modified(&source) {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-q", "-p", "ferry-client", "--example", name]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().expect("cargo").success(), "building {name}");
    }
    path
}

/// The tour's shell blocks as one script: each command echoed before it
/// runs, `ferryctl` the binary built beside this test.
fn tour_script(text: &str) -> String {
    let ferryctl = ferry_e2e::binary("ferryctl");
    let mut script = String::from("set -euo pipefail\nshopt -s expand_aliases\n");
    for (mark, language, body) in blocks(text) {
        if language != "sh" || mark.starts_with(SKIP_MARK) {
            continue;
        }
        for line in body.lines() {
            let command = line.trim();
            if command.is_empty() || command.starts_with('#') {
                continue;
            }
            let command = command.replace(
                "cargo run -q --release --bin ferryctl --",
                ferryctl.to_str().expect("a UTF-8 path"),
            );
            script.push_str(&format!("printf '%s\\n' {}\n", shell_quote(line.trim())));
            script.push_str(&command);
            script.push('\n');
        }
    }
    script
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// What may change between runs, masked: runs of digits (offsets, sizes,
/// times, ids) become `N`, runs of spaces one space; what is left is the
/// output's shape.
fn shape(output: &str) -> String {
    let mut shaped = String::new();
    for line in output.lines() {
        let mut previous = ' ';
        let mut out = String::new();
        for c in line.trim_end().chars() {
            let c = if c.is_ascii_digit() { 'N' } else { c };
            if (c == 'N' && previous == 'N') || (c == ' ' && previous == ' ') {
                continue;
            }
            out.push(c);
            previous = c;
        }
        shaped.push_str(&out);
        shaped.push('\n');
    }
    shaped
}

#[test]
fn the_tour_runs_top_to_bottom_as_written() {
    let broker = Broker::start();
    let script = tour_script(&readme());
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("FERRY_BROKER", &broker.addr)
        .env("NO_COLOR", "1")
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a tour command failed ({:?}).\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let recorded_path = repo_root().join("tests/readme/tour.shape");
    let shaped = shape(&stdout);
    if std::env::var_os("FERRY_BLESS").is_some() {
        std::fs::create_dir_all(recorded_path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&recorded_path, &shaped).expect("write the shape");
        return;
    }
    let recorded = std::fs::read_to_string(&recorded_path).unwrap_or_default();
    assert_eq!(
        shaped, recorded,
        "the tour's output changed shape (FERRY_BLESS=1 records it anew).\nstdout:\n{stdout}"
    );
}
