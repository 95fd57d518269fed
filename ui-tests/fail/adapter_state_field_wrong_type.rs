use athyper::prelude::*;

struct Billing {
    resilience: u32,
}

#[adapter(circuit_breaker)]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
