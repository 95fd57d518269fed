use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

trait Payments {
    async fn charge(&self) -> Result<(), String>;
}

#[adapter(circuit_breaker)]
impl Payments for Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
