use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(circuit_breaker(failure_rate = 1.5, window = 20))]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
