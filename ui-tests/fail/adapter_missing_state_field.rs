use athyper::prelude::*;

struct Billing {
    endpoint: String,
}

#[adapter(circuit_breaker)]
impl Billing {
    async fn charge(&self) -> Result<(), String> {
        let _ = &self.endpoint;
        Ok(())
    }
}

fn main() {}
