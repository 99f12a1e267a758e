//! Gauges of the broker's state, read at scrape time: per partition its
//! offsets, size and segments; per group and partition the committed offset
//! and lag, and per group its members; per queue its ready, in-flight,
//! scheduled, acked and dead-lettered counts and consumers. Each family is
//! bounded by `SERIES_PER_FAMILY_LIMIT` rows; a family cut short says so in
//! `ferry_metrics_truncated`.

use std::collections::BTreeMap;

use crate::Broker;

/// Rows one family may have (a scrape of a broker with more partitions,
/// group partitions or queues shows the first ones in name order).
pub const SERIES_PER_FAMILY_LIMIT: usize = 20_000;

/// Partition gauges: (name, help).
const PARTITION_FAMILIES: [(&str, &str); 5] = [
    ("ferry_partition_start_offset", "First offset still stored."),
    (
        "ferry_partition_end_offset",
        "Offset the next record gets (the written end).",
    ),
    (
        "ferry_partition_durable_offset",
        "End of the fsynced records.",
    ),
    ("ferry_partition_size_bytes", "Bytes on disk."),
    ("ferry_partition_segments", "Segments on disk."),
];

/// Queue gauges and counters: (name, help, type).
const QUEUE_FAMILIES: [(&str, &str, &str); 6] = [
    (
        "ferry_queue_ready",
        "Messages ready to deliver now.",
        "gauge",
    ),
    (
        "ferry_queue_in_flight",
        "Messages delivered and not yet settled.",
        "gauge",
    ),
    (
        "ferry_queue_scheduled",
        "Messages held back until their delivery time.",
        "gauge",
    ),
    ("ferry_queue_consumers", "Subscribed consumers.", "gauge"),
    (
        "ferry_queue_acked_total",
        "Messages acknowledged.",
        "counter",
    ),
    (
        "ferry_queue_dead_lettered_total",
        "Messages dead-lettered.",
        "counter",
    ),
];

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

/// Appends every state family to `out`.
pub fn render(out: &mut String, broker: &Broker) {
    let mut truncated = Vec::new();
    if !render_partitions(out, broker) {
        truncated.push("partition");
    }
    if !render_groups(out, broker) {
        truncated.push("group");
    }
    if !render_queues(out, broker) {
        truncated.push("queue");
    }
    let name = "ferry_metrics_truncated";
    header(
        out,
        name,
        "1 when a family was cut at the series limit.",
        "gauge",
    );
    for family in ["partition", "group", "queue"] {
        let value = u8::from(truncated.contains(&family));
        out.push_str(&format!("{name}{{family=\"{family}\"}} {value}\n"));
    }
}

/// Returns false if the family was cut short.
fn render_partitions(out: &mut String, broker: &Broker) -> bool {
    let mut rows = Vec::new();
    for topic in broker.topics.list() {
        for (index, log) in topic.partitions.iter().enumerate() {
            if rows.len() == SERIES_PER_FAMILY_LIMIT {
                break;
            }
            let stats = log.stats();
            let labels = format!(
                "topic=\"{}\",partition=\"{index}\"",
                escape(topic.meta.name.as_str())
            );
            let values = [
                stats.start_offset,
                stats.end_offset,
                stats.durable_offset,
                stats.size_bytes,
                stats.segment_count,
            ];
            rows.push((labels, values));
        }
    }
    for (family, (name, help)) in PARTITION_FAMILIES.iter().enumerate() {
        header(out, name, help, "gauge");
        for (labels, values) in &rows {
            out.push_str(&format!("{name}{{{labels}}} {}\n", values[family]));
        }
    }
    rows.len() < SERIES_PER_FAMILY_LIMIT
}

/// Committed offset and lag per group and partition, members per group.
fn render_groups(out: &mut String, broker: &Broker) -> bool {
    let ends: BTreeMap<(String, u32), u64> = broker
        .topics
        .list()
        .iter()
        .flat_map(|topic| {
            let name = topic.meta.name.to_string();
            topic
                .partitions
                .iter()
                .enumerate()
                .map(move |(index, log)| ((name.clone(), index as u32), log.end_offset()))
        })
        .collect();
    let mut rows = Vec::new();
    let mut members = Vec::new();
    for group in broker.offsets.groups() {
        if rows.len() == SERIES_PER_FAMILY_LIMIT || members.len() == SERIES_PER_FAMILY_LIMIT {
            break;
        }
        let live = broker
            .groups
            .describe(&group)
            .map_or(0, |view| view.members.len());
        members.push((escape(&group), live));
        for ((topic, partition), committed) in broker.offsets.group(&group) {
            if rows.len() == SERIES_PER_FAMILY_LIMIT {
                break;
            }
            let Some(&end) = ends.get(&(topic.clone(), partition)) else {
                continue;
            };
            let labels = format!(
                "group=\"{}\",topic=\"{}\",partition=\"{partition}\"",
                escape(&group),
                escape(&topic)
            );
            rows.push((
                labels,
                committed.offset,
                end.saturating_sub(committed.offset),
            ));
        }
    }
    let families = [
        (
            "ferry_group_committed_offset",
            "The group's committed offset.",
        ),
        (
            "ferry_group_lag",
            "Records between the committed offset and the end.",
        ),
    ];
    for (family, (name, help)) in families.iter().enumerate() {
        header(out, name, help, "gauge");
        for (labels, committed, lag) in &rows {
            let value = if family == 0 { committed } else { lag };
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    }
    let name = "ferry_group_members";
    header(
        out,
        name,
        "Live members of groups with committed offsets.",
        "gauge",
    );
    for (group, live) in &members {
        out.push_str(&format!("{name}{{group=\"{group}\"}} {live}\n"));
    }
    rows.len() < SERIES_PER_FAMILY_LIMIT && members.len() < SERIES_PER_FAMILY_LIMIT
}

/// Counts per queue.
fn render_queues(out: &mut String, broker: &Broker) -> bool {
    let keys = broker.queues.list();
    let mut rows = Vec::new();
    for (topic, queue) in keys.iter().take(SERIES_PER_FAMILY_LIMIT) {
        let Ok(view) = broker.queues.describe(topic, queue) else {
            continue;
        };
        let labels = format!("topic=\"{}\",queue=\"{}\"", escape(topic), escape(queue));
        let values = [
            view.ready,
            view.in_flight,
            view.scheduled,
            view.subscribers.len() as u64,
            view.acked,
            view.dead_lettered,
        ];
        rows.push((labels, values));
    }
    for (family, (name, help, kind)) in QUEUE_FAMILIES.iter().enumerate() {
        header(out, name, help, kind);
        for (labels, values) in &rows {
            out.push_str(&format!("{name}{{{labels}}} {}\n", values[family]));
        }
    }
    keys.len() <= SERIES_PER_FAMILY_LIMIT
}
