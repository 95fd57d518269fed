//! The count-based sliding window behind failure and slow-call rates,
//! without a lock: every call's outcome lands in a ring of atomic slots
//! and two running totals are adjusted by what the slot held before.
//!
//! A slot swap hands its previous value to exactly one recorder, so the
//! totals always match the slots, except for a call that is recorded
//! while a state change clears the window: the breaker then ignores
//! outcomes of calls admitted before the change (their epoch differs), and
//! one that slips between that check and the clearing shifts a total by
//! one until the next clearing. Totals are read clamped to
//! `0..=calls`, so that can never trip the breaker on its own.

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

use crate::resilience::TransitionReason;

const RECORDED: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

pub(super) struct Window {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    failures: AtomicI64,
    slow: AtomicI64,
    min_calls: u32,
    failure_rate: Option<f64>,
    slow_rate: Option<f64>,
}

impl Window {
    pub(super) fn new(
        size: u32,
        min_calls: u32,
        failure_rate: Option<f64>,
        slow_rate: Option<f64>,
    ) -> Self {
        Window {
            slots: (0..size.max(1)).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            failures: AtomicI64::new(0),
            slow: AtomicI64::new(0),
            min_calls: min_calls.max(1),
            failure_rate,
            slow_rate,
        }
    }

    /// Records one call; returns why the breaker should trip, if it should.
    pub(super) fn record(&self, failed: bool, slow: bool) -> Option<TransitionReason> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let size = self.slots.len() as u64;
        let bits = RECORDED | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        // `seq % size` is below `size`, itself a `usize`.
        let old = self.slots[(seq % size) as usize].swap(bits, Ordering::AcqRel);
        let delta = |mask: u8| i64::from(bits & mask != 0) - i64::from(old & mask != 0);
        let failures = match delta(FAILED) {
            0 => self.failures.load(Ordering::Acquire),
            d => self.failures.fetch_add(d, Ordering::AcqRel) + d,
        };
        let slows = match delta(SLOW) {
            0 => self.slow.load(Ordering::Acquire),
            d => self.slow.fetch_add(d, Ordering::AcqRel) + d,
        };
        let calls = (seq + 1).min(size);
        if calls < u64::from(self.min_calls) {
            return None;
        }
        // Window sizes are at most 10 000, so these fit in u32 and convert
        // to f64 exactly.
        let calls = calls as u32;
        let clamp = |n: i64| n.clamp(0, i64::from(calls)) as u32;
        let (failures, slows) = (clamp(failures), clamp(slows));
        let reached = |count: u32, rate: Option<f64>| {
            rate.is_some_and(|rate| f64::from(count) >= rate * f64::from(calls))
        };
        if reached(failures, self.failure_rate) {
            Some(TransitionReason::FailureRate { failures, calls })
        } else if reached(slows, self.slow_rate) {
            Some(TransitionReason::SlowCallRate { slow: slows, calls })
        } else {
            None
        }
    }

    /// Empties the window. Called under the breaker's transition lock.
    pub(super) fn clear(&self) {
        for slot in &*self.slots {
            slot.store(0, Ordering::Relaxed);
        }
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
        self.next.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_only_with_enough_calls() {
        let w = Window::new(10, 4, Some(0.5), None);
        assert_eq!(w.record(true, false), None);
        assert_eq!(w.record(true, false), None);
        assert_eq!(w.record(true, false), None);
        assert_eq!(
            w.record(false, false),
            Some(TransitionReason::FailureRate {
                failures: 3,
                calls: 4
            })
        );
    }

    #[test]
    fn old_outcomes_slide_out() {
        let w = Window::new(4, 4, Some(0.75), None);
        for _ in 0..2 {
            assert_eq!(w.record(true, false), None);
        }
        for _ in 0..2 {
            assert_eq!(w.record(false, false), None);
        }
        // The two failures leave the window as successes replace them.
        for _ in 0..4 {
            assert_eq!(w.record(false, false), None);
        }
        assert_eq!(w.failures.load(Ordering::Relaxed), 0);
        assert_eq!(w.record(true, false), None);
        assert_eq!(w.record(true, false), None);
        assert_eq!(
            w.record(true, false),
            Some(TransitionReason::FailureRate {
                failures: 3,
                calls: 4
            })
        );
    }

    #[test]
    fn slow_calls_have_their_own_rate() {
        let w = Window::new(4, 2, Some(1.0), Some(0.5));
        assert_eq!(w.record(false, true), None);
        assert_eq!(
            w.record(false, false),
            Some(TransitionReason::SlowCallRate { slow: 1, calls: 2 })
        );
    }

    #[test]
    fn clear_starts_over() {
        let w = Window::new(3, 1, Some(1.0), None);
        assert!(w.record(true, false).is_some());
        w.clear();
        assert_eq!(w.record(false, false), None);
        assert_eq!(w.failures.load(Ordering::Relaxed), 0);
    }
}
