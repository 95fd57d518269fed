use athyper::prelude::*;

#[derive(Debug)]
struct Declined;

struct Billing {
    resilience: AdapterState,
}

#[adapter(circuit_breaker, retry = "api")]
impl Billing {
    async fn charge(&self, cents: u64) -> Result<u64, Declined> {
        let _ = cents;
        Err(Declined)
    }
}

fn main() {}
