//! Failed authentication attempts per source IP: past
//! [`AUTH_FAILURES_PER_WINDOW`] failures in a window of
//! [`AUTH_FAILURE_WINDOW_MS`], an address may not try again until its
//! window ends. This slows password guessing from one address; it does not
//! lock any account (that would let anyone lock out a user).
//!
//! Windows are fixed: the first failure opens one, and it lasts the window
//! whatever happens in it. A success does not reset the count: an attacker
//! who holds one valid account must not earn fresh guesses at the others
//! by logging into it between attempts.
//!
//! Memory is bounded: at most [`AUTH_FAILURE_IPS_LIMIT`] addresses are
//! tracked. When a new address finds the table full, ended windows are
//! dropped, and if that is not enough, the oldest tenth of the windows (the
//! nearest to their end) go too, so a spray of addresses costs amortized
//! constant time per failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures one address may make in a window.
pub const AUTH_FAILURES_PER_WINDOW: u32 = 10;
/// How long a window lasts, from its first failure.
pub const AUTH_FAILURE_WINDOW_MS: u64 = 60_000;
/// Most addresses tracked; past it the oldest windows are dropped (bounded
/// memory under a spray of addresses).
pub const AUTH_FAILURE_IPS_LIMIT: usize = 10_000;
/// When the table is full of live windows, one in this many goes.
const EVICT_FRACTION_DENOMINATOR: usize = 10;

/// One address's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// The table and its limits.
#[derive(Debug)]
struct Tracker {
    failures_per_window: u32,
    window: Duration,
    ips_limit: usize,
    windows: HashMap<IpAddr, Window>,
}

impl Tracker {
    /// Whether `window` has ended at `now`.
    fn ended(&self, window: &Window, now: Instant) -> bool {
        now.saturating_duration_since(window.started) >= self.window
    }

    /// Makes room for one more address: drops ended windows, then the
    /// oldest tenth of the rest if the table is still full.
    fn make_room(&mut self, now: Instant) {
        if self.windows.len() < self.ips_limit {
            return;
        }
        let window = self.window;
        self.windows
            .retain(|_, w| now.saturating_duration_since(w.started) < window);
        if self.windows.len() < self.ips_limit {
            return;
        }
        let evict = (self.ips_limit / EVICT_FRACTION_DENOMINATOR).max(1);
        let mut by_age: Vec<(Instant, IpAddr)> = self
            .windows
            .iter()
            .map(|(ip, w)| (w.started, *ip))
            .collect();
        by_age.select_nth_unstable(evict - 1);
        for (_, ip) in &by_age[..evict] {
            self.windows.remove(ip);
        }
        assert!(self.windows.len() < self.ips_limit);
    }
}

/// Failed authentications per source IP, shared by every connection.
#[derive(Debug)]
pub struct AuthFailures {
    tracker: Mutex<Tracker>,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures::new()
    }
}

impl AuthFailures {
    /// With the broker's limits.
    pub fn new() -> Self {
        AuthFailures::with_limits(
            AUTH_FAILURES_PER_WINDOW,
            AUTH_FAILURE_WINDOW_MS,
            AUTH_FAILURE_IPS_LIMIT,
        )
    }

    /// With other limits (tests). Panics on a zero limit.
    pub fn with_limits(failures_per_window: u32, window_ms: u64, ips_limit: usize) -> Self {
        assert!(failures_per_window > 0 && window_ms > 0 && ips_limit > 0);
        AuthFailures {
            tracker: Mutex::new(Tracker {
                failures_per_window,
                window: Duration::from_millis(window_ms),
                ips_limit,
                windows: HashMap::new(),
            }),
        }
    }

    /// Whether `ip` may try to authenticate now; `Err(retry_after)` when it
    /// has used up its failures in the current window (`retry_after` is
    /// when that window ends, never more than a window away).
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let tracker = self.tracker.lock();
        let Some(window) = tracker.windows.get(&ip) else {
            return Ok(());
        };
        if tracker.ended(window, now) || window.failures < tracker.failures_per_window {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(window.started);
        let retry_after = tracker.window.saturating_sub(elapsed);
        assert!(retry_after <= tracker.window);
        Err(retry_after)
    }

    /// Counts a failed attempt from `ip`, opening a window if it has none
    /// (or its window ended).
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut tracker = self.tracker.lock();
        let open = tracker
            .windows
            .get(&ip)
            .filter(|window| !tracker.ended(window, now))
            .copied();
        let window = match open {
            Some(window) => Window {
                failures: window.failures.saturating_add(1),
                ..window
            },
            None => {
                if !tracker.windows.contains_key(&ip) {
                    tracker.make_room(now);
                }
                Window {
                    started: now,
                    failures: 1,
                }
            }
        };
        tracker.windows.insert(ip, window);
        assert!(tracker.windows.len() <= tracker.ips_limit);
    }

    /// Deliberately does nothing: a success does not reset `ip`'s failures
    /// (see the module documentation). Kept so the authentication path
    /// reports both outcomes and the policy stays in this file.
    pub fn record_success(&self, ip: IpAddr) {
        let _ = ip;
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.tracker.lock().windows.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn window() -> Duration {
        Duration::from_millis(AUTH_FAILURE_WINDOW_MS)
    }

    #[test]
    fn ten_failures_are_allowed_and_the_eleventh_attempt_waits_for_the_window() {
        let failures = AuthFailures::new();
        let start = Instant::now();
        for attempt in 0..AUTH_FAILURES_PER_WINDOW {
            assert_eq!(failures.check(ip(1), start), Ok(()), "attempt {attempt}");
            failures.record_failure(ip(1), start);
        }
        let later = start + Duration::from_secs(15);
        let refused = failures.check(ip(1), later);
        assert_eq!(refused, Err(window() - Duration::from_secs(15)));
        let retry_after = refused.expect_err("refused");
        assert!(retry_after <= window());
        assert_eq!(failures.check(ip(1), start + window()), Ok(()));
    }

    #[test]
    fn a_new_window_starts_with_a_fresh_count() {
        let failures = AuthFailures::with_limits(2, 1_000, 10);
        let start = Instant::now();
        failures.record_failure(ip(1), start);
        failures.record_failure(ip(1), start);
        assert!(failures.check(ip(1), start).is_err());
        let next_window = start + Duration::from_millis(1_000);
        failures.record_failure(ip(1), next_window);
        assert_eq!(
            failures.check(ip(1), next_window),
            Ok(()),
            "one failure so far"
        );
        failures.record_failure(ip(1), next_window);
        assert!(failures.check(ip(1), next_window).is_err());
    }

    #[test]
    fn one_address_does_not_affect_another() {
        let failures = AuthFailures::new();
        let now = Instant::now();
        for _ in 0..AUTH_FAILURES_PER_WINDOW {
            failures.record_failure(ip(1), now);
        }
        assert!(failures.check(ip(1), now).is_err());
        assert_eq!(failures.check(ip(2), now), Ok(()));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(failures.check(v6, now), Ok(()));
    }

    #[test]
    fn a_success_does_not_reset_the_failures() {
        let failures = AuthFailures::new();
        let now = Instant::now();
        for _ in 0..AUTH_FAILURES_PER_WINDOW {
            failures.record_failure(ip(1), now);
        }
        failures.record_success(ip(1));
        assert!(failures.check(ip(1), now).is_err());
    }

    #[test]
    fn the_table_stays_bounded_under_a_spray_of_addresses() {
        let failures = AuthFailures::new();
        let start = Instant::now();
        for i in 0..50_000u32 {
            let sprayed = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            // All within one window: nothing has ended to make room.
            failures.record_failure(sprayed, start + Duration::from_micros(u64::from(i)));
            assert!(failures.tracked() <= AUTH_FAILURE_IPS_LIMIT);
        }
        assert!(failures.tracked() > AUTH_FAILURE_IPS_LIMIT / 2);
        // The newest addresses are still tracked.
        let newest = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + 49_999));
        let late = start + Duration::from_secs(1);
        for _ in 1..AUTH_FAILURES_PER_WINDOW {
            failures.record_failure(newest, late);
        }
        assert!(failures.check(newest, late).is_err());
    }

    #[test]
    fn a_full_table_drops_ended_windows_first() {
        let failures = AuthFailures::with_limits(1, 1_000, 2);
        let start = Instant::now();
        failures.record_failure(ip(1), start);
        failures.record_failure(ip(2), start + Duration::from_millis(600));
        failures.record_failure(ip(3), start + Duration::from_millis(1_100));
        let now = start + Duration::from_millis(1_100);
        assert_eq!(failures.tracked(), 2);
        assert!(
            failures.check(ip(2), now).is_err(),
            "its window is still open"
        );
        assert!(failures.check(ip(3), now).is_err());
    }
}
