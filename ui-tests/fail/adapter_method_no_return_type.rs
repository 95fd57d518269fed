use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(circuit_breaker)]
impl Billing {
    pub async fn charge(&self, cents: u64) {
        let _ = cents;
    }
}

fn main() {}
