//! Every spelling of `&self` is a wrapped method's receiver.
#![deny(warnings)]

use athyper::prelude::*;
use athyper::resilience::Adapter;

#[derive(Default)]
struct Billing {
    resilience: AdapterState,
}

#[adapter(retry = "db", health = "ping")]
impl Billing {
    async fn charge(&self, cents: u64) -> Result<u64, String> {
        Ok(cents)
    }

    #[allow(clippy::needless_arbitrary_self_type)]
    async fn refund(self: &Self, cents: u64) -> Result<u64, String> {
        Ok(cents)
    }

    #[allow(clippy::needless_arbitrary_self_type)]
    async fn void<'a>(self: &'a Self, id: &'a str) -> Result<&'a str, String> {
        Ok(id)
    }

    #[allow(clippy::needless_arbitrary_self_type)]
    async fn ping(self: &Self) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let billing = Billing::default();
    assert_eq!(billing.charge(5).await, Ok(5));
    assert_eq!(billing.refund(3).await, Ok(3));
    assert_eq!(billing.void("inv-1").await, Ok("inv-1"));
    assert_eq!(Billing::descriptor().methods, ["charge", "refund", "void"]);
    assert_eq!(Billing::descriptor().health, Some("ping"));
    assert_eq!(billing.health().await, Ok(()));
}
