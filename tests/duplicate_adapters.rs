//! Two adapters with one name are a start-up error naming both
//! definitions: their health checks and metrics would be indistinguishable,
//! and the second check would hide the first from `/health`.

use std::sync::Arc;

use athyper::prelude::*;
use athyper::resilience::{AdapterDescriptor, ResilienceError};

mod billing {
    use athyper::prelude::*;

    #[derive(Default)]
    pub struct Billing {
        resilience: AdapterState,
    }

    #[adapter(name = "payments")]
    impl Billing {
        pub async fn charge(&self, cents: u64) -> Result<u64, String> {
            Ok(cents)
        }
    }
}

mod legacy {
    use athyper::prelude::*;

    #[derive(Default)]
    pub struct Legacy {
        resilience: AdapterState,
    }

    /// Failing, and required: were its check replaced by the other's,
    /// `/health` would say healthy.
    #[adapter(name = "payments", health = "ping")]
    impl Legacy {
        async fn ping(&self) -> Result<(), String> {
            Err("the legacy provider is down".to_owned())
        }
    }
}

#[test]
fn collecting_names_both_definitions() {
    let err = AdapterDescriptor::all().unwrap_err();
    let ResilienceError::DuplicateAdapter {
        name,
        first,
        second,
    } = &err
    else {
        panic!("expected a duplicate-adapter error, got {err}");
    };
    assert_eq!(*name, "payments");
    assert!(
        first.starts_with("duplicate_adapters::billing (tests/duplicate_adapters.rs:"),
        "{first}"
    );
    assert!(
        second.starts_with("duplicate_adapters::legacy (tests/duplicate_adapters.rs:"),
        "{second}"
    );
}

#[test]
fn the_runtime_refuses_to_start_with_both_attached() {
    let err = Runtime::builder()
        .env_from(|_| None)
        .without_http()
        .adapter(Arc::new(billing::Billing::default()))
        .adapter(Arc::new(legacy::Legacy::default()))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "adapter `payments` is defined twice: at duplicate_adapters::billing (tests/duplicate_adapters.rs:"
        ),
        "{err}"
    );
    assert!(
        err.contains("at duplicate_adapters::legacy (tests/duplicate_adapters.rs:"),
        "{err}"
    );
    assert!(
        err.ends_with("give one of them another name with `#[adapter(name = \"...\")]`"),
        "{err}"
    );
}

#[test]
fn the_runtime_refuses_to_start_with_one_attached() {
    // The other is defined in the program all the same: its metrics and
    // spans would carry the same name.
    let err = Runtime::builder()
        .env_from(|_| None)
        .without_http()
        .adapter(Arc::new(billing::Billing::default()))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("adapter `payments` is defined twice"),
        "{err}"
    );
}
