//! A handle is reached like the function it replaces: by path, from other
//! modules, with the function's visibility; one name in two modules makes
//! two handlers.
#![deny(warnings)]

use athyper::prelude::*;

mod billing {
    use athyper::prelude::*;

    pub mod jobs {
        use athyper::prelude::*;

        #[athyper::job(queue = "billing", name = "billing.charge")]
        pub(super) async fn charge(_ctx: JobContext, cents: u64) -> Result<(), String> {
            if cents == 0 { Err("nothing to charge".into()) } else { Ok(()) }
        }

        #[athyper::job(queue = "billing", name = "billing.refund")]
        pub(in crate::billing) async fn refund(_ctx: JobContext, _cents: u64) -> Result<(), String> {
            Ok(())
        }

        #[athyper::job(queue = "billing", name = "billing.audit")]
        async fn audit(_ctx: JobContext, _cents: u64) -> Result<(), String> {
            Ok(())
        }

        pub(crate) fn audit_name() -> &'static str {
            audit.descriptor().name
        }
    }

    pub fn names() -> [&'static str; 2] {
        [jobs::charge.descriptor().name, jobs::refund.descriptor().name]
    }

    pub async fn charge_now(cents: u64) -> Result<(), String> {
        jobs::charge.call(JobContext::detached("billing.charge"), cents).await
    }
}

mod legacy {
    use athyper::prelude::*;

    #[athyper::job(queue = "legacy", name = "legacy.charge")]
    pub async fn charge(_ctx: JobContext, _cents: u64) -> Result<(), String> {
        Ok(())
    }
}

use legacy::charge as legacy_charge;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(billing::names(), ["billing.charge", "billing.refund"]);
    assert_eq!(billing::jobs::audit_name(), "billing.audit");
    assert_eq!(legacy_charge.descriptor().name, "legacy.charge");
    assert_eq!(billing::charge_now(0).await, Err("nothing to charge".into()));
    let handle = legacy::charge;
    assert_eq!(format!("{handle:?}"), "charge");
}
