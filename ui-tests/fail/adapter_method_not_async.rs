use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(circuit_breaker)]
impl Billing {
    pub fn charge(&self, cents: u64) -> Result<u64, String> {
        Ok(cents)
    }
}

fn main() {}
