use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(circuit_breaker)]
#[adapter(retry = "db")]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
