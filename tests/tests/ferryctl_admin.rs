//! ferryctl's administration manners: `--if-not-exists` / `--if-exists`,
//! a topic delete that would take queues with it, `group reset-offsets
//! --dry-run` and `--shift-by`, zero values refused, shell completions.

use ferry_e2e::Broker;

fn run(broker: &Broker, args: &[&str]) -> (i32, String, String) {
    broker.ferryctl(args, "")
}

fn ok(broker: &Broker, args: &[&str]) -> String {
    let (code, out, err) = run(broker, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

#[test]
fn create_and_delete_can_be_asked_to_tolerate_what_is_there() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "t", "--partitions", "2"]);
    let (code, _, err) = run(&broker, &["topic", "create", "t"]);
    assert_eq!(code, 1, "a second create is an error: {err}");
    let out = ok(&broker, &["topic", "create", "t", "--if-not-exists"]);
    assert!(out.contains("exists: unchanged"), "{out}");
    ok(&broker, &["queue", "create", "t", "q"]);
    let out = ok(&broker, &["queue", "create", "t", "q", "--if-not-exists"]);
    assert!(out.contains("exists: unchanged"), "{out}");

    // A delete that would take a queue with it needs --force.
    let (code, _, err) = run(&broker, &["topic", "delete", "t"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("has queues (q)") && err.contains("--force"),
        "{err}"
    );
    let listed = ok(&broker, &["topic", "list"]);
    let named_t = |l: &str| l.split_whitespace().next() == Some("t");
    assert!(listed.lines().any(named_t), "still there: {listed}");
    ok(&broker, &["topic", "delete", "t", "--force"]);
    assert!(!ok(&broker, &["queue", "list"]).contains(" q"));

    let (code, _, _) = run(&broker, &["topic", "delete", "t"]);
    assert_eq!(code, 1, "deleting what is not there is an error");
    let out = ok(&broker, &["topic", "delete", "t", "--if-exists"]);
    assert!(out.contains("nothing to delete"), "{out}");
    let out = ok(&broker, &["queue", "delete", "t", "q", "--if-exists"]);
    assert!(out.contains("nothing to delete"), "{out}");
}

#[test]
fn zero_values_that_would_mean_a_default_are_refused() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "z"]);
    for flag in ["--ack-timeout-ms", "--max-deliveries"] {
        let (code, _, err) = run(&broker, &["queue", "create", "z", "q", flag, "0"]);
        assert_eq!(code, 2, "{flag}: {err}");
    }
}

/// (partition, committed) of every partition of group `g`.
fn committed(broker: &Broker) -> Vec<(u64, Option<u64>)> {
    let out = ok(broker, &["group", "describe", "g", "--json"]);
    let described: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    described["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| (p["partition"].as_u64().unwrap(), p["committed"].as_u64()))
        .collect()
}

#[test]
fn reset_offsets_previews_with_dry_run_and_moves_relative_with_shift_by() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "r", "--partitions", "2"]);
    let lines: String = (0..10).map(|i| format!("{i}\n")).collect();
    for partition in ["0", "1"] {
        let (code, _, err) = broker.ferryctl(&["produce", "r", "--partition", partition], &lines);
        assert_eq!(code, 0, "{err}");
    }
    // The group reads everything: committed 10 and 10.
    let read = ok(
        &broker,
        &["consume", "r", "--group", "g", "--timeout-ms", "0"],
    );
    assert_eq!(read.lines().count(), 20);
    assert_eq!(committed(&broker), [(0, Some(10)), (1, Some(10))]);

    let out = ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "r",
            "--shift-by",
            "-3",
            "--dry-run",
        ],
    );
    assert!(out.contains("dry run: nothing changed"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().eq(["r", "0", "10", "7"])),
        "{out}"
    );
    assert_eq!(
        committed(&broker),
        [(0, Some(10)), (1, Some(10))],
        "unchanged"
    );

    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "r",
            "--shift-by",
            "-3",
        ],
    );
    assert_eq!(committed(&broker), [(0, Some(7)), (1, Some(7))]);
    let again = ok(
        &broker,
        &["consume", "r", "--group", "g", "--timeout-ms", "0"],
    );
    assert_eq!(again.lines().count(), 6, "three again from each partition");
    // Kept within the partition: far past the start stops at the start.
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "r",
            "--shift-by",
            "-100",
        ],
    );
    assert_eq!(committed(&broker), [(0, Some(0)), (1, Some(0))]);
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "r",
            "--shift-by",
            "100",
        ],
    );
    assert_eq!(committed(&broker), [(0, Some(10)), (1, Some(10))]);
    // One of --to and --shift-by is required.
    let (code, _, _) = run(&broker, &["group", "reset-offsets", "g", "--topic", "r"]);
    assert_eq!(code, 2);
}

#[test]
fn completions_are_printed_for_each_shell_without_a_broker() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = ferry_e2e::ferryctl("127.0.0.1:1", &["completions", shell], "");
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(
            out.contains("ferryctl") && out.contains("reset-offsets"),
            "{shell}"
        );
    }
}

/// Runs ferryctl under a pseudo-terminal (util-linux `script`), with
/// `env`; its output as the terminal saw it. `None` without `script`.
fn on_a_terminal(broker: &Broker, args: &str, env: &[(&str, &str)]) -> Option<String> {
    let ferryctl = ferry_e2e::binary("ferryctl");
    let line = format!("{} --broker {} {args}", ferryctl.display(), broker.addr);
    let mut command = std::process::Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().ok()?;
    assert!(output.status.success(), "{line}");
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn tables_are_bold_on_a_terminal_only_and_never_with_no_color() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "c"]);
    let piped = ok(&broker, &["topic", "list"]);
    assert!(!piped.contains('\u{1b}'), "escapes in a pipe: {piped:?}");
    let (_, _, stderr) = broker.ferryctl(&["produce", "c"], "a\nb\n");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains("/s)"),
        "{stderr:?}"
    );
    let Some(terminal) = on_a_terminal(&broker, "topic list", &[]) else {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    };
    assert!(terminal.contains("\u{1b}[1mTOPIC"), "{terminal:?}");
    let plain = on_a_terminal(&broker, "topic list", &[("NO_COLOR", "1")]).unwrap();
    assert!(
        plain.contains("TOPIC") && !plain.contains('\u{1b}'),
        "{plain:?}"
    );
}

#[test]
fn queue_peek_shows_ready_messages_and_leaves_them_ready() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "p", "--partitions", "2"]);
    ok(&broker, &["queue", "create", "p", "q"]);
    let (code, _, err) = broker.ferryctl(&["produce", "p"], "m0\nm1\nm2\nm3\nm4\n");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = broker.ferryctl(&["produce", "p", "--deliver-at", "+600000"], "later\n");
    assert_eq!(code, 0, "{err}");
    let describe = || ok(&broker, &["queue", "describe", "p", "q"]);
    let before = describe();

    let three = ok(&broker, &["queue", "peek", "p", "q", "-n", "3"]);
    assert_eq!(three.lines().count(), 3, "{three}");
    let all = ok(&broker, &["queue", "peek", "p", "q", "-n", "100"]);
    let mut values: Vec<&str> = all.lines().collect();
    values.sort();
    assert_eq!(
        values,
        ["m0", "m1", "m2", "m3", "m4"],
        "not the scheduled one"
    );
    assert_eq!(describe(), before, "peeking changed nothing");

    // Take two (acked): a peek shows the three left, never a taken one.
    let taken = ok(&broker, &["consume", "p", "--queue", "q", "--count", "2"]);
    let left = ok(&broker, &["queue", "peek", "p", "q", "-f", "%s\\n"]);
    assert_eq!(left.lines().count(), 3, "{left}");
    for value in taken.lines() {
        assert!(!left.lines().any(|l| l == value), "{value} was acked");
    }
    let json = ok(&broker, &["queue", "peek", "p", "q", "--json", "-n", "1"]);
    let parsed: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert_eq!(parsed["topic"], "p");

    let (code, _, _) = run(&broker, &["queue", "peek", "p", "nope"]);
    assert_eq!(code, 1, "an unknown queue");
    let (code, _, _) = run(&broker, &["queue", "peek", "p", "q", "-n", "0"]);
    assert_eq!(code, 2, "-n 0 is a usage error");
}
