//! Every option of `#[adapter]`, and the methods it wraps, skips and
//! leaves alone.
#![deny(warnings)]

use std::time::Duration;

use athyper::prelude::*;
use athyper::resilience::{Adapter, BreakerState, RetryPolicy};

static SLOW_RETRY: RetryPolicy = RetryPolicy::new(2);

#[derive(Default)]
struct Billing {
    state: AdapterState,
}

#[adapter(
    name = "billing",
    circuit_breaker(
        failure_threshold = 3,
        success_threshold = 2,
        open_for = "10s",
        window = 20,
        min_calls = 5,
        failure_rate = 0.5,
        half_open_permits = 2,
        slow_call = "2s",
        slow_call_rate = 1,
    ),
    retry = SLOW_RETRY,
    timeout = "2s",
    health = "ping",
    optional,
    state = "state",
    crate = "athyper",
)]
impl Billing {
    /// A constructor: not a method, left alone.
    fn new() -> Self {
        Billing::default()
    }

    /// Wrapped.
    pub async fn charge(&self, cents: u64, card: &str) -> Result<String, String> {
        Ok(format!("{cents} on {card}"))
    }

    /// Skipped: a plain method.
    #[adapter(skip)]
    pub fn currency(&self) -> &'static str {
        "EUR"
    }

    async fn ping(&self) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let billing = Billing::new();
    assert_eq!(billing.charge(5, "visa").await.unwrap(), "5 on visa");
    assert_eq!(billing.currency(), "EUR");
    assert_eq!(billing.breaker().unwrap().state(), BreakerState::Closed);
    assert_eq!(billing.health().await, Ok(()));
    let d = Billing::descriptor();
    assert_eq!(d.name, "billing");
    assert_eq!(d.methods, ["charge"]);
    assert_eq!(d.retry, "SLOW_RETRY");
    assert_eq!(d.timeout, Some(Duration::from_secs(2)));
    assert!(!d.required);
}
