//! How long to wait before the next attempt.
//!
//! One [`Backoff`] value describes a whole schedule: the growth of the delay
//! ([`BackoffKind`]), its base, a cap, and how much randomness ([`Jitter`]) is
//! mixed in so that many clients failing together do not retry together.
//! The job queue stores it with every job; retry policies use the same type.

use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// How the delay grows from one retry to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackoffKind {
    /// The same delay before every retry: `base`.
    Fixed,
    /// `base × n` before retry `n`.
    Linear,
    /// `base × 2^(n-1)` before retry `n`.
    Exponential,
}

/// How much randomness is mixed into each delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Jitter {
    /// The computed delay, exactly.
    None,
    /// Uniform in `[0, delay]`: spreads retries most, may retry at once.
    Full,
    /// Uniform in `[delay / 2, delay]`: spreads retries, keeps half the wait.
    Equal,
}

/// A retry delay schedule.
///
/// The delay before retry `n` (1 for the first retry) is computed from the
/// kind and the base, capped at `max`, then jittered; the cap applies before
/// the jitter, so no delay ever exceeds `max`.
///
/// ```
/// use std::time::Duration;
/// use athyper::resilience::{Backoff, Jitter};
///
/// let backoff = Backoff::exponential(Duration::from_millis(100))
///     .with_max(Duration::from_secs(1))
///     .with_jitter(Jitter::None);
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3), Duration::from_millis(400));
/// assert_eq!(backoff.delay(10), Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Backoff {
    kind: BackoffKind,
    #[serde(with = "millis")]
    base: Duration,
    #[serde(with = "millis")]
    max: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// The cap given to a schedule that does not set one: five minutes.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(300);

    /// A schedule of `kind` starting at `base`, capped at
    /// [`DEFAULT_MAX`](Self::DEFAULT_MAX) (or at `base` if that is larger),
    /// with equal jitter.
    #[must_use]
    pub const fn new(kind: BackoffKind, base: Duration) -> Self {
        Backoff {
            kind,
            base,
            max: max_duration(base, Self::DEFAULT_MAX),
            jitter: Jitter::Equal,
        }
    }

    /// The same delay before every retry.
    #[must_use]
    pub const fn fixed(base: Duration) -> Self {
        Self::new(BackoffKind::Fixed, base)
    }

    /// A delay growing by `base` with each retry.
    #[must_use]
    pub const fn linear(base: Duration) -> Self {
        Self::new(BackoffKind::Linear, base)
    }

    /// A delay doubling with each retry.
    #[must_use]
    pub const fn exponential(base: Duration) -> Self {
        Self::new(BackoffKind::Exponential, base)
    }

    /// Sets the kind, keeping base, cap and jitter.
    #[must_use]
    pub const fn with_kind(mut self, kind: BackoffKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the base delay; the cap rises to `base` if it was lower.
    #[must_use]
    pub const fn with_base(mut self, base: Duration) -> Self {
        self.base = base;
        self.max = max_duration(base, self.max);
        self
    }

    /// Sets the cap; a cap below the base is raised to the base, so the
    /// schedule stays well formed. Code that wants that reported as an error
    /// checks it first, as the `#[job]` macro does.
    #[must_use]
    pub const fn with_max(mut self, max: Duration) -> Self {
        self.max = max_duration(self.base, max);
        self
    }

    /// Sets the jitter.
    #[must_use]
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The growth of the delay.
    pub const fn kind(&self) -> BackoffKind {
        self.kind
    }

    /// The first delay, before any growth.
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The largest delay this schedule ever returns.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The jitter applied to each delay.
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The delay before retry `retry` (1 for the first retry; 0 is read as 1)
    /// before jitter: grown from the base and capped.
    pub fn nominal(&self, retry: u32) -> Duration {
        let n = retry.max(1);
        let grown = match self.kind {
            BackoffKind::Fixed => self.base,
            BackoffKind::Linear => self.base.saturating_mul(n),
            BackoffKind::Exponential => {
                // 2^(n-1) overflows u32 past n = 32; the cap is reached long
                // before that for any base above zero.
                let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
                self.base.saturating_mul(factor)
            }
        };
        grown.min(self.max)
    }

    /// The range the jittered delay before retry `retry` falls in.
    pub fn bounds(&self, retry: u32) -> (Duration, Duration) {
        let nominal = self.nominal(retry);
        match self.jitter {
            Jitter::None => (nominal, nominal),
            Jitter::Full => (Duration::ZERO, nominal),
            Jitter::Equal => (nominal / 2, nominal),
        }
    }

    /// The delay before retry `retry`, jittered with the thread's generator.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, &mut rand::rng())
    }

    /// The delay before retry `retry`, jittered with `rng`.
    pub fn delay_with<R: rand::Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let (low, high) = self.bounds(retry);
        if low == high {
            return low;
        }
        // Nanosecond resolution; u64 nanoseconds cover 584 years.
        let low_ns = u64::try_from(low.as_nanos()).unwrap_or(u64::MAX);
        let high_ns = u64::try_from(high.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(low_ns..=high_ns))
    }
}

impl Default for Backoff {
    /// Exponential from one second, capped at five minutes, equal jitter.
    fn default() -> Self {
        Backoff::exponential(Duration::from_secs(1))
    }
}

const fn max_duration(a: Duration, b: Duration) -> Duration {
    if a.as_nanos() >= b.as_nanos() { a } else { b }
}

/// Durations as whole milliseconds, the unit job records are stored in.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = BackoffKind> {
        prop_oneof![
            Just(BackoffKind::Fixed),
            Just(BackoffKind::Linear),
            Just(BackoffKind::Exponential)
        ]
    }

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal)]
    }

    fn backoff() -> impl Strategy<Value = Backoff> {
        (kind(), 0u64..10_000_000, 0u64..100_000_000_000, jitter()).prop_map(
            |(kind, base_us, max_us, jitter)| {
                Backoff::new(kind, Duration::from_micros(base_us))
                    .with_max(Duration::from_micros(max_us))
                    .with_jitter(jitter)
            },
        )
    }

    proptest! {
        #[test]
        fn delay_never_exceeds_the_cap(b in backoff(), retry in 0u32..200, seed in any::<u64>()) {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            prop_assert!(b.delay_with(retry, &mut rng) <= b.max());
        }

        #[test]
        fn delay_falls_within_its_bounds(b in backoff(), retry in 0u32..200, seed in any::<u64>()) {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            let (low, high) = b.bounds(retry);
            let d = b.delay_with(retry, &mut rng);
            prop_assert!(low <= d && d <= high, "{d:?} outside {low:?}..={high:?}");
        }

        #[test]
        fn nominal_delay_never_shrinks(b in backoff(), retry in 1u32..200) {
            prop_assert!(b.nominal(retry) <= b.nominal(retry + 1));
        }

        #[test]
        fn equal_jitter_keeps_half_the_wait(b in backoff(), retry in 1u32..64, seed in any::<u64>()) {
            let b = b.with_jitter(Jitter::Equal);
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            prop_assert!(b.delay_with(retry, &mut rng) >= b.nominal(retry) / 2);
        }

        #[test]
        fn without_jitter_the_delay_is_the_nominal_one(b in backoff(), retry in 1u32..200) {
            let b = b.with_jitter(Jitter::None);
            prop_assert_eq!(b.delay(retry), b.nominal(retry));
        }

        #[test]
        fn the_cap_is_never_below_the_base(base in 0u64..1_000_000, max in 0u64..1_000_000) {
            let b = Backoff::fixed(Duration::from_millis(base)).with_max(Duration::from_millis(max));
            prop_assert!(b.max() >= b.base());
        }
    }

    #[test]
    fn schedules_grow_as_named() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(60);
        let sequence = |kind| {
            let b = Backoff::new(kind, base)
                .with_max(cap)
                .with_jitter(Jitter::None);
            (1..=5)
                .map(|n| b.nominal(n).as_millis())
                .collect::<Vec<_>>()
        };
        assert_eq!(sequence(BackoffKind::Fixed), [100, 100, 100, 100, 100]);
        assert_eq!(sequence(BackoffKind::Linear), [100, 200, 300, 400, 500]);
        assert_eq!(
            sequence(BackoffKind::Exponential),
            [100, 200, 400, 800, 1600]
        );
    }

    #[test]
    fn huge_retry_numbers_saturate_at_the_cap() {
        let b = Backoff::exponential(Duration::from_secs(1)).with_jitter(Jitter::None);
        assert_eq!(b.nominal(u32::MAX), Backoff::DEFAULT_MAX);
        let b = Backoff::linear(Duration::from_secs(1)).with_max(Duration::MAX);
        assert_eq!(
            b.nominal(u32::MAX),
            Duration::from_secs(u64::from(u32::MAX))
        );
    }

    #[test]
    fn serialises_durations_as_milliseconds() {
        let b = Backoff::linear(Duration::from_millis(250)).with_max(Duration::from_secs(2));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"linear","base":250,"max":2000,"jitter":"equal"}"#
        );
        assert_eq!(serde_json::from_str::<Backoff>(&json).unwrap(), b);
    }
}
