//! Two handlers with one name are a start-up error naming both definitions.

use athyper::prelude::*;
use athyper::registry::{Registry, RegistryError};

mod billing {
    use athyper::prelude::*;

    #[job(queue = "billing", name = "charge")]
    pub async fn charge_card(_ctx: JobContext, _cents: u64) -> Result<(), String> {
        Ok(())
    }
}

mod legacy {
    use athyper::prelude::*;

    #[job(queue = "legacy")]
    pub async fn charge(_ctx: JobContext, _cents: u64) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn collecting_names_both_definitions() {
    let err = Registry::collect().unwrap_err();
    let RegistryError::DuplicateJob {
        name,
        first,
        second,
    } = &err
    else {
        panic!("expected a duplicate-job error, got {err}");
    };
    assert_eq!(*name, "charge");
    assert!(
        first.starts_with("duplicate_jobs::billing (tests/duplicate_jobs.rs:"),
        "{first}"
    );
    assert!(
        second.starts_with("duplicate_jobs::legacy (tests/duplicate_jobs.rs:"),
        "{second}"
    );
    assert!(
        err.to_string().contains("give one of them another name"),
        "{err}"
    );
}

#[test]
fn the_runtime_refuses_to_start() {
    let err = Runtime::builder()
        .env_from(|_| None)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("job `charge` is defined twice: at duplicate_jobs::billing"),
        "{err}"
    );
}
