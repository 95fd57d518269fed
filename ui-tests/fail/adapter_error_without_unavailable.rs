use athyper::prelude::*;

#[derive(Debug)]
struct Declined;

struct Billing {
    resilience: AdapterState,
}

#[adapter(circuit_breaker)]
impl Billing {
    async fn charge(&self) -> Result<(), Declined> {
        Err(Declined)
    }
}

fn main() {}
