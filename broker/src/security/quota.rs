//! Quotas: per-principal token buckets for produced bytes, fetched bytes
//! and requests, shared by all of a principal's connections, and the
//! throttle counters `/metrics` reports.
//!
//! A bucket refills at its rate and holds at most one second's worth. A
//! charge is always accepted, even past the balance: the balance goes into
//! debt and the throttle is the time until it is back to zero. So one
//! request larger than a second's worth still goes through, and the
//! connection waits it out afterwards.
//!
//! Debt is floored at [`THROTTLE_MS_LIMIT`] worth of the rate: a charge
//! beyond that floor is forgiven, so one response is never throttled longer
//! than that and a principal that stops is back to zero within that time,
//! however large the requests it sent (the frame size limit bounds them).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Largest accepted rate, per second.
pub const QUOTA_RATE_LIMIT_PER_SEC: u64 = 1 << 40;
/// Most principals with a quota.
pub const QUOTA_PRINCIPALS_LIMIT: usize = 10_000;
/// Longest throttle ever applied to one response (a huge debt does not mute
/// a connection for hours).
pub const THROTTLE_MS_LIMIT: u64 = 30_000;
/// A bucket's capacity: this much of its rate.
const BUCKET_CAPACITY_MS: u64 = 1_000;
/// Balances are kept in billionths of a token, so refills over nanoseconds
/// are exact integers.
const NANOTOKENS_PER_TOKEN: i128 = 1_000_000_000;
const NANOS_PER_MS: i128 = 1_000_000;

/// Why a quota was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("{kind} rate {rate_per_sec}/s is out of range: expected 1..={limit_per_sec}")]
    RateOutOfRange {
        kind: &'static str,
        rate_per_sec: u64,
        limit_per_sec: u64,
    },
    #[error("too many principals with a quota: the limit is {limit}")]
    TooManyPrincipals { limit: usize },
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    ProduceBytes,
    FetchBytes,
    Requests,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 3] = [
        QuotaKind::ProduceBytes,
        QuotaKind::FetchBytes,
        QuotaKind::Requests,
    ];

    /// The name in metrics and messages.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::ProduceBytes => "produce_bytes",
            QuotaKind::FetchBytes => "fetch_bytes",
            QuotaKind::Requests => "requests",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One principal's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QuotaLimits {
    pub produce_bytes_per_sec: Option<u64>,
    pub fetch_bytes_per_sec: Option<u64>,
    pub requests_per_sec: Option<u64>,
}

impl QuotaLimits {
    /// The limit of `kind`, per second.
    pub fn limit_per_sec(&self, kind: QuotaKind) -> Option<u64> {
        match kind {
            QuotaKind::ProduceBytes => self.produce_bytes_per_sec,
            QuotaKind::FetchBytes => self.fetch_bytes_per_sec,
            QuotaKind::Requests => self.requests_per_sec,
        }
    }

    /// Each limit that is set is 1..=[`QUOTA_RATE_LIMIT_PER_SEC`].
    pub fn validate(&self) -> Result<(), QuotaError> {
        for kind in QuotaKind::ALL {
            let Some(rate_per_sec) = self.limit_per_sec(kind) else {
                continue;
            };
            if !(1..=QUOTA_RATE_LIMIT_PER_SEC).contains(&rate_per_sec) {
                return Err(QuotaError::RateOutOfRange {
                    kind: kind.name(),
                    rate_per_sec,
                    limit_per_sec: QUOTA_RATE_LIMIT_PER_SEC,
                });
            }
        }
        Ok(())
    }
}

/// One token bucket: `rate` tokens per second, capacity one second's
/// worth; a charge is always accepted and may drive the balance negative
/// (debt, floored at [`THROTTLE_MS_LIMIT`] worth); the throttle is the time
/// until the balance is back to zero.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: u64,
    /// In billionths of a token: between `debt_floor` and `capacity`.
    balance_nanotokens: i128,
    /// When the balance was last brought up to date (never goes back).
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket. Panics unless `rate_per_sec` is
    /// 1..=[`QUOTA_RATE_LIMIT_PER_SEC`] (callers pass validated limits).
    pub fn new(rate_per_sec: u64, now: Instant) -> Self {
        assert_rate(rate_per_sec);
        TokenBucket {
            rate_per_sec,
            balance_nanotokens: capacity_nanotokens(rate_per_sec),
            refilled_at: now,
        }
    }

    pub fn rate_per_sec(&self) -> u64 {
        self.rate_per_sec
    }

    /// Takes `amount` tokens, into debt if need be; how long the caller
    /// must wait before the balance is back to zero (at most
    /// [`THROTTLE_MS_LIMIT`]).
    pub fn charge(&mut self, amount: u64, now: Instant) -> Duration {
        self.refill(now);
        let cost = i128::from(amount) * NANOTOKENS_PER_TOKEN;
        let floor = debt_floor_nanotokens(self.rate_per_sec);
        self.balance_nanotokens = (self.balance_nanotokens - cost).max(floor);
        self.throttle()
    }

    /// Changes the rate from `now` on, keeping the balance (clamped to the
    /// new capacity and debt floor). Panics like [`TokenBucket::new`].
    pub fn set_rate(&mut self, rate_per_sec: u64, now: Instant) {
        assert_rate(rate_per_sec);
        self.refill(now);
        self.rate_per_sec = rate_per_sec;
        self.balance_nanotokens = self.balance_nanotokens.clamp(
            debt_floor_nanotokens(rate_per_sec),
            capacity_nanotokens(rate_per_sec),
        );
    }

    /// The time until the balance is back to zero.
    fn throttle(&self) -> Duration {
        if self.balance_nanotokens >= 0 {
            return Duration::ZERO;
        }
        let rate = i128::from(self.rate_per_sec);
        // nanotokens / (tokens per second) = nanoseconds, rounded up.
        let nanos = (-self.balance_nanotokens + rate - 1) / rate;
        let throttle = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        assert!(throttle <= Duration::from_millis(THROTTLE_MS_LIMIT));
        throttle
    }

    /// Adds what the rate earned since the last refill, up to capacity. An
    /// instant earlier than the last one (another thread's clock reading)
    /// earns nothing.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        if elapsed.is_zero() {
            return;
        }
        self.refilled_at = now;
        // Past this span even the deepest debt is back to full.
        let span_ms = i128::from(BUCKET_CAPACITY_MS + THROTTLE_MS_LIMIT);
        let elapsed_nanos = i128::try_from(elapsed.as_nanos())
            .unwrap_or(i128::MAX)
            .min(span_ms * NANOS_PER_MS);
        let earned = elapsed_nanos * i128::from(self.rate_per_sec);
        let capacity = capacity_nanotokens(self.rate_per_sec);
        self.balance_nanotokens = (self.balance_nanotokens + earned).min(capacity);
    }
}

fn assert_rate(rate_per_sec: u64) {
    assert!(
        (1..=QUOTA_RATE_LIMIT_PER_SEC).contains(&rate_per_sec),
        "quota rate {rate_per_sec}/s out of range"
    );
}

fn capacity_nanotokens(rate_per_sec: u64) -> i128 {
    i128::from(rate_per_sec) * i128::from(BUCKET_CAPACITY_MS) * NANOS_PER_MS
}

fn debt_floor_nanotokens(rate_per_sec: u64) -> i128 {
    -(i128::from(rate_per_sec) * i128::from(THROTTLE_MS_LIMIT) * NANOS_PER_MS)
}

/// Throttle counters of one principal and kind.
#[derive(Debug, Clone, Copy, Default)]
struct ThrottleCounts {
    throttled_total: u64,
    throttle_us_total: u64,
}

/// One principal's limits, buckets and counters, by [`QuotaKind::index`].
#[derive(Debug, Clone)]
struct PrincipalBuckets {
    limits: QuotaLimits,
    buckets: [Option<TokenBucket>; 3],
    counts: [ThrottleCounts; 3],
}

impl PrincipalBuckets {
    fn new(limits: QuotaLimits, now: Instant) -> Self {
        let bucket = |kind| limits.limit_per_sec(kind).map(|r| TokenBucket::new(r, now));
        PrincipalBuckets {
            limits,
            buckets: QuotaKind::ALL.map(bucket),
            counts: [ThrottleCounts::default(); 3],
        }
    }

    /// New limits: a kind that stays limited keeps its balance, a newly
    /// limited kind starts full, an unlimited one loses its bucket.
    fn update(&mut self, limits: QuotaLimits, now: Instant) {
        for kind in QuotaKind::ALL {
            let slot = &mut self.buckets[kind.index()];
            match (limits.limit_per_sec(kind), slot.as_mut()) {
                (Some(rate), Some(bucket)) => bucket.set_rate(rate, now),
                (Some(rate), None) => *slot = Some(TokenBucket::new(rate, now)),
                (None, _) => *slot = None,
            }
        }
        self.limits = limits;
    }
}

/// One principal's throttling of one kind, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaMetric {
    pub principal: String,
    pub kind: QuotaKind,
    pub limit_per_sec: u64,
    /// Charges that were throttled.
    pub throttled_total: u64,
    /// Throttle time handed out, in total.
    pub throttle_ms_total: u64,
}

/// Buckets of every principal with a quota (shared by all its
/// connections), plus counters for metrics.
#[derive(Debug, Default)]
pub struct Quotas {
    principals: Mutex<HashMap<String, PrincipalBuckets>>,
}

impl Quotas {
    pub fn new() -> Quotas {
        Quotas::default()
    }

    /// Sets `principal`'s limits, replacing any: a kind that stays limited
    /// keeps its current balance. Refuses invalid limits, and a new
    /// principal past [`QUOTA_PRINCIPALS_LIMIT`].
    pub fn set(&self, principal: &str, limits: QuotaLimits) -> Result<(), QuotaError> {
        limits.validate()?;
        let now = Instant::now();
        let mut principals = self.principals.lock();
        if let Some(existing) = principals.get_mut(principal) {
            existing.update(limits, now);
            return Ok(());
        }
        if principals.len() >= QUOTA_PRINCIPALS_LIMIT {
            return Err(QuotaError::TooManyPrincipals {
                limit: QUOTA_PRINCIPALS_LIMIT,
            });
        }
        principals.insert(principal.to_string(), PrincipalBuckets::new(limits, now));
        assert!(principals.len() <= QUOTA_PRINCIPALS_LIMIT);
        Ok(())
    }

    /// Removes `principal`'s quota; false when it had none.
    pub fn remove(&self, principal: &str) -> bool {
        self.principals.lock().remove(principal).is_some()
    }

    /// Every principal's limits, sorted by principal.
    pub fn list(&self) -> Vec<(String, QuotaLimits)> {
        let principals = self.principals.lock();
        let mut all: Vec<_> = principals
            .iter()
            .map(|(principal, state)| (principal.clone(), state.limits))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Replaces every quota (at load). Principals kept keep their balances
    /// and counters; invalid limits, and principals past the limit, are
    /// skipped with a warning.
    pub fn replace_all(&self, all: Vec<(String, QuotaLimits)>) {
        let now = Instant::now();
        let mut principals = self.principals.lock();
        let mut previous = std::mem::take(&mut *principals);
        for (principal, limits) in all {
            if let Err(error) = limits.validate() {
                tracing::warn!(%principal, %error, "quota skipped");
                continue;
            }
            if principals.len() >= QUOTA_PRINCIPALS_LIMIT && !principals.contains_key(&principal) {
                tracing::warn!(%principal, limit = QUOTA_PRINCIPALS_LIMIT, "quota skipped: too many principals");
                continue;
            }
            let state = match previous.remove(&principal) {
                Some(mut state) => {
                    state.update(limits, now);
                    state
                }
                None => PrincipalBuckets::new(limits, now),
            };
            principals.insert(principal, state);
        }
    }

    /// Charges `amount` of `kind` to `principal`; the time its connection
    /// must be muted (zero when it has no quota of that kind or is within
    /// it).
    pub fn charge(&self, principal: &str, kind: QuotaKind, amount: u64, now: Instant) -> Duration {
        let mut principals = self.principals.lock();
        let Some(state) = principals.get_mut(principal) else {
            return Duration::ZERO;
        };
        let Some(bucket) = state.buckets[kind.index()].as_mut() else {
            return Duration::ZERO;
        };
        let throttle = bucket.charge(amount, now);
        if !throttle.is_zero() {
            let counts = &mut state.counts[kind.index()];
            counts.throttled_total += 1;
            let micros = u64::try_from(throttle.as_micros()).unwrap_or(u64::MAX);
            counts.throttle_us_total = counts.throttle_us_total.saturating_add(micros);
        }
        throttle
    }

    /// For `/metrics`: per principal and limited kind, the limit, how many
    /// charges were throttled and for how long in total. Sorted by
    /// principal, then kind.
    pub fn metrics(&self) -> Vec<QuotaMetric> {
        let principals = self.principals.lock();
        let mut metrics = Vec::new();
        for (principal, state) in principals.iter() {
            for kind in QuotaKind::ALL {
                let Some(limit_per_sec) = state.limits.limit_per_sec(kind) else {
                    continue;
                };
                let counts = state.counts[kind.index()];
                metrics.push(QuotaMetric {
                    principal: principal.clone(),
                    kind,
                    limit_per_sec,
                    throttled_total: counts.throttled_total,
                    throttle_ms_total: counts.throttle_us_total / 1_000,
                });
            }
        }
        metrics.sort_by(|a, b| (&a.principal, a.kind).cmp(&(&b.principal, b.kind)));
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "User:alice";

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn produce_limit(bytes_per_sec: u64) -> QuotaLimits {
        QuotaLimits {
            produce_bytes_per_sec: Some(bytes_per_sec),
            ..QuotaLimits::default()
        }
    }

    #[test]
    fn charges_within_the_rate_are_not_throttled() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000, start);
        for tick in 0..100 {
            // 100 per 100 ms: exactly the rate.
            let throttle = bucket.charge(100, start + ms(100 * tick));
            assert_eq!(throttle, Duration::ZERO, "tick {tick}");
        }
    }

    #[test]
    fn an_oversized_charge_is_accepted_then_throttled_by_debt_over_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000, start);
        // A full bucket holds 1000: a charge of 3000 leaves a debt of 2000.
        assert_eq!(bucket.charge(3_000, start), ms(2_000));
        // Half a second later the debt is 1500, and a further 500 makes 2000.
        assert_eq!(bucket.charge(500, start + ms(500)), ms(2_000));
        // Once the debt is paid, a small charge goes through.
        assert_eq!(bucket.charge(1, start + ms(2_600)), Duration::ZERO);
    }

    #[test]
    fn the_throttle_never_exceeds_the_limit_and_excess_debt_is_forgiven() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        let throttle = bucket.charge(u64::MAX, start);
        assert_eq!(throttle, ms(THROTTLE_MS_LIMIT));
        let again = bucket.charge(u64::MAX, start + ms(1));
        assert_eq!(again, ms(THROTTLE_MS_LIMIT));
        let paid = start + ms(1 + THROTTLE_MS_LIMIT);
        assert_eq!(bucket.charge(0, paid), Duration::ZERO);
    }

    #[test]
    fn a_bucket_holds_one_second_of_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000, start);
        // An hour idle earns no more than a full bucket.
        let later = start + Duration::from_secs(3_600);
        assert_eq!(bucket.charge(1_000, later), Duration::ZERO);
        assert_eq!(bucket.charge(1, later), ms(1));
    }

    #[test]
    fn an_earlier_instant_earns_nothing() {
        let start = Instant::now() + ms(1_000);
        let mut bucket = TokenBucket::new(1_000, start);
        assert_eq!(bucket.charge(2_000, start), ms(1_000));
        let earlier = start - ms(500);
        assert_eq!(bucket.charge(0, earlier), ms(1_000));
    }

    #[test]
    fn changing_the_rate_keeps_the_balance() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000, start);
        assert_eq!(bucket.charge(2_000, start), ms(1_000));
        bucket.set_rate(100, start);
        // The same debt of 1000 now takes ten seconds to repay.
        assert_eq!(bucket.charge(0, start), ms(10_000));
        assert_eq!(bucket.rate_per_sec(), 100);
    }

    /// A producer sending five times its quota, waiting out every
    /// throttle, gets its quota through (±5 %) once the first second's
    /// burst is spent.
    #[test]
    fn sustained_overload_admits_the_rate() {
        let rate_per_sec = 10_000;
        let quotas = Quotas::new();
        quotas
            .set(ALICE, produce_limit(rate_per_sec))
            .expect("valid");
        let start = Instant::now() + ms(10);
        // Spend the burst: the bucket starts full.
        let burst = quotas.charge(ALICE, QuotaKind::ProduceBytes, rate_per_sec, start);
        assert_eq!(burst, Duration::ZERO);
        let chunk_bytes = 1_000;
        let send_every = ms(20); // 50 chunks a second: 5x the rate
        let end = start + Duration::from_secs(10);
        let (mut now, mut admitted_bytes) = (start, 0);
        while now < end {
            let throttle = quotas.charge(ALICE, QuotaKind::ProduceBytes, chunk_bytes, now);
            admitted_bytes += chunk_bytes;
            now += send_every.max(throttle);
        }
        let expected = rate_per_sec * 10;
        let within = expected * 95 / 100..=expected * 105 / 100;
        assert!(
            within.contains(&admitted_bytes),
            "admitted {admitted_bytes}"
        );
    }

    #[test]
    fn principals_without_a_quota_of_a_kind_are_never_throttled() {
        let quotas = Quotas::new();
        let now = Instant::now();
        let stranger = quotas.charge("User:bob", QuotaKind::ProduceBytes, u64::MAX, now);
        assert_eq!(stranger, Duration::ZERO);
        quotas.set(ALICE, produce_limit(1)).expect("valid");
        let fetch = quotas.charge(ALICE, QuotaKind::FetchBytes, u64::MAX, now);
        assert_eq!(fetch, Duration::ZERO);
    }

    #[test]
    fn removing_a_quota_stops_throttling() {
        let quotas = Quotas::new();
        quotas.set(ALICE, produce_limit(100)).expect("valid");
        let now = Instant::now() + ms(10);
        assert!(!quotas
            .charge(ALICE, QuotaKind::ProduceBytes, 1_000, now)
            .is_zero());
        assert!(quotas.remove(ALICE));
        assert!(!quotas.remove(ALICE));
        let after = quotas.charge(ALICE, QuotaKind::ProduceBytes, 1_000, now);
        assert_eq!(after, Duration::ZERO);
        assert!(quotas.list().is_empty());
    }

    #[test]
    fn setting_again_keeps_the_debt_of_a_kind_still_limited() {
        let quotas = Quotas::new();
        quotas.set(ALICE, produce_limit(1_000)).expect("valid");
        let now = Instant::now() + ms(10);
        let kind = QuotaKind::ProduceBytes;
        assert_eq!(quotas.charge(ALICE, kind, 2_000, now), ms(1_000));
        let mut both = produce_limit(1_000);
        both.requests_per_sec = Some(5);
        quotas.set(ALICE, both).expect("valid");
        assert_eq!(quotas.charge(ALICE, kind, 0, now), ms(1_000), "debt kept");
        let requests = quotas.charge(ALICE, QuotaKind::Requests, 5, now);
        assert_eq!(requests, Duration::ZERO, "a new limit starts full");
        assert_eq!(quotas.list(), vec![(ALICE.to_string(), both)]);
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(QuotaLimits::default().validate(), Ok(()));
        assert_eq!(produce_limit(QUOTA_RATE_LIMIT_PER_SEC).validate(), Ok(()));
        for bad in [0, QUOTA_RATE_LIMIT_PER_SEC + 1] {
            let refused = QuotaLimits {
                fetch_bytes_per_sec: Some(bad),
                ..QuotaLimits::default()
            };
            let error = Quotas::new().set(ALICE, refused);
            assert!(matches!(
                error,
                Err(QuotaError::RateOutOfRange {
                    kind: "fetch_bytes",
                    ..
                })
            ));
        }
    }

    #[test]
    fn principals_past_the_limit_are_refused() {
        let quotas = Quotas::new();
        for i in 0..QUOTA_PRINCIPALS_LIMIT {
            quotas
                .set(&format!("User:u{i}"), produce_limit(1))
                .expect("room");
        }
        let refused = quotas.set("User:one-more", produce_limit(1));
        let limit = QUOTA_PRINCIPALS_LIMIT;
        assert_eq!(refused, Err(QuotaError::TooManyPrincipals { limit }));
        assert_eq!(
            quotas.set("User:u0", produce_limit(2)),
            Ok(()),
            "a change is not new"
        );
    }

    #[test]
    fn replace_all_loads_a_sorted_list_and_skips_invalid_limits() {
        let quotas = Quotas::new();
        quotas.set("User:gone", produce_limit(1)).expect("valid");
        quotas.replace_all(vec![
            ("User:zed".to_string(), produce_limit(5)),
            ("User:bad".to_string(), produce_limit(0)),
            (ALICE.to_string(), produce_limit(7)),
        ]);
        let expected = vec![
            (ALICE.to_string(), produce_limit(7)),
            ("User:zed".to_string(), produce_limit(5)),
        ];
        assert_eq!(quotas.list(), expected);
    }

    #[test]
    fn metrics_count_throttled_charges_and_their_time() {
        let quotas = Quotas::new();
        quotas.set(ALICE, produce_limit(1_000)).expect("valid");
        let now = Instant::now() + ms(10);
        let kind = QuotaKind::ProduceBytes;
        assert_eq!(quotas.charge(ALICE, kind, 1_000, now), Duration::ZERO);
        assert_eq!(quotas.charge(ALICE, kind, 250, now), ms(250));
        assert_eq!(quotas.charge(ALICE, kind, 250, now), ms(500));
        let expected = QuotaMetric {
            principal: ALICE.to_string(),
            kind,
            limit_per_sec: 1_000,
            throttled_total: 2,
            throttle_ms_total: 750,
        };
        assert_eq!(quotas.metrics(), vec![expected]);
    }

    #[test]
    fn kinds_have_metric_names() {
        let names = QuotaKind::ALL.map(QuotaKind::name);
        assert_eq!(names, ["produce_bytes", "fetch_bytes", "requests"]);
    }
}
