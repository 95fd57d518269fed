//! The serving process's own state: its circuit breakers and health
//! checks. Only a dashboard served by the runtime has them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use crate::health::HealthRegistry;
use crate::resilience::{BreakerState, CircuitBreaker};

/// How many state changes the log keeps.
const KEPT: usize = 50;

/// How often the breakers are looked at.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// One state change, as seen.
#[derive(Clone, Debug)]
pub(crate) struct Transition {
    pub(crate) at: SystemTime,
    pub(crate) breaker: String,
    pub(crate) from: BreakerState,
    pub(crate) to: BreakerState,
}

/// The process's breakers and checks, and the breakers' recent changes.
pub(crate) struct Process {
    pub(crate) breakers: Vec<CircuitBreaker>,
    pub(crate) health: Option<HealthRegistry>,
    log: Mutex<Log>,
}

struct Log {
    last: Vec<BreakerState>,
    since: Vec<SystemTime>,
    changes: VecDeque<Transition>,
}

impl Process {
    pub(crate) fn new(breakers: Vec<CircuitBreaker>, health: Option<HealthRegistry>) -> Arc<Self> {
        let now = SystemTime::now();
        let process = Arc::new(Process {
            log: Mutex::new(Log {
                last: breakers.iter().map(CircuitBreaker::state).collect(),
                since: vec![now; breakers.len()],
                changes: VecDeque::new(),
            }),
            breakers,
            health,
        });
        // Breakers report to one process-wide hook that metrics own; the
        // dashboard keeps its own record by looking at them regularly,
        // for as long as the dashboard exists.
        if !process.breakers.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
            let weak = Arc::downgrade(&process);
            tokio::spawn(sample(weak));
        }
        process
    }

    /// Records changes since the last look.
    pub(crate) fn observe(&self) {
        let now = SystemTime::now();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        for (i, breaker) in self.breakers.iter().enumerate() {
            let state = breaker.state();
            if state != log.last[i] {
                let from = log.last[i];
                log.last[i] = state;
                log.since[i] = now;
                if log.changes.len() == KEPT {
                    log.changes.pop_back();
                }
                log.changes.push_front(Transition {
                    at: now,
                    breaker: breaker.name().to_owned(),
                    from,
                    to: state,
                });
            }
        }
    }

    /// The changes seen, newest first.
    pub(crate) fn transitions(&self) -> Vec<Transition> {
        self.observe();
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.changes.iter().cloned().collect()
    }

    /// Since when breaker `i` has been in its state, as far as seen.
    pub(crate) fn since(&self, i: usize) -> Option<SystemTime> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.since.get(i).copied()
    }
}

async fn sample(process: Weak<Process>) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match process.upgrade() {
            Some(process) => process.observe(),
            None => return,
        }
    }
}

/// `closed`, `open`, `half-open` as shown.
pub(crate) fn state_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half-open",
    }
}
