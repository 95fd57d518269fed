use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(circuit_breaker(failure_threshold = 0))]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
