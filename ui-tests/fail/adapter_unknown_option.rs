use athyper::prelude::*;

struct Billing {
    resilience: AdapterState,
}

#[adapter(circuit_braker)]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
