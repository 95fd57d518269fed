use athyper::prelude::*;

struct Billing {
    charged: u64,
    resilience: AdapterState,
}

#[adapter(circuit_breaker)]
impl Billing {
    pub async fn charge(&mut self, cents: u64) -> Result<(), String> {
        self.charged += cents;
        Ok(())
    }
}

fn main() {}
