//! Latency histograms (HdrHistogram, microseconds) and the result object
//! every scenario prints: human lines, or one JSON object with `--json`.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded without saturating (60 s).
const HISTOGRAM_MAX_US: u64 = 60_000_000;

pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            histogram: Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)
                .expect("valid histogram bounds"),
        }
    }
}

impl Latency {
    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, HISTOGRAM_MAX_US);
        self.histogram.saturating_record(us);
    }

    pub fn merge(&mut self, other: &Latency) {
        let _ = self.histogram.add(&other.histogram);
    }

    /// Waits for every worker and merges what each recorded; the first
    /// failure (or panic) is the result.
    pub async fn join(
        workers: Vec<tokio::task::JoinHandle<Result<Latency, String>>>,
    ) -> Result<Latency, String> {
        let mut latency = Latency::default();
        for worker in workers {
            latency.merge(&worker.await.map_err(|e| e.to_string())??);
        }
        Ok(latency)
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn summary(&self) -> Percentiles {
        let q = |p: f64| self.histogram.value_at_quantile(p);
        Percentiles {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: self.histogram.max(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    /// Produce-ack latency (produce), fetch round trip (consume), or end to
    /// end from the timestamp in the payload (e2e).
    pub latency_us: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_kind: Option<String>,
    /// Ratios to the physical limits measured in the same run, if measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baseline::Baseline>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_baseline: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_name: Option<String>,
}

impl Report {
    pub fn new(
        scenario: &str,
        messages: u64,
        bytes: u64,
        elapsed: Duration,
        latency: &Latency,
        kind: &str,
    ) -> Report {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Report {
            scenario: scenario.to_string(),
            messages,
            bytes,
            seconds,
            msgs_per_sec: messages as f64 / seconds,
            mb_per_sec: bytes as f64 / 1e6 / seconds,
            latency_us: latency.summary(),
            latency_kind: Some(kind.to_string()),
            baseline: None,
            ratio_to_baseline: None,
            baseline_name: None,
        }
    }

    /// Attaches the baseline and the ratio of this report's MB/s to the
    /// named baseline figure.
    pub fn with_baseline(mut self, baseline: crate::baseline::Baseline, name: &str) -> Report {
        let reference = baseline.mb_per_sec(name);
        self.ratio_to_baseline = reference.filter(|r| *r > 0.0).map(|r| self.mb_per_sec / r);
        self.baseline_name = Some(name.to_string());
        self.baseline = Some(baseline);
        self
    }

    pub fn print_human(&self) {
        let l = &self.latency_us;
        println!(
            "{:<18} {:>10} msgs  {:>8.2} s  {:>11.0} msgs/s  {:>9.1} MB/s",
            self.scenario, self.messages, self.seconds, self.msgs_per_sec, self.mb_per_sec
        );
        println!(
            "{:<18} latency ({}) us: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            "",
            self.latency_kind.as_deref().unwrap_or("-"),
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
        if let (Some(ratio), Some(name)) = (self.ratio_to_baseline, &self.baseline_name) {
            println!("{:<18} {:.2} x {name} measured in this run", "", ratio);
        }
    }
}
