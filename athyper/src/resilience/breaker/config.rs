use std::time::Duration;

use crate::resilience::ResilienceError;

/// When a [`CircuitBreaker`](super::CircuitBreaker) trips, how long it stays
/// open, and how it closes again.
///
/// A breaker trips in one of two ways:
///
/// - **consecutive failures**: `failure_threshold` failures in a row (5 by
///   default);
/// - **rates over a sliding window**: over the last `window` calls, once at
///   least `min_calls` are recorded, the share of failures reaches
///   `failure_rate`, or the share of calls slower than `slow_call` reaches
///   `slow_call_rate`.
///
/// Setting a rate switches the breaker to rates only, unless
/// `failure_threshold` is also set explicitly: then either trips it.
///
/// Once open, it rejects every call for `open_for`; the next call after
/// that makes it half-open, admitting at most `half_open_permits` trial
/// calls at once. `success_threshold` successful trials close it; any
/// failed trial opens it again.
///
/// ```
/// use std::time::Duration;
/// use athyper::resilience::CircuitBreakerConfig;
///
/// let by_rate = CircuitBreakerConfig::default()
///     .with_failure_rate(0.5)
///     .with_window(20)
///     .with_min_calls(10)
///     .with_open_for(Duration::from_secs(10));
/// assert_eq!(by_rate.failure_threshold(), None);
/// by_rate.validate().unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CircuitBreakerConfig {
    failure_threshold: Option<u32>,
    failure_rate: Option<f64>,
    slow_call: Option<(Duration, f64)>,
    window: u32,
    min_calls: u32,
    open_for: Duration,
    half_open_permits: u32,
    success_threshold: u32,
}

impl CircuitBreakerConfig {
    /// The consecutive failures that trip a breaker configured with no rate.
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
    /// The largest `window`, `half_open_permits` and `success_threshold`.
    pub const MAX_COUNT: u32 = 10_000;

    /// 5 consecutive failures trip it; open for 30 s; one trial call, which
    /// closes it on success. Rates, if switched on, use a window of 100
    /// calls with at least 10 recorded.
    pub const DEFAULT: CircuitBreakerConfig = CircuitBreakerConfig {
        failure_threshold: None,
        failure_rate: None,
        slow_call: None,
        window: 100,
        min_calls: 10,
        open_for: Duration::from_secs(30),
        half_open_permits: 1,
        success_threshold: 1,
    };

    /// Trips after `failures` consecutive failures (at least 1).
    #[must_use]
    pub const fn with_failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = Some(failures);
        self
    }

    /// Trips when failures reach this share of the window's calls, in
    /// `(0, 1]`.
    #[must_use]
    pub const fn with_failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// Trips when calls slower than `threshold` reach `rate` of the window's
    /// calls, `rate` in `(0, 1]`. A slow call counts whether it succeeded
    /// or not; a slow trial call reopens a half-open breaker.
    #[must_use]
    pub const fn with_slow_calls(mut self, threshold: Duration, rate: f64) -> Self {
        self.slow_call = Some((threshold, rate));
        self
    }

    /// The number of most recent calls the rates are computed over.
    #[must_use]
    pub const fn with_window(mut self, calls: u32) -> Self {
        self.window = calls;
        self
    }

    /// The calls the window must hold before a rate can trip the breaker,
    /// from 1 to `window`.
    #[must_use]
    pub const fn with_min_calls(mut self, calls: u32) -> Self {
        self.min_calls = calls;
        self
    }

    /// How long an open breaker rejects calls before it admits trials.
    #[must_use]
    pub const fn with_open_for(mut self, duration: Duration) -> Self {
        self.open_for = duration;
        self
    }

    /// The most trial calls a half-open breaker lets run at once.
    #[must_use]
    pub const fn with_half_open_permits(mut self, permits: u32) -> Self {
        self.half_open_permits = permits;
        self
    }

    /// The successful trial calls that close a half-open breaker.
    #[must_use]
    pub const fn with_success_threshold(mut self, successes: u32) -> Self {
        self.success_threshold = successes;
        self
    }

    /// The consecutive failures that trip the breaker, if that rule is on:
    /// the explicit `failure_threshold`, else 5 when no rate is set.
    pub const fn failure_threshold(&self) -> Option<u32> {
        match (self.failure_threshold, self.failure_rate, self.slow_call) {
            (Some(n), _, _) => Some(n),
            (None, None, None) => Some(Self::DEFAULT_FAILURE_THRESHOLD),
            _ => None,
        }
    }

    /// The failure rate that trips the breaker, if set.
    pub const fn failure_rate(&self) -> Option<f64> {
        self.failure_rate
    }

    /// The slow-call duration and rate that trip the breaker, if set.
    pub const fn slow_calls(&self) -> Option<(Duration, f64)> {
        self.slow_call
    }

    /// The window size, in calls.
    pub const fn window(&self) -> u32 {
        self.window
    }

    /// The calls the window must hold before a rate counts.
    pub const fn min_calls(&self) -> u32 {
        self.min_calls
    }

    /// How long the breaker stays open.
    pub const fn open_for(&self) -> Duration {
        self.open_for
    }

    /// Trial calls admitted at once while half-open.
    pub const fn half_open_permits(&self) -> u32 {
        self.half_open_permits
    }

    /// Successful trials that close the breaker.
    pub const fn success_threshold(&self) -> u32 {
        self.success_threshold
    }

    /// Whether rates are computed, so the window is kept.
    pub(crate) const fn uses_window(&self) -> bool {
        self.failure_rate.is_some() || self.slow_call.is_some()
    }

    /// Checks every setting against its range; the `#[adapter]` macro
    /// checks the same rules at compile time.
    pub fn validate(&self) -> Result<(), ResilienceError> {
        let count = |setting, n: u32| {
            if n == 0 {
                Err(ResilienceError::invalid(setting, n, "must be at least 1"))
            } else if n > Self::MAX_COUNT {
                Err(ResilienceError::invalid(
                    setting,
                    n,
                    "must be at most 10000",
                ))
            } else {
                Ok(())
            }
        };
        let rate = |setting, r: f64| {
            if r > 0.0 && r <= 1.0 {
                Ok(())
            } else {
                Err(ResilienceError::invalid(
                    setting,
                    r,
                    "must be in (0, 1]: above zero, at most 1",
                ))
            }
        };
        if let Some(n) = self.failure_threshold {
            count("failure_threshold", n)?;
        }
        count("success_threshold", self.success_threshold)?;
        count("half_open_permits", self.half_open_permits)?;
        count("window", self.window)?;
        count("min_calls", self.min_calls)?;
        if self.min_calls > self.window {
            return Err(ResilienceError::invalid(
                "min_calls",
                self.min_calls,
                "must not exceed `window`",
            ));
        }
        if let Some(r) = self.failure_rate {
            rate("failure_rate", r)?;
        }
        if let Some((threshold, r)) = self.slow_call {
            rate("slow_call_rate", r)?;
            if threshold.is_zero() {
                return Err(ResilienceError::invalid(
                    "slow_call",
                    threshold,
                    "must be longer than zero",
                ));
            }
        }
        if self.open_for.is_zero() {
            return Err(ResilienceError::invalid(
                "open_for",
                self.open_for,
                "must be longer than zero",
            ));
        }
        Ok(())
    }

    /// The nearest valid configuration: each count within `1..=10000`,
    /// `min_calls` within the window, rates out of range dropped, a zero
    /// `open_for` made 1 ms. For descriptors written by hand; the macro
    /// only produces valid ones.
    pub(crate) fn sanitized(mut self) -> Self {
        let clamp = |n: u32| n.clamp(1, Self::MAX_COUNT);
        self.failure_threshold = self.failure_threshold.map(clamp);
        self.success_threshold = clamp(self.success_threshold);
        self.half_open_permits = clamp(self.half_open_permits);
        self.window = clamp(self.window);
        self.min_calls = self.min_calls.clamp(1, self.window);
        let valid = |r: f64| r > 0.0 && r <= 1.0;
        self.failure_rate = self.failure_rate.filter(|&r| valid(r));
        self.slow_call = self
            .slow_call
            .filter(|&(threshold, r)| valid(r) && !threshold.is_zero());
        if self.open_for.is_zero() {
            self.open_for = Duration::from_millis(1);
        }
        self
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_trips_on_consecutive_failures() {
        let c = CircuitBreakerConfig::default();
        assert_eq!(c.failure_threshold(), Some(5));
        assert!(!c.uses_window());
        c.validate().unwrap();
    }

    #[test]
    fn a_rate_switches_off_the_default_threshold_unless_set() {
        let c = CircuitBreakerConfig::default().with_failure_rate(0.5);
        assert_eq!(c.failure_threshold(), None);
        assert!(c.uses_window());
        let c = c.with_failure_threshold(3);
        assert_eq!(c.failure_threshold(), Some(3));
        let c = CircuitBreakerConfig::default().with_slow_calls(Duration::from_secs(1), 0.5);
        assert_eq!(c.failure_threshold(), None);
    }

    #[test]
    fn validation_names_the_setting() {
        let err = |c: CircuitBreakerConfig| c.validate().unwrap_err().to_string();
        let d = CircuitBreakerConfig::default();
        assert_eq!(
            err(d.with_failure_threshold(0)),
            "invalid failure_threshold `0`: must be at least 1"
        );
        assert_eq!(
            err(d.with_failure_rate(1.5)),
            "invalid failure_rate `1.5`: must be in (0, 1]: above zero, at most 1"
        );
        assert!(err(d.with_failure_rate(0.0)).contains("(0, 1]"));
        assert!(err(d.with_failure_rate(f64::NAN)).contains("(0, 1]"));
        assert_eq!(
            err(d.with_window(5).with_min_calls(6)),
            "invalid min_calls `6`: must not exceed `window`"
        );
        assert!(err(d.with_open_for(Duration::ZERO)).starts_with("invalid open_for `0ns`"));
        assert!(err(d.with_half_open_permits(0)).contains("half_open_permits"));
        assert!(err(d.with_success_threshold(20_000)).contains("at most 10000"));
        assert!(err(d.with_slow_calls(Duration::ZERO, 0.5)).contains("slow_call"));
    }

    #[test]
    fn sanitized_is_valid() {
        let c = CircuitBreakerConfig::default()
            .with_failure_threshold(0)
            .with_failure_rate(7.0)
            .with_window(0)
            .with_min_calls(9)
            .with_open_for(Duration::ZERO)
            .with_half_open_permits(0)
            .with_success_threshold(0)
            .sanitized();
        c.validate().unwrap();
        assert_eq!(c.failure_rate(), None);
    }
}
